package browser

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/client"
)

const (
	domain = "localhost"
	// listenTimeout bounds the server's start; stopTimeout its shutdown.
	listenTimeout = 30 * time.Second
	stopTimeout   = 15 * time.Second
	// scriptTimeout bounds the whole browser session.
	scriptTimeout = 4 * time.Minute
	// npmTimeout bounds `npm ci`.
	npmTimeout = 5 * time.Minute
)

// TestDashboard runs dashboard.mjs in chromium against the real server and
// plays the XMPP client the script expects: it signs in as the user the
// script created through the dashboard, sends a little traffic so the
// overview shows a message rate, and checks that the script's kick ends
// the client's stream.
func TestDashboard(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(t, "chromium not found at %s (apt-get install -y chromium): %v", chromium, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node not found on PATH (apt-get install -y nodejs npm): %v", err)
	}
	root := moduleRoot(t)
	dir := filepath.Join(root, "test", "browser")
	ensureNodeModules(t, dir)

	bin := buildParley(t, root)
	data := t.TempDir()
	srv := startServer(t, bin, data)
	tok, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatalf("read the admin token: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	checkAPI(t, srv.http, token)

	outDir := filepath.Join(root, "test-output")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(outDir, "dashboard.png")
	_ = os.Remove(shot) // a stale screenshot must not pass for a new one

	sc := startScript(t, node, dir, []string{
		"PARLEY_URL=http://" + srv.http,
		"PARLEY_TOKEN=" + token,
		"OUTPUT_DIR=" + outDir,
		"CHROMIUM=" + chromium,
	})

	// The script adds a user through the form and tells us who.
	line := sc.expect("USER_CREATED ", 2*time.Minute)
	f := strings.SplitN(strings.TrimPrefix(line, "USER_CREATED "), " ", 2)
	if len(f) != 2 {
		t.Fatalf("bad line from the script: %q", line)
	}
	user, password := f[0], f[1]

	// Sign a real client in as that user; it sends itself one to three
	// messages every 200 ms (the count changes every 5 s, so the chart
	// has a shape) until the script kicks it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Addr:                srv.c2s,
		JID:                 user + "@" + domain,
		Password:            password,
		Resource:            "browser-test",
		TLSConfig:           &tls.Config{InsecureSkipVerify: true},
		SendInitialPresence: true,
	})
	if err != nil {
		t.Fatalf("the user created through the dashboard cannot sign in: %v", err)
	}
	defer c.Close()
	gone := make(chan struct{})
	go func() {
		for range c.Incoming() {
		}
		close(gone)
	}()
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 1500; i++ { // at most 5 minutes
			select {
			case <-stopTraffic:
				return
			case <-gone:
				return
			case <-tick.C:
			}
			for j := 0; j <= i/25%3; j++ {
				if c.SendMessage(c.JID().BareString(), fmt.Sprintf("traffic %d.%d", i, j)) != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(stopTraffic)
		<-trafficDone
	}()
	full := c.JID().String()
	t.Logf("client signed in as %s", full)
	sc.send("ONLINE " + full)

	// The script sees the session, then kicks it: the stream must end.
	line = sc.expect("KICK_SENT ", 2*time.Minute)
	if got := strings.TrimPrefix(line, "KICK_SENT "); got != full {
		t.Errorf("the script kicked %q, want %q", got, full)
	}
	select {
	case <-gone:
		t.Logf("client stream ended after the kick: %v", c.Err())
	case <-time.After(15 * time.Second):
		t.Fatalf("the client is still connected 15 s after the dashboard kicked it")
	}
	sc.send("CLIENT_GONE")

	sc.expect("DONE", 2*time.Minute)
	if err := sc.wait(30 * time.Second); err != nil {
		t.Fatalf("dashboard.mjs: %v", err)
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if len(b) < 10_000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a plausible PNG screenshot (%d bytes)", shot, len(b))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(b))
}

// missing skips the test, or fails it under CI=true, where the browser
// test must run.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and the browser test cannot run: "+format, args...)
	}
	t.Skipf("skipping the browser test: "+format, args...)
}

