package binary

import (
	"testing"

	"github.com/parley-im/parley/stanza"
)

// dictV2 is the standard dictionary with a version 2 appended, as a future
// release would: one qname, one attribute and one string more.
func dictV2() *dictionary {
	q := append(append([]qnameEntry(nil), stdQNames...), qnameEntry{ns: "urn:example:v2", local: "new", since: 2})
	a := append(append([]attrEntry(nil), stdAttrs...), attrEntry{name: "v2attr", since: 2})
	s := append(append([]strEntry(nil), stdStrings...), strEntry{s: "urn:example:v2", since: 2})
	return newDictionary(q, a, s)
}

func v2Element() *stanza.Element {
	return stanza.New("new", "urn:example:v2").SetAttr("v2attr", "urn:example:v2")
}

// TestNegotiation checks the dictionary choice of docs §6.2 for every
// combination of old and new ends, and that each end only writes tokens
// the other knows.
func TestNegotiation(t *testing.T) {
	v1, v2 := std, dictV2()
	if v2.fp[1] != v1.fp[1] {
		t.Fatal("appending a version changed version 1's fingerprint")
	}
	if v2.fp[2] == v2.fp[1] {
		t.Fatal("versions 1 and 2 share a fingerprint")
	}
	cases := []struct {
		name     string
		srv, cli *dictionary
		srvMax   int
		want     int
	}{
		{"both new", v2, v2, 0, 2},
		{"old client", v2, v1, 0, 1},
		{"old server", v1, v2, 0, 1},
		{"both old", v1, v1, 0, 1},
		{"server pinned to 1", v2, v2, 1, 1},
	}
	for _, c := range cases {
		srv := NewCodec(Options{Role: Server, dict: c.srv, MaxDictionary: c.srvMax})
		cli := NewCodec(Options{Role: Client, dict: c.cli})
		open := cli.AppendOpen(nil, clientHeader)
		// A client writes with version 1 until the server has answered.
		early := cli.AppendElement(nil, v2Element())
		mustEvent(t, srv, open)
		if ev := mustEvent(t, srv, early); dump(ev.Element) != dump(v2Element()) {
			t.Fatalf("%s: early stanza: %s", c.name, dumpEvent(ev))
		}
		mustEvent(t, cli, srv.AppendOpen(nil, serverHeader))
		if srv.Dictionary() != c.want || cli.Dictionary() != c.want {
			t.Errorf("%s: server uses %d, client %d, want %d", c.name, srv.Dictionary(), cli.Dictionary(), c.want)
		}
		p := &pair{srv: srv, cli: cli}
		b1, got := p.s2c(t, v2Element())
		if dump(got) != dump(v2Element()) {
			t.Fatalf("%s: %s", c.name, dump(got))
		}
		b2, got := p.c2s(t, v2Element())
		if dump(got) != dump(v2Element()) {
			t.Fatalf("%s: %s", c.name, dump(got))
		}
		tokenised := b1[1] == headQNameExt && b2[1] == headQNameExt
		if tokenised != (c.want == 2) {
			t.Errorf("%s: version 2 tokens used: %v (%x, %x)", c.name, tokenised, b1, b2)
		}
	}
}

