package client

import (
	"errors"
	"strings"

	"github.com/parley-im/parley/stanza"
)

var (
	// ErrClosed is returned by Send, IQ and Recv, and by Err, once Close
	// has been called: the stream was ended by this side.
	ErrClosed = errors.New("client: closed")
	// ErrServerClosed means the server ended its stream (</stream:stream>)
	// without a stream error, e.g. on an orderly shutdown it did not
	// announce.
	ErrServerClosed = errors.New("client: server closed the stream")
	// ErrNoTLS is returned by Dial when the server does not offer STARTTLS
	// and Config.AllowPlaintext is false: sending credentials in the clear
	// is something a caller must opt into, never a silent fallback.
	ErrNoTLS = errors.New("client: server offers no STARTTLS; refusing to authenticate in the clear (set Config.AllowPlaintext to allow)")
	// ErrStartTLSRequired is returned by Dial and Register with
	// Config.NoStartTLS when the server requires STARTTLS before
	// authentication: the connection cannot stay in the clear.
	ErrStartTLSRequired = errors.New("client: server requires STARTTLS; Config.NoStartTLS cannot stay in the clear")
)

// AuthError is a SASL failure reported by the server (RFC 6120 §6.5).
// Condition is the defined condition ("not-authorized" for a wrong password
// or unknown account, "temporary-auth-failure" when the server throttles
// logins, ...), so callers can tell "ask for the password again" from
// "retry later" without parsing text.
type AuthError struct {
	Mechanism string // the SASL mechanism that was tried
	Condition string // RFC 6120 §6.5 condition, e.g. "not-authorized"
	Text      string // optional human-readable text from the server
}

// Error names the mechanism and the condition, so that a log line says
// why the login failed.
func (e *AuthError) Error() string {
	var b strings.Builder
	b.WriteString("client: authentication failed (")
	b.WriteString(e.Mechanism)
	b.WriteString("): ")
	b.WriteString(e.Condition)
	if e.Text != "" {
		b.WriteString(": ")
		b.WriteString(e.Text)
	}
	return b.String()
}

// parseStreamError reads a <stream:error/> element. A missing or unknown
// condition becomes undefined-condition so the caller always has one.
func parseStreamError(el *stanza.Element) *stanza.StreamError {
	se := &stanza.StreamError{}
	for _, c := range el.Children {
		if c.Name == "" || c.NS != stanza.NSStreams {
			continue
		}
		if c.Name == "text" {
			se.Text = c.TextContent()
		} else if se.Condition == "" {
			se.Condition = c.Name
		}
	}
	if se.Condition == "" {
		se.Condition = stanza.StreamUndefinedCondition
	}
	return se
}

func isStreamError(el *stanza.Element) bool {
	return el.Name == "error" && el.NS == stanza.NSStream
}

// parseSASLFailure reads <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>.
func parseSASLFailure(mech string, el *stanza.Element) *AuthError {
	e := &AuthError{Mechanism: mech}
	for _, c := range el.Children {
		if c.Name == "" || c.NS != stanza.NSSASL {
			continue
		}
		if c.Name == "text" {
			e.Text = c.TextContent()
		} else if e.Condition == "" {
			e.Condition = c.Name
		}
	}
	if e.Condition == "" {
		// RFC 6120 §6.5 requires a condition; a server that sends none
		// still failed us, and not-authorized is the generic one.
		e.Condition = "not-authorized"
	}
	return e
}

// stanzaError returns the error an error-type reply carries, never nil.
func stanzaError(reply *stanza.Element) *stanza.Error {
	if e := stanza.ParseError(reply); e != nil && e.Condition != "" {
		return e
	}
	return &stanza.Error{Type: stanza.ErrTypeCancel, Condition: "undefined-condition"}
}