// moduleRoot finds the directory holding go.mod (the test runs in
// test/browser, two levels below it).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "go.mod"))
	}
	if err != nil {
		t.Fatalf("cannot find the module root: %v", err)
	}
	return root
}

// ensureNodeModules runs `npm ci` when playwright-core is not installed.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		missing(t, "npm not found on PATH (apt-get install -y npm): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		missing(t, "npm ci in %s failed: %v\n%s", dir, err, out)
	}
	t.Logf("npm ci took %v", time.Since(start).Round(time.Millisecond))
}

func buildParley(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/parley")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/parley: %v\n%s", err, out)
	}
	return bin
}

// ---------------------------------------------------------------------------
// The server

type server struct {
	c2s, http string
}

// startServer runs `parley serve` on loopback ports the kernel picks and
// waits for its listening log line. At the end of the test it gets SIGTERM
// and must exit 0; its log is printed if the test failed.
func startServer(t *testing.T, bin, data string) *server {
	t.Helper()
	args := []string{"serve",
		"--domain", domain,
		"--data", data,
		"--c2s", "127.0.0.1:0",
		"--c2s-tls", "127.0.0.1:0",
		"--http", "127.0.0.1:0",
	}
	listening := make(chan map[string]string, 1)
	logBuf := newLineWriter(func(line string) {
		if strings.Contains(line, "msg=listening") {
			select {
			case listening <- parseLogfmt(line):
			default:
			}
		}
	})
	cmd := exec.Command(bin, args...)
	cmd.Env = hermeticEnv()
	cmd.Stdout = logBuf
	cmd.Stderr = logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start parley serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("parley serve did not exit cleanly after SIGTERM: %v", err)
			}
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("parley serve did not exit within %v of SIGTERM (killed it)", stopTimeout)
		}
		if t.Failed() {
			t.Logf("---- parley %s ----\n%s", strings.Join(args, " "), logBuf.String())
		}
	})
	select {
	case kv := <-listening:
		s := &server{c2s: kv["c2s"], http: kv["http"]}
		for name, addr := range map[string]string{"c2s": s.c2s, "http": s.http} {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host != "127.0.0.1" || port == "0" {
				t.Fatalf("listening line has a bad %s address %q: %v", name, addr, kv)
			}
		}
		return s
	case err := <-done:
		done <- err
		t.Fatalf("parley serve exited before listening: %v\n%s", err, logBuf.String())
	case <-time.After(listenTimeout):
		t.Fatalf("parley serve did not log msg=listening within %v", listenTimeout)
	}
	return nil
}

// checkAPI makes sure the admin API the dashboard needs is there.
func checkAPI(t *testing.T, addr, token string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/api/stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/stats: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/stats answered %s, want 200: the dashboard needs the admin API\n%s", resp.Status, body)
	}
	var stats map[string]any
	if err := json.Unmarshal(body, &stats); err != nil {
		t.Fatalf("GET /api/stats: not JSON: %v\n%s", err, body)
	}
	for _, k := range []string{"sessions", "connections", "stanzas_in_per_second", "stanzas_out_per_second", "queue_depth", "accounts", "uptime_seconds", "version"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("GET /api/stats has no %q, which the dashboard shows: %s", k, body)
		}
	}
}

// hermeticEnv is the environment without PARLEY_* variables, which the
// server would read as settings.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	return env
}

// parseLogfmt parses a log/slog text-handler line (key=value key="quoted").
func parseLogfmt(line string) map[string]string {
	kv := map[string]string{}
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			break
		}
		key := line[i : i+eq]
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			val = strings.ReplaceAll(line[i+1:min(j, len(line))], `\"`, `"`)
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			val = line[i : i+j]
			i += j
		}
		kv[key] = val
	}
	return kv
}

// ---------------------------------------------------------------------------
// The node script

type script struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line
	stderr *lineWriter
	done   chan error
	err    error
	exited bool
}

