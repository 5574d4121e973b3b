// Package netpoll tells when sockets become readable, for many sockets on
// one epoll instance, so that an idle connection needs no goroutine: a
// goroutine parked in Go's network poller costs 2.7 KB or more of stack per
// connection, and every GC cycle scans it.
//
// A socket is registered edge-triggered (EPOLLET) once, and never touched
// again until it is removed: an epoll_ctl per event (re-arming a one-shot
// registration) was 3% of a chat server's CPU. Instead a state word per
// registration keeps at most one handler running per socket: an event
// that finds the handler idle starts it (a turn); one that finds it
// running only marks the turn pending, and the handler, when it has read
// the socket dry, ends its turn with Done, which reports that pending
// mark so that the handler reads again instead of going idle.
//
// The sockets stay in Go's own poller too, which serves their writes and
// any blocking read a handler makes (a TLS handshake), until their owner
// moves the registration to a duplicate descriptor of its own (Refd) and
// closes Go's: the registration then also tells a blocked writer when
// the socket takes bytes again (ArmWrite), so that the socket needs
// nothing from Go's poller.
//
// The epoll instance is itself registered in Go's poller (an epoll file
// descriptor is readable while it has events), and the poller's goroutine
// collects events with non-blocking epoll_wait calls. A goroutine blocked
// in epoll_wait instead would hold its thread in a system call forever:
// the runtime's monitor then wakes every 20 µs to take its P back, which
// cost a fifth of a one-core server's CPU during a login burst (perf, at
// 800 logins/s), and each return from the call needs a P handed back.
package netpoll

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler is told that its socket is readable (or at EOF, or in error):
// a turn begins. Readable runs on one of the poller's workers, which runs
// other handlers' turns before and after it: it should not block for long
// (a blocked Readable holds its worker, and the poller replaces a worker
// only once it has been in one turn for a stall interval; see pool). The
// turn lasts until the handler calls Done and Done returns false, or until
// it calls Remove; it may outlast Readable (a timer may carry it on), and
// no other Readable runs for the socket until it is over.
//
// The registration is edge-triggered: bytes that are in the socket when a
// turn ends are never announced. Before Done the handler reads until a
// read returns EAGAIN or fewer bytes than it asked for (a stream socket
// then had no more: epoll(7)); once Closing is true, until EAGAIN or the
// end of the stream.
type Handler interface {
	Readable()
}

// Poller owns one epoll instance and the goroutine that waits on it.
type Poller struct {
	epfd int
	file *os.File // epfd, registered in Go's poller; closing it stops run
	conn syscall.RawConn

	mu      sync.Mutex
	regs    []reg // by slot; the slot goes in the event's data
	free    []int32
	gen     int32 // of the last registration
	closed  bool
	stopped chan struct{}

	// turns runs the handlers' turns on a few long-lived goroutines (see
	// pool).
	turns *pool
}

// Worker pool settings (see pool). maxIdleWorkers bounds the workers
// waiting for an event: their stacks are the fixed cost of the pool (GC
// shrinks the stacks of idle ones). busyPerProc workers per GOMAXPROCS
// start without waiting for a stall: enough to keep every P busy while a
// few turns wait for the store. While turns wait, the watchdog ticks every
// stallInterval and starts workers for those stuck in one turn since
// before its previous tick.
const (
	maxIdleWorkers = 32
	busyPerProc    = 4
	stallInterval  = time.Millisecond
)

// reg is one registered socket. Its handle holds the registration's
// generation, new with every Add, which an event carries along with the
// slot: an event already returned for a removed socket cannot reach the
// registration that took its slot over.
type reg struct {
	h  Handler
	hd *Handle
}

