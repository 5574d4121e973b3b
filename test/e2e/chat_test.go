package e2e

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chatProc is a running `parley chat` with its input and a line reader.
type chatProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startChat(t *testing.T, args ...string) *chatProc {
	t.Helper()
	cmd := exec.Command(parleyBin, append([]string{"chat"}, args...)...)
	cmd.Env = hermeticEnv()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &chatProc{cmd: cmd, in: in, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

func (p *chatProc) expect(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("parley chat ended before %q; output:\n%s", substr, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, substr) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q from parley chat; output:\n%s", substr, strings.Join(seen, "\n"))
		}
	}
}

// TestChatCommandBinaryAndXML: two people use `parley chat`, one in the
// binary encoding, one in XML, and talk to each other.
func TestChatCommandBinaryAndXML(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-alice", "bob": "pw-bob"})
	srv := startServer(t, dir)
	ca := filepath.Join(dir, "tls", "localhost.crt")
	alice := startChat(t, "--jid", "alice@localhost/phone", "--password-stdin", "--binary", "--addr", srv.C2STLS, "--ca", ca, "--to", "bob@localhost")
	bob := startChat(t, "--jid", "bob@localhost/desk", "--password-stdin", "--addr", srv.C2S, "--ca", ca)
	io.WriteString(alice.in, "pw-alice\n")
	io.WriteString(bob.in, "pw-bob\n")
	alice.expect(t, "logged in as alice@localhost/phone (binary encoding)")
	bob.expect(t, "logged in as bob@localhost/desk (XML encoding)")
	io.WriteString(alice.in, "hello bob, this is binary\n")
	bob.expect(t, "alice@localhost/phone: hello bob, this is binary")
	io.WriteString(bob.in, "/to alice@localhost/phone\nhi alice, XML here\n")
	alice.expect(t, "bob@localhost/desk: hi alice, XML here")
	io.WriteString(alice.in, "/quit\n")
	io.WriteString(bob.in, "/quit\n")
	for _, p := range []*chatProc{alice, bob} {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("parley chat exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("parley chat did not exit after /quit")
		}
	}
}
