// Package e2e is Parley's end-to-end test suite: it builds the real
// cmd/parley binary, starts it as a separate process on loopback ports with a
// fresh data directory per test, and drives it with a real XMPP client
// library (slixmpp, from Debian's python3-slixmpp) plus a few raw-socket
// clients written with Go's standard library only.
//
// # Running
//
//	go test ./test/e2e/ -v
//
// from the module root (add -run TestName to pick tests, -count=1 to defeat
// the test cache). TestMain builds ./cmd/parley once into a temporary
// directory (with -race when the tests run with -race); a build failure
// fails the whole suite. To test an already built binary instead, set
// PARLEY_E2E_BINARY=/path/to/parley. Tests run 4 at a time unless
// -parallel is given; the suite takes about a minute (two to three with
// -race) on a 2-core machine.
//
// Requirements:
//   - /usr/bin/python3 with slixmpp importable (apt-get install
//     python3-slixmpp). The scripts are run with the system interpreter on
//     purpose, never with the python3 that comes first on PATH. If slixmpp
//     is missing the tests that need it are skipped, unless the environment
//     variable CI is "true", in which case they fail.
//   - Node.js (20+) and npm for the xmpp.js WebSocket test: test/e2e/js is
//     installed with `npm ci` (the test runs it itself when needed).
//   - Nothing else: all traffic stays on 127.0.0.1, every server listens on
//     ports chosen by the kernel (127.0.0.1:0) and logs the real addresses.
//
// # Layout
//
//   - harness_test.go: TestMain, the server handle (startServer, Stop, Kill,
//     restart on the same data dir) and addUser.
//   - pyclient_test.go: runs the scripts under py/ and reads their JSON-line
//     observations; py/client.py is a remote-controlled client (commands on
//     stdin), py/login.py and py/register.py are one-shot programs.
//   - raw_test.go: a minimal XMPP client on a raw socket (stream header,
//     STARTTLS, SASL PLAIN, bind) for the protocol-violation tests.
//   - race_{on,off}_test.go: whether the server is built with -race.
//   - the other *_test.go files: the scenarios. Independent tests run in
//     parallel, each with its own server and data directory.
//
// When a test fails, the server's stderr (slog output), every client's
// observations and slixmpp's debug log (raw XML in both directions), and the
// raw-socket transcripts are printed with the failure. Set E2E_DUMP=1 to
// print them for passing tests too (with -v).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	domain = "localhost"

	// How long a started server may take to log its listening addresses.
	listenTimeout = 30 * time.Second
	// How long a SIGTERM'ed server may take to exit.
	stopTimeout = 15 * time.Second
	// Default deadline for one expected observation.
	stepTimeout = 15 * time.Second
)

var (
	// dumpAlways prints logs and transcripts of passing tests too.
	dumpAlways = os.Getenv("E2E_DUMP") != ""
	// parleyBin is the binary built by TestMain.
	parleyBin string
	// pythonErr is non-nil when /usr/bin/python3 cannot import slixmpp.
	pythonErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	raiseDefaultParallelism()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	pythonErr = checkPython()
	if bin := os.Getenv("PARLEY_E2E_BINARY"); bin != "" {
		parleyBin = bin
		return m.Run()
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot locate module root: %v\n", err)
		return 1
	}
	binDir, err := os.MkdirTemp("", "parley-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	parleyBin = filepath.Join(binDir, "parley")
	args := []string{"build", "-o", parleyBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/parley")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/parley failed: %v\n%s\n", err, out)
		return 1
	}
	return m.Run()
}

// raiseDefaultParallelism lets the (mostly waiting, not computing) tests run
// four at a time even on a 2-core machine, unless -test.parallel was given.
func raiseDefaultParallelism() {
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", "4")
	}
}

// moduleRoot finds the directory holding go.mod (the test runs in
// test/e2e, two levels below it).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", err
	}
	return root, nil
}

// ---------------------------------------------------------------------------
// Server handle

type server struct {
	t       *testing.T
	DataDir string
	C2S     string // STARTTLS listener
	C2STLS  string // direct TLS listener
	HTTP    string

	cmd    *exec.Cmd
	stderr *lineBuffer
	done   chan struct{} // closed once the process has been reaped
	err    error         // cmd.Wait's result, valid after done
}

