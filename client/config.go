package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/parley-im/parley/jid"
)

// Defaults applied to zero Config fields.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultIncomingBuffer = 128
	// DefaultPort and DefaultTLSPort are used when Addr is empty: the
	// standard client port (RFC 6120) and the usual direct-TLS port
	// (XEP-0368). There is no DNS SRV lookup yet.
	DefaultPort    = 5222
	DefaultTLSPort = 5223
)

// Config says where to connect and how to log in. Only JID and Password are
// required; the zero value of every other field is a safe default.
type Config struct {
	// Addr is the server's host:port. Empty means the JID's domain on
	// DefaultPort, or DefaultTLSPort with DirectTLS.
	Addr string
	// JID is the account, bare (alice@example.org) or full; a resourcepart
	// is used as Resource when Resource is empty.
	JID string
	// Password is the account's password.
	Password string
	// Resource is the resource to ask for at bind time; empty lets the
	// server choose one. The server may assign a different one: JID()
	// tells what was bound.
	Resource string

	// DirectTLS starts TLS at once (XEP-0368, ALPN "xmpp-client") instead
	// of negotiating STARTTLS on a plain connection.
	DirectTLS bool
	// Binary speaks Parley's compact binary encoding (docs/binary-protocol.md)
	// instead of XML: a fraction of the bytes per stanza, same stanzas.
	// It needs DirectTLS (negotiated with ALPN "parley-bin/1"); a server
	// that does not select that protocol fails the connection.
	Binary bool
	// TLSConfig is used for both STARTTLS and direct TLS. nil means the
	// system roots; ServerName defaults to the JID's domain, because RFC
	// 6120 §13.7.2.1 has the client verify the XMPP domain, whatever host
	// Addr names. Tests may set InsecureSkipVerify.
	TLSConfig *tls.Config
	// AllowPlaintext permits authenticating on a connection without TLS
	// when the server offers no STARTTLS. Off by default: a stripped
	// STARTTLS offer must not make a client send its password in the clear.
	AllowPlaintext bool
	// NoStartTLS stays in the clear even if the server offers STARTTLS,
	// when it does not require it: for load generators and tests that
	// measure a server without TLS. It requires AllowPlaintext and
	// excludes DirectTLS. A server that requires STARTTLS fails the login
	// with ErrStartTLSRequired.
	NoStartTLS bool
	// Mechanism forces a SASL mechanism (e.g. "SCRAM-SHA-1", "PLAIN");
	// empty picks the strongest offered: SCRAM-SHA-256(-PLUS) first, PLAIN
	// only over TLS.
	Mechanism string
	// SCRAMKeyCache, when set, keeps the keys SCRAM derives from Password
	// so that logging in again to a server that shows the same salt skips
	// the deliberately slow derivation (see SCRAMKeyCache). One cache may
	// serve any number of Configs and concurrent Dials; nil derives the
	// keys at every login.
	SCRAMKeyCache *SCRAMKeyCache

	// Timeout bounds Dial as a whole (connect, TLS, SASL, bind) on top of
	// the context's own deadline. Zero means DefaultTimeout.
	Timeout time.Duration
	// WriteTimeout bounds each write once connected; a server that does not
	// take our bytes within it is treated as gone. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// SendInitialPresence makes Dial send <presence/> after binding, so the
	// session receives messages addressed to the bare JID and the queued
	// offline messages at once.
	SendInitialPresence bool
	// StreamManagement enables XEP-0198 after binding, when the server
	// offers it: the client answers the server's ack requests with the
	// count of stanzas it has handed to the application, and Acked tells
	// how many of the client's stanzas the server has taken responsibility
	// for (Parley: stored durably). Resumption is not implemented yet.
	StreamManagement bool
	// NoAutoAck stops the client from answering the server's <r/>: for
	// test tools that play a client which never acknowledges.
	NoAutoAck bool
	// IncomingBuffer is the capacity of the Incoming channel. Zero means
	// DefaultIncomingBuffer.
	IncomingBuffer int
	// MaxStanzaSize bounds one stanza received from the server in bytes;
	// zero means the XML decoder's default (256 KiB). A larger stanza ends
	// the stream with a policy-violation error.
	MaxStanzaSize int
	// DialContext opens the TCP connection; nil uses a net.Dialer. Set it
	// to choose the source address, go through a proxy, or count
	// connections.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// resolved is a Config with defaults applied and the JID parsed.
type resolved struct {
	Config
	jid jid.JID // bare
}

func (cfg Config) resolve(needLocal bool) (*resolved, error) {
	if cfg.JID == "" {
		return nil, errors.New("client: Config.JID is required")
	}
	j, err := jid.Parse(cfg.JID)
	if err != nil {
		return nil, fmt.Errorf("client: Config.JID: %w", err)
	}
	if needLocal && j.Local() == "" {
		return nil, fmt.Errorf("client: Config.JID %q has no localpart", cfg.JID)
	}
	if cfg.Binary && !cfg.DirectTLS {
		return nil, errors.New("client: Config.Binary needs DirectTLS (the encoding is negotiated with ALPN)")
	}
	if cfg.NoStartTLS && !cfg.AllowPlaintext {
		return nil, errors.New("client: Config.NoStartTLS needs AllowPlaintext (it sends the credentials in the clear)")
	}
	if cfg.NoStartTLS && cfg.DirectTLS {
		return nil, errors.New("client: Config.NoStartTLS and DirectTLS exclude each other")
	}
	r := &resolved{Config: cfg, jid: j.Bare()}
	if r.Resource == "" {
		r.Resource = j.Resource()
	}
	if r.Addr == "" {
		port := DefaultPort
		if r.DirectTLS {
			port = DefaultTLSPort
		}
		r.Addr = net.JoinHostPort(j.DomainASCII(), strconv.Itoa(port))
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	if r.WriteTimeout <= 0 {
		r.WriteTimeout = DefaultWriteTimeout
	}
	if r.IncomingBuffer <= 0 {
		r.IncomingBuffer = DefaultIncomingBuffer
	}
	if r.DialContext == nil {
		var d net.Dialer
		r.DialContext = d.DialContext
	}
	return r, nil
}

// tlsConfig returns the TLS configuration for this connection; it never
// modifies the caller's.
func (r *resolved) tlsConfig(direct bool) *tls.Config {
	var c *tls.Config
	if r.TLSConfig != nil {
		c = r.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = r.jid.DomainASCII()
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if direct && len(c.NextProtos) == 0 {
		c.NextProtos = []string{"xmpp-client"}
		if r.Binary {
			c.NextProtos = []string{alpnBinary}
		}
	}
	return c
}
