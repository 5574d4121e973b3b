package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-im/parley/internal/netpoll"
	"github.com/parley-im/parley/internal/tlsrec"
)

// readBufSize is the size of the pooled read buffers; a connection holds
// one only while bytes are being handed to its session.
const readBufSize = 4096

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// Conn is a client connection: a TCP socket, possibly upgraded to TLS. It
// implements c2s.Transport.
//
// Reading is event-driven: while the connection is idle nothing runs for
// it. When its socket becomes readable, the shared poller starts a turn
// (Readable) that reads until the socket is dry, feeding the session, and
// then ends; at most one turn runs per connection, so the session's
// reader-owned state (and the fields below marked so) has one owner at a
// time. Writes come
// only from the session's single flusher, so no lock guards the connection
// swap of StartTLS (it happens inside Feed, before any output can be
// pending from another goroutine).
//
// A TLS 1.3 connection (AES-GCM or ChaCha20-Poly1305) is carried by tlsrec
// after the handshake (rec), which keeps no buffers while idle; TLS 1.2
// stays with crypto/tls (tls). The handshake's outcome is kept in state
// until the session has authenticated (ReleaseTLSState).
//
// Once nothing needs Go's poller any more (the connection is in ours, and
// is plain TCP after authentication or carried by tlsrec), the reader
// detaches it (detach): the socket is kept through a duplicate descriptor
// of our own, which our poller watches for reads and for room to write,
// and the net.TCPConn is closed, which returns its netFD (about 300
// bytes) to the GC and its runtime pollDesc (about 250 bytes, never freed
// otherwise) to the runtime's cache. Writes then go to the descriptor
// itself (rawWrite). TLS 1.2 stays attached: crypto/tls reads and writes
// through the net.Conn.
//
// Every idle session keeps one, so its fields are counted (docs/density.md).
type Conn struct {
	l     *Listener
	tcp   *net.TCPConn
	raw   syscall.RawConn
	rec   *tlsrec.Conn
	tls   *tls.Conn
	state *tls.ConnectionState
	ip    string
	sess  Session // set once the session exists
	poll  netpoll.Handle

	mu sync.Mutex
	// idle is the timer of the idle timeout, only while unauthenticated.
	// The reader alone sets it (under mu, as idleExpired reads busy), so
	// the reader reads it without the lock: an authenticated session's
	// turns take no lock at all.
	idle   *time.Timer
	kind   connKind
	busy   bool // a turn is on; kept only while idle is set
	closed bool
	more   bool // reader-owned: the last read may have left bytes
	// flags holds the flag bits below and, from refShift up, the number
	// of users of the socket outside the reader (writers, Close's
	// shutdown), which the detaching waits for and the last of which
	// closes a detached descriptor once finish has released it.
	flags atomic.Uint32
}

// The bits of Conn.flags.
const (
	// flagFinished: finish has begun (set under mu).
	flagFinished uint32 = 1 << iota
	// flagClosing: Close has begun; a detached write waits at most
	// closeNotifyTimeout.
	flagClosing
	// flagMoved: the poller watches a duplicate descriptor of the socket
	// (c.poll.FD()), which the connection owns, while tcp is still open.
	flagMoved
	// flagDetached: the socket is that descriptor alone; tcp and raw are
	// nil.
	flagDetached
	// flagFDClose: finish has released the detached descriptor; the last
	// user closes it.
	flagFDClose

	refShift        = 8
	refOne   uint32 = 1 << refShift
)

// connKind is what Kind reports.
type connKind uint8

const (
	kindTCP connKind = iota
	kindStartTLS
	kindTLS
)

func newConn(l *Listener, tcp *net.TCPConn) (*Conn, error) {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	ip := ""
	if a, ok := tcp.RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP.String()
	}
	return &Conn{l: l, tcp: tcp, raw: raw, ip: ip}, nil
}

// Write writes p completely within the write timeout.
func (c *Conn) Write(p []byte) error {
	if c.rec != nil {
		// The record layer sets a deadline for each of its socket writes.
		_, err := c.rec.Write(p)
		return err
	}
	if c.tls != nil {
		if d := c.l.cfg.WriteTimeout; d > 0 {
			_ = c.tls.SetWriteDeadline(time.Now().Add(d))
		}
		_, err := c.tls.Write(p)
		return err
	}
	_, err := c.writeSock(p, true)
	return err
}

// CanStartTLS reports whether the connection is still plain TCP.
func (c *Conn) CanStartTLS() bool { return c.state == nil }