// Handle identifies a registration and holds its turn state. The zero
// Handle is not registered. The poller keeps a pointer to it, so Add must
// not be given a Handle whose previous registration may still have a turn
// running.
type Handle struct {
	p    *Poller
	fd   int32
	slot int32
	gen  int32
	// state is the turn: running, pending, closing and removed bits. It
	// fills what was padding: a registration costs no more than when it
	// was re-armed one-shot.
	state atomic.Uint32
	// wait is the writer waiting for room in the socket, if any (see
	// ArmWrite): nil while nobody waits, which is always for an idle
	// socket.
	wait atomic.Pointer[Waiter]
}

// The bits of Handle.state.
const (
	running uint32 = 1 << iota // a turn is on
	pending                    // an event came during the turn
	closing                    // an event showed the peer's end or an error
	removed                    // no turn starts any more
)

// New creates a poller and starts its goroutine.
func New() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it in Go's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("netpoll: set non-blocking: %w", err)
	}
	p := &Poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), stopped: make(chan struct{}),
		turns: newPool(busyPerProc*runtime.GOMAXPROCS(0), maxIdleWorkers, stallInterval)}
	if p.conn, err = p.file.SyscallConn(); err != nil {
		_ = p.file.Close()
		return nil, fmt.Errorf("netpoll: %w", err)
	}
	go p.run()
	return p, nil
}

// Close stops the poller's goroutine; registered handlers are not called
// again.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	// Closing the file wakes run's wait with an error; the descriptor is
	// released once run has returned from its last epoll_wait.
	err := p.file.Close()
	<-p.stopped
	p.turns.close() // idle workers exit; busy ones once the queue is empty
	return err
}

// Stats reports the poller's workers.
func (p *Poller) Stats() Stats { return p.turns.stats() }

// Go runs f on one of the poller's workers, after the turns and tasks
// started before it, so that short work a turn would otherwise start a
// goroutine for (a session's output flush) runs on a grown stack too. Like
// a turn, f should not block for long (see pool). After Close, f runs on
// a goroutine of its own.
//
// A lane that ran tasks before waiting turns (last in, first out) was
// tried: at 12,000 msgs/s its p99 was 15.5, 13.4 and 5.3 ms against 7.2,
// 6.1 and 4.2 ms in one queue (alternating runs).
func (p *Poller) Go(f func()) {
	if !p.turns.start([]Handler{task(f)}) {
		go f()
	}
}

// regEvents is the registration, made once. EPOLLRDHUP tells the end of
// the peer's stream apart from bytes (see Closing).
const regEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET

// epollET is EPOLLET: package syscall declares it as a negative constant
// on some architectures (amd64 among them), which does not fit the uint32
// of an event; its value is fixed by the kernel ABI.
const epollET = 1 << 31

// writeEvents wake a writer waiting for room (see ArmWrite).
const writeEvents = syscall.EPOLLOUT | syscall.EPOLLHUP | syscall.EPOLLERR

// closingEvents are the events after which a short read may be followed
// by the end of the stream, which no further event announces.
const closingEvents = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR

// Add registers fd: h.Readable runs once fd is readable, at once if it
// already is. The registration is stored in *hd before the socket is
// registered, so a Readable that runs at once already sees it.
func (p *Poller) Add(fd int, h Handler, hd *Handle) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("netpoll: poller closed")
	}
	var slot int32
	if n := len(p.free); n > 0 {
		slot = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		slot = int32(len(p.regs))
		p.regs = append(p.regs, reg{})
	}
	p.gen++
	gen := p.gen
	*hd = Handle{p: p, fd: int32(fd), slot: slot, gen: gen}
	p.regs[slot] = reg{h: h, hd: hd}
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: regEvents, Fd: slot, Pad: gen}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(hd)
		*hd = Handle{}
		return fmt.Errorf("netpoll: epoll_ctl add: %w", err)
	}
	return nil
}

// Done ends the handler's turn, which must have read the socket dry (see
// Handler). If an event came during the turn, the turn goes on instead
// and Done is true: the handler reads again, then calls Done again. The
// event may be for bytes the turn has read already; the read after it
// then finds none. Done is false after Remove.
func (h *Handle) Done() bool {
	for {
		s := h.state.Load()
		if s&removed != 0 || s&running == 0 {
			return false
		}
		next := s &^ running
		if s&pending != 0 {
			next = s &^ pending
		}
		if h.state.CompareAndSwap(s, next) {
			return s&pending != 0
		}
	}
}

