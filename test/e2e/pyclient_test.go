package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Exit codes of the scripts under py/ (see py/common.py).
const (
	pyExitOK           = 0
	pyExitAuth         = 2
	pyExitDisconnected = 4
	pyExitAuthFailed   = 5 // register.py: authentication after (no) registration failed
)

// pyScriptTimeout is the overall deadline every script enforces on itself.
const pyScriptTimeout = 40 * time.Second

// event is one JSON line printed by a script.
type event map[string]any

func (e event) str(key string) string {
	v, ok := e[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func (e event) has(key string) bool {
	v, ok := e[key]
	return ok && v != nil
}

func (e event) boolean(key string) bool {
	b, _ := e[key].(bool)
	return b
}

// num is a JSON number as a float64 (0 when absent).
func (e event) num(key string) float64 {
	f, _ := e[key].(float64)
	return f
}

func (e event) obj(key string) event {
	m, _ := e[key].(map[string]any)
	return event(m)
}

func (e event) strs(key string) []string {
	list, _ := e[key].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func (e event) objs(key string) []event {
	list, _ := e[key].([]any)
	out := make([]event, 0, len(list))
	for _, v := range list {
		m, _ := v.(map[string]any)
		out = append(out, event(m))
	}
	return out
}

func (e event) String() string {
	c := make(map[string]any, len(e))
	for k, v := range e {
		if k != "t" {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// pyProc is a running script.
type pyProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lineBuffer

	mu       sync.Mutex
	events   []event
	consumed []bool
	notify   chan struct{} // closed and replaced on every new event / exit
	exited   bool
	exitCode int
	waitErr  error
	nextID   int
}

// runPy starts py/<script> with /usr/bin/python3. name labels its output.
func runPy(t *testing.T, name, script string, args ...string) *pyProc {
	t.Helper()
	requirePython(t)
	path, err := filepath.Abs(filepath.Join("py", script))
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"-E", "-s", "-B", path, "--timeout", fmt.Sprint(pyScriptTimeout.Seconds())}, args...)
	p := &pyProc{t: t, name: name, notify: make(chan struct{}), stderr: newLineBuffer(nil)}
	p.cmd = exec.Command(systemPython, full...)
	p.cmd.Dir = filepath.Dir(path)
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		if !exited {
			_ = p.cmd.Process.Kill()
			p.waitExit(5 * time.Second)
		}
		if t.Failed() || dumpAlways {
			t.Logf("---- %s (%s %s) observations ----\n%s", name, script, strings.Join(args, " "), p.dump())
			t.Logf("---- %s stderr (slixmpp debug log) ----\n%s", name, tail(p.stderr.String(), 60000))
		}
	})
	return p
}

func (p *pyProc) read(stdout io.Reader) {
	sc := scanLines(bufio.NewScanner(stdout))
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			ev = event{"ev": "unparsable", "line": string(line)}
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.consumed = append(p.consumed, false)
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exited = true
	p.waitErr = err
	p.exitCode = p.cmd.ProcessState.ExitCode()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

func (p *pyProc) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	var t0 float64
	for i, ev := range p.events {
		ts, _ := ev["t"].(float64)
		if i == 0 {
			t0 = ts
		}
		fmt.Fprintf(&b, "  +%6.3fs %s\n", ts-t0, ev)
	}
	if p.exited {
		fmt.Fprintf(&b, "  exited: code %d (%v)\n", p.exitCode, p.waitErr)
	} else {
		b.WriteString("  (still running)\n")
	}
	return b.String()
}

// expect waits for the first not yet consumed event for which match returns
// true, marks it consumed and returns it. It fails the test after timeout or
// if the script exits first.
func (p *pyProc) expect(desc string, timeout time.Duration, match func(event) bool) event {
	p.t.Helper()
	ev, ok := p.find(timeout, match)
	if !ok {
		p.t.Fatalf("%s: did not observe %s within %v", p.name, desc, timeout)
	}
	return ev
}

// find is expect without failing.
func (p *pyProc) find(timeout time.Duration, match func(event) bool) (event, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i, ev := range p.events {
			if !p.consumed[i] && match(ev) {
				p.consumed[i] = true
				p.mu.Unlock()
				return ev, true
			}
		}
		exited, notify := p.exited, p.notify
		p.mu.Unlock()
		if exited {
			return nil, false
		}
		select {
		case <-notify:
		case <-deadline.C:
			return nil, false
		}
	}
}

// all returns every event so far (consumed or not) that matches.
func (p *pyProc) all(match func(event) bool) []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []event
	for _, ev := range p.events {
		if match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// expectEv waits for an event by name with optional field equality checks.
func (p *pyProc) expectEv(name string, fields map[string]string) event {
	p.t.Helper()
	desc := name
	if len(fields) > 0 {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k+"="+fields[k])
		}
		sort.Strings(keys)
		desc += " " + strings.Join(keys, " ")
	}
	return p.expect(desc, stepTimeout, evMatch(name, fields))
}