// StartTLS performs the server side of a TLS handshake on the socket.
func (c *Conn) StartTLS(cfg *tls.Config) error {
	if c.state != nil {
		return errors.New("listener: TLS already active")
	}
	if c.flags.Load()&(flagMoved|flagDetached) != 0 {
		return errors.New("listener: STARTTLS after authentication")
	}
	if err := c.handshake(cfg); err != nil {
		return err
	}
	c.kind = kindStartTLS
	return nil
}

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 15 * time.Second

// handshake runs the server side of a TLS handshake and installs whichever
// layer carries the connection afterwards. Its reads block (in Go's
// poller). Direct TLS runs it before the socket is registered in ours;
// STARTTLS, inside Feed, during a turn, when the events of the
// handshake's bytes only mark the turn pending.
func (c *Conn) handshake(cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	res, err := tlsrec.Handshake(ctx, (*sock)(c), cfg)
	if err != nil {
		return fmt.Errorf("listener: TLS handshake: %w", err)
	}
	if res.Rec != nil {
		res.Rec.SetWriteTimeout(c.l.cfg.WriteTimeout)
		c.rec = res.Rec
	} else {
		c.tls = res.TLS
	}
	c.state = &res.State
	return nil
}

// releasedTLS stands for the state of every TLS connection whose session
// has authenticated: SASL's channel binding was the last reader of the
// details (the exporter secret, the peer's certificates, the server name),
// and about 300 bytes per idle session (ConnectionState and what it
// references) are not worth keeping for nobody. Shared and never written:
// TLS returns copies.
var releasedTLS = tls.ConnectionState{HandshakeComplete: true}

// ReleaseTLSState drops the TLS connection state after authentication;
// TLS then returns a state with only HandshakeComplete set, whose
// ExportKeyingMaterial must not be called (it has no exporter: only SASL
// channel binding uses it, before authentication).
func (c *Conn) ReleaseTLSState() {
	if c.state != nil {
		c.state = &releasedTLS
	}
}

// TLS returns the negotiated TLS state or nil.
func (c *Conn) TLS() *tls.ConnectionState {
	if c.state == nil {
		return nil
	}
	st := *c.state
	return &st
}

// closeNotifyTimeout bounds the write of a close_notify alert.
const closeNotifyTimeout = time.Second

// Close ends the connection (idempotent): a TLS close_notify, then a
// shutdown of both directions, which the peer sees as the end of the
// stream and which wakes this connection's reader (the socket reads EOF):
// the reader ends the session and releases the descriptor, so that it is
// never closed under a reader or while registered with the poller.
func (c *Conn) Close() error {
	c.mu.Lock()
	done := c.closed
	c.closed = true
	c.mu.Unlock()
	if done {
		return nil
	}
	c.flags.Or(flagClosing)
	switch {
	case c.rec != nil:
		c.rec.CloseNotify(closeNotifyTimeout)
	case c.tls != nil:
		// crypto/tls waits for a write in progress; CloseWrite sends
		// close_notify and makes later writes fail.
		_ = c.tls.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
		_ = c.tls.CloseWrite()
	}
	s, ok := c.acquire()
	if !ok {
		return nil // finish is closing the descriptor: the stream ends
	}
	var err error
	if s&flagDetached != 0 {
		err = syscall.Shutdown(c.poll.FD(), syscall.SHUT_RDWR)
	} else if cerr := c.raw.Control(func(fd uintptr) {
		err = syscall.Shutdown(int(fd), syscall.SHUT_RDWR)
	}); cerr != nil {
		err = cerr
	}
	c.release()
	if errors.Is(err, syscall.ENOTCONN) {
		err = nil // the peer is already gone
	}
	return err
}

// RemoteIP is the peer's address.
func (c *Conn) RemoteIP() string { return c.ip }

// Kind is "tcp", "starttls" or "tls".
func (c *Conn) Kind() string {
	switch c.kind {
	case kindStartTLS:
		return "starttls"
	case kindTLS:
		return "tls"
	}
	return "tcp"
}

// Feeder is what the reader drives: a session fed byte slices.
type Feeder interface {
	Feed(p []byte) error
	Throttle() time.Duration
	End()
}

// start begins reading for the session: through the poller if there is
// one, else on this goroutine (which then returns only at the end).
func (c *Conn) start() {
	defer c.recoverPanic()
	if c.tls != nil && c.rec == nil {
		// crypto/tls may hold decrypted bytes the socket will not signal.
		// (With the record-at-a-time handshake reader it should not, but
		// this costs one non-waiting read.)
		bp := readPool.Get().(*[]byte)
		ok := c.drainTLS(*bp)
		readPool.Put(bp)
		if !ok {
			c.finish()
			return
		}
	}
	p := c.l.poller
	if p == nil {
		c.readLoop()
		return
	}
	c.idleRestart()
	if err := p.Add(c.fd(), c, &c.poll); err != nil {
		c.l.log.Warn("listener: poller", "ip", c.ip, "err", err)
		c.finish()
	}
}

