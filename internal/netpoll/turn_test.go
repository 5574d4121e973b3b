//go:build linux

package netpoll

import (
	"bytes"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// reader is a Handler that keeps the rules: it reads until a read proves
// the socket dry, then calls Done, and reads again while Done is true. It
// counts what the tests check: turns at once, turns, read passes.
type reader struct {
	fd   int
	hd   Handle
	size int // read buffer size: small ones make full reads

	// afterRead, if set, runs after each pass's reads; true carries the
	// turn on on another goroutine after a while (as a throttled
	// connection does).
	afterRead func() (pause bool)

	mu  sync.Mutex
	got []byte
	eof chan struct{} // closed when a read returned the end

	inTurn  atomic.Int32
	overlap atomic.Int32 // turns that found another one on
	turns   atomic.Int32 // Readable calls
	passes  atomic.Int32
}

func newReader(fd, size int) *reader {
	return &reader{fd: fd, size: size, eof: make(chan struct{})}
}

func (r *reader) Readable() {
	r.turns.Add(1)
	r.turn()
}

func (r *reader) turn() {
	if r.inTurn.Add(1) != 1 {
		r.overlap.Add(1)
	}
	for {
		r.passes.Add(1)
		if !r.readDry() {
			r.inTurn.Add(-1)
			r.hd.Remove()
			close(r.eof)
			return
		}
		if r.afterRead != nil && r.afterRead() {
			r.inTurn.Add(-1)
			time.AfterFunc(time.Duration(rand.IntN(200))*time.Microsecond, r.turn)
			return
		}
		// Off before Done: once the turn is over, another may begin.
		r.inTurn.Add(-1)
		if !r.hd.Done() {
			return
		}
		if r.inTurn.Add(1) != 1 {
			r.overlap.Add(1)
		}
	}
}

// readDry reads until EAGAIN or a short read (not after Closing); false
// at the end of the stream or on an error.
func (r *reader) readDry() bool {
	buf := make([]byte, r.size)
	for {
		n, err := syscall.Read(r.fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil || n == 0:
			return false
		}
		r.mu.Lock()
		r.got = append(r.got, buf[:n]...)
		r.mu.Unlock()
		if n < len(buf) && !r.hd.Closing() {
			return true
		}
	}
}

func (r *reader) gotString() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.got)
}

