package binary

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// frame wraps a payload in a frame.
func frame(payload ...byte) []byte {
	return append(appendUvarint(nil, uint64(len(payload))), payload...)
}

func str(s string) []byte { return append(appendUvarint(nil, uint64(len(s))), s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Token bytes used to build frames by hand.
var (
	tMessage = byte(headFull + std.qnameIdx[qname{nsClient, "message"}])
	tBody    = byte(headFull + std.qnameIdx[qname{nsClient, "body"}])
	tR       = byte(headEmpty + std.qnameIdx[qname{nsSM, "r"}])
	aTo      = byte(anameToken + std.attrIdx["to"])
	aFrom    = byte(anameToken + std.attrIdx["from"])
	aType    = byte(anameToken + std.attrIdx["type"])
	aID      = byte(anameToken + std.attrIdx["id"])
)

// openServer returns a server codec that has read a client's open.
func openServer(t testing.TB, lim Limits) *Codec {
	t.Helper()
	srv := NewCodec(Options{Role: Server, Limits: lim})
	cli := NewCodec(Options{Role: Client})
	mustEvent(t, srv, cli.AppendOpen(nil, clientHeader))
	return srv
}

// TestDecodeErrors checks that every kind of malformed input is refused
// with the stream error of docs §9.
func TestDecodeErrors(t *testing.T) {
	long := strings.Repeat("a", 300)
	cases := []struct {
		name string
		in   []byte
		cond string
	}{
		{"reserved head", frame(0x03), stanza.StreamBadFormat},
		{"reserved head 0x80", frame(0x85), stanza.StreamBadFormat},
		{"text at top level", frame(headText, 1, 'x'), stanza.StreamBadFormat},
		{"unknown qname token", cat(frame(headQNameExt, 0xFF, 0x7F, 0)), stanza.StreamBadFormat},
		{"truncated node", frame(tMessage, 0x01, aTo), stanza.StreamBadFormat},
		{"trailing bytes", frame(tR, tR), stanza.StreamBadFormat},
		{"reserved shape bits", frame(tMessage, 0x40), stanza.StreamBadFormat},
		{"non-minimal varint", frame(tMessage, kindChildren, 0x81, 0x00, tR), stanza.StreamBadFormat},
		{"empty child list", frame(tMessage, kindChildren, 0), stanza.StreamBadFormat},
		{"empty text", frame(tBody, kindText, 0), stanza.StreamBadFormat},
		{"child count past frame", frame(tMessage, kindChildren, 5, tR), stanza.StreamBadFormat},
		{"reserved value", frame(tMessage, 0x01, aType, 0x0D), stanza.StreamBadFormat},
		{"reserved value 0x0F", frame(tMessage, 0x01, aType, 0x0F, 1, 0), stanza.StreamBadFormat},
		{"unknown string token", frame(tMessage, 0x01, aType, vTokenExt, 0xFF, 0x7F), stanza.StreamBadFormat},
		{"alias outside from/to", frame(tMessage, 0x01, aType, vAlias), stanza.StreamBadFormat},
		{"undefined alias", frame(tMessage, 0x01, aTo, vAlias+3), stanza.StreamBadFormat},
		{"alias set of an undefined entry", frame(tMessage, 0x01, aTo, vAliasSet, 5, jidLocal, 1, 'a'), stanza.StreamBadFormat},
		{"back-reference outside id", frame(tMessage, 0x01, aType, vBackref, 0), stanza.StreamBadFormat},
		{"back-reference to nothing", frame(tMessage, 0x01, aID, vBackref, 0), stanza.StreamBadFormat},
		{"reserved JID domain kind", frame(tMessage, 0x01, aTo, vJID|0x0C, 1, 'a'), stanza.StreamBadFormat},
		{"empty JID part", frame(tMessage, 0x01, aTo, vJID|jidLocal, 0), stanza.StreamBadFormat},
		{"date-time out of range", frame(tMessage, 0x01, aType, vTime, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0), stanza.StreamBadFormat},
		{"fraction too long", frame(tMessage, 0x01, aType, vTime, 0, 10), stanza.StreamBadFormat},
		{"second close", cat(frame(headClose), frame(headClose)), stanza.StreamBadFormat},
		{"element after close", cat(frame(headClose), frame(tR)), stanza.StreamBadFormat},
		{"invalid UTF-8", cat(frame(cat([]byte{tBody, kindText}, str("a\xffb"))...)), stanza.StreamNotWellFormed},
		{"forbidden character", cat(frame(cat([]byte{tBody, kindText}, str("a\x01b"))...)), stanza.StreamNotWellFormed},
		{"invalid element name", frame(cat([]byte{headLiteral, nsInherit}, str("a b"), []byte{0})...), stanza.StreamNotWellFormed},
		{"xmlns attribute", frame(cat([]byte{tMessage, 0x01, anameLiteral}, str("xmlns"), []byte{vRaw, 0})...), stanza.StreamNotWellFormed},
		{"prefixed attribute", frame(cat([]byte{tMessage, 0x01, anameLiteral}, str("p:a"), []byte{vRaw, 0})...), stanza.StreamNotWellFormed},
		{"clark in the XML namespace", frame(cat([]byte{tMessage, 0x01, anameClark, nsRaw}, str(stanza.NSXML), str("lang"), []byte{vRaw, 0})...), stanza.StreamNotWellFormed},
		{"duplicate attribute", frame(tMessage, 0x02, aType, vToken, aType, vToken+1), stanza.StreamNotWellFormed},
		{"duplicate literal and token", frame(cat([]byte{tMessage, 0x02, aType, vToken, anameLiteral}, str("type"), []byte{vRaw, 0})...), stanza.StreamNotWellFormed},
		{"name too long", frame(cat([]byte{headLiteral, nsInherit}, str(long), []byte{0})...), stanza.StreamPolicyViolation},
		{"malformed frame length", []byte{0x80, 0x80, 0x80, 0x80, 0x01}, stanza.StreamBadFormat},
		{"open with no dictionary", frame(headOpen, 1, keyDict, vSmallInt), stanza.StreamUnsupportedEncoding},
		{"open with a JID value", frame(headOpen, 1, keyTo, vJID|jidDomainRaw, 1, 'a'), stanza.StreamBadFormat},
	}
	for _, c := range cases {
		srv := openServer(t, Limits{})
		err := srv.Feed(c.in)
		var ev Event
		ok := false
		for err == nil {
			ev, ok, err = srv.Next()
			if !ok {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: no error (last event %s)", c.name, dumpEvent(ev))
			continue
		}
		var se *stanza.StreamError
		if !errors.As(err, &se) {
			t.Errorf("%s: %T is not a stream error", c.name, err)
			continue
		}
		if se.Condition != c.cond {
			t.Errorf("%s: %s, want %s", c.name, err, c.cond)
		}
		// Errors are sticky.
		if _, _, again := srv.Next(); again != err {
			t.Errorf("%s: error not sticky: %v", c.name, again)
		}
		if srv.Feed([]byte{1}) != err {
			t.Errorf("%s: Feed after error does not return it", c.name)
		}
	}
}

// TestElementBeforeOpen checks that only an open may start a stream.
func TestElementBeforeOpen(t *testing.T) {
	srv := NewCodec(Options{})
	if err := srv.Feed(frame(tR)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Next(); condition(err) != stanza.StreamBadFormat {
		t.Fatalf("got %v", err)
	}
	srv.Reset()
	mustEvent(t, srv, NewCodec(Options{Role: Client}).AppendOpen(nil, clientHeader))
	if ev := mustEvent(t, srv, frame(tR)); ev.Kind != EventElement {
		t.Fatalf("after Reset: %s", dumpEvent(ev))
	}
}

// TestLimits checks each bound of Limits.
func TestLimits(t *testing.T) {
	nest := func(depth int) *stanza.Element {
		root := stanza.New("d", "urn:example:deep")
		for i, cur := 1, root; i < depth; i++ {
			c := stanza.New("d", "urn:example:deep")
			cur.Append(c)
			cur = c
		}
		return root
	}
	withAttrs := func(n int) *stanza.Element {
		e := stanza.New("x", "urn:example:attrs")
		for i := 0; i < n; i++ {
			e.Attrs = append(e.Attrs, stanza.Attr{Name: "a" + strings.Repeat("b", i), Value: "v"})
		}
		return e
	}
	withKids := func(n int) *stanza.Element {
		e := stanza.New("x", "urn:example:kids")
		for i := 0; i < n; i++ {
			e.Append(stanza.New("r", nsSM))
		}
		return e
	}
	// 440 one-byte elements whose XML form is ~50 bytes each.
	amplified := stanza.New("x", "urn:example:amp")
	for i := 0; i < 40; i++ {
		c := stanza.New("y", "urn:example:amp")
		for j := 0; j < 10; j++ {
			c.Append(stanza.New("x", nsMUCUser))
		}
		amplified.Append(c)
	}
	lim := Limits{MaxStanzaBytes: 4096, MaxDepth: 8, MaxAttrs: 10, MaxChildren: 50, MaxNameLen: 16}
	cases := []struct {
		name    string
		el      *stanza.Element
		ok      bool
		wantErr string
	}{
		{"depth at the limit", nest(8), true, ""},
		{"depth over", nest(9), false, "nested"},
		{"attributes at the limit", withAttrs(10), true, ""},
		{"attributes over", withAttrs(11), false, "attributes"},
		{"children at the limit", withKids(50), true, ""},
		{"children over", withKids(51), false, "children"},
		{"long name", stanza.New(strings.Repeat("n", 17), "urn:example:n"), false, "name"},
		{"frame over", stanza.New("body", nsClient).AppendText(strings.Repeat("x", 4096)), false, "frame"},
		{"XML form over", amplified, false, "XML form"},
	}
	cli := NewCodec(Options{Role: Client})
	open := cli.AppendOpen(nil, clientHeader)
	for _, c := range cases {
		srv := NewCodec(Options{Role: Server, Limits: lim})
		mustEvent(t, srv, open)
		b := cli.AppendElement(nil, c.el)
		var err error
		if c.name == "frame over" {
			// Refused from the length alone, before the payload.
			err = srv.Feed(b[:3])
		} else if err = srv.Feed(b); err == nil {
			_, _, err = srv.Next()
		}
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && condition(err) != stanza.StreamPolicyViolation:
			t.Errorf("%s: got %v, want policy-violation", c.name, err)
		case !c.ok && !strings.Contains(err.Error(), c.wantErr):
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.wantErr)
		}
	}
}

// TestAliasBudget checks that a peer cannot grow the alias table past the
// budget announced in the open.
func TestAliasBudget(t *testing.T) {
	srv := openServer(t, Limits{AliasBytes: 64})
	ok := frame(cat([]byte{tMessage, 0x01, aTo, vAliasDef | jidLocal}, str(strings.Repeat("a", 20)))...)
	if ev := mustEvent(t, srv, ok); ev.Element.To() != strings.Repeat("a", 20)+"@example.com" {
		t.Fatalf("got %s", dumpEvent(ev))
	}
	// 31+32 bytes are in use; one more entry of any size is over 64.
	over := frame(cat([]byte{tMessage, 0x01, aTo, vAliasDef | jidLocal}, str("b"))...)
	if err := srv.Feed(over); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Next(); condition(err) != stanza.StreamPolicyViolation {
		t.Fatalf("got %v", err)
	}
	// Replacing the entry with one that fits is allowed.
	srv = openServer(t, Limits{AliasBytes: 64})
	mustEvent(t, srv, ok)
	set := frame(cat([]byte{tMessage, 0x01, aFrom, vAliasSet, 0, jidLocal}, str("c"))...)
	if ev := mustEvent(t, srv, set); ev.Element.From() != "c@example.com" {
		t.Fatalf("got %s", dumpEvent(ev))
	}
	if ev := mustEvent(t, srv, frame(tMessage, 0x01, aTo, vAlias)); ev.Element.To() != "c@example.com" {
		t.Fatalf("got %s", dumpEvent(ev))
	}
	// No aliases at all when the budget is negative.
	srv = openServer(t, Limits{AliasBytes: -1})
	if err := srv.Feed(ok); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Next(); condition(err) != stanza.StreamPolicyViolation {
		t.Fatalf("got %v", err)
	}
}

// TestAliasEviction checks that the sender keeps within the receiver's
// budget by replacing the least recently used entries, and that both ends
// agree throughout.
func TestAliasEviction(t *testing.T) {
	p := newPair(t, Options{}, Options{Limits: Limits{AliasBytes: 200}})
	if p.srv.enc.aliases.budget != 200 {
		t.Fatalf("server encoder budget %d, want the client's 200", p.srv.enc.aliases.budget)
	}
	jids := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com", "f@example.com"}
	for round := 0; round < 3; round++ {
		for i, j := range jids {
			m := stanza.New("message", nsClient).SetAttr("from", j).SetAttr("to", jids[(i+round)%len(jids)])
			_, got := p.s2c(t, m)
			if dump(got) != dump(m) {
				t.Fatalf("got %s, want %s", dump(got), dump(m))
			}
			if p.srv.enc.aliases.bytes > 200 || p.cli.dec.aliases.bytes > 200 {
				t.Fatalf("tables over budget: %d, %d", p.srv.enc.aliases.bytes, p.cli.dec.aliases.bytes)
			}
			for k, e := range p.srv.enc.aliases.e {
				if p.cli.dec.aliases.e[k].jid != e.jid {
					t.Fatalf("tables differ at %d: %q vs %q", k, e.jid, p.cli.dec.aliases.e[k].jid)
				}
			}
		}
	}
}

// TestErrorsStayOnTheirConnection checks that a failing connection leaves
// another one, sharing the buffer pool and dictionary, untouched.
func TestErrorsStayOnTheirConnection(t *testing.T) {
	good := newPair(t, Options{}, Options{})
	bad := openServer(t, Limits{})
	el := parseOne(t, chatXML)
	for i := 0; i < 3; i++ {
		b := good.cli.AppendElement(nil, el)
		err := bad.Feed([]byte{0x05, 0x03, 0xFF, 0xFF, 0xFF, 0xFF})
		if err == nil {
			_, _, err = bad.Next()
		}
		if condition(err) != stanza.StreamBadFormat {
			t.Fatalf("garbage gave %v", err)
		}
		if ev := mustEvent(t, good.srv, b); dump(ev.Element) != dump(el) {
			t.Fatalf("good connection decoded %s", dump(ev.Element))
		}
	}
}

// TestExpansionRefusedEarly checks that a frame of one-byte elements, whose
// XML form would be many times the limit, is refused by the first pass,
// before the tree is allocated.
func TestExpansionRefusedEarly(t *testing.T) {
	srv := openServer(t, Limits{})
	tX := byte(headFull + std.qnameIdx[qname{nsMUCUser, "x"}])
	tItem := byte(headEmpty + std.qnameIdx[qname{nsMUCUser, "item"}])
	payload := []byte{tMessage, kindChildren}
	payload = appendUvarint(payload, 4000)
	for i := 0; i < 4000; i++ {
		payload = append(payload, tX, kindChildren, 60)
		for j := 0; j < 60; j++ {
			payload = append(payload, tItem)
		}
	}
	in := frame(payload...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := srv.Feed(in)
	if err == nil {
		_, _, err = srv.Next()
	}
	runtime.ReadMemStats(&after)
	if condition(err) != stanza.StreamPolicyViolation || !strings.Contains(err.Error(), "XML form") {
		t.Fatalf("got %v", err)
	}
	// 244,000 elements would take over 23 MB; the input buffer is 252 KB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Fatalf("allocated %d bytes before refusing", alloc)
	}
}