// Closing reports whether an event has shown the peer's end of the stream
// (EPOLLRDHUP, EPOLLHUP) or an error. A read that stops short of the end
// of the stream returns the bytes before it, and no event will announce
// the end again: from then on only EAGAIN or the end itself proves the
// socket dry.
func (h *Handle) Closing() bool { return h.state.Load()&closing != 0 }

// event records an event for the registration: it starts a turn (true)
// or marks the running one pending. The caller holds p.mu and has checked
// the generation.
func (h *Handle) event(flags uint32) bool {
	for {
		s := h.state.Load()
		if s&removed != 0 {
			return false
		}
		next := s | pending | flags
		if s&running == 0 {
			next = s | running | flags
		}
		if next == s || h.state.CompareAndSwap(s, next) {
			return s&running == 0
		}
	}
}

// Remove unregisters the socket. Call it before closing the socket, so
// that its descriptor number can be reused safely; it may be called at any
// time, and again (which does nothing): no turn starts after it, though a
// turn already started still runs, and its Done is false.
func (h *Handle) Remove() {
	if h.p == nil || h.state.Or(removed)&removed != 0 {
		// Never twice: the descriptor number may already be another
		// socket's.
		return
	}
	_ = syscall.EpollCtl(h.p.epfd, syscall.EPOLL_CTL_DEL, int(h.fd), nil)
	h.p.release(h)
	// A writer waiting for room would wait for an event that no longer
	// comes: it finds the registration removed.
	if w := h.wait.Load(); w != nil {
		w.wake()
	}
}

// FD is the registered descriptor (-1 for the zero Handle).
func (h *Handle) FD() int {
	if h.p == nil {
		return -1
	}
	return int(h.fd)
}

// Refd moves the registration to newfd, another descriptor of the same
// socket (a dup), and adds EPOLLOUT to it, edge-triggered like the rest:
// it reports once at once, then only after the socket had no room (a
// write returned EAGAIN) and has some again. An event with only EPOLLOUT
// starts no turn; it wakes a writer waiting in ArmWrite's Waiter.
//
// No event is lost: newfd is registered before the old descriptor is
// unregistered (an event in between may come twice, which a turn handles
// as for any event). The old registration must go explicitly: epoll
// drops a registration by itself only when the last descriptor of the
// socket closes, which newfd prevents, and the stale one would report
// every event again. Call Refd from the turn (or while no turn can
// start), never concurrently with Remove; the caller closes the old
// descriptor afterwards if it wants.
func (h *Handle) Refd(newfd int) error {
	if h.p == nil || h.state.Load()&removed != 0 {
		return errors.New("netpoll: refd: not registered")
	}
	ev := syscall.EpollEvent{Events: regEvents | syscall.EPOLLOUT, Fd: h.slot, Pad: h.gen}
	if err := syscall.EpollCtl(h.p.epfd, syscall.EPOLL_CTL_ADD, newfd, &ev); err != nil {
		return fmt.Errorf("netpoll: epoll_ctl add: %w", err)
	}
	if err := syscall.EpollCtl(h.p.epfd, syscall.EPOLL_CTL_DEL, int(h.fd), nil); err != nil {
		_ = syscall.EpollCtl(h.p.epfd, syscall.EPOLL_CTL_DEL, newfd, nil)
		return fmt.Errorf("netpoll: epoll_ctl del: %w", err)
	}
	h.fd = int32(newfd)
	return nil
}

// Waiter is a writer waiting for room in a socket registered by Refd.
// It exists only while a write waits: an idle socket costs nothing.
type Waiter struct {
	h     *Handle
	ch    chan struct{}
	t     *time.Timer // of the deadline, made by the first Wait that needs one
	armed bool        // false: another writer holds the registration's wait
}