func (r *reader) awaitGot(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for r.gotString() != want {
		if time.Now().After(deadline) {
			t.Fatalf("read %q, want %q", r.gotString(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *reader) awaitEOF(t *testing.T) {
	t.Helper()
	select {
	case <-r.eof:
	case <-time.After(wait):
		t.Fatalf("end of stream not read (read %d bytes)", len(r.gotString()))
	}
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestEventDuringTurnReruns: bytes that arrive after the turn's last read
// but before its Done are read by the same turn, with no further write
// from the client: the event marked the turn pending, and Done says so.
func TestEventDuringTurnReruns(t *testing.T) {
	p := newPoller(t)
	_, client, fd := socketPair(t)
	r := newReader(fd, 4096)
	gate := make(chan struct{})
	var first atomic.Bool
	r.afterRead = func() bool {
		if first.CompareAndSwap(false, true) {
			<-gate // a slow session, after the read that found the socket dry
		}
		return false
	}
	if err := p.Add(fd, r, &r.hd); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	r.awaitGot(t, "a")
	if _, err := client.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	awaitState(t, &r.hd, running|pending)
	close(gate)
	r.awaitGot(t, "ab")
	awaitIdle(t, &r.hd)
	if n := r.turns.Load(); n != 1 {
		t.Errorf("%d turns, want 1", n)
	}
	if n := r.passes.Load(); n != 2 {
		t.Errorf("%d read passes, want 2", n)
	}
	// The next bytes start a new turn.
	if _, err := client.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	r.awaitGot(t, "abc")
	if r.overlap.Load() != 0 {
		t.Error("two turns at once")
	}
}

// awaitIdle waits until no turn is on.
func awaitIdle(t *testing.T, hd *Handle) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for hd.state.Load()&running != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("turn still on: state %#x", hd.state.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestClosingReadsToEnd: bytes and the peer's FIN both in the socket when
// the turn begins. The read that returns the bytes is short but does not
// return the end, and no event will come for it: Closing makes the
// handler read on.
func TestClosingReadsToEnd(t *testing.T) {
	p := newPoller(t)
	_, client, fd := socketPair(t)
	if _, err := client.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := client.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Not a timing assertion: this only gives the FIN the time to arrive
	// before the registration, the case that needs Closing.
	time.Sleep(20 * time.Millisecond)
	r := newReader(fd, 4096)
	if err := p.Add(fd, r, &r.hd); err != nil {
		t.Fatal(err)
	}
	r.awaitEOF(t)
	if got := r.gotString(); got != "last words" {
		t.Fatalf("read %q", got)
	}
}

// TestRemoveDuringTurn: Remove while a turn runs; the turn's Done is then
// false and no turn starts after it, whatever the client sends.
func TestRemoveDuringTurn(t *testing.T) {
	p := newPoller(t)
	_, client, fd := socketPair(t)
	r := newReader(fd, 4096)
	gate := make(chan struct{})
	r.afterRead = func() bool { <-gate; return false }
	if err := p.Add(fd, r, &r.hd); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	r.awaitGot(t, "a")
	r.hd.Remove()
	if p.Len() != 0 {
		t.Fatalf("Len %d after Remove", p.Len())
	}
	if _, err := client.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	close(gate)
	// The slot is taken over; events reach the new registration only.
	_, client2, fd2 := socketPair(t)
	r2 := newReader(fd2, 4096)
	if err := p.Add(fd2, r2, &r2.hd); err != nil {
		t.Fatal(err)
	}
	if r2.hd.slot != r.hd.slot {
		t.Fatalf("slot %d, want %d", r2.hd.slot, r.hd.slot)
	}
	if _, err := client2.Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	r2.awaitGot(t, "z")
	if _, err := client.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	h := &chanHandler{ch: make(chan struct{}, 1)}
	h.none(t) // give a wrong turn the time to show up
	if n, m := r.turns.Load(), r.passes.Load(); n != 1 || m != 1 {
		t.Fatalf("removed reader: %d turns, %d passes; want 1, 1", n, m)
	}
	if got := r.gotString(); got != "a" {
		t.Fatalf("removed reader read %q", got)
	}
}

// TestStressTurns: many sockets, many small writes at random moments,
// slow handlers with small buffers, turns carried on by timers: every
// byte is read once and in order, and no two turns of a socket overlap.
// Meant for -race as well.
func TestStressTurns(t *testing.T) {
	p := newPoller(t)
	const (
		sockets = 16
		writes  = 300
	)
	var wg sync.WaitGroup
	readers := make([]*reader, sockets)
	wants := make([][]byte, sockets)
	clients := make([]net.Conn, sockets)
	for i := range sockets {
		_, client, fd := socketPair(t)
		r := newReader(fd, 1+rand.IntN(96))
		r.afterRead = func() bool {
			switch rand.IntN(20) {
			case 0:
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			case 1:
				return true
			}
			return false
		}
		if err := p.Add(fd, r, &r.hd); err != nil {
			t.Fatal(err)
		}
		readers[i], clients[i] = r, client
	}
	for i := range sockets {
		var want bytes.Buffer
		chunks := make([][]byte, writes)
		for j := range chunks {
			start := want.Len()
			for range 1 + rand.IntN(200) {
				want.WriteByte(byte(want.Len() % 251))
			}
			chunks[j] = want.Bytes()[start:]
		}
		wants[i] = want.Bytes()
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			for _, b := range chunks {
				if _, err := c.Write(b); err != nil {
					t.Error(err)
					return
				}
				if rand.IntN(8) == 0 {
					time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
				}
			}
			_ = c.(*net.TCPConn).CloseWrite()
		}(clients[i])
	}
	wg.Wait()
	for i, r := range readers {
		r.awaitEOF(t)
		if got := r.gotString(); got != string(wants[i]) {
			t.Errorf("socket %d: read %d bytes, want %d; first difference at %d", i, len(got), len(wants[i]), firstDiff(got, string(wants[i])))
		}
		if n := r.overlap.Load(); n != 0 {
			t.Errorf("socket %d: %d overlapping turns", i, n)
		}
	}
	if p.Len() != 0 {
		t.Errorf("Len %d after every reader removed itself", p.Len())
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