func evMatch(name string, fields map[string]string) func(event) bool {
	return func(ev event) bool {
		if ev.str("ev") != name {
			return false
		}
		for k, v := range fields {
			if ev.str(k) != v {
				return false
			}
		}
		return true
	}
}

// call sends a command to py/client.py and waits for its "done" answer.
func (p *pyProc) call(cmd string, args map[string]any) event {
	p.t.Helper()
	p.mu.Lock()
	p.nextID++
	id := fmt.Sprintf("%s-%d", cmd, p.nextID)
	p.mu.Unlock()
	msg := map[string]any{"id": id, "cmd": cmd}
	for k, v := range args {
		msg[k] = v
	}
	b, _ := json.Marshal(msg)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("%s: write command %s: %v", p.name, b, err)
	}
	return p.expect("reply to "+string(b), stepTimeout+5*time.Second, evMatch("done", map[string]string{"id": id}))
}

// mustCall is call, failing the test unless the answer has ok=true.
func (p *pyProc) mustCall(cmd string, args map[string]any) event {
	p.t.Helper()
	ev := p.call(cmd, args)
	if !ev.boolean("ok") {
		p.t.Fatalf("%s: command %s %v failed: %s", p.name, cmd, args, ev)
	}
	return ev
}

// waitExit waits for the script to exit and returns its exit code
// (-1 on timeout).
func (p *pyProc) waitExit(timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		exited, code, notify := p.exited, p.exitCode, p.notify
		p.mu.Unlock()
		if exited {
			return code
		}
		select {
		case <-notify:
		case <-deadline.C:
			return -1
		}
	}
}

// expectExit fails unless the script exits with want within timeout.
func (p *pyProc) expectExit(want int, timeout time.Duration) {
	p.t.Helper()
	if got := p.waitExit(timeout); got != want {
		p.t.Fatalf("%s: exit code %d, want %d (-1 = still running after %v)", p.name, got, want, timeout)
	}
}

// ---------------------------------------------------------------------------
// py/client.py

type clientOpts struct {
	directTLS  bool
	noPresence bool
	noRoster   bool
	extras     bool     // multi-device plugins: carbons, MAM, PEP, caps, blocking, CSI
	notify     []string // PEP nodes announced as +notify in caps (with extras)
}

// client is a logged-in py/client.py session.
type client struct {
	*pyProc
	JID     string // bound full JID
	Session event  // the session_start observation
}

// login starts py/client.py as jid (bare or full) and waits for
// session_start (and, unless disabled, the initial roster and presence).
func login(t *testing.T, srv *server, jid, password string, o clientOpts) *client {
	t.Helper()
	args := []string{"--jid", jid, "--password", password}
	if o.directTLS {
		args = append(args, "--direct-tls", "--port", srv.C2STLSPort())
	} else {
		args = append(args, "--port", srv.C2SPort())
	}
	if o.noPresence {
		args = append(args, "--no-presence")
	}
	if o.noRoster {
		args = append(args, "--no-roster")
	}
	if o.extras {
		args = append(args, "--extras")
	}
	for _, n := range o.notify {
		args = append(args, "--notify", n)
	}
	p := runPy(t, jid, "client.py", args...)
	sess := p.expect("session_start", 25*time.Second, func(ev event) bool {
		return ev.str("ev") == "session_start" || ev.str("ev") == "failed_auth" || ev.str("ev") == "fatal"
	})
	if sess.str("ev") != "session_start" {
		t.Fatalf("%s: login failed: %s", jid, sess)
	}
	c := &client{pyProc: p, JID: sess.str("jid"), Session: sess}
	if bare, _, _ := strings.Cut(jid, "/"); bareJID(c.JID) != bare {
		t.Fatalf("%s: bound JID %q does not belong to the account", jid, c.JID)
	}
	if !o.noRoster {
		r := p.expectEv("roster", nil)
		if !r.boolean("ok") {
			t.Fatalf("%s: initial roster request failed: %s", jid, r)
		}
	}
	if !o.noPresence {
		p.expectEv("initial_presence_sent", nil)
	}
	return c
}

// quit logs out cleanly and checks the script exited 0.
func (c *client) quit() {
	c.t.Helper()
	c.mustCall("quit", nil)
	c.expectExit(pyExitOK, 10*time.Second)
}

func (c *client) send(to, body string) {
	c.t.Helper()
	c.mustCall("send", map[string]any{"to": to, "body": body, "type": "chat"})
}

// expectMessage waits for a message with the given body.
func (c *client) expectMessage(body string) event {
	c.t.Helper()
	return c.expectEv("message", map[string]string{"body": body})
}

// expectNoMessage asserts no message with the given body arrives within d.
func (c *client) expectNoMessage(body string, d time.Duration) {
	c.t.Helper()
	if ev, ok := c.find(d, evMatch("message", map[string]string{"body": body})); ok {
		c.t.Fatalf("%s: unexpected message: %s", c.name, ev)
	}
}

func bareJID(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}
