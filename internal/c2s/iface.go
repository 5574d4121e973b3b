// Package c2s is the client-to-server session: stream negotiation (STARTTLS,
// SASL, resource binding), the bound session's stanza handling and its
// outbound path. It is a state machine fed byte slices by a transport and
// knows neither the socket type nor the wire encoding: both come in through
// the interfaces below, so XML and the binary encoding, goroutine-per-
// connection and event-loop transports all drive the same code.
package c2s

import (
	"context"
	"crypto/tls"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Header is a stream header, whatever the encoding writes it as.
type Header struct {
	To, From, ID, Version, Lang string
	NS                          string // the stream's content namespace (jabber:client)
}

// EventKind tells what a decoded Event is.
type EventKind int

// Decoder events.
const (
	EventOpen    EventKind = iota + 1 // a stream header
	EventElement                      // a complete top-level element
	EventClose                        // the end of the stream
)

// Event is one unit read from the client.
type Event struct {
	Kind    EventKind
	Header  Header
	Element *stanza.Element
}

// Decoder turns bytes from the client into events. It is used only by the
// session's reader and must hold no buffer once every fed byte is consumed.
type Decoder interface {
	// Feed hands over bytes; the decoder must copy what it keeps.
	Feed(p []byte) error
	// Next returns the next complete event; ok is false when more input is
	// needed. Errors are *stanza.StreamError values.
	Next() (ev Event, ok bool, err error)
	// Reset prepares for a restarted stream (after STARTTLS and SASL).
	Reset()
}

// Encoder writes events for the client. It is called under the session's
// output lock, from any goroutine.
type Encoder interface {
	AppendOpen(dst []byte, h Header) []byte
	AppendElement(dst []byte, el *stanza.Element) []byte
	AppendClose(dst []byte) []byte
}

// Codec is one wire encoding.
type Codec interface {
	Decoder
	Encoder
}

// tlsStateReleaser is implemented by transports that can drop the TLS
// connection state once authentication no longer needs it (its channel
// binding data is what SASL reads); TLS then still reports a TLS
// connection, with fewer details. A few hundred bytes per idle session.
type tlsStateReleaser interface{ ReleaseTLSState() }

// Transport is the connection under a session.
type Transport interface {
	// Write writes p completely or fails (after the write timeout).
	Write(p []byte) error
	// StartTLS upgrades the connection in place (server side) and completes
	// the handshake. Only offered when CanStartTLS is true.
	StartTLS(cfg *tls.Config) error
	CanStartTLS() bool
	// TLS returns the negotiated TLS state, or nil on a plain connection.
	TLS() *tls.ConnectionState
	// Close closes the connection; the reader then ends the session.
	Close() error
	// RemoteIP is the peer address without port, for throttling and logs.
	RemoteIP() string
	// Kind names the transport for logs and metrics ("tcp", "tls", "ws").
	Kind() string
}

// Mech is one SASL exchange on the server side.
type Mech interface {
	// Next consumes the client's response and returns the next challenge,
	// or the additional data with success when done is true. Errors are
	// SASL failures (see Authenticator.Condition).
	Next(response []byte) (challenge []byte, done bool, err error)
	// Username is the authenticated, normalised localpart once done.
	Username() string
}

// Authenticator creates SASL exchanges and keeps login throttling.
type Authenticator interface {
	// Mechanisms lists the mechanisms to offer on a connection.
	Mechanisms(tls *tls.ConnectionState) []string
	// Start begins an exchange with the named mechanism for a client at ip.
	Start(mech, ip string, tls *tls.ConnectionState) (Mech, error)
	// Failed records a failed login (for throttling); m is nil when the
	// exchange never started.
	Failed(ip string, m Mech)
	// Condition maps an error from Start or Next to a SASL failure
	// condition (RFC 6120 §6.5) and optional text.
	Condition(err error) (condition, text string)
}

// Presence is the presence logic of RFC 6121 (the roster module).
type Presence interface {
	// Broadcast handles presence the client sent without a to: initial
	// presence (probes, broadcast, offline delivery), updates, unavailable.
	Broadcast(ctx context.Context, s router.Session, p *stanza.Element, initial bool)
	// Subscription handles outbound subscription presence (RFC 6121 §3).
	Subscription(ctx context.Context, from jid.JID, p *stanza.Element)
	// Ended is called once when an available session ends without having
	// sent unavailable presence itself.
	Ended(ctx context.Context, s router.Session, directed []jid.JID)
}

// Registration is in-band registration (XEP-0077) before authentication.
type Registration interface {
	// HandleIQ answers a jabber:iq:register iq from an unauthenticated
	// stream.
	HandleIQ(ctx context.Context, ip string, iq *stanza.Element) *stanza.Element
}

// Compile-time check: sessions are what the router delivers to.
var _ router.Session = (*Session)(nil)
