package stanza

import (
	"errors"
	"fmt"
)

// StreamError is an RFC 6120 §4.9 stream error. It is a Go error and
// serialises to the <stream:error/> element a codec writes before closing.
type StreamError struct {
	Condition string // defined condition, e.g. "not-well-formed"
	Text      string // optional human-readable text
}

// Stream error conditions (RFC 6120 §4.9.3).
const (
	StreamBadFormat             = "bad-format"
	StreamBadNamespacePrefix    = "bad-namespace-prefix"
	StreamConflict              = "conflict"
	StreamConnectionTimeout     = "connection-timeout"
	StreamHostUnknown           = "host-unknown"
	StreamImproperAddressing    = "improper-addressing"
	StreamInternalServerError   = "internal-server-error"
	StreamInvalidFrom           = "invalid-from"
	StreamInvalidNamespace      = "invalid-namespace"
	StreamInvalidXML            = "invalid-xml"
	StreamNotAuthorized         = "not-authorized"
	StreamNotWellFormed         = "not-well-formed"
	StreamPolicyViolation       = "policy-violation"
	StreamResourceConstraint    = "resource-constraint"
	StreamRestrictedXML         = "restricted-xml"
	StreamSystemShutdown        = "system-shutdown"
	StreamUndefinedCondition    = "undefined-condition"
	StreamUnsupportedEncoding   = "unsupported-encoding"
	StreamUnsupportedFeature    = "unsupported-feature"
	StreamUnsupportedStanzaType = "unsupported-stanza-type"
	StreamUnsupportedVersion    = "unsupported-version"
	StreamSeeOtherHost          = "see-other-host"
	StreamReset                 = "reset"
)

// NewStreamError returns a stream error with the condition and text.
func NewStreamError(condition, text string) *StreamError {
	return &StreamError{Condition: condition, Text: text}
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return "stream error: " + e.Condition + ": " + e.Text
	}
	return "stream error: " + e.Condition
}

// Element returns the <error xmlns='http://etherx.jabber.org/streams'/> tree.
func (e *StreamError) Element() *Element {
	el := New("error", NSStream).Append(New(e.Condition, NSStreams))
	if e.Text != "" {
		el.Append(New("text", NSStreams).SetAttr("xml:lang", "en").AppendText(e.Text))
	}
	return el
}

// AsStreamError returns err as a *StreamError, wrapping unknown errors as
// internal-server-error so callers always have something to send.
func AsStreamError(err error) *StreamError {
	var se *StreamError
	if errors.As(err, &se) {
		return se
	}
	return &StreamError{Condition: StreamInternalServerError}
}

// Error is an RFC 6120 §8.3 stanza error.
type Error struct {
	Type      string // auth, cancel, continue, modify, wait
	Condition string // defined condition, e.g. "item-not-found"
	Text      string
	// Extra is an application-specific condition element, if any.
	Extra *Element
}

// Stanza error types.
const (
	ErrTypeAuth     = "auth"
	ErrTypeCancel   = "cancel"
	ErrTypeContinue = "continue"
	ErrTypeModify   = "modify"
	ErrTypeWait     = "wait"
)

