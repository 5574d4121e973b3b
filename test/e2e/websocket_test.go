package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// XMPP over WebSocket (RFC 7395) on the HTTP port, and its XEP-0156
// discovery. The real client is xmpp.js (@xmpp/client from npm) run by
// Node.js: js/ws_client.js is remote-controlled like py/client.py. The
// scripts' dependencies are pinned by js/package-lock.json; when
// js/node_modules is missing (a fresh clone) or older than the lock file,
// the first test that needs it runs `npm ci` there. Without node or npm
// the tests that need them are skipped, or fail when CI is "true".

const (
	wsPath     = "/xmpp-websocket"
	nsFraming  = "urn:ietf:params:xml:ns:xmpp-framing"
	wsOpenToLH = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`
)

// ---------------------------------------------------------------------------
// Node.js and the npm packages

var (
	jsOnce  sync.Once
	jsNode  []string // node and the flags it needs (a global WebSocket)
	jsError error
)

// requireJS makes sure node and js/node_modules are ready and returns the
// command prefix that runs a script; it skips (locally) or fails (CI=true)
// when they cannot be had.
func requireJS(t *testing.T) []string {
	t.Helper()
	jsOnce.Do(func() { jsNode, jsError = setUpJS() })
	if jsError == nil {
		return jsNode
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Node.js and the npm packages of test/e2e/js are required in CI: %v", jsError)
	}
	t.Skipf("skipping: %v", jsError)
	return nil
}

func setUpJS() ([]string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found (install Node.js >= 20.10 and npm): %w", err)
	}
	dir, err := filepath.Abs("js")
	if err != nil {
		return nil, err
	}
	if stale(filepath.Join(dir, "node_modules", ".package-lock.json"), filepath.Join(dir, "package-lock.json")) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return nil, fmt.Errorf("test/e2e/js/node_modules is missing and npm is not installed: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	// xmpp.js uses the global WebSocket: built in from Node 22, behind a
	// flag in Node 20.
	const probe = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
	for _, flags := range [][]string{nil, {"--experimental-websocket"}} {
		if exec.Command(node, append(append([]string{}, flags...), "-e", probe)...).Run() == nil {
			return append([]string{node}, flags...), nil
		}
	}
	return nil, errors.New("this Node.js has no WebSocket client (Node.js >= 20.10 is needed)")
}

// stale reports whether target is missing or older than source.
func stale(target, source string) bool {
	ti, err := os.Stat(target)
	if err != nil {
		return true
	}
	si, err := os.Stat(source)
	return err == nil && ti.ModTime().Before(si.ModTime())
}

// runJS starts js/<script> with node; its observations are read like the
// python scripts' (see pyProc).
func runJS(t *testing.T, name, script string, args ...string) *pyProc {
	t.Helper()
	node := requireJS(t)
	path, err := filepath.Abs(filepath.Join("js", script))
	if err != nil {
		t.Fatal(err)
	}
	full := append(append(append([]string{}, node[1:]...), path, "--timeout", fmt.Sprint(pyScriptTimeout.Seconds())), args...)
	p := &pyProc{t: t, name: name, notify: make(chan struct{}), stderr: newLineBuffer(nil)}
	p.cmd = exec.Command(node[0], full...)
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
			t.Logf("---- %s stderr (xmpp.js status and XML) ----\n%s", name, tail(p.stderr.String(), 60000))
		}
	})
	return p
}

// ---------------------------------------------------------------------------
// A raw WebSocket client (gorilla/websocket)

type wsRaw struct {
	t          *testing.T
	conn       *websocket.Conn
	transcript bytes.Buffer
}

func wsURL(srv *server) string { return "ws://" + srv.HTTP + wsPath }

// wsDial connects with the given subprotocols; on a refused upgrade it
// returns the HTTP status.
func wsDial(t *testing.T, srv *server, protocols ...string) (*wsRaw, int, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: stepTimeout}
	conn, resp, err := d.Dial(wsURL(srv), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	c := &wsRaw{t: t, conn: conn}
	t.Cleanup(func() {
		_ = conn.Close()
		if t.Failed() || dumpAlways {
			t.Logf("---- WebSocket transcript ----\n%s", c.transcript.String())
		}
	})
	return c, 0, nil
}

func (c *wsRaw) send(s string) {
	c.t.Helper()
	fmt.Fprintf(&c.transcript, "C: %s\n", s)
	_ = c.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv reads one message and parses it as one element.
func (c *wsRaw) recv() (*node, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(stepTimeout))
	typ, p, err := c.conn.ReadMessage()
	if err != nil {
		fmt.Fprintf(&c.transcript, "S: (%v)\n", err)
		return nil, err
	}
	fmt.Fprintf(&c.transcript, "S: %s\n", p)
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("message type %d, want text", typ)
	}
	var n node
	if err := xml.Unmarshal(p, &n); err != nil {
		return nil, fmt.Errorf("message %q is not one XML element: %v", p, err)
	}
	return &n, nil
}

func (c *wsRaw) mustRecv(desc string) *node {
	c.t.Helper()
	n, err := c.recv()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", desc, err)
	}
	return n
}

// open sends <open/> and returns the features.
func (c *wsRaw) open() *node {
	c.t.Helper()
	c.send(wsOpenToLH)
	if n := c.mustRecv("<open/>"); !n.is(nsFraming, "open") || n.attr("from") != domain || n.attr("id") == "" {
		c.t.Fatalf("want the server's <open/>, got %s", n)
	}
	f := c.mustRecv("features")
	if !f.is(nsStreams, "features") {
		c.t.Fatalf("want features, got %s", f)
	}
	return f
}

// expectStreamEnd waits for a stream error with cond, <close/> and the
// WebSocket close frame.
func (c *wsRaw) expectStreamEnd(cond string) {
	c.t.Helper()
	e := c.mustRecv("stream error")
	if !e.is(nsStreams, "error") || e.child(nsStreamErr, cond) == nil {
		c.t.Fatalf("want a %s stream error, got %s", cond, e)
	}
	if cl := c.mustRecv("<close/>"); !cl.is(nsFraming, "close") {
		c.t.Fatalf("want <close/> after the stream error, got %s", cl)
	}
	_, err := c.recv()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		c.t.Fatalf("want a normal WebSocket close, got %v", err)
	}
}

// ---------------------------------------------------------------------------
// Tests

// xmpp.js over WebSocket logs in with SCRAM-SHA-1 and exchanges messages
// both ways with slixmpp on the TCP port.
func TestWebSocketXMPPJSWithSlixmpp(t *testing.T) {
	t.Parallel()
	requirePython(t)
	requireJS(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	srv := startServer(t, dir)

	js := runJS(t, "alice (xmpp.js over WebSocket)", "ws_client.js",
		"--service", wsURL(srv), "--domain", domain,
		"--username", "alice", "--password", "secret", "--resource", "web",
		"--mechanism", "SCRAM-SHA-1")
	auth := js.expect("auth", 25*time.Second, func(ev event) bool {
		return ev.str("ev") == "auth" || ev.str("ev") == "fatal" || ev.str("ev") == "failed_auth"
	})
	if auth.str("ev") != "auth" || auth.str("mechanism") != "SCRAM-SHA-1" {
		t.Fatalf("xmpp.js did not start SCRAM-SHA-1: %s", auth)
	}
	online := js.expect("online", 25*time.Second, func(ev event) bool {
		return ev.str("ev") == "online" || ev.str("ev") == "fatal" || ev.str("ev") == "failed_auth"
	})
	if online.str("ev") != "online" || online.str("jid") != "alice@localhost/web" {
		t.Fatalf("xmpp.js login over WebSocket failed: %s", online)
	}
	js.expectEv("initial_presence_sent", nil)

	bob := login(t, srv, "bob@localhost/py", "hunter2", clientOpts{})

	// TCP → WebSocket, to the full and to the bare JID.
	bob.send("alice@localhost/web", "from slixmpp <&> ✓")
	m := js.expectEv("message", map[string]string{"body": "from slixmpp <&> ✓"})
	if m.str("from") != bob.JID || m.str("type") != "chat" {
		t.Errorf("xmpp.js got %s, want from %s type chat", m, bob.JID)
	}
	bob.send("alice@localhost", "to the bare JID")
	if m := js.expectEv("message", map[string]string{"body": "to the bare JID"}); m.str("from") != bob.JID {
		t.Errorf("xmpp.js got %s", m)
	}

	// WebSocket → TCP, several in order.
	for _, body := range []string{"from xmpp.js <&> ✓", "two", "three"} {
		js.mustCall("send", map[string]any{"to": bob.JID, "body": body, "type": "chat"})
	}
	for _, body := range []string{"from xmpp.js <&> ✓", "two", "three"} {
		assertMessage(t, bob.expectMessage(body), "alice@localhost/web", "chat")
	}
	js.mustCall("send", map[string]any{"to": "bob@localhost", "body": "bare", "type": "chat"})
	assertMessage(t, bob.expectMessage("bare"), "alice@localhost/web", "chat")

	if errs := js.all(func(ev event) bool { return ev.str("ev") == "error" || ev.str("type") == "error" }); len(errs) > 0 {
		t.Errorf("xmpp.js saw errors: %v", errs)
	}
	js.mustCall("quit", nil)
	js.expectExit(0, 10*time.Second)
	bob.quit()
	srv.Stop()
}

// Malformed XML over WebSocket ends that stream with a stream error,
// <close/> and a close frame; a wrong subprotocol is refused; other
// connections are unaffected.
func TestWebSocketMalformedXMLAndSubprotocol(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, nil)
	srv := startServer(t, dir)

	// parley-bin is the binary encoding's subprotocol (TestBinaryOverWebSocket).
	for _, protos := range [][]string{{"parley-bin1"}, nil, {"chat"}} {
		if _, status, err := wsDial(t, srv, protos...); err == nil || status != http.StatusBadRequest {
			t.Errorf("subprotocols %q: err %v, HTTP %d; want a refusal with 400", protos, err, status)
		}
	}

	bystander, _, err := wsDial(t, srv, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	if got := bystander.conn.Subprotocol(); got != "xmpp" {
		t.Fatalf("negotiated subprotocol %q, want xmpp", got)
	}
	feats := bystander.open()
	// Loopback counts as a TLS terminator: SASL is offered although the
	// server requires STARTTLS on its TCP port, and STARTTLS is not.
	if mechs := mechanisms(feats); !strings.Contains(strings.Join(mechs, " "), "SCRAM-SHA-1") {
		t.Errorf("SASL mechanisms over WebSocket on loopback: %q", mechs)
	}
	if feats.child(nsTLS, "starttls") != nil {
		t.Error("STARTTLS offered over WebSocket")
	}

	bad, _, err := wsDial(t, srv, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	bad.open()
	bad.send(`<message to='x@localhost'><body>unclosed</message>`)
	bad.expectStreamEnd("not-well-formed")

	// The bystander still works: a <close/> is answered with <close/>.
	bystander.send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	if cl := bystander.mustRecv("<close/>"); !cl.is(nsFraming, "close") {
		t.Fatalf("want <close/>, got %s", cl)
	}
	srv.Stop()
}

// Stopping the server ends WebSocket sessions like TCP ones.
func TestWebSocketShutdown(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, nil)
	srv := startServer(t, dir)
	c, _, err := wsDial(t, srv, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	c.open()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	c.expectStreamEnd("system-shutdown")
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Fatalf("server did not exit cleanly after SIGTERM: %v", srv.err)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("server did not exit within %v of SIGTERM", stopTimeout)
	}
}

// XEP-0156: host-meta (XRD and JRD) advertises the WebSocket endpoint at
// the request's host.
func TestWebSocketHostMeta(t *testing.T) {
	t.Parallel()
	srv := startServer(t, newDataDir(t, nil))
	want := "ws://" + srv.HTTP + wsPath

	body := httpGet(t, "http://"+srv.HTTP+"/.well-known/host-meta", "application/xrd+xml")
	var xrd struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"Link"`
	}
	if err := xml.Unmarshal(body, &xrd); err != nil {
		t.Fatalf("host-meta is not XRD: %v\n%s", err, body)
	}
	if len(xrd.Links) != 1 || xrd.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || xrd.Links[0].Href != want {
		t.Errorf("host-meta links %+v, want one websocket link to %s", xrd.Links, want)
	}

	body = httpGet(t, "http://"+srv.HTTP+"/.well-known/host-meta.json", "application/json")
	var jrd struct {
		Links []struct{ Rel, Href string } `json:"links"`
	}
	if err := json.Unmarshal(body, &jrd); err != nil {
		t.Fatalf("host-meta.json: %v\n%s", err, body)
	}
	if len(jrd.Links) != 1 || jrd.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || jrd.Links[0].Href != want {
		t.Errorf("host-meta.json links %+v, want one websocket link to %s", jrd.Links, want)
	}

	// The advertised URL works.
	c, _, err := websocket.DefaultDialer.Dial(xrd.Links[0].Href, http.Header{"Sec-WebSocket-Protocol": {"xmpp"}})
	if err != nil {
		t.Fatalf("dial the advertised %s: %v", xrd.Links[0].Href, err)
	}
	_ = c.Close()
	srv.Stop()
}

func httpGet(t *testing.T, url, wantType string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d\n%s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantType) {
		t.Errorf("GET %s: Content-Type %q, want %s", url, ct, wantType)
	}
	return body
}
