package client

import (
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

// The client is written against two small internal interfaces, codec and
// transport (transport.go), so that the binary encoding and WebSocket can be
// added without touching negotiation or the stanza paths: everything above
// them works on stanza.Element trees and byte slices.

// header is a stream header, whatever the encoding writes it as.
type header struct {
	To, From, ID, Version, Lang string
}

// eventKind tells what a decoded event is.
type eventKind uint8

const (
	eventOpen    eventKind = iota + 1 // the server's stream header
	eventElement                      // a complete top-level element
	eventClose                        // the end of the server's stream
)

// event is one unit read from the server.
type event struct {
	kind    eventKind
	header  header
	element *stanza.Element
}

// codec is one wire encoding. The decoding half is used only by whoever
// reads (negotiation, then the reader goroutine); the encoding half must be
// stateless so that Send can call it from any goroutine under the write lock.
type codec interface {
	// feed hands over bytes read from the transport; the codec copies what
	// it keeps, so the caller may reuse p at once.
	feed(p []byte) error
	// next returns the next complete event; ok is false when more input is
	// needed. Errors are *stanza.StreamError values (the server's stream
	// is malformed): the connection cannot be used any more.
	next() (ev event, ok bool, err error)
	// reset drops all decoder state, buffered input included, and expects a
	// new stream header: after STARTTLS, bytes received in the clear must
	// never be read as if they had been protected.
	reset()

	appendOpen(dst []byte, h header) []byte
	appendElement(dst []byte, el *stanza.Element) []byte
	appendClose(dst []byte) []byte
}

// xmlCodec is XMPP's XML stream (RFC 6120 §4) on a byte-stream transport.
type xmlCodec struct {
	dec *xmlstream.Decoder
}

func newXMLCodec(maxStanza int) *xmlCodec {
	lim := xmlstream.DefaultLimits()
	if maxStanza > 0 {
		lim.MaxStanzaBytes = maxStanza
	}
	return &xmlCodec{dec: xmlstream.NewDecoder(lim)}
}

func (c *xmlCodec) feed(p []byte) error { return c.dec.Feed(p) }
func (c *xmlCodec) reset()              { c.dec.Reset() }

func (c *xmlCodec) next() (event, bool, error) {
	tok, ok, err := c.dec.Next()
	if err != nil || !ok {
		return event{}, false, err
	}
	switch tok.Kind {
	case xmlstream.KindStreamOpen:
		h := tok.Header
		return event{kind: eventOpen, header: header{To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang}}, true, nil
	case xmlstream.KindStreamClose:
		return event{kind: eventClose}, true, nil
	}
	return event{kind: eventElement, element: tok.Element}, true, nil
}

func (c *xmlCodec) appendOpen(dst []byte, h header) []byte {
	return xmlstream.AppendStreamOpen(dst, xmlstream.Header{
		NS: stanza.NSClient, To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang,
	})
}

func (c *xmlCodec) appendElement(dst []byte, el *stanza.Element) []byte {
	return xmlstream.AppendElement(dst, el, stanza.NSClient)
}

func (c *xmlCodec) appendClose(dst []byte) []byte { return xmlstream.AppendStreamClose(dst) }