// Go runs f, work for the session that must not wait for its turn (an
// output flush), on the poller's workers, whose stacks have grown: a
// goroutine per flush started on a small stack and grew it in the TLS
// sealing. Without a poller, f gets a goroutine of its own.
func (c *Conn) Go(f func()) {
	if p := c.l.poller; p != nil {
		p.Go(f)
		return
	}
	go f()
}

// fd is the socket's descriptor, for the poller.
func (c *Conn) fd() int {
	fd := -1
	_ = c.raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// Readable implements netpoll.Handler: the socket has bytes, EOF or an
// error, and a turn begins.
func (c *Conn) Readable() { c.turn() }

// turn reads and feeds until the socket is dry, then ends with the
// poller, or reads on if an event came meanwhile. The registration is
// edge-triggered: bytes left in the socket when the turn ends would never
// be announced, so it ends only after a read that proves the socket dry.
// It runs on a poller's worker, or on a timer after a throttle pause; no
// other turn runs for the connection meanwhile.
func (c *Conn) turn() {
	defer c.recoverPanic()
	if c.flags.Load()&flagFinished != 0 {
		return // not expected: the poller starts no turn after Remove
	}
	for {
		c.setBusy()
		more, ok := c.readOnce()
		if !ok {
			c.finish()
			return
		}
		if d := c.sess.Throttle(); d > 0 {
			// The stanza shaper: the turn goes on after d, holding no
			// goroutine meanwhile. No event will start it: those of
			// the pause only mark the turn pending, so it reads first.
			time.AfterFunc(d, c.turn)
			return
		}
		if more {
			continue
		}
		// Before Done: once the turn has ended, another may own the
		// connection.
		c.detach()
		c.idleRestart()
		if !c.poll.Done() {
			return
		}
	}
}

// setBusy tells the idle timer that a turn is on, if there is a timer.
func (c *Conn) setBusy() {
	if c.idle == nil {
		return
	}
	c.mu.Lock()
	c.busy = true
	c.mu.Unlock()
}

// recoverPanic contains a panic in this connection's reader: it is
// logged and ends this connection only.
func (c *Conn) recoverPanic() {
	if p := recover(); p != nil {
		c.l.log.Error("listener: connection panic", "ip", c.ip, "panic", p)
		c.finish()
	}
}

// idleRestart restarts the before-authentication idle timer, or drops it
// once the session has authenticated. It marks the reader as not busy.
func (c *Conn) idleRestart() {
	d := c.l.cfg.IdleTimeout
	authed := d <= 0 || c.sess.Authenticated()
	if authed && c.idle == nil {
		return // nothing to restart or drop, and busy is false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	switch {
	case c.flags.Load()&flagFinished != 0:
	case authed:
		if c.idle != nil {
			c.idle.Stop()
			c.idle = nil
		}
	case c.idle == nil:
		c.idle = time.AfterFunc(d, c.idleExpired)
	default:
		c.idle.Reset(d)
	}
}

// idleExpired closes a connection that stayed silent too long before
// authenticating. A reader that is running restarts the timer when done.
func (c *Conn) idleExpired() {
	c.mu.Lock()
	skip := c.busy || c.flags.Load()&flagFinished != 0
	c.mu.Unlock()
	if !skip {
		c.l.log.Debug("listener: idle before authentication", "ip", c.ip)
		_ = c.Close()
	}
}

// finish ends the connection once: unregister, end the session, close the
// descriptor, release the tracker slot.
func (c *Conn) finish() {
	c.mu.Lock()
	if c.flags.Load()&flagFinished != 0 {
		c.mu.Unlock()
		return
	}
	c.flags.Or(flagFinished)
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
	c.mu.Unlock()
	c.poll.Remove()
	func() {
		defer func() {
			if p := recover(); p != nil {
				c.l.log.Error("listener: session End panic", "ip", c.ip, "panic", p)
			}
		}()
		c.sess.End()
	}()
	_ = c.Close() // close_notify and shutdown, if End did not
	switch s := c.flags.Load(); {
	case s&flagDetached != 0:
		// A writer may still be on the descriptor: the last one out
		// closes it.
		if old := c.flags.Or(flagFDClose); old>>refShift == 0 {
			_ = syscall.Close(c.poll.FD())
		}
	default:
		_ = c.tcp.Close()
		if s&flagMoved != 0 {
			_ = syscall.Close(c.poll.FD()) // unregistered by Remove
		}
	}
	c.l.cfg.Tracker.release(c.ip, c.sess)
}

// readLoop is the reader without a poller (systems without epoll): a
// goroutine parked in Go's poller, holding no buffer while idle.
func (c *Conn) readLoop() {
	defer c.recoverPanic()
	for {
		deadline := time.Time{}
		if d := c.l.cfg.IdleTimeout; d > 0 && !c.sess.Authenticated() {
			deadline = time.Now().Add(d)
		}
		_ = c.tcp.SetReadDeadline(deadline)
		if err := c.waitReadable(); err != nil {
			c.finish()
			return
		}
		if _, ok := c.readOnce(); !ok {
			c.finish()
			return
		}
		if d := c.sess.Throttle(); d > 0 {
			time.Sleep(d)
		}
	}
}

// waitReadable parks the reader in the runtime's network poller until the
// socket has bytes (or EOF/error), without holding any buffer.
func (c *Conn) waitReadable() error {
	return c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			// Data, EOF or an error: the real read reports it.
			return true
		}
	})
}

