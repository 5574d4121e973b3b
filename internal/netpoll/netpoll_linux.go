// Package netpoll tells when sockets become readable, for many sockets on
// one epoll instance, so that an idle connection needs no goroutine: a
// goroutine parked in Go's network poller costs 2.7 KB or more of stack per
// connection, and every GC cycle scans it.
//
// A socket is registered one-shot (EPOLLONESHOT): when it becomes readable
// the poller starts a new goroutine for its handler and forgets the socket
// until the handler re-arms it, so at most one handler runs per socket.
// The sockets stay in Go's own poller too, which serves their writes and
// any blocking read a handler makes (a TLS handshake).
package netpoll

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
)

// Handler is told that its socket is readable (or at EOF, or in error). It
// runs on its own goroutine and must call Arm or Remove when done.
type Handler interface {
	Readable()
}

// Poller owns one epoll instance and the goroutine that waits on it.
type Poller struct {
	epfd int
	wake [2]int // pipe: a write wakes the waiter for Close

	mu      sync.Mutex
	regs    []reg // by slot; the slot goes in the event's data
	free    []int32
	closed  bool
	stopped chan struct{}
}

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
	p := &Poller{epfd: epfd, stopped: make(chan struct{})}
	if err := syscall.Pipe2(p.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("netpoll: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	go p.run()
	return p, nil
}

func (p *Poller) closeFDs() {
	_ = syscall.Close(p.epfd)
	_ = syscall.Close(p.wake[0])
	_ = syscall.Close(p.wake[1])
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
	_, _ = syscall.Write(p.wake[1], []byte{1})
	<-p.stopped
	p.closeFDs()
	return nil
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
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			slog.Error("netpoll: epoll_wait", "err", err)
			return
		}
		for i := range n {
			ev := &events[i]
			if ev.Fd < 0 {
				return // Close
			}
			p.mu.Lock()
			var h Handler
			if int(ev.Fd) < len(p.regs) {
				if r := &p.regs[ev.Fd]; r.gen == ev.Pad {
					h = r.h
				}
			}
			p.mu.Unlock()
			if h != nil {
				go h.Readable()
			}
		}
	}
}
