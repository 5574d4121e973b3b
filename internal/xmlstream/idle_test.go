package xmlstream

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/parley-im/parley/stanza"
)

// checkIdle asserts that d holds parsing state only while it has a reason
// to: unconsumed input or an element in progress.
func checkIdle(t *testing.T, d *Decoder) {
	t.Helper()
	if d.work == nil {
		return
	}
	if d.err != nil {
		t.Fatalf("failed decoder keeps its parsing state")
	}
	if d.pos == len(d.buf) && len(d.stack) == 0 && !d.inElem {
		t.Fatalf("idle decoder keeps its parsing state (%d bytes of buffers)", d.retained())
	}
}

// The persistent part is what every idle session pays; keep it within the
// 48-byte size class.
func TestDecoderSize(t *testing.T) {
	if n := unsafe.Sizeof(Decoder{}); n > 48 {
		t.Fatalf("Decoder is %d bytes, want at most 48", n)
	}
}

func TestIdleDetachesWork(t *testing.T) {
	d := newStream()
	if d.work != nil {
		t.Fatal("new decoder has parsing state")
	}
	if err := d.Feed([]byte(hdr + "<message to='a@b'><body>x &amp; y</body></message>")); err != nil {
		t.Fatal(err)
	}
	if d.work == nil {
		t.Fatal("fed decoder has no parsing state")
	}
	got, _ := drain(d, nil)
	if len(got) != 2 {
		t.Fatalf("got %q", got)
	}
	if d.work != nil {
		t.Fatal("drained decoder keeps its parsing state")
	}
	// The stream header shares its bindings with every other client stream.
	if d.scope != commonScopes[0] {
		t.Fatalf("scope %+v not shared", *d.scope)
	}
	// Keepalives do not wake an idle decoder.
	d.Feed([]byte(" \n\t \r\n"))
	if d.work != nil {
		t.Fatal("keepalive attached parsing state")
	}
	// Half a stanza keeps it; the rest releases it.
	d.Feed([]byte("<presence><show>a"))
	if got, _ := drain(d, nil); len(got) != 0 || d.work == nil {
		t.Fatalf("partial stanza: %q, work %v", got, d.work != nil)
	}
	d.Feed([]byte("way</show></presence>"))
	if got, _ := drain(d, nil); len(got) != 1 || d.work != nil {
		t.Fatalf("completed stanza: %q, work %v", got, d.work != nil)
	}
	// A stanza left half-way by Reset is dropped with the parsing state.
	d.Feed([]byte("<message><body>cut"))
	drain(d, nil)
	d.Reset()
	if d.work != nil || d.scope != noScope {
		t.Fatal("Reset keeps parsing state or stream bindings")
	}
	// So is everything after an error.
	d.Feed([]byte(hdr + "<a><!-- x --></a>"))
	drain(d, nil)
	if d.err == nil || d.work != nil {
		t.Fatalf("error %v, work %v", d.err, d.work != nil)
	}
}

// Tokens that need no input of their own come from an idle decoder too.
func TestIdleSelfClosingHeader(t *testing.T) {
	d := newStream()
	d.Feed([]byte("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'/>"))
	tok, ok, err := d.Next()
	if !ok || err != nil || tok.Kind != KindStreamOpen {
		t.Fatal(tok, ok, err)
	}
	if d.work != nil {
		t.Fatal("decoder still busy after the header")
	}
	tok, ok, err = d.Next()
	if !ok || err != nil || tok.Kind != KindStreamClose {
		t.Fatal(tok, ok, err)
	}
	if _, ok, err := d.Next(); ok || err != nil {
		t.Fatal(ok, err)
	}
	d.Feed([]byte(" "))
	if err := d.Feed([]byte("<x/>")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Next(); condition(err) != stanza.StreamNotWellFormed {
		t.Fatalf("data after the end: %v", err)
	}
}

func TestIdleFramed(t *testing.T) {
	d := newFramed()
	for _, f := range []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
		"  ",
		"\n<message to='a@b'><body>hi</body></message>\n",
		"<?xml version='1.0'?><iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
	} {
		if err := d.Feed([]byte(f)); err != nil {
			t.Fatal(err)
		}
		got, alive := drain(d, nil)
		if !alive {
			t.Fatalf("%q: %q", f, got)
		}
		if d.work != nil {
			t.Fatalf("%q: framed decoder keeps its parsing state", f)
		}
	}
}

