// Package xmlcodec is XMPP's XML stream (RFC 6120 §4) as a c2s.Codec: the
// one adapter between internal/xmlstream's tokens and the session's events,
// used by the TCP listeners, the WebSocket transport and tests.
package xmlcodec

import (
	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

// Event converts a decoded token to the session's event.
func Event(tok xmlstream.Token) c2s.Event {
	switch tok.Kind {
	case xmlstream.KindStreamOpen:
		h := tok.Header
		return c2s.Event{Kind: c2s.EventOpen, Header: c2s.Header{
			To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang, NS: h.NS,
		}}
	case xmlstream.KindStreamClose:
		return c2s.Event{Kind: c2s.EventClose}
	}
	return c2s.Event{Kind: c2s.EventElement, Element: tok.Element}
}

// Header converts the session's stream header for the XML writer.
func Header(h c2s.Header) xmlstream.Header {
	return xmlstream.Header{NS: h.NS, To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang}
}

// Stream is the XML stream codec of a byte-stream connection.
type Stream struct {
	dec *xmlstream.Decoder
}

var _ c2s.Codec = (*Stream)(nil)

// New returns a Stream accepting stanzas of up to maxStanza bytes (0: the
// reader's default).
func New(maxStanza int) *Stream {
	lim := xmlstream.DefaultLimits()
	if maxStanza > 0 {
		lim.MaxStanzaBytes = maxStanza
	}
	return &Stream{dec: xmlstream.NewDecoder(lim)}
}

// Feed implements c2s.Decoder.
func (c *Stream) Feed(p []byte) error { return c.dec.Feed(p) }

// Reset implements c2s.Decoder.
func (c *Stream) Reset() { c.dec.Reset() }

// Next implements c2s.Decoder.
func (c *Stream) Next() (c2s.Event, bool, error) {
	tok, ok, err := c.dec.Next()
	if err != nil || !ok {
		return c2s.Event{}, ok, err
	}
	return Event(tok), true, nil
}

// AppendOpen implements c2s.Encoder.
func (c *Stream) AppendOpen(dst []byte, h c2s.Header) []byte {
	return xmlstream.AppendStreamOpen(dst, Header(h))
}

// AppendElement implements c2s.Encoder.
func (c *Stream) AppendElement(dst []byte, el *stanza.Element) []byte {
	return xmlstream.AppendElement(dst, el, stanza.NSClient)
}

// AppendClose implements c2s.Encoder.
func (c *Stream) AppendClose(dst []byte) []byte { return xmlstream.AppendStreamClose(dst) }
