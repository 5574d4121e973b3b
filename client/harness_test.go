package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run against the real server: TestMain builds ./cmd/parley once
// (or uses $PARLEY_BINARY), and each test starts its own `parley serve` on
// kernel-chosen loopback ports with a fresh data directory. The server's
// packages are internal, and a client library is best tested the way apps
// use it anyway: over a socket.

const domain = "localhost"

var parleyBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("PARLEY_BINARY"); bin != "" {
		parleyBin = bin
		return m.Run()
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "client tests: go env GOMOD: %v\n", err)
		return 1
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "parley-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	parleyBin = filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-o", parleyBin, "./cmd/parley")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "client tests: go build ./cmd/parley: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// server is a running `parley serve`.
type server struct {
	C2S, C2STLS string
	DataDir     string
	log         *logBuffer
}

// startServer creates the accounts (localpart → password) with `parley
// user add`, then starts the server with extra flags and waits for its
// listening line.
func startServer(t *testing.T, users map[string]string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	for local, pw := range users {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, parleyBin, "user", "add", local+"@"+domain, "--password", pw, "--data", dir).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("parley user add %s: %v\n%s", local, err, out)
		}
	}
	args := append([]string{"serve", "--domain", domain, "--data", dir,
		"--c2s", "127.0.0.1:0", "--c2s-tls", "127.0.0.1:0", "--http", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(parleyBin, args...)
	s := &server{DataDir: dir, log: &logBuffer{}}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start parley serve: %v", err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		defer io.Copy(io.Discard, pr) // never block the server on its stderr
		for sc.Scan() {
			line := sc.Text()
			s.log.add(line)
			if strings.Contains(line, "msg=listening") {
				select {
				case listening <- line:
				default:
				}
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("---- server log ----\n%s", s.log.String())
		}
	})
	select {
	case line := <-listening:
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "c2s="); ok {
				s.C2S = v
			}
			if v, ok := strings.CutPrefix(f, "c2s_tls="); ok {
				s.C2STLS = v
			}
		}
		if s.C2S == "" || s.C2STLS == "" {
			t.Fatalf("cannot parse listening line %q", line)
		}
	case err := <-exited:
		t.Fatalf("parley serve exited: %v\n%s", err, s.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("parley serve did not start listening\n%s", s.log.String())
	}
	return s
}

// tlsConfig trusts the self-signed certificate the server generated, so
// the tests verify certificates as a real client does.
func (s *server) tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.DataDir, "tls", domain+".crt"))
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("server certificate: no PEM certificate")
	}
	return &tls.Config{RootCAs: pool}
}

type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