// An uncommon stream header gets its own scope, prefix and all.
func TestUncommonStreamScope(t *testing.T) {
	in := "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' xmlns:x='urn:x'>" +
		"<x:a/><b/></s:stream>"
	want := []string{"open(ns=jabber:client to= from= id= version= lang=)", "{urn:x}a", "{jabber:client}b", "close"}
	if got := checkSplits(t, newStream, in); !equalStrings(got, want) {
		t.Fatalf("got %q", got)
	}
	// Attribute order does not defeat sharing.
	d := newStream()
	d.Feed([]byte("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' xmlns='jabber:server'>"))
	drain(d, nil)
	if d.scope != commonScopes[2] {
		t.Fatalf("scope %+v not shared", *d.scope)
	}
}

func TestSharedLimits(t *testing.T) {
	a, b := NewDecoder(Limits{}), NewFramedDecoder(DefaultLimits())
	if a.lim != b.lim {
		t.Fatal("default limits not shared")
	}
	l := DefaultLimits()
	l.MaxStanzaBytes = 12345
	c := NewDecoder(l)
	if c.lim == a.lim || c.lim.MaxStanzaBytes != 12345 || NewDecoder(l).lim.MaxStanzaBytes != 12345 {
		t.Fatal("distinct limits mixed up")
	}
}

// A stanza cut at any byte resumes correctly: what is half-parsed lives in
// the attached work, which must survive while other decoders take and
// return theirs from the pool in between.
func TestIdleSplitResume(t *testing.T) {
	const in = "<message xmlns:p='urn:p' p:x='a&amp;b&#233;' to='r@e.net' type='chat'>" +
		"<body>1 &lt; 2\r\n<![CDATA[<&>]]>tail</body>" +
		"<p:data p:k=\"it's\"><p:item n='1'>x</p:item><item xmlns='urn:q'/></p:data>" +
		"<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em></p></body></html>" +
		"</message>"
	want := oneShot(newStream, hdr+in)
	if len(want) != 2 || strings.HasPrefix(want[1], "error:") {
		t.Fatalf("got %q", want)
	}
	other := newStream()
	other.Feed([]byte(hdr))
	drain(other, nil)
	for i := 1; i < len(in); i++ {
		d := newStream()
		d.Feed([]byte(hdr))
		got, _ := drain(d, nil)
		if d.work != nil {
			t.Fatal("busy after the header")
		}
		d.Feed([]byte(in[:i]))
		got, _ = drain(d, got)
		if len(got) != 1 || d.work == nil {
			t.Fatalf("split at %d: %q, work %v", i, got, d.work != nil)
		}
		// Churn the pool.
		other.Feed([]byte("<message id='zzz'><body>&amp;other</body></message>"))
		drain(other, nil)
		d.Feed([]byte(in[i:]))
		got, _ = drain(d, got)
		if !equalStrings(got, want) {
			t.Fatalf("split at %d:\n got  %q\n want %q", i, got, want)
		}
		if d.work != nil {
			t.Fatalf("split at %d: busy after the stanza", i)
		}
	}
}

// A pooled work is zero but for the capacity of its scratch slices, which
// hold nothing.
func TestWorkResetClears(t *testing.T) {
	d := newStream()
	d.Feed([]byte(hdr + "<a xmlns:p='urn:p' p:x='1' y='&amp;'><p:b>text<c z='2'>more"))
	drain(d, nil)
	w := d.work
	if w == nil || len(w.stack) == 0 || len(w.ns) == 0 || len(w.kids) == 0 {
		t.Fatal("no state to clear")
	}
	d.work = nil
	w.reset()
	v := reflect.ValueOf(w).Elem()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		if f.Kind() == reflect.Slice && f.Len() == 0 && !f.IsNil() {
			// A kept slice: its whole capacity must be zero.
			full := f.Slice(0, f.Cap())
			for j := 0; j < full.Len(); j++ {
				if !full.Index(j).IsZero() {
					t.Errorf("%s[%d] not cleared", name, j)
				}
			}
			continue
		}
		if !f.IsZero() {
			t.Errorf("%s not reset", name)
		}
	}
}
