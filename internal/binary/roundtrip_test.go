package binary

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// corpus returns the stanzas of testdata/corpus: what real clients and the
// XEPs' examples put on the wire, decoded by the XML codec.
func corpus(t testing.TB) (names []string, els []*stanza.Element) {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*.xml")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, el := range parseXML(t, string(b)) {
			names = append(names, filepath.Base(f)+"#"+string(rune('0'+i)))
			els = append(els, el)
		}
	}
	return names, els
}

// TestCorpusRoundTrip is the round-trip property: XML → tree → binary →
// tree → XML gives the same tree and the same XML, in both directions of
// one connection (whose alias tables fill as it goes) and on a fresh
// connection for each stanza.
func TestCorpusRoundTrip(t *testing.T) {
	names, els := corpus(t)
	if len(els) < 30 {
		t.Fatalf("corpus has %d stanzas, want at least 30", len(els))
	}
	long := newPair(t, Options{}, Options{})
	var xmlBytes, binBytes int
	for i, el := range els {
		want := dump(el)
		wantXML := toXML(el)
		check := func(how string, got *stanza.Element) {
			t.Helper()
			if dump(got) != want {
				t.Errorf("%s %s:\n got  %s\n want %s", names[i], how, dump(got), want)
			}
			if x := toXML(got); x != wantXML {
				t.Errorf("%s %s: XML differs:\n got  %s\n want %s", names[i], how, x, wantXML)
			}
			// And the XML codec reads the result back as the same tree.
			if again := parseOne(t, toXML(got)); dump(again) != want {
				t.Errorf("%s %s: re-parsed XML differs", names[i], how)
			}
		}
		b, got := long.s2c(t, el)
		check("server to client", got)
		xmlBytes += len(wantXML)
		binBytes += len(b)
		_, got = long.c2s(t, el)
		check("client to server", got)
		fresh := newPair(t, Options{}, Options{})
		_, got = fresh.s2c(t, el)
		check("fresh connection", got)
	}
	t.Logf("%d stanzas: %d bytes of XML, %d bytes binary (%.0f%%)", len(els), xmlBytes, binBytes, 100*float64(binBytes)/float64(xmlBytes))
}

// TestRoundTripTrees covers trees the XML codec does not produce but
// server code can build: every one must survive the binary codec exactly.
func TestRoundTripTrees(t *testing.T) {
	long := newPair(t, Options{}, Options{})
	el := func(name, ns string, attrs ...string) *stanza.Element {
		e := stanza.New(name, ns)
		for i := 0; i+1 < len(attrs); i += 2 {
			e.Attrs = append(e.Attrs, stanza.Attr{Name: attrs[i], Value: attrs[i+1]})
		}
		return e
	}
	many := el("x", "urn:example:many")
	for i := 0; i < 40; i++ {
		many.Attrs = append(many.Attrs, stanza.Attr{Name: fmt.Sprintf("a%d", i), Value: "v"})
	}
	wide := el("list", "urn:example:wide")
	for i := 0; i < 300; i++ {
		wide.Append(el("i", "urn:example:wide", "n", string(rune('a'+i%26))))
	}
	deep := el("d", "urn:example:deep")
	for i, cur := 0, deep; i < 30; i++ {
		c := el("d", "urn:example:deep")
		cur.Append(c)
		cur = c
	}
	trees := []*stanza.Element{
		el("message", stanza.NSClient, "to", "a@example.com").AppendText("one").AppendText("two"),
		el("message", stanza.NSClient).Append(el("body", stanza.NSClient).AppendText("x").Append(el("b", "")).AppendText("y")),
		el("foo", "", "bar", "baz"),
		el("presence", stanza.NSClient, "{urn:example:p}attr", "1", "{urn:example:p}other", "2", "{urn:example:q}attr", "3"),
		el("iq", stanza.NSClient, "{http://www.w3.org/XML/1998/namespace}space", "preserve", "{http://www.w3.org/XML/1998/namespace}lang", "de"),
		el("message", stanza.NSClient, "to", "example.com", "from", "conference.example.com"),
		el("message", stanza.NSClient, "to", "room@muc.example.com/nick with spaces", "from", "a@b@c"),
		el("message", stanza.NSClient, "to", "a@example.com/", "from", "@example.com"),
		el("message", stanza.NSClient, "to", "a@example.com/r/with/slashes@and@ats"),
		el("iq", stanza.NSClient, "id", "abc", "type", "get").Append(el("q", "urn:example:q", "id", "abc")),
		el("body", stanza.NSClient).AppendText("a body that is valid base64 AAAA"),
		el("payload", "eu.siacs.conversations.axolotl").AppendText("AAAA"),
		el("payload", "eu.siacs.conversations.axolotl").AppendText("not base64!"),
		el("key", "eu.siacs.conversations.axolotl").AppendText("AAA="),
		many, wide, deep,
	}
	// Clark names in the XML namespace are written xml:local, as the XML
	// writer does.
	normal := map[int]string{
		4: `{jabber:client}iq[xml:space="preserve" xml:lang="de"]`,
	}
	for i, tr := range trees {
		want := dump(tr)
		if n, ok := normal[i]; ok {
			want = n
			if x := dump(parseOne(t, toXML(tr))); x != n {
				t.Fatalf("tree %d: the XML codec gives %s", i, x)
			}
		}
		_, got := long.s2c(t, tr)
		if dump(got) != want {
			t.Errorf("tree %d server to client:\n got  %s\n want %s", i, dump(got), want)
		}
		_, got = long.c2s(t, tr)
		if dump(got) != want {
			t.Errorf("tree %d client to server:\n got  %s\n want %s", i, dump(got), want)
		}
	}
}