// TestNegotiationFailures checks the dictionary errors.
func TestNegotiationFailures(t *testing.T) {
	// A client whose version 1 differs from the server's (a fork, or a
	// corrupted build) is refused by the fingerprint.
	forked := append([]strEntry{{s: "forked", since: 1}}, stdStrings[1:]...)
	bad := newDictionary(stdQNames, stdAttrs, forked)
	srv := NewCodec(Options{Role: Server})
	cli := NewCodec(Options{Role: Client, dict: bad})
	if err := srv.Feed(cli.AppendOpen(nil, clientHeader)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Next(); condition(err) != stanza.StreamUnsupportedEncoding {
		t.Fatalf("forked dictionary: %v", err)
	}
	// The server still answers with an open the client can read before
	// the error (RFC 6120 §4.9.1.2), written with version 1.
	reply := srv.AppendOpen(nil, serverHeader)
	reply = srv.AppendElement(reply, stanza.NewStreamError(stanza.StreamUnsupportedEncoding, "").Element())
	plain := NewCodec(Options{Role: Client})
	plain.AppendOpen(nil, clientHeader)
	evs := decodeAll(plain, [][]byte{reply})
	if len(evs) != 2 || evs[1] != `{http://etherx.jabber.org/streams}error({urn:ietf:params:xml:ns:xmpp-streams}unsupported-encoding)` {
		t.Fatalf("client read %q", evs)
	}

	// A server that answers with a version the client did not offer.
	srv2 := NewCodec(Options{Role: Server, dict: dictV2()})
	cli2 := NewCodec(Options{Role: Client, dict: dictV2()})
	mustEvent(t, srv2, cli2.AppendOpen(nil, clientHeader))
	answer := srv2.AppendOpen(nil, serverHeader)
	old := NewCodec(Options{Role: Client})
	old.AppendOpen(nil, clientHeader)
	if err := old.Feed(answer); err != nil {
		t.Fatal(err)
	}
	if _, _, err := old.Next(); condition(err) != stanza.StreamUnsupportedEncoding {
		t.Fatalf("unoffered version: %v", err)
	}

	// A token of a version that was not negotiated is refused.
	v1srv := NewCodec(Options{Role: Server})
	mustEvent(t, v1srv, NewCodec(Options{Role: Client}).AppendOpen(nil, clientHeader))
	q := len(stdQNames) - qnamePage0
	if err := v1srv.Feed(frame(append([]byte{headQNameExt}, appendUvarint(nil, uint64(q))...)...)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v1srv.Next(); condition(err) != stanza.StreamBadFormat {
		t.Fatalf("token beyond version 1: %v", err)
	}
}

// TestRestart checks a stream restart (after SASL): both ends reset, the
// opens are exchanged again and the alias tables start empty.
func TestRestart(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	el := parseOne(t, chatXML)
	p.s2c(t, el)
	p.c2s(t, el)
	if len(p.srv.enc.aliases.e) == 0 || len(p.srv.dec.aliases.e) == 0 {
		t.Fatal("no aliases defined")
	}
	p.srv.Reset()
	p.cli.Reset()
	p.handshake(t)
	if len(p.srv.enc.aliases.e) != 0 || len(p.cli.dec.aliases.e) != 0 || len(p.srv.dec.aliases.e) != 0 {
		t.Fatal("alias tables survived the restart")
	}
	first, got := p.s2c(t, el)
	if dump(got) != dump(el) || len(first) != 86 {
		t.Fatalf("after restart: %d bytes, %s", len(first), dump(got))
	}
	_, got = p.c2s(t, el)
	if dump(got) != dump(el) {
		t.Fatalf("after restart: %s", dump(got))
	}
}

// TestHeaderRoundTrip checks that every header field survives, whatever
// form the encoder picks for it.
func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{To: "example.com"},
		{To: "example.com", From: "juliet@example.com", ID: "++TR84Sm6A3hnt3Q065SnAbbk3Y=", Version: "1.0", Lang: "en", NS: stanza.NSClient},
		{ID: msgID, Version: "2.7", Lang: "x-klingon"},
		{ID: "0123abcd", From: "2024-03-09T16:44:02Z"},
	} {
		srv := NewCodec(Options{Role: Server})
		cli := NewCodec(Options{Role: Client})
		ev := mustEvent(t, srv, cli.AppendOpen(nil, h))
		want := h
		if want.Version == "" {
			want.Version = "1.0"
		}
		if ev.Header != want {
			t.Errorf("client open %+v read as %+v", h, ev.Header)
		}
		ev = mustEvent(t, cli, srv.AppendOpen(nil, h))
		if ev.Header != want {
			t.Errorf("server open %+v read as %+v", h, ev.Header)
		}
	}
}