// Stanza error conditions (RFC 6120 §8.3.3) with their usual types.
var (
	ErrBadRequest            = &Error{Type: ErrTypeModify, Condition: "bad-request"}
	ErrConflict              = &Error{Type: ErrTypeCancel, Condition: "conflict"}
	ErrFeatureNotImplemented = &Error{Type: ErrTypeCancel, Condition: "feature-not-implemented"}
	ErrForbidden             = &Error{Type: ErrTypeAuth, Condition: "forbidden"}
	ErrGone                  = &Error{Type: ErrTypeCancel, Condition: "gone"}
	ErrInternalServerError   = &Error{Type: ErrTypeWait, Condition: "internal-server-error"}
	ErrItemNotFound          = &Error{Type: ErrTypeCancel, Condition: "item-not-found"}
	ErrJIDMalformed          = &Error{Type: ErrTypeModify, Condition: "jid-malformed"}
	ErrNotAcceptable         = &Error{Type: ErrTypeModify, Condition: "not-acceptable"}
	ErrNotAllowed            = &Error{Type: ErrTypeCancel, Condition: "not-allowed"}
	ErrNotAuthorized         = &Error{Type: ErrTypeAuth, Condition: "not-authorized"}
	ErrPolicyViolation       = &Error{Type: ErrTypeModify, Condition: "policy-violation"}
	ErrRecipientUnavailable  = &Error{Type: ErrTypeWait, Condition: "recipient-unavailable"}
	ErrRegistrationRequired  = &Error{Type: ErrTypeAuth, Condition: "registration-required"}
	ErrRemoteServerNotFound  = &Error{Type: ErrTypeCancel, Condition: "remote-server-not-found"}
	ErrResourceConstraint    = &Error{Type: ErrTypeWait, Condition: "resource-constraint"}
	ErrServiceUnavailable    = &Error{Type: ErrTypeCancel, Condition: "service-unavailable"}
	ErrUndefinedCondition    = &Error{Type: ErrTypeCancel, Condition: "undefined-condition"}
	ErrUnexpectedRequest     = &Error{Type: ErrTypeWait, Condition: "unexpected-request"}
)

func (e *Error) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("stanza error: %s/%s: %s", e.Type, e.Condition, e.Text)
	}
	return fmt.Sprintf("stanza error: %s/%s", e.Type, e.Condition)
}

// WithText returns a copy of e carrying a human-readable text.
func (e *Error) WithText(text string) *Error {
	c := *e
	c.Text = text
	return &c
}

// Element returns the <error type='…'/> child for a stanza in namespace ns.
func (e *Error) Element(ns string) *Element {
	el := New("error", ns).SetAttr("type", e.Type).Append(New(e.Condition, NSStanzas))
	if e.Text != "" {
		el.Append(New("text", NSStanzas).SetAttr("xml:lang", "en").AppendText(e.Text))
	}
	if e.Extra != nil {
		el.Append(e.Extra)
	}
	return el
}

// AsError returns err as a stanza *Error; unknown errors become
// internal-server-error so a client always gets an answer.
func AsError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return ErrInternalServerError
}

// ErrorReply builds the error reply to stanza s (RFC 6120 §8.3.1): to and
// from swapped, type="error", the original payload kept, the error appended.
// It returns nil for a stanza that is itself an error, which must never be
// answered with another error.
func ErrorReply(s *Element, err *Error) *Element {
	if s.Type() == "error" {
		return nil
	}
	r := &Element{Name: s.Name, NS: s.NS}
	if id := s.ID(); id != "" {
		r.SetAttr("id", id)
	}
	r.SetAttr("type", "error")
	if from := s.From(); from != "" {
		r.SetAttr("to", from)
	}
	if to := s.To(); to != "" {
		r.SetAttr("from", to)
	}
	if s.Name != "iq" || s.Type() == "set" || s.Type() == "get" {
		r.Children = append(r.Children, s.Children...)
	}
	r.Append(err.Element(s.NS))
	return r
}

// ParseError reads the stanza error carried by an error stanza, or nil.
func ParseError(s *Element) *Error {
	el := s.Child("error", "")
	if el == nil {
		return nil
	}
	e := &Error{Type: el.Attr("type")}
	for _, c := range el.Children {
		if c.NS == NSStanzas && c.Name != "" && c.Name != "text" {
			e.Condition = c.Name
		} else if c.Name == "text" && c.NS == NSStanzas {
			e.Text = c.TextContent()
		}
	}
	return e
}

// Result builds an empty type="result" iq answering iq.
func Result(iq *Element) *Element {
	r := New("iq", iq.NS).SetAttr("id", iq.ID()).SetAttr("type", "result")
	if from := iq.From(); from != "" {
		r.SetAttr("to", from)
	}
	if to := iq.To(); to != "" {
		r.SetAttr("from", to)
	}
	return r
}
