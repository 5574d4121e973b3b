package xmlstream

import (
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
