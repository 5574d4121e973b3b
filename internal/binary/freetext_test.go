package binary

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// Bodies an attacker might send to probe other fields: the stanza's own
// JIDs and id, dictionary words, namespaces, typed-looking strings, and
// text of every length class.
var probeBodies = []string{
	"a",
	"hello, how are you?",
	aliceFull,
	"bob@example.com",
	msgID,
	strings.ToUpper(msgID),
	"chat",
	"urn:xmpp:receipts",
	"http://conversations.im",
	"1234567890",
	"deadbeef",
	archiveID,
	"q07IKJEyjvHSyhy//CH0CxmKi8w=",
	"2024-03-09T16:44:02Z",
	"<message to='bob@example.com'/>",
	strings.Repeat("bob@example.com ", 20),
	strings.Repeat("x", 127),
	strings.Repeat("x", 128),
	strings.Repeat("é", 5000),
}

func chatWithBody(t testing.TB, body string) *stanza.Element {
	el := parseOne(t, chatXML)
	el.Child("body", nsClient).Children[0].Text = body
	return el
}

// TestBodyIndependence is the compression-oracle test (docs §10.1): the
// body changes its own bytes (its length and its text) and nothing else,
// in the stanza that carries it and in every stanza after it.
func TestBodyIndependence(t *testing.T) {
	// Locate the body field with a reference body.
	const ref = "REFERENCE-BODY"
	refPair := newPair(t, Options{}, Options{})
	refPair.s2c(t, chatWithBody(t, "warm-up")) // the JIDs are aliased from here on
	refFrame, _ := refPair.s2c(t, chatWithBody(t, ref))
	payload := framePayload(refFrame)
	field := append(appendUvarint(nil, uint64(len(ref))), ref...)
	at := bytes.Index(payload, field)
	if at < 0 {
		t.Fatal("reference body not found as one plain field")
	}
	prefix, suffix := payload[:at], payload[at+len(field):]
	refNext, _ := refPair.s2c(t, parseOne(t, receiptXML))

	for _, body := range probeBodies {
		p := newPair(t, Options{}, Options{})
		p.s2c(t, chatWithBody(t, "warm-up"))
		b, got := p.s2c(t, chatWithBody(t, body))
		if got.ChildText("body", "") != body {
			t.Fatalf("body %q came back as %q", body, got.ChildText("body", ""))
		}
		// The frame's length prefix grows with the stanza: it is framing,
		// not a field, and tells only the total size.
		payload := framePayload(b)
		want := cat(prefix, appendUvarint(nil, uint64(len(body))), []byte(body), suffix)
		if !bytes.Equal(payload, want) {
			t.Errorf("body %.30q: payload\n %x\nwant\n %x", body, payload, want)
		}
		// The next stanza is byte for byte what it is after any other body.
		next, _ := p.s2c(t, parseOne(t, receiptXML))
		if !bytes.Equal(next, refNext) {
			t.Errorf("body %.30q changed the next stanza: %x vs %x", body, next, refNext)
		}
		// Nothing from the body entered the alias table.
		for _, e := range p.srv.enc.aliases.e {
			if e.jid != aliceFull && e.jid != "bob@example.com" && e.jid != bobFull {
				t.Errorf("alias table holds %q", e.jid)
			}
		}
	}
}

// TestTextNeverTyped checks that human text is written as plain strings
// whatever it looks like: text content outside the base64 fields, and
// attributes of the text class (roster names, nicks).
func TestTextNeverTyped(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	for _, v := range []string{"chat", "1234", msgID, "deadbeef", archiveID, "AAAA", "2024-03-09T16:44:02Z", "bob@example.com"} {
		item := stanza.New("item", nsRoster).SetAttr("jid", "bob@example.com").SetAttr("name", v)
		b, _ := p.s2c(t, stanza.New("query", nsRoster).Append(item))
		if !bytes.Contains(b, cat([]byte{byte(anameToken + std.attrIdx["name"]), vRaw}, str(v))) {
			t.Errorf("roster name %q not written as a plain string: %x", v, b)
		}
		for _, name := range []string{"body", "status", "subject"} {
			el := stanza.New(name, nsClient).AppendText(v)
			b, _ := p.s2c(t, el)
			if !bytes.HasSuffix(b, str(v)) || b[len(b)-len(str(v))-1] != kindText {
				t.Errorf("<%s>%s</%s> not written as plain text: %x", name, v, name, b)
			}
		}
	}
}

func framePayload(b []byte) []byte {
	n, h := readUvarint(b)
	if h <= 0 || int(n) != len(b)-h {
		panic("not one frame")
	}
	return b[h:]
}
