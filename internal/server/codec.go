package server

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

// xmlCodec adapts the XML stream reader/writer to the session's Codec.
type xmlCodec struct {
	dec *xmlstream.Decoder
}

func newXMLCodec(maxStanza int) *xmlCodec {
	lim := xmlstream.DefaultLimits()
	lim.MaxStanzaBytes = maxStanza
	return &xmlCodec{dec: xmlstream.NewDecoder(lim)}
}

func (c *xmlCodec) Feed(p []byte) error { return c.dec.Feed(p) }
func (c *xmlCodec) Reset()              { c.dec.Reset() }

func (c *xmlCodec) Next() (c2s.Event, bool, error) {
	tok, ok, err := c.dec.Next()
	if err != nil || !ok {
		return c2s.Event{}, ok, err
	}
	switch tok.Kind {
	case xmlstream.KindStreamOpen:
		h := tok.Header
		return c2s.Event{Kind: c2s.EventOpen, Header: c2s.Header{
			To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang, NS: h.NS,
		}}, true, nil
	case xmlstream.KindStreamClose:
		return c2s.Event{Kind: c2s.EventClose}, true, nil
	default:
		return c2s.Event{Kind: c2s.EventElement, Element: tok.Element}, true, nil
	}
}

func (c *xmlCodec) AppendOpen(dst []byte, h c2s.Header) []byte {
	return xmlstream.AppendStreamOpen(dst, xmlstream.Header{
		NS: h.NS, To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang,
	})
}

func (c *xmlCodec) AppendElement(dst []byte, el *stanza.Element) []byte {
	return xmlstream.AppendElement(dst, el, stanza.NSClient)
}

func (c *xmlCodec) AppendClose(dst []byte) []byte { return xmlstream.AppendStreamClose(dst) }

// storeCodec serialises stanzas for the store as self-contained XML (every
// namespace declared), independent of any client's encoding.
type storeCodec struct{ lim xmlstream.Limits }

func newStoreCodec(maxStanza int) storeCodec {
	lim := xmlstream.DefaultLimits()
	lim.MaxStanzaBytes = maxStanza + 4096 // room for what the server stamps
	return storeCodec{lim: lim}
}

func (storeCodec) Marshal(el *stanza.Element) []byte { return xmlstream.AppendElement(nil, el, "") }

var storeHeader = []byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)

func (c storeCodec) Unmarshal(b []byte) (*stanza.Element, error) {
	d := xmlstream.NewDecoder(c.lim)
	if err := d.Feed(storeHeader); err != nil {
		return nil, err
	}
	if err := d.Feed(b); err != nil {
		return nil, fmt.Errorf("decode stored stanza: %w", err)
	}
	for {
		tok, ok, err := d.Next()
		if err != nil {
			return nil, fmt.Errorf("decode stored stanza: %w", err)
		}
		if !ok {
			return nil, errors.New("decode stored stanza: truncated")
		}
		if tok.Kind == xmlstream.KindElement {
			return tok.Element, nil
		}
	}
}