// ArmWrite prepares a wait for room, for a writer whose write returned
// EAGAIN; it must then retry the write before it calls Wait (room that
// came before ArmWrite is never announced again), and call Disarm when
// it is done. One writer at a time waits by events; should another wait
// already, this one polls (every millisecond).
func (h *Handle) ArmWrite() *Waiter {
	w := &Waiter{h: h, ch: make(chan struct{}, 1)}
	w.armed = h.wait.CompareAndSwap(nil, w)
	return w
}

// Disarm ends the wait; the Waiter is not used again.
func (w *Waiter) Disarm() {
	if w.armed {
		w.h.wait.CompareAndSwap(w, nil)
	}
	if w.t != nil {
		w.t.Stop()
	}
}

func (w *Waiter) wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// Wait waits until an event may have made room in the socket (EPOLLOUT,
// or the peer's end or an error: the write then fails), after which the
// writer retries; until deadline (zero: none), returning
// os.ErrDeadlineExceeded (a net.Error whose Timeout is true); or until the
// registration is removed, returning net.ErrClosed.
func (w *Waiter) Wait(deadline time.Time) error {
	if w.h.state.Load()&removed != 0 {
		return net.ErrClosed
	}
	var d time.Duration = -1
	if !deadline.IsZero() {
		if d = time.Until(deadline); d <= 0 {
			return os.ErrDeadlineExceeded
		}
	}
	if !w.armed && (d < 0 || d > time.Millisecond) {
		d = time.Millisecond
	}
	if d < 0 {
		<-w.ch
		return nil
	}
	if w.t == nil {
		w.t = time.NewTimer(d)
	} else {
		w.t.Reset(d) // no stale expiry is left to receive (Go 1.23)
	}
	select {
	case <-w.ch:
		return nil
	case <-w.t.C:
		if !w.armed && (deadline.IsZero() || time.Now().Before(deadline)) {
			return nil
		}
		return os.ErrDeadlineExceeded
	}
}

func (p *Poller) release(h *Handle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := &p.regs[h.slot]; r.hd != h || r.hd.gen != h.gen {
		return
	}
	// Events still queued for this registration are stale from here.
	p.regs[h.slot] = reg{}
	p.free = append(p.free, h.slot)
}

// Len is the number of registered sockets.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.regs) - len(p.free)
}

func (p *Poller) run() {
	defer close(p.stopped)
	events := make([]syscall.EpollEvent, 256)
	start := make([]Handler, 0, len(events))
	var werr error
	err := p.conn.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err != nil {
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				werr = err
				return true
			}
			start = p.dispatch(events[:n], start)
			if n < len(events) {
				// Drained: wait in Go's poller for the next event. One
				// that came after this call has already made the epoll
				// descriptor readable again, so the wait returns at once.
				return false
			}
		}
	})
	if werr != nil {
		err = werr
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if err != nil && !closed {
		slog.Error("netpoll: epoll_wait", "err", err)
	}
}

// dispatch records the events of live registrations and starts the turns
// they begin; start is scratch space, returned for the next call. One
// lock covers the batch.
func (p *Poller) dispatch(events []syscall.EpollEvent, start []Handler) []Handler {
	p.mu.Lock()
	for i := range events {
		ev := &events[i]
		if int(ev.Fd) >= len(p.regs) {
			continue
		}
		r := &p.regs[ev.Fd]
		if r.hd == nil || r.hd.gen != ev.Pad {
			continue
		}
		if ev.Events&writeEvents != 0 {
			if w := r.hd.wait.Load(); w != nil {
				w.wake()
			}
			if ev.Events&^syscall.EPOLLOUT == 0 {
				continue // room to write only: no turn
			}
		}
		var flags uint32
		if ev.Events&closingEvents != 0 {
			flags = closing
		}
		if r.hd.event(flags) {
			start = append(start, r.h)
		}
	}
	p.mu.Unlock()
	p.turns.start(start)
	clear(start) // no handler kept alive by the scratch space
	return start[:0]
}
