package binary

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

const (
	domain   = "example.com"
	xmlStart = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"
)

// parseXML decodes the top-level elements of s (written as children of a
// jabber:client stream) with the XML codec.
func parseXML(t testing.TB, s string) []*stanza.Element {
	t.Helper()
	d := xmlstream.NewDecoder(xmlstream.DefaultLimits())
	if err := d.Feed([]byte(xmlStart + s)); err != nil {
		t.Fatalf("xml: %v", err)
	}
	var out []*stanza.Element
	for {
		tok, ok, err := d.Next()
		if err != nil {
			t.Fatalf("xml: %v\n%s", err, s)
		}
		if !ok {
			return out
		}
		if tok.Kind == xmlstream.KindElement {
			out = append(out, tok.Element)
		}
	}
}

func parseOne(t testing.TB, s string) *stanza.Element {
	t.Helper()
	els := parseXML(t, s)
	if len(els) != 1 {
		t.Fatalf("want one element, got %d in %s", len(els), s)
	}
	return els[0]
}

// toXML writes el as the XML codec writes it to a client.
func toXML(el *stanza.Element) string {
	return string(xmlstream.AppendElement(nil, el, stanza.NSClient))
}

// dump renders a tree with every namespace, attribute and text node, so
// that comparisons see everything.
func dump(e *stanza.Element) string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	dumpTo(&b, e)
	return b.String()
}

func dumpTo(b *strings.Builder, e *stanza.Element) {
	if e.Name == "" {
		fmt.Fprintf(b, "%q", e.Text)
		return
	}
	fmt.Fprintf(b, "{%s}%s", e.NS, e.Name)
	if len(e.Attrs) > 0 {
		b.WriteByte('[')
		for i, a := range e.Attrs {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(b, "%s=%q", a.Name, a.Value)
		}
		b.WriteByte(']')
	}
	if len(e.Children) > 0 {
		b.WriteByte('(')
		for i, c := range e.Children {
			if i > 0 {
				b.WriteByte(' ')
			}
			dumpTo(b, c)
		}
		b.WriteByte(')')
	}
}

func condition(err error) string {
	if err == nil {
		return ""
	}
	var se *stanza.StreamError
	if !errors.As(err, &se) {
		return "non-stream-error: " + err.Error()
	}
	return se.Condition
}

// pair is a server codec and a client codec whose opens have been
// exchanged, as on a fresh connection.
type pair struct {
	srv, cli *Codec
}

var (
	clientHeader = Header{To: domain, Version: "1.0", Lang: "en", NS: stanza.NSClient}
	serverHeader = Header{From: domain, ID: "c2s-4DJ2kq0P7xWz", Version: "1.0", Lang: "en", NS: stanza.NSClient}
)

func newPair(t testing.TB, srv, cli Options) *pair {
	t.Helper()
	srv.Role, cli.Role = Server, Client
	p := &pair{srv: NewCodec(srv), cli: NewCodec(cli)}
	p.handshake(t)
	return p
}

func (p *pair) handshake(t testing.TB) {
	t.Helper()
	ev := mustEvent(t, p.srv, p.cli.AppendOpen(nil, clientHeader))
	if ev.Kind != EventOpen || ev.Header != clientHeader {
		t.Fatalf("server read %+v, want open %+v", ev, clientHeader)
	}
	ev = mustEvent(t, p.cli, p.srv.AppendOpen(nil, serverHeader))
	if ev.Kind != EventOpen || ev.Header != serverHeader {
		t.Fatalf("client read %+v, want open %+v", ev, serverHeader)
	}
}

// mustEvent feeds b to c and returns the one event it makes.
func mustEvent(t testing.TB, c *Codec, b []byte) Event {
	t.Helper()
	if err := c.Feed(b); err != nil {
		t.Fatalf("feed %x: %v", b, err)
	}
	ev, ok, err := c.Next()
	if err != nil || !ok {
		t.Fatalf("next after %x: ok=%v err=%v", b, ok, err)
	}
	if _, more, err := c.Next(); more || err != nil {
		t.Fatalf("more than one event in %x: %v", b, err)
	}
	return ev
}

// s2c sends el from the server to the client and returns the frame and
// what the client decoded.
func (p *pair) s2c(t testing.TB, el *stanza.Element) ([]byte, *stanza.Element) {
	t.Helper()
	b := p.srv.AppendElement(nil, el)
	ev := mustEvent(t, p.cli, b)
	if ev.Kind != EventElement {
		t.Fatalf("client read %+v", ev)
	}
	return b, ev.Element
}

func (p *pair) c2s(t testing.TB, el *stanza.Element) ([]byte, *stanza.Element) {
	t.Helper()
	b := p.cli.AppendElement(nil, el)
	ev := mustEvent(t, p.srv, b)
	if ev.Kind != EventElement {
		t.Fatalf("server read %+v", ev)
	}
	return b, ev.Element
}

// decodeAll feeds frames to c in the given chunks and returns a dump of
// every event and the final error.
func decodeAll(c *Codec, chunks [][]byte) []string {
	var out []string
	for _, ch := range chunks {
		if err := c.Feed(ch); err != nil {
			return append(out, "error:"+condition(err))
		}
		for {
			ev, ok, err := c.Next()
			if err != nil {
				return append(out, "error:"+condition(err))
			}
			if !ok {
				break
			}
			out = append(out, dumpEvent(ev))
		}
	}
	return out
}

func dumpEvent(ev Event) string {
	switch ev.Kind {
	case EventOpen:
		return fmt.Sprintf("open%+v", ev.Header)
	case EventClose:
		return "close"
	case EventElement:
		return dump(ev.Element)
	}
	return "bad event"
}
