package server

import (
	"github.com/parley-im/parley/internal/binary"
	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/stanza"
)

// binCodec adapts the compact binary encoding (docs/binary-protocol.md) to
// the session's Codec; the session cannot tell it from XML.
type binCodec struct{ c *binary.Codec }

func newBinCodec(maxStanza int) binCodec {
	lim := binary.DefaultLimits(binary.Server)
	lim.MaxStanzaBytes = maxStanza
	return binCodec{c: binary.NewCodec(binary.Options{Role: binary.Server, Limits: lim})}
}

func (b binCodec) Feed(p []byte) error { return b.c.Feed(p) }
func (b binCodec) Reset()              { b.c.Reset() }

func (b binCodec) Next() (c2s.Event, bool, error) {
	ev, ok, err := b.c.Next()
	if err != nil || !ok {
		return c2s.Event{}, ok, err
	}
	switch ev.Kind {
	case binary.EventOpen:
		return c2s.Event{Kind: c2s.EventOpen, Header: c2s.Header(ev.Header)}, true, nil
	case binary.EventClose:
		return c2s.Event{Kind: c2s.EventClose}, true, nil
	}
	return c2s.Event{Kind: c2s.EventElement, Element: ev.Element}, true, nil
}

func (b binCodec) AppendOpen(dst []byte, h c2s.Header) []byte {
	return b.c.AppendOpen(dst, binary.Header(h))
}

func (b binCodec) AppendElement(dst []byte, el *stanza.Element) []byte {
	return b.c.AppendElement(dst, el)
}

func (b binCodec) AppendClose(dst []byte) []byte { return b.c.AppendClose(dst) }

// Encoding names the encoding for metrics.
func (binCodec) Encoding() string { return "binary" }
