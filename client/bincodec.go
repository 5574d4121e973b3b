package client

import (
	"github.com/parley-im/parley/internal/binary"
	"github.com/parley-im/parley/stanza"
)

// alpnBinary is the ALPN protocol of the binary encoding on direct TLS.
const alpnBinary = "parley-bin/1"

// newCodec picks the encoding the configuration asks for.
func newCodec(r *resolved) codec {
	if r.Binary {
		lim := binary.DefaultLimits(binary.Client)
		if r.MaxStanzaSize > 0 {
			lim.MaxStanzaBytes = r.MaxStanzaSize
		}
		return &binCodec{c: binary.NewCodec(binary.Options{Role: binary.Client, Limits: lim})}
	}
	return newXMLCodec(r.MaxStanzaSize)
}

// binCodec is the compact binary encoding on a byte-stream transport. Its
// encoder keeps per-connection state (the JID alias table); the client's
// write lock serialises it.
type binCodec struct{ c *binary.Codec }

func (b *binCodec) feed(p []byte) error { return b.c.Feed(p) }
func (b *binCodec) reset()              { b.c.Reset() }

func (b *binCodec) next() (event, bool, error) {
	ev, ok, err := b.c.Next()
	if err != nil || !ok {
		return event{}, false, err
	}
	switch ev.Kind {
	case binary.EventOpen:
		h := ev.Header
		return event{kind: eventOpen, header: header{To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang}}, true, nil
	case binary.EventClose:
		return event{kind: eventClose}, true, nil
	}
	return event{kind: eventElement, element: ev.Element}, true, nil
}

func (b *binCodec) appendOpen(dst []byte, h header) []byte {
	return b.c.AppendOpen(dst, binary.Header{To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang, NS: stanza.NSClient})
}

func (b *binCodec) appendElement(dst []byte, el *stanza.Element) []byte {
	return b.c.AppendElement(dst, el)
}

func (b *binCodec) appendClose(dst []byte) []byte { return b.c.AppendClose(dst) }
