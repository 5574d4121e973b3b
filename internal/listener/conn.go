package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// readBufSize is the size of the pooled read buffers; a connection holds
// one only while bytes are being handed to its session.
const readBufSize = 4096

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// Conn is a client connection: a TCP socket, possibly upgraded to TLS. It
// implements c2s.Transport. Reads happen only in the connection's reader
// goroutine; writes only from the session's single flusher, so no lock
// guards the connection swap of StartTLS (it happens before any output can
// be pending from another goroutine).
type Conn struct {
	tcp          *net.TCPConn
	raw          syscall.RawConn
	tls          *tls.Conn
	c            net.Conn
	ip           string
	kind         string
	writeTimeout time.Duration
	closeOnce    sync.Once
	onClose      func()
}

func newConn(tcp *net.TCPConn, writeTimeout time.Duration) (*Conn, error) {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	ip := ""
	if a, ok := tcp.RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP.String()
	}
	return &Conn{tcp: tcp, raw: raw, c: tcp, ip: ip, kind: "tcp", writeTimeout: writeTimeout}, nil
}

// Write writes p completely within the write timeout.
func (c *Conn) Write(p []byte) error {
	if c.writeTimeout > 0 {
		_ = c.c.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	_, err := c.c.Write(p)
	return err
}

// CanStartTLS reports whether the connection is still plain TCP.
func (c *Conn) CanStartTLS() bool { return c.tls == nil }

// StartTLS performs the server side of a TLS handshake on the socket.
func (c *Conn) StartTLS(cfg *tls.Config) error {
	if c.tls != nil {
		return errors.New("listener: TLS already active")
	}
	t := tls.Server(c.tcp, cfg)
	if err := handshake(t); err != nil {
		return err
	}
	c.tls, c.c, c.kind = t, t, "starttls"
	return nil
}

func handshake(t *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return t.HandshakeContext(ctx)
}

// TLS returns the negotiated TLS state or nil.
func (c *Conn) TLS() *tls.ConnectionState {
	if c.tls == nil {
		return nil
	}
	st := c.tls.ConnectionState()
	return &st
}

// Close closes the socket (idempotent).
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.c.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// RemoteIP is the peer's address.
func (c *Conn) RemoteIP() string { return c.ip }

// Kind is "tcp", "starttls" or "tls".
func (c *Conn) Kind() string { return c.kind }

// waitReadable parks the reader in the runtime's network poller until the
// socket has bytes (or EOF/error), without holding any buffer: the idle
// connection costs its goroutine and nothing more.
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
			// Data, EOF or an error: the real Read reports it.
			return true
		}
	})
}

// Feeder is what the read loop drives: a session fed byte slices.
type Feeder interface {
	Feed(p []byte) error
	Throttle() time.Duration
	End()
}

// readLoop feeds the session until the connection ends. idle bounds how
// long a connection may stay silent before it has authenticated.
func (c *Conn) readLoop(s Feeder, idle time.Duration, authed func() bool) {
	defer s.End()
	if c.tls != nil {
		// The handshake may have read the client's first bytes (sent with
		// its Finished) into crypto/tls: the socket will not signal them.
		bp := readPool.Get().(*[]byte)
		ok := c.drainTLS(s, *bp, time.Time{})
		readPool.Put(bp)
		if !ok {
			return
		}
	}
	for {
		deadline := time.Time{}
		if idle > 0 && !authed() {
			deadline = time.Now().Add(idle)
		}
		_ = c.c.SetReadDeadline(deadline)
		if err := c.waitReadable(); err != nil {
			return
		}
		if !c.readOnce(s, deadline) {
			return
		}
		if d := s.Throttle(); d > 0 {
			time.Sleep(d)
		}
	}
}

// readOnce reads what is available and feeds it. With TLS, records may sit
// decrypted or undecrypted inside crypto/tls after a read; they are drained
// with an expired deadline (crypto/tls treats timeouts as non-fatal), since
// the socket will not signal readability for bytes already taken from it.
func (c *Conn) readOnce(s Feeder, deadline time.Time) bool {
	bp := readPool.Get().(*[]byte)
	defer readPool.Put(bp)
	buf := *bp
	n, err := c.c.Read(buf)
	if n > 0 && s.Feed(buf[:n]) != nil {
		return false
	}
	if err != nil {
		return false
	}
	if c.tls == nil {
		return true
	}
	return c.drainTLS(s, buf, deadline)
}

// drainTLS feeds whatever crypto/tls already holds, reading with an expired
// deadline so it never waits on the socket, then restores deadline.
func (c *Conn) drainTLS(s Feeder, buf []byte, deadline time.Time) bool {
	for {
		_ = c.c.SetReadDeadline(time.Unix(1, 0))
		n, err := c.c.Read(buf)
		if n > 0 && s.Feed(buf[:n]) != nil {
			return false
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = c.c.SetReadDeadline(deadline)
				return true
			}
			return false
		}
	}
}
