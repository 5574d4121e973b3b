//go:build linux

package netpoll

import (
	"io"
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
		t.Fatal("Readable called while it must not be")
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

// TestTurns: a turn lasts until Done; an event during it makes Done true
// (the turn goes on) instead of starting a second Readable.
func TestTurns(t *testing.T) {
	p := newPoller(t)
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
	// The turn is not over: more bytes do not call Readable again.
	_, _ = client.Write([]byte("y"))
	awaitState(t, &hd, pending)
	h.none(t)
	if !hd.Done() {
		t.Fatal("Done false with an event pending")
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(server, b); err != nil {
		t.Fatal(err)
	}
	if hd.Done() {
		t.Fatal("Done true with nothing pending")
	}
	if hd.Closing() {
		t.Fatal("Closing before the peer closed")
	}
	// EOF counts as readable, and shows as Closing.
	client.Close()
	h.await(t)
	if !hd.Closing() {
		t.Fatal("Closing false after the peer closed")
	}
	hd.Remove()
	if p.Len() != 0 {
		t.Fatalf("Len %d after Remove", p.Len())
	}
	hd.Remove() // idempotent
	if hd.Done() {
		t.Fatal("Done true after Remove")
	}
}

// awaitState waits until the handle's state has the bits.
func awaitState(t *testing.T, hd *Handle, bits uint32) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for hd.state.Load()&bits != bits {
		if time.Now().After(deadline) {
			t.Fatalf("state %#x, want bits %#x", hd.state.Load(), bits)
		}
		time.Sleep(time.Millisecond)
	}
}

// A removed registration's slot may be reused at once; an event for the
// old one must not reach the new handler.
func TestSlotReuseDropsStaleEvents(t *testing.T) {
	p := newPoller(t)
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
	// The stale handle's turn state is its own: a Done on it neither
	// continues nor ends a turn of the new registration.
	if hd1.Done() {
		t.Error("Done of a removed registration true")
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