// startServer starts `parley serve` on dataDir with ephemeral loopback
// ports and waits until it logs its listening addresses. If it is still
// running when the test ends it gets SIGTERM and must exit 0; its stderr is
// printed if the test failed.
func startServer(t *testing.T, dataDir string, extraArgs ...string) *server {
	t.Helper()
	args := []string{"serve",
		"--domain", domain,
		"--data", dataDir,
		"--c2s", "127.0.0.1:0",
		"--c2s-tls", "127.0.0.1:0",
		"--http", "127.0.0.1:0",
	}
	args = append(args, extraArgs...)
	s := &server{t: t, DataDir: dataDir, done: make(chan struct{})}
	listening := make(chan map[string]string, 1)
	s.stderr = newLineBuffer(func(line string) {
		if !strings.Contains(line, "msg=listening") {
			return
		}
		select {
		case listening <- parseLogfmt(line):
		default:
		}
	})
	s.cmd = exec.Command(parleyBin, args...)
	s.cmd.Env = hermeticEnv()
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start parley serve: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		// A server the test left running is stopped like Stop does, so
		// every test also checks for a clean shutdown (and, under -race,
		// for data races, which make the server exit non-zero).
		if s.running() {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
				if s.err != nil {
					t.Errorf("server did not exit cleanly after SIGTERM at the end of the test: %v", s.err)
				}
			case <-time.After(stopTimeout):
				_ = s.cmd.Process.Kill()
				<-s.done
				t.Errorf("server did not exit within %v of SIGTERM at the end of the test (killed it)", stopTimeout)
			}
		}
		if t.Failed() || dumpAlways {
			t.Logf("---- parley serve %s stderr ----\n%s", strings.Join(args, " "), s.stderr.String())
		}
	})

	select {
	case kv := <-listening:
		s.C2S, s.C2STLS, s.HTTP = kv["c2s"], kv["c2s_tls"], kv["http"]
		for name, addr := range map[string]string{"c2s": s.C2S, "c2s_tls": s.C2STLS, "http": s.HTTP} {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host != "127.0.0.1" || port == "0" {
				t.Fatalf("listening line has bad %s address %q (want 127.0.0.1:<port>); line fields: %v", name, addr, kv)
			}
		}
	case <-s.done:
		t.Fatalf("parley serve exited before listening: %v\nstderr:\n%s", s.err, s.stderr.String())
	case <-time.After(listenTimeout):
		t.Fatalf("parley serve did not log msg=listening within %v", listenTimeout)
	}
	return s
}

func (s *server) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// C2SPort and C2STLSPort return the numeric ports for the python scripts.
func (s *server) C2SPort() string    { return portOf(s.t, s.C2S) }
func (s *server) C2STLSPort() string { return portOf(s.t, s.C2STLS) }

// Stop sends SIGTERM and asserts a clean exit (status 0) within stopTimeout.
func (s *server) Stop() {
	s.t.Helper()
	if !s.running() {
		s.t.Fatalf("Stop: server already exited: %v", s.err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("server did not exit within %v of SIGTERM (killed it)", stopTimeout)
	}
	if s.err != nil {
		s.t.Fatalf("server did not exit cleanly after SIGTERM: %v (want exit status 0)", s.err)
	}
}

// Kill simulates a crash: SIGKILL, then reap.
func (s *server) Kill() {
	s.t.Helper()
	if !s.running() {
		s.t.Fatalf("Kill: server already exited: %v", s.err)
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Restart starts a new server process on the same data directory (the
// previous one must have been stopped or killed).
func (s *server) Restart(extraArgs ...string) *server {
	s.t.Helper()
	if s.running() {
		s.t.Fatalf("Restart: previous server still running")
	}
	return startServer(s.t, s.DataDir, extraArgs...)
}

// addUser runs `parley user add` (the server must not be running on dataDir).
func addUser(t *testing.T, dataDir, jid, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, "user", "add", jid, "--password", password, "--data", dataDir)
	cmd.Env = hermeticEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("parley user add %s: %v\n%s", jid, err, out)
	}
}

// newDataDir returns a fresh data directory with the given accounts
// (localpart -> password) created in it.
func newDataDir(t *testing.T, users map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for local, pw := range users {
		addUser(t, dir, local+"@"+domain, pw)
	}
	return dir
}

// hermeticEnv is the test's environment without PARLEY_* variables, which
// the binary would read as settings.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	return env
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("bad address %q: %v", addr, err)
	}
	return port
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
			if j >= len(line) {
				j = len(line) - 1
			}
			raw := line[i : j+1]
			if uq, err := strconv.Unquote(raw); err == nil {
				val = uq
			} else {
				val = strings.Trim(raw, `"`)
			}
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
// Python availability

const systemPython = "/usr/bin/python3"

func checkPython() error {
	cmd := exec.Command(systemPython, "-E", "-s", "-B", "-c", "import slixmpp; print(slixmpp.__version__)")
	cmd.Dir = os.TempDir() // never the slixmpp package dir (its types.py shadows the stdlib)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import slixmpp: %v\n%s", systemPython, err, out)
	}
	return nil
}

// requirePython skips (locally) or fails (CI=true) when slixmpp is missing.
func requirePython(t *testing.T) {
	t.Helper()
	if pythonErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("slixmpp is required in CI (apt-get install python3-slixmpp): %v", pythonErr)
	}
	t.Skipf("skipping: %v (apt-get install python3-slixmpp)", pythonErr)
}

// ---------------------------------------------------------------------------
// Small utilities

// lineBuffer is an io.Writer collecting output; onLine sees every complete
// line as it arrives.
type lineBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	onLine  func(string)
}

func newLineBuffer(onLine func(string)) *lineBuffer {
	return &lineBuffer{onLine: onLine}
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.partial = append(b.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b.partial[:i]))
		b.partial = b.partial[i+1:]
	}
	b.mu.Unlock()
	if b.onLine != nil {
		for _, l := range lines {
			b.onLine(l)
		}
	}
	return len(p), nil
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…(truncated)…\n" + s[len(s)-n:]
}

// scanLines is bufio.ScanLines with a large buffer, for the JSON readers.
func scanLines(sc *bufio.Scanner) *bufio.Scanner {
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	return sc
}
