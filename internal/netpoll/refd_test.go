//go:build linux

package netpoll

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// dupRegistered registers a socket, then moves the registration to a
// duplicate of its descriptor and closes the original (as the listener
// detaches a connection).
func dupRegistered(t *testing.T, p *Poller) (h *chanHandler, hd *Handle, nfd int, client net.Conn) {
	t.Helper()
	server, client, fd := socketPair(t)
	h = &chanHandler{ch: make(chan struct{}, 4)}
	hd = new(Handle)
	if err := p.Add(fd, h, hd); err != nil {
		t.Fatal(err)
	}
	nfd, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hd.Remove(); _ = syscall.Close(nfd) })
	if err := hd.Refd(nfd); err != nil {
		t.Fatal(err)
	}
	if hd.FD() != nfd {
		t.Fatalf("FD %d after Refd(%d)", hd.FD(), nfd)
	}
	// The registration of the old descriptor is gone: deleting it again
	// finds nothing.
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("old registration still there: EPOLL_CTL_DEL = %v", err)
	}
	_ = server.Close() // the socket stays open through nfd
	return h, hd, nfd, client
}

// TestRefdEventsOnce: after Refd every event comes once, through the new
// descriptor; the EPOLLOUT that Refd's registration reports at once (the
// socket has room) starts no turn.
func TestRefdEventsOnce(t *testing.T) {
	p := newPoller(t)
	h, hd, nfd, client := dupRegistered(t, p)
	h.none(t) // EPOLLOUT only
	for i := range 5 {
		if _, err := client.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		h.await(t)
		// Let a duplicate event, if any, reach the poller during the
		// turn: it would mark the turn pending.
		time.Sleep(20 * time.Millisecond)
		var b [8]byte
		if n, err := syscall.Read(nfd, b[:]); n != 1 || err != nil || b[0] != byte(i) {
			t.Fatalf("read %d %v %v", n, err, b[:max(n, 0)])
		}
		if hd.Done() {
			t.Fatalf("message %d: event came twice", i)
		}
	}
	h.none(t)
	if got := h.calls.Load(); got != 5 {
		t.Fatalf("%d turns for 5 messages", got)
	}
	// The peer's end comes through the new descriptor too.
	_ = client.Close()
	h.await(t)
	if !hd.Closing() {
		t.Fatal("end of stream not seen")
	}
}

// fill writes to fd until the socket has no room.
func fill(t *testing.T, fd int) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := syscall.Write(fd, buf)
		if n > 0 {
			total += n
		}
		if errors.Is(err, syscall.EAGAIN) {
			return total
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteWait: a writer waiting for room is woken by the EPOLLOUT that
// follows the peer's reading, which starts no read turn; the wait times
// out at its deadline, and ends when the registration is removed.
func TestWriteWait(t *testing.T) {
	p := newPoller(t)
	h, hd, nfd, client := dupRegistered(t, p)
	h.none(t)

	total := fill(t, nfd)
	w := hd.ArmWrite()
	if _, err := syscall.Write(nfd, []byte{0}); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("write after fill: %v", err)
	}
	if err := w.Wait(time.Now().Add(30 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait with nobody reading: %v", err)
	}
	var ne net.Error
	if err := w.Wait(time.Now().Add(-time.Second)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Wait past deadline: %v", err)
	}
	go func() { _, _ = io.CopyN(io.Discard, client, int64(total)) }()
	if err := w.Wait(time.Now().Add(wait)); err != nil {
		t.Fatalf("Wait while the peer reads: %v", err)
	}
	w.Disarm()
	h.none(t) // room to write is no read turn
	if n := h.calls.Load(); n != 0 {
		t.Fatalf("%d read turns", n)
	}

	// Remove wakes a waiting writer, whose next Wait fails.
	fill(t, nfd)
	w = hd.ArmWrite()
	done := make(chan error, 1)
	go func() {
		if err := w.Wait(time.Time{}); err != nil {
			done <- err
			return
		}
		done <- w.Wait(time.Time{})
	}()
	time.Sleep(20 * time.Millisecond)
	hd.Remove()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Wait after Remove: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Remove did not wake the writer")
	}
	w.Disarm()
}