// readOnce reads once and feeds what it got. ok is false when the
// connection is over; more is true when the socket may still hold bytes
// (the read filled its buffer, or the transport changed), which no event
// will announce. It never waits for bytes that are not there, except on a
// crypto/tls connection, whose Read waits for the rest of a record.
func (c *Conn) readOnce() (more, ok bool) {
	s := c.sess
	if c.rec != nil {
		// Should ReadReady not read at all, asking again is the safe
		// side.
		c.more = true
		err := c.rec.ReadReady(c.readNow, s.Feed)
		return c.more, err == nil || errors.Is(err, tlsrec.ErrWouldBlock)
	}
	bp := readPool.Get().(*[]byte)
	defer readPool.Put(bp)
	buf := *bp
	if c.tls == nil {
		n, err := c.readNow(buf)
		if errors.Is(err, tlsrec.ErrWouldBlock) {
			return false, true
		}
		if n > 0 && s.Feed(buf[:n]) != nil || err != nil {
			return false, false
		}
		if c.tls != nil {
			// Feed ran STARTTLS: what crypto/tls took from the socket
			// during the handshake, the socket will not announce.
			return true, c.drainTLS(buf)
		}
		return c.more || c.rec != nil, true
	}
	// crypto/tls reads through Go's poller and does not tell whether its
	// last read emptied the socket: the socket itself is asked, first,
	// so that a turn with nothing to read does not wait for a record.
	if !c.readable() {
		return false, true
	}
	_ = c.tls.SetReadDeadline(time.Time{})
	n, err := c.tls.Read(buf)
	if n > 0 && s.Feed(buf[:n]) != nil {
		return false, false
	}
	if err != nil {
		return false, false
	}
	return true, c.drainTLS(buf)
}

// readNow reads what the socket holds without waiting: tlsrec.ErrWouldBlock
// if nothing, io.EOF at its end. It sets c.more: whether the socket may
// hold more (see netpoll.Handler for when a read proves it dry).
func (c *Conn) readNow(b []byte) (int, error) {
	var n int
	var serr, err error
	if c.flags.Load()&flagDetached != 0 {
		n, serr = readFD(c.poll.FD(), b)
	} else {
		err = c.raw.Read(func(fd uintptr) bool {
			n, serr = readFD(int(fd), b)
			return true
		})
	}
	switch {
	case err != nil:
		return 0, err
	case serr == syscall.EAGAIN:
		c.more = false
		return 0, tlsrec.ErrWouldBlock
	case serr != nil:
		return 0, serr
	case n == 0:
		return 0, io.EOF
	}
	// A short read stops at the end of the stream too, and returns the
	// end only on the next read, which no event will prompt.
	c.more = n == len(b) || c.poll.Closing()
	return n, nil
}

// readFD is one read(2) of fd, retried while interrupted.
func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// readable reports whether the socket has bytes, its end or an error,
// without taking any or waiting.
func (c *Conn) readable() bool {
	ready := true
	err := c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err != syscall.EINTR {
				ready = err != syscall.EAGAIN
				return true
			}
		}
	})
	return ready || err != nil
}

// drainTLS feeds whatever crypto/tls already holds: records may sit inside
// it, decrypted or not, after a read, and the socket will not signal them.
// It reads with an expired deadline (crypto/tls treats timeouts as
// non-fatal), so it never waits on the socket.
func (c *Conn) drainTLS(buf []byte) bool {
	defer func() { _ = c.tls.SetReadDeadline(time.Time{}) }()
	for {
		_ = c.tls.SetReadDeadline(time.Unix(1, 0))
		n, err := c.tls.Read(buf)
		if n > 0 && c.sess.Feed(buf[:n]) != nil {
			return false
		}
		if err != nil {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}
	}
}