func startScript(t *testing.T, node, dir string, env []string) *script {
	t.Helper()
	sc := &script{t: t, lines: make(chan string, 1000), done: make(chan error, 1)}
	sc.cmd = exec.Command(node, "dashboard.mjs")
	sc.cmd.Dir = dir
	sc.cmd.Env = append(hermeticEnv(), env...)
	out := newLineWriter(func(line string) {
		select {
		case sc.lines <- line:
		default: // nobody reads that many lines; the transcript keeps them
		}
	})
	sc.cmd.Stdout = out
	sc.stderr = newLineWriter(nil)
	sc.cmd.Stderr = sc.stderr
	// Its own process group, so chromium goes with it if the test ends early.
	sc.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Do not wait for the output pipes once node has exited, should a
	// browser process still hold them.
	sc.cmd.WaitDelay = 10 * time.Second
	var err error
	if sc.stdin, err = sc.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := sc.cmd.Start(); err != nil {
		t.Fatalf("start node dashboard.mjs: %v", err)
	}
	go func() { sc.done <- sc.cmd.Wait() }()
	deadline := time.AfterFunc(scriptTimeout, sc.kill)
	t.Cleanup(func() {
		deadline.Stop()
		if !sc.exited {
			_ = sc.stdin.Close()
			select {
			case sc.err = <-sc.done:
			case <-time.After(5 * time.Second):
				sc.kill()
				sc.err = <-sc.done
			}
			sc.exited = true
		}
		if t.Failed() {
			t.Logf("---- node dashboard.mjs stdout ----\n%s", out.String())
			t.Logf("---- node dashboard.mjs stderr ----\n%s", sc.stderr.String())
		}
	})
	return sc
}

// kill ends the script and the browser it started (its process group).
func (sc *script) kill() {
	if p := sc.cmd.Process; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}

// expect waits for a stdout line starting with prefix, logging the lines
// before it.
func (sc *script) expect(prefix string, timeout time.Duration) string {
	sc.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line := <-sc.lines:
			sc.t.Logf("node: %s", line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case err := <-sc.done:
			sc.err, sc.exited = err, true
			// Lines written just before the exit may still be queued.
			for {
				select {
				case line := <-sc.lines:
					sc.t.Logf("node: %s", line)
					if strings.HasPrefix(line, prefix) {
						return line
					}
					continue
				default:
				}
				break
			}
			sc.t.Fatalf("dashboard.mjs exited (%v) before printing %q:\n%s", err, prefix, sc.stderr.String())
		case <-timer.C:
			sc.t.Fatalf("dashboard.mjs did not print %q within %v", prefix, timeout)
		}
	}
}

// send writes a line to the script's stdin.
func (sc *script) send(line string) {
	sc.t.Helper()
	if _, err := io.WriteString(sc.stdin, line+"\n"); err != nil {
		sc.t.Fatalf("write %q to dashboard.mjs: %v\n%s", line, err, sc.stderr.String())
	}
}

// wait waits for the script to exit and returns its error.
func (sc *script) wait(timeout time.Duration) error {
	if !sc.exited {
		_ = sc.stdin.Close()
		select {
		case sc.err = <-sc.done:
		case <-time.After(timeout):
			sc.kill()
			sc.err = <-sc.done
			sc.err = fmt.Errorf("did not exit within %v (killed it): %v", timeout, sc.err)
		}
		sc.exited = true
	}
	for {
		select {
		case line := <-sc.lines:
			sc.t.Logf("node: %s", line)
			continue
		default:
		}
		break
	}
	if sc.err != nil {
		return fmt.Errorf("%v\n%s", sc.err, sc.stderr.String())
	}
	return nil
}

// ---------------------------------------------------------------------------

// lineWriter keeps everything written to it and calls onLine for each
// complete line.
type lineWriter struct {
	mu     sync.Mutex
	all    bytes.Buffer
	part   []byte
	onLine func(string)
}

func newLineWriter(onLine func(string)) *lineWriter { return &lineWriter{onLine: onLine} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.part[:i]), "\r")
		w.part = w.part[i+1:]
		if w.onLine != nil {
			w.onLine(line)
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}
