//go:build linux

package listener

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestConnSize: Conn is kept per idle session (docs/density.md): 144 bytes,
// a size class, of which the poller's Handle holds 32.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 144 {
		t.Fatalf("Conn is %d bytes, want at most 144", n)
	}
}

// waitDetached waits until the reader has detached c.
func waitDetached(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for c.flags.Load()&flagDetached == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not detached (flags %#x)", c.flags.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// sockInode is the inode of the socket behind fd.
func sockInode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// socketRefs counts this process's descriptors of the socket ino, and its
// registrations in epoll instances (Go's and ours).
func socketRefs(t *testing.T, ino uint64) (fds, regs int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("socket:[%d]", ino)
	hexIno := fmt.Sprintf("ino:%x", ino)
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed meanwhile (the directory's own descriptor)
		}
		switch link {
		case want:
			fds++
		case "anon_inode:[eventpoll]":
			info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(info), "\n") {
				if strings.HasPrefix(l, "tfd:") && slicesContains(strings.Fields(l), hexIno) {
					regs++
				}
			}
		}
	}
	return fds, regs
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// waitRefs waits until the socket has fds descriptors and regs epoll
// registrations.
func waitRefs(t *testing.T, ino uint64, fds, regs int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f, r := socketRefs(t, ino)
		if f == fds && r == regs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket has %d descriptors and %d epoll registrations, want %d and %d", f, r, fds, regs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exchange sends many messages each way at once: the client's to the
// session, the session's (from another goroutine, as a flusher) to the
// client.
func exchange(t *testing.T, c net.Conn, s *fakeSession, before string) {
	t.Helper()
	const n = 300
	var in, out bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "<c%d/>", i)
		fmt.Fprintf(&out, "<s%d/>", i)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	errs := make(chan error, 2)
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := fmt.Fprintf(c, "<c%d/>", i); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			if err := s.c.Write(fmt.Appendf(nil, "<s%d/>", i)); err != nil {
				errs <- err
				return
			}
		}
	}()
	got := make([]byte, out.Len())
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, out.Bytes()) {
		t.Fatalf("client read: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFed(t, s, before+in.String())
}

// TestDetach: a plain connection once authenticated, and a TLS 1.3 one
// (tlsrec) at once, leave Go's poller: one descriptor of the socket is
// left (Go's is closed) and one epoll registration (ours, moved to it;
// not Go's, nor ours of the old descriptor, which would report every
// event twice). They exchange data both ways, and Close ends them: the
// peer reads the end and the descriptor is released. A TLS 1.2 connection
// stays attached.
func TestDetach(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tls    uint16 // 0: plain
		detach bool
	}{{"tcp", 0, true}, {"tls13", tls.VersionTLS13, true}, {"tls12", tls.VersionTLS12, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{}
			if tc.tls != 0 {
				cfg.TLS = serverTLS(t)
			}
			srv := startServer(t, cfg, nil)
			c := srv.dialVersion(tc.tls)
			s := srv.session()
			if _, err := c.Write([]byte("<a/>")); err != nil {
				t.Fatal(err)
			}
			waitFed(t, s, "<a/>")
			if tc.tls == 0 {
				// Before authentication STARTTLS may come: attached.
				time.Sleep(20 * time.Millisecond)
				if s.c.flags.Load()&(flagMoved|flagDetached) != 0 {
					t.Fatal("detached before authentication")
				}
				s.authed.Store(true)
				if _, err := c.Write([]byte("<b/>")); err != nil {
					t.Fatal(err)
				}
				waitFed(t, s, "<a/><b/>")
			}
			before := s.fedString()
			if !tc.detach {
				ino := sockInode(t, s.c.poll.FD())
				exchange(t, c, s, before)
				if s.c.flags.Load()&(flagMoved|flagDetached) != 0 {
					t.Fatal("TLS 1.2 detached")
				}
				waitRefs(t, ino, 1, 2) // Go's registration and ours
				return
			}
			waitDetached(t, s.c)
			// The descriptor is read once detached: it is no longer
			// written.
			ino := sockInode(t, s.c.poll.FD())
			exchange(t, c, s, before)
			// (Read after a later turn's Feed: the detaching turn wrote
			// them.)
			if s.c.tcp != nil || s.c.raw != nil {
				t.Fatal("net.TCPConn kept")
			}
			// Not waiting: the detaching turn closed Go's descriptor
			// before it ended (a wait could see the finalizer close it).
			if f, r := socketRefs(t, ino); f != 1 || r != 1 {
				t.Fatalf("socket has %d descriptors and %d epoll registrations, want 1 and 1", f, r)
			}
			echo(t, c, s, s.fedString())
			waitRefs(t, ino, 1, 1)

			if err := s.c.Close(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(wait))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("client after server close: %v", err)
			}
			waitEnded(t, s)
			waitCount(t, srv.tracker, 0)
			waitRefs(t, ino, 0, 0)
		})
	}
}

// TestDetachedPeerCloses: the peer's end reaches a detached connection's
// reader, which ends the session and releases the descriptor.
func TestDetachedPeerCloses(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, nil)
	c := srv.dial("")
	s := srv.session()
	s.authed.Store(true)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitDetached(t, s.c)
	ino := sockInode(t, s.c.poll.FD())
	_ = c.Close()
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
	waitRefs(t, ino, 0, 0)
}

// detachedPlain is an authenticated plain connection, detached.
func detachedPlain(t *testing.T, cfg Config) (net.Conn, *fakeSession) {
	t.Helper()
	srv := startServer(t, cfg, nil)
	c := srv.dial("")
	s := srv.session()
	s.authed.Store(true)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFed(t, s, "x")
	waitDetached(t, s.c)
	return c, s
}

// TestDetachedWriteWaitsForRoom: a write larger than the socket's buffers
// waits while the peer does not read (it is woken by our poller's
// EPOLLOUT, Go's poller has no part in it any more) and completes once
// the peer reads.
func TestDetachedWriteWaitsForRoom(t *testing.T) {
	t.Parallel()
	c, s := detachedPlain(t, Config{WriteTimeout: wait})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MB
	done := make(chan error, 1)
	go func() { done <- s.c.Write(big) }()
	select {
	case err := <-done:
		t.Fatalf("a 16 MB write completed with nobody reading: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	got := make([]byte, len(big))
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("client read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestDetachedWriteTimeout: a write to a peer that never reads fails with
// a timeout, as a net.Conn's does (a slow consumer).
func TestDetachedWriteTimeout(t *testing.T) {
	t.Parallel()
	_, s := detachedPlain(t, Config{WriteTimeout: 200 * time.Millisecond})
	big := make([]byte, 32<<20)
	start := time.Now()
	err := s.c.Write(big)
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write to a peer that does not read: %v", err)
	}
	if d := time.Since(start); d > wait {
		t.Fatalf("timed out after %v", d)
	}
	// The session goes on to close the connection, as c2s does.
	_ = s.c.Close()
	waitEnded(t, s)
}