// TestSanitised checks that strings XML cannot carry are written as the
// XML writer writes them (U+FFFD), never as something the peer rejects.
func TestSanitised(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	bad := stanza.New("message", stanza.NSClient).SetAttr("id", "a\x00b").
		Append(stanza.New("body", stanza.NSClient).AppendText("x\xffy\x01z"))
	_, got := p.s2c(t, bad)
	if got.ID() != "a\uFFFDb" || got.ChildText("body", "") != "x\uFFFDy\uFFFDz" {
		t.Fatalf("got %s", dump(got))
	}
}

// TestSkippedAttributes checks that, as in XML, namespace declarations and
// malformed Clark names are not written.
func TestSkippedAttributes(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	el := stanza.New("message", stanza.NSClient)
	el.Attrs = []stanza.Attr{{Name: "xmlns", Value: "x"}, {Name: "xmlns:p", Value: "y"}, {Name: "{broken", Value: "z"}, {Name: "", Value: "e"}, {Name: "type", Value: "chat"}}
	_, got := p.s2c(t, el)
	if dump(got) != `{jabber:client}message[type="chat"]` {
		t.Fatalf("got %s", dump(got))
	}
}

// TestXMLBound checks that the decoder's bound on a stanza's XML form
// (docs §10.2) is never below the real size, and not far above it, for
// every corpus stanza and some prefixed elements.
func TestXMLBound(t *testing.T) {
	_, els := corpus(t)
	els = append(els,
		stanza.New("error", stanza.NSStream).Append(stanza.New("text", stanza.NSStream).Append(stanza.New("x", stanza.NSStream))),
		stanza.New("lang", stanza.NSXML).Append(stanza.New("lang", stanza.NSXML).Append(stanza.New("y", nsClient))),
	)
	p := newPair(t, Options{}, Options{})
	for _, el := range els {
		b := p.srv.AppendElement(nil, el)
		mustEvent(t, p.cli, b) // defines the aliases the scan below reads
		s := scan{r: reader{b: framePayload(b)}, d: &p.cli.dec}
		if err := s.node(1, nsClient, nsClient); err != nil {
			t.Fatal(err)
		}
		bound, actual := s.xml+5*s.esc, len(toXML(el))
		for _, name := range []string{"from", "to"} {
			bound += len(el.Attr(name)) // aliases are counted in pass two
		}
		if bound < actual || bound > 2*actual+64 {
			t.Errorf("bound %d for %d bytes of XML: %s", bound, actual, toXML(el))
		}
	}
}
