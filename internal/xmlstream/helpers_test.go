package xmlstream

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// hdr is the stream header most tests start from.
const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"

// dump renders a tree with every element's full namespace, so that
// comparisons see everything the decoder decided.
func dump(e *stanza.Element) string {
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

func dumpToken(tok Token) string {
	switch tok.Kind {
	case KindStreamOpen:
		h := tok.Header
		return fmt.Sprintf("open(ns=%s to=%s from=%s id=%s version=%s lang=%s)", h.NS, h.To, h.From, h.ID, h.Version, h.Lang)
	case KindElement:
		return dump(tok.Element)
	case KindStreamClose:
		if tok.Element != nil {
			return "close:" + dump(tok.Element)
		}
		return "close"
	}
	return "bad token"
}

// condition returns the stream error condition of err, or "" for nil.
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

// drain pulls tokens until the decoder needs more input or fails; it
// appends their dumps (and "error:condition") to out.
func drain(d *Decoder, out []string) ([]string, bool) {
	for {
		tok, ok, err := d.Next()
		if err != nil {
			return append(out, "error:"+condition(err)), false
		}
		if !ok {
			return out, true
		}
		out = append(out, dumpToken(tok))
	}
}

// feedChunks runs input through a fresh decoder in the given chunks and
// returns what came out.
func feedChunks(newDec func() *Decoder, chunks [][]byte) []string {
	d := newDec()
	var out []string
	for _, c := range chunks {
		if err := d.Feed(c); err != nil {
			return append(out, "error:"+condition(err))
		}
		var alive bool
		if out, alive = drain(d, out); !alive {
			return out
		}
	}
	return out
}

func oneShot(newDec func() *Decoder, in string) []string {
	return feedChunks(newDec, [][]byte{[]byte(in)})
}

// checkSplits asserts that every way of cutting in into two chunks, and
// feeding it byte by byte, gives what feeding it whole gives.
func checkSplits(t *testing.T, newDec func() *Decoder, in string) []string {
	t.Helper()
	want := oneShot(newDec, in)
	for i := 1; i < len(in); i++ {
		got := feedChunks(newDec, [][]byte{[]byte(in[:i]), []byte(in[i:])})
		if !equalStrings(got, want) {
			t.Fatalf("split at %d of %q:\n got  %q\n want %q", i, in, got, want)
		}
	}
	var bytesChunks [][]byte
	for i := 0; i < len(in); i++ {
		bytesChunks = append(bytesChunks, []byte{in[i]})
	}
	if got := feedChunks(newDec, bytesChunks); !equalStrings(got, want) {
		t.Fatalf("byte by byte %q:\n got  %q\n want %q", in, got, want)
	}
	return want
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newStream() *Decoder { return NewDecoder(DefaultLimits()) }
func newFramed() *Decoder { return NewFramedDecoder(DefaultLimits()) }
