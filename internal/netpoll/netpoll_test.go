//go:build linux

package netpoll

import (
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const wait = 10 * time.Second

type chanHandler struct {
	ch    chan struct{}
	calls atomic.Int32
}

func (h *chanHandler) Readable() {
	h.calls.Add(1)
	h.ch <- struct{}{}
}

func (h *chanHandler) await(t *testing.T) {
	t.Helper()
	select {
	case <-h.ch:
	case <-time.After(wait):
		t.Fatal("Readable not called")
	}
}

func (h *chanHandler) none(t *testing.T) {
	t.Helper()
	// Not a timing assertion: a call would be a bug whenever it came; this
	// only gives a wrong one the chance to show up.
	select {
	case <-h.ch:
		t.Fatal("Readable called while not armed")
	case <-time.After(50 * time.Millisecond):
	}
}

func socketPair(t *testing.T) (server *net.TCPConn, client net.Conn, fd int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server = c.(*net.TCPConn)
	raw, _ := server.SyscallConn()
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client, fd
}

func TestOneShotAndRearm(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	server, client, fd := socketPair(t)
	h := &chanHandler{ch: make(chan struct{}, 4)}
	var hd Handle
	if err := p.Add(fd, h, &hd); err != nil {
		t.Fatal(err)
	}
	if p.Len() != 1 {
		t.Fatalf("Len %d", p.Len())
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	h.await(t)
	// Not re-armed: more bytes do not call it again.
	_, _ = client.Write([]byte("y"))
	h.none(t)
	// Re-armed with bytes still unread: called at once (level-triggered).
	if err := hd.Arm(); err != nil {
		t.Fatal(err)
	}
	h.await(t)
	b := make([]byte, 2)
	if _, err := server.Read(b); err != nil {
		t.Fatal(err)
	}
	// EOF counts as readable.
	_ = hd.Arm()
	client.Close()
	h.await(t)
	hd.Remove()
	if p.Len() != 0 {
		t.Fatalf("Len %d after Remove", p.Len())
	}
	hd.Remove() // idempotent
}

// A removed registration's slot may be reused at once; an event for the
// old one must not reach the new handler.
func TestSlotReuseDropsStaleEvents(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, _, fd1 := socketPair(t)
	h1 := &chanHandler{ch: make(chan struct{}, 4)}
	var hd1 Handle
	if err := p.Add(fd1, h1, &hd1); err != nil {
		t.Fatal(err)
	}
	hd1.Remove()
	_, client2, fd2 := socketPair(t)
	h2 := &chanHandler{ch: make(chan struct{}, 4)}
	var hd2 Handle
	if err := p.Add(fd2, h2, &hd2); err != nil {
		t.Fatal(err)
	}
	if hd2.slot != hd1.slot || hd2.gen == hd1.gen {
		t.Fatalf("slot %d gen %d after slot %d gen %d", hd2.slot, hd2.gen, hd1.slot, hd1.gen)
	}
	// The stale handle cannot re-arm the new registration's events under
	// its generation: its Arm goes to its own (removed) descriptor.
	if err := hd1.Arm(); err == nil {
		t.Error("Arm of a removed registration succeeded")
	}
	_, _ = client2.Write([]byte("z"))
	h2.await(t)
	if h1.calls.Load() != 0 {
		t.Error("removed handler called")
	}
}

func TestCloseStopsWaiter(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	var hd Handle
	if err := p.Add(0, &chanHandler{}, &hd); err == nil {
		t.Error("Add after Close succeeded")
	}
	// The descriptors are gone.
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, 0, nil); err == nil {
		t.Error("epoll descriptor still open")
	}
}
