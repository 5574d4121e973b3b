package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// transport is the connection under a stream. TCP (plain, upgraded with
// STARTTLS, or direct TLS) is the only one for now; WebSocket will be a
// second implementation paired with the framed XML codec.
type transport interface {
	// read returns the next bytes from the server, stored in buf when they
	// fit. A message-oriented transport (WebSocket) must return exactly one
	// message per call, because the framed decoder needs the boundaries.
	read(buf []byte) ([]byte, error)
	// write writes p completely or fails. After a failure the stream is
	// unusable: part of an element may have gone out.
	write(p []byte) error
	// setDeadline bounds reads and writes; the zero time removes the bound.
	setDeadline(t time.Time) error
	setWriteDeadline(t time.Time) error
	// tlsState returns the negotiated TLS state, or nil in the clear.
	tlsState() *tls.ConnectionState
	close() error
}

// tlsUpgrader is implemented by transports that can switch to TLS in place
// (STARTTLS, RFC 6120 §5).
type tlsUpgrader interface {
	startTLS(ctx context.Context, cfg *tls.Config) error
}

// tcpTransport is a TCP connection, possibly carrying TLS.
type tcpTransport struct {
	conn net.Conn  // what reads and writes go through (the *tls.Conn once upgraded)
	tls  *tls.Conn // nil in the clear
}

func newTCPTransport(c net.Conn) *tcpTransport {
	t := &tcpTransport{conn: c}
	if tc, ok := c.(*tls.Conn); ok {
		t.tls = tc
	}
	return t
}

func (t *tcpTransport) read(buf []byte) ([]byte, error) {
	n, err := t.conn.Read(buf)
	if n > 0 {
		// Bytes that came with an error are still the server's: hand them
		// over, the error comes back on the next read.
		return buf[:n], nil
	}
	return nil, err
}

func (t *tcpTransport) write(p []byte) error {
	_, err := t.conn.Write(p)
	return err
}

func (t *tcpTransport) setDeadline(d time.Time) error      { return t.conn.SetDeadline(d) }
func (t *tcpTransport) setWriteDeadline(d time.Time) error { return t.conn.SetWriteDeadline(d) }

func (t *tcpTransport) tlsState() *tls.ConnectionState {
	if t.tls == nil {
		return nil
	}
	cs := t.tls.ConnectionState()
	return &cs
}

func (t *tcpTransport) close() error { return t.conn.Close() }

func (t *tcpTransport) startTLS(ctx context.Context, cfg *tls.Config) error {
	if t.tls != nil {
		return errors.New("client: TLS already active")
	}
	tc := tls.Client(t.conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	t.tls, t.conn = tc, tc
	return nil
}
