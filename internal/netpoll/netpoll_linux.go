// Package netpoll tells when sockets become readable, for many sockets on
// one epoll instance, so that an idle connection needs no goroutine: a
// goroutine parked in Go's network poller costs 2.7 KB or more of stack per
// connection, and every GC cycle scans it.
//
// A socket is registered one-shot (EPOLLONESHOT): when it becomes readable
// the poller runs its handler on a worker goroutine and forgets the socket
// until the handler re-arms it, so at most one handler runs per socket.
// The sockets stay in Go's own poller too, which serves their writes and
// any blocking read a handler makes (a TLS handshake).
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
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Handler is told that its socket is readable (or at EOF, or in error). It
// runs on a goroutine of its own for the time of the call (one of the
// poller's workers) and must call Arm or Remove when done.
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
	closed  bool
	stopped chan struct{}

	// work hands a handler to an idle worker goroutine. A goroutine per
	// readiness event starts on a 2 KB stack and grows it two or three
	// times while it decrypts, parses and routes (newstack and copystack
	// were 8% of a server's CPU during a login burst); a worker keeps its
	// grown stack for the next event. At most maxIdleWorkers wait, so a
	// burst of handlers blocked on the store leaves no crowd of stacks
	// behind.
	work chan Handler
	idle atomic.Int32
}

// maxIdleWorkers bounds the workers waiting for an event. Their stacks are
// the fixed cost of the pool (GC shrinks the stacks of idle ones).
const maxIdleWorkers = 32

// reg is one registered socket. gen changes whenever a slot is reused, so
// an event already returned for a removed socket cannot reach the handler
// that took its slot over.
type reg struct {
	h   Handler
	fd  int32
	gen int32
}

// Handle identifies a registration. The zero Handle is not registered.
type Handle struct {
	p    *Poller
	fd   int32
	slot int32
	gen  int32
}

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
	p := &Poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), stopped: make(chan struct{}), work: make(chan Handler)}
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
	close(p.work) // idle workers exit; busy ones exit when done
	return err
}

const armEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | EPOLLONESHOT

// EPOLLONESHOT is missing from package syscall's constants on some
// architectures; its value is fixed by the kernel ABI.
const EPOLLONESHOT = 1 << 30

// Add registers fd, armed: h.Readable runs once fd is readable. The
// registration is stored in *hd before the socket is armed, so a Readable
// that runs at once already sees it.
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
	r := &p.regs[slot]
	r.gen++
	r.h, r.fd = h, int32(fd)
	*hd = Handle{p: p, fd: int32(fd), slot: slot, gen: r.gen}
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: armEvents, Fd: slot, Pad: hd.gen}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(hd)
		*hd = Handle{}
		return fmt.Errorf("netpoll: epoll_ctl add: %w", err)
	}
	return nil
}

// Arm asks for the next readiness of the handle's socket (after the
// handler has run). If bytes are already waiting, the handler runs at once.
func (h *Handle) Arm() error {
	if h.p == nil {
		return errors.New("netpoll: not registered")
	}
	ev := syscall.EpollEvent{Events: armEvents, Fd: h.slot, Pad: h.gen}
	if err := syscall.EpollCtl(h.p.epfd, syscall.EPOLL_CTL_MOD, int(h.fd), &ev); err != nil {
		return fmt.Errorf("netpoll: epoll_ctl mod: %w", err)
	}
	return nil
}

// Remove unregisters the socket. Call it before closing the socket, so
// that its descriptor number can be reused safely; it may be called at any
// time: an event already returned for it is dropped by the generation
// check, though a Readable already started still runs.
func (h *Handle) Remove() {
	if h.p == nil {
		return
	}
	_ = syscall.EpollCtl(h.p.epfd, syscall.EPOLL_CTL_DEL, int(h.fd), nil)
	h.p.release(h)
}

func (p *Poller) release(h *Handle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &p.regs[h.slot]
	if r.gen != h.gen || r.h == nil {
		return
	}
	r.h = nil
	r.gen++ // events still queued for this registration are now stale
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
			p.dispatch(events[:n])
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

// dispatch starts the handlers of the events' live registrations.
func (p *Poller) dispatch(events []syscall.EpollEvent) {
	for i := range events {
		ev := &events[i]
		p.mu.Lock()
		var h Handler
		if int(ev.Fd) < len(p.regs) {
			if r := &p.regs[ev.Fd]; r.gen == ev.Pad {
				h = r.h
			}
		}
		p.mu.Unlock()
		if h == nil {
			continue
		}
		select {
		case p.work <- h:
		default:
			go p.worker(h)
		}
	}
}

// worker runs h, then waits for more events while fewer than
// maxIdleWorkers others wait.
func (p *Poller) worker(h Handler) {
	for {
		h.Readable()
		if p.idle.Add(1) > maxIdleWorkers {
			p.idle.Add(-1)
			return
		}
		var ok bool
		h, ok = <-p.work
		p.idle.Add(-1)
		if !ok {
			return
		}
	}
}
