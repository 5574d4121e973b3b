//go:build !linux

package netpoll

import (
	"errors"
	"net"
	"time"
)

// Handler is told that its socket is readable.
type Handler interface {
	Readable()
}

// Poller is only implemented on Linux; elsewhere New fails and callers
// keep a reader goroutine per connection.
type Poller struct{}

// Handle identifies a registration.
type Handle struct{}

// New reports that there is no poller on this system.
func New() (*Poller, error) { return nil, errors.New("netpoll: epoll is Linux-only") }

// Close does nothing.
func (p *Poller) Close() error { return nil }

// Stats is a snapshot of a poller's workers.
type Stats struct {
	Busy, Idle     int
	Started, Turns uint64
}

// Stats is zero: there are no workers.
func (p *Poller) Stats() Stats { return Stats{} }

// Go runs f on a goroutine of its own.
func (p *Poller) Go(f func()) { go f() }

// Add always fails.
func (p *Poller) Add(fd int, h Handler, hd *Handle) error { return errors.New("netpoll: unsupported") }

// Done is false: there is no turn.
func (h *Handle) Done() bool { return false }

// Closing is false.
func (h *Handle) Closing() bool { return false }

// Remove does nothing.
func (h *Handle) Remove() {}

// Len is 0.
func (p *Poller) Len() int { return 0 }

// FD is -1: nothing is registered.
func (h *Handle) FD() int { return -1 }

// Refd always fails.
func (h *Handle) Refd(newfd int) error { return errors.New("netpoll: unsupported") }

// Waiter is a writer waiting for room; it never waits here.
type Waiter struct{}

// ArmWrite returns a Waiter whose Wait fails.
func (h *Handle) ArmWrite() *Waiter { return &Waiter{} }

// Disarm does nothing.
func (w *Waiter) Disarm() {}

// Wait reports the socket as closed: nothing is registered.
func (w *Waiter) Wait(deadline time.Time) error { return net.ErrClosed }
