//go:build !linux

package netpoll

import "errors"

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
