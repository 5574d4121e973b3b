package listener

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/parley-im/parley/internal/netpoll"
)

// detach hands the socket over to our poller alone, if nothing needs Go's
// any more: the connection is registered in our poller, TLS is not
// crypto/tls's (which reads and writes through the net.Conn), and either
// tlsrec carries it or the session has authenticated (no STARTTLS, whose
// handshake reads through Go's poller, can come). The reader calls it at
// the end of every turn, before Done; it does nothing once detached, and
// tries again at a later turn's end while a write or Close is in progress.
//
// It duplicates the descriptor and moves the poller's registration to the
// duplicate (Refd), which also starts watching for room to write; then,
// when no writer or Close uses the socket (flags' count, which writers
// take before they look at how the socket is held), marks the connection
// detached and closes the net.TCPConn: Go unregisters and closes the old
// descriptor, the socket stays open through the duplicate.
func (c *Conn) detach() {
	if c.tls != nil || c.l.poller == nil {
		return
	}
	s := c.flags.Load()
	if s&(flagDetached|flagFinished|flagClosing) != 0 || c.rec == nil && !c.sess.Authenticated() {
		return
	}
	if s&flagMoved == 0 && !c.moveToDup() {
		return
	}
	for {
		s = c.flags.Load()
		if s>>refShift != 0 || s&(flagFinished|flagClosing) != 0 {
			return
		}
		if c.flags.CompareAndSwap(s, s|flagDetached) {
			break
		}
	}
	// No user of tcp or raw is left: writers and Close now see the flag.
	tcp := c.tcp
	c.tcp, c.raw = nil, nil
	_ = tcp.Close()
}

// moveToDup registers a duplicate of the socket's descriptor in the poller
// instead of the descriptor Go's poller holds.
func (c *Conn) moveToDup() bool {
	nfd := -1
	var err error
	if cerr := c.raw.Control(func(fd uintptr) { nfd, err = dupSocket(int(fd)) }); cerr != nil || err != nil {
		return false
	}
	if err := c.poll.Refd(nfd); err != nil {
		_ = syscall.Close(nfd)
		return false
	}
	c.flags.Or(flagMoved)
	return true
}

// acquire counts a user of the socket outside the reader (a write, a
// shutdown) and returns the flags as they were; false once finish has
// released a detached descriptor.
func (c *Conn) acquire() (uint32, bool) {
	for {
		s := c.flags.Load()
		if s&flagFDClose != 0 {
			return s, false
		}
		if c.flags.CompareAndSwap(s, s+refOne) {
			return s, true
		}
	}
}

// release ends what acquire began; the last user of a released descriptor
// closes it.
func (c *Conn) release() {
	if s := c.flags.Add(^(refOne - 1)); s&flagFDClose != 0 && s>>refShift == 0 {
		_ = syscall.Close(c.poll.FD())
	}
}

// writeSock writes p to the socket: through the net.TCPConn while
// attached (setting the write timeout first if timeout is set; TLS sets
// its own deadlines), else to the descriptor (rawWrite).
func (c *Conn) writeSock(p []byte, timeout bool) (int, error) {
	s, ok := c.acquire()
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}
	}
	defer c.release()
	if s&flagDetached != 0 {
		return c.rawWrite(p)
	}
	if d := c.l.cfg.WriteTimeout; timeout && d > 0 {
		_ = c.tcp.SetWriteDeadline(time.Now().Add(d))
	}
	return c.tcp.Write(p)
}

// rawWrite writes all of p to the detached descriptor. When the socket
// has no room (EAGAIN) it waits for the poller's EPOLLOUT, until the
// write timeout (closeNotifyTimeout once Close has begun): a timeout is
// an error for which errors.Is(err, os.ErrDeadlineExceeded) holds and
// which is a net.Error whose Timeout is true, as from a net.Conn. The
// wait, and its channel, exist only once a write has found no room.
func (c *Conn) rawWrite(p []byte) (int, error) {
	fd := c.poll.FD()
	var w *netpoll.Waiter
	var deadline time.Time
	n := 0
	var err error
	for n < len(p) {
		var m int
		m, err = syscall.Write(fd, p[n:])
		if m > 0 {
			n += m
		}
		switch err {
		case nil:
			if m <= 0 {
				err = io.ErrShortWrite
				break
			}
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if w == nil {
				// Room that comes before the wait is armed is never
				// announced: arm it, then try again.
				w = c.poll.ArmWrite()
				deadline = c.writeDeadline()
				continue
			}
			if err = w.Wait(deadline); err == nil {
				continue
			}
		default:
			err = os.NewSyscallError("write", err)
		}
		break
	}
	if w != nil {
		w.Disarm()
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: err}
	}
	return n, nil
}

// writeDeadline is when a detached write that found no room gives up.
func (c *Conn) writeDeadline() time.Time {
	d := c.l.cfg.WriteTimeout
	if c.flags.Load()&flagClosing != 0 && (d <= 0 || d > closeNotifyTimeout) {
		d = closeNotifyTimeout
	}
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// sock is the connection as the socket TLS runs on: crypto/tls during the
// handshake (and for TLS 1.2 afterwards), tlsrec's writes after it. While
// the connection is attached it is the net.TCPConn; once detached (never
// with crypto/tls after the handshake), writes go to the descriptor, with
// the deadline rawWrite sets: SetWriteDeadline then does nothing, since
// tlsrec's deadlines are always now plus the write timeout, or plus
// closeNotifyTimeout for the close_notify of Close, which rawWrite applies
// by itself.
type sock Conn

var _ net.Conn = (*sock)(nil)

// Read is crypto/tls's, on the reader (the handshake, TLS 1.2's records).
func (s *sock) Read(p []byte) (int, error) {
	if s.tcp == nil {
		return 0, net.ErrClosed
	}
	return s.tcp.Read(p)
}

func (s *sock) Write(p []byte) (int, error) { return (*Conn)(s).writeSock(p, false) }

// Close is crypto/tls's when a handshake's context ends.
func (s *sock) Close() error {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Close()
}

func (s *sock) LocalAddr() net.Addr {
	if s.tcp == nil {
		return &net.TCPAddr{}
	}
	return s.tcp.LocalAddr()
}

func (s *sock) RemoteAddr() net.Addr {
	if s.tcp == nil {
		return &net.TCPAddr{}
	}
	return s.tcp.RemoteAddr()
}

// SetDeadline and SetReadDeadline are the reader's (crypto/tls's reads).
func (s *sock) SetDeadline(t time.Time) error {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.SetDeadline(t)
}

func (s *sock) SetReadDeadline(t time.Time) error {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.SetReadDeadline(t)
}

func (s *sock) SetWriteDeadline(t time.Time) error {
	c := (*Conn)(s)
	st, ok := c.acquire()
	if !ok {
		return net.ErrClosed
	}
	defer c.release()
	if st&flagDetached != 0 {
		return nil
	}
	return c.tcp.SetWriteDeadline(t)
}
