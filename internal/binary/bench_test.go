package binary

import (
	"testing"

	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

var benchStanzas = []struct {
	name string
	xml  string
}{
	{"Chat", chatXML},
	{"ChatStamped", chatStampedXML}, // with a server archive id (B32H)
	{"Receipt", receiptXML},
	{"Presence", presenceXML},
}

// BenchmarkEncode measures the server writing a stanza on a connection in
// steady state (its JIDs aliased), the common case.
func BenchmarkEncode(b *testing.B) {
	for _, s := range benchStanzas {
		b.Run(s.name, func(b *testing.B) {
			p := newPair(b, Options{}, Options{})
			el := parseOne(b, s.xml)
			buf := p.srv.AppendElement(nil, el)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = p.srv.AppendElement(buf[:0], el)
			}
		})
	}
}

// BenchmarkDecode measures a client reading such a frame: Feed and Next,
// tree included.
func BenchmarkDecode(b *testing.B) {
	for _, s := range benchStanzas {
		b.Run(s.name, func(b *testing.B) {
			p := newPair(b, Options{}, Options{})
			el := parseOne(b, s.xml)
			p.s2c(b, el) // define the aliases
			frame := p.srv.AppendElement(nil, el)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.cli.Feed(frame); err != nil {
					b.Fatal(err)
				}
				ev, ok, err := p.cli.Next()
				if !ok || err != nil || ev.Element == nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// The XML codec on the same stanzas, for comparison.
func BenchmarkXMLEncode(b *testing.B) {
	for _, s := range benchStanzas {
		b.Run(s.name, func(b *testing.B) {
			el := parseOne(b, s.xml)
			buf := xmlstream.AppendElement(nil, el, stanza.NSClient)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = xmlstream.AppendElement(buf[:0], el, stanza.NSClient)
			}
		})
	}
}

func BenchmarkXMLDecode(b *testing.B) {
	for _, s := range benchStanzas {
		b.Run(s.name, func(b *testing.B) {
			d := xmlstream.NewDecoder(xmlstream.DefaultLimits())
			if err := d.Feed([]byte(xmlStart)); err != nil {
				b.Fatal(err)
			}
			d.Next()
			msg := []byte(toXML(parseOne(b, s.xml)))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Feed(msg); err != nil {
					b.Fatal(err)
				}
				if _, ok, err := d.Next(); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
