package xmlstream

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// A typical one-to-one chat message as clients send it (~370 bytes).
const benchMessage = "<message from='juliet@example.com/balcony' id='ktx72v49' to='romeo@example.net' type='chat' xml:lang='en'>" +
	"<body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike.</body>" +
	"<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>" +
	"<origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/></message>"

func benchDecode(b *testing.B, chunk int) {
	d := newStream()
	d.Feed([]byte(hdr))
	if _, ok, err := d.Next(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	msg := []byte(benchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var el *stanza.Element
		for p := msg; len(p) > 0; {
			n := min(chunk, len(p))
			d.Feed(p[:n])
			p = p[n:]
			for {
				tok, ok, err := d.Next()
				if err != nil {
					b.Fatal(err)
				}
				if !ok {
					break
				}
				el = tok.Element
			}
		}
		if el == nil {
			b.Fatal("no element")
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B)          { benchDecode(b, len(benchMessage)) }
func BenchmarkDecodeMessageChunked64(b *testing.B) { benchDecode(b, 64) }

func BenchmarkEncodeMessage(b *testing.B) {
	e := chatMessage()
	buf := AppendElement(nil, e, stanza.NSClient)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendElement(buf[:0], e, stanza.NSClient)
	}
}

// benchFeedEach feeds one whole stanza per Feed and drains it, so the
// decoder goes idle between stanzas, as on a typical session where each read
// holds one small stanza: it measures the cost of going idle and waking up.
func benchFeedEach(b *testing.B, in string) { benchFeed(b, in, 1) }

// benchFeed feeds in, which holds want top-level elements, per Feed and
// drains it.
func benchFeed(b *testing.B, in string, want int) {
	d := newStream()
	d.Feed([]byte(hdr))
	if _, ok, err := d.Next(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	msg := []byte(in)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(msg)
		n := 0
		for {
			_, ok, err := d.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			n++
		}
		if n != want {
			b.Fatal("got", n, "tokens")
		}
	}
}

// An XEP-0199 ping, about as small as a real stanza gets.
func BenchmarkDecodeSmallStanza(b *testing.B) {
	benchFeedEach(b, "<iq type='get' id='c2s1'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// An XEP-0198 ack request: a self-closing top-level element.
func BenchmarkDecodeAckRequest(b *testing.B) {
	benchFeedEach(b, "<r xmlns='urn:xmpp:sm:3'/>")
}

// Many stanzas in one read (a busy or catching-up client): the decoder
// stays busy across them.
func BenchmarkDecodeBatch16(b *testing.B) {
	benchFeed(b, strings.Repeat(benchMessage, 16), 16)
}

// Whitespace keepalives: no token, but the decoder wakes and goes idle.
func BenchmarkDecodeKeepalive(b *testing.B) {
	d := newStream()
	d.Feed([]byte(hdr))
	if _, ok, err := d.Next(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	sp := []byte(" ")
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(sp)
		if _, ok, err := d.Next(); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
