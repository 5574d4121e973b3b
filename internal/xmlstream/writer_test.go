package xmlstream

import (
	"testing"

	"github.com/parley-im/parley/stanza"
)

func TestAppendStreamOpen(t *testing.T) {
	got := string(AppendStreamOpen(nil, Header{NS: stanza.NSClient, ID: "c2s1", From: "example.com", To: "juliet@example.com", Lang: "en"}))
	want := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='c2s1' from='example.com' to='juliet@example.com' version='1.0' xml:lang='en'>"
	if got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	if got := string(AppendStreamClose([]byte("x"))); got != "x</stream:stream>" {
		t.Fatal(got)
	}
	got = string(AppendFramedOpen(nil, Header{NS: stanza.NSClient, ID: "ws1", From: "example.com", Version: "1.0"}))
	want = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='ws1' from='example.com' version='1.0'/>"
	if got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	if got := string(AppendFramedClose(nil)); got != "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>" {
		t.Fatal(got)
	}
	// Our own header decodes to what was written.
	d := newStream()
	d.Feed(AppendStreamOpen(nil, Header{NS: stanza.NSServer, ID: "i'd", From: "a&b", To: "<x>", Lang: "en"}))
	out, _ := drain(d, nil)
	if len(out) != 1 || out[0] != "open(ns=jabber:server to=<x> from=a&b id=i'd version=1.0 lang=en)" {
		t.Fatalf("got %q", out)
	}
}

func TestAppendElement(t *testing.T) {
	msg := stanza.New("message", stanza.NSClient).
		SetAttr("to", "romeo@example.net").SetAttr("type", "chat").SetAttr("xml:lang", "en").
		Append(stanza.New("body", stanza.NSClient).AppendText("a < b && c > d \"q\" 'a' ]]>\r\n\tz")).
		Append(stanza.New("active", "http://jabber.org/protocol/chatstates"))
	tests := []struct {
		name     string
		e        *stanza.Element
		parentNS string
		want     string
	}{
		{"message", msg, stanza.NSClient,
			`<message to='romeo@example.net' type='chat' xml:lang='en'><body>a &lt; b &amp;&amp; c &gt; d "q" 'a' ]]&gt;&#xD;` + "\n\tz</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{"server stream", msg, stanza.NSServer,
			`<message xmlns='jabber:client' to='romeo@example.net' type='chat' xml:lang='en'><body>a &lt; b &amp;&amp; c &gt; d "q" 'a' ]]&gt;&#xD;` + "\n\tz</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{"attr escapes", stanza.New("x", "urn:x").SetAttr("a", "<&>'\"\t\n\r"), "urn:x",
			`<x a='&lt;&amp;&gt;&apos;&quot;&#x9;&#xA;&#xD;'/>`},
		{"features", stanza.New("features", stanza.NSStream).Append(stanza.New("bind", stanza.NSBind)), stanza.NSClient,
			`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`},
		{"stream error", (&stanza.StreamError{Condition: stanza.StreamConflict, Text: "replaced"}).Element(), stanza.NSClient,
			`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>replaced</text></stream:error>`},
		{"nested stream ns", stanza.New("a", "urn:a").Append(stanza.New("features", stanza.NSStream)), stanza.NSClient,
			`<a xmlns='urn:a'><features xmlns='http://etherx.jabber.org/streams'/></a>`},
		{"no namespace child", stanza.New("a", "urn:a").Append(stanza.New("b", "").Append(stanza.New("c", ""))), stanza.NSClient,
			`<a xmlns='urn:a'><b xmlns=''><c/></b></a>`},
		{"clark attrs", &stanza.Element{Name: "item", NS: stanza.NSRoster, Attrs: []stanza.Attr{
			{Name: "jid", Value: "a@b"}, {Name: "{google:roster}t", Value: "B"}, {Name: "{urn:x}y", Value: "1"},
			{Name: "{google:roster}mc", Value: "5"}, {Name: "{" + stanza.NSXML + "}lang", Value: "en"}}}, stanza.NSRoster,
			`<item jid='a@b' xmlns:ns1='google:roster' ns1:t='B' xmlns:ns2='urn:x' ns2:y='1' ns1:mc='5' xml:lang='en'/>`},
		{"declarations skipped", &stanza.Element{Name: "a", NS: "urn:a", Attrs: []stanza.Attr{{Name: "xmlns", Value: "urn:b"}, {Name: "xmlns:p", Value: "urn:p"}, {Name: "b", Value: "1"}}}, "",
			`<a xmlns='urn:a' b='1'/>`},
		{"invalid chars", stanza.New("a", "").AppendText("x\x00y\xffz\uFFFE").SetAttr("b", "\x01"), "",
			"<a b='\uFFFD'>x\uFFFDy\uFFFDz\uFFFD</a>"},
		{"xml ns element", stanza.New("a", "urn:a").Append(stanza.New("b", stanza.NSXML)), "urn:a",
			`<a><xml:b/></a>`},
	}
	for _, tt := range tests {
		if got := string(AppendElement(nil, tt.e, tt.parentNS)); got != tt.want {
			t.Errorf("%s:\n got  %s\n want %s", tt.name, got, tt.want)
		}
	}
}

func TestAppendFramedElement(t *testing.T) {
	tests := []struct {
		e    *stanza.Element
		want string
	}{
		{stanza.New("message", stanza.NSClient).Append(stanza.New("body", stanza.NSClient).AppendText("hi")),
			`<message xmlns='jabber:client'><body>hi</body></message>`},
		{stanza.New("features", stanza.NSStream).Append(stanza.New("bind", stanza.NSBind)),
			`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`},
		{stanza.New("success", stanza.NSSASL),
			`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`},
	}
	for _, tt := range tests {
		got := AppendFramedElement(nil, tt.e)
		if string(got) != tt.want {
			t.Errorf("\n got  %s\n want %s", got, tt.want)
		}
		d := newFramed()
		d.Feed(got)
		out, _ := drain(d, nil)
		if len(out) != 1 || out[0] != dump(tt.e) {
			t.Errorf("framed round trip: got %q want %q", out, dump(tt.e))
		}
	}
}

// Writing is allocation-free once the buffer is big enough.
func TestAppendAllocs(t *testing.T) {
	e := chatMessage()
	buf := make([]byte, 0, 4096)
	n := testing.AllocsPerRun(100, func() {
		buf = AppendElement(buf[:0], e, stanza.NSClient)
		buf = AppendStreamOpen(buf, Header{NS: stanza.NSClient, ID: "x", From: "example.com"})
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// roundTrip encodes e as a child of a stream with content namespace ns and
// decodes it again.
func roundTrip(e *stanza.Element, ns string) (*stanza.Element, error) {
	lim := Limits{MaxStanzaBytes: 1 << 30, MaxDepth: 1 << 20, MaxAttrs: 1 << 20, MaxNameLen: 1 << 20, MaxChildren: 1 << 30}
	d := NewDecoder(lim)
	buf := AppendStreamOpen(nil, Header{NS: ns})
	buf = AppendElement(buf, e, ns)
	if err := d.Feed(buf); err != nil {
		return nil, err
	}
	var got *stanza.Element
	for {
		tok, ok, err := d.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return got, nil
		}
		if tok.Kind == KindElement {
			got = tok.Element
		}
	}
}

func TestRoundTrip(t *testing.T) {
	var elems []*stanza.Element
	d := newStream()
	for i, seg := range session {
		if i > 0 {
			d.Reset()
		}
		d.Feed([]byte(seg.in))
		for {
			tok, ok, err := d.Next()
			if err != nil || !ok {
				break
			}
			if tok.Kind == KindElement {
				elems = append(elems, tok.Element)
			}
		}
	}
	d = newStream()
	d.Feed([]byte(hdr + "<a xmlns:g='urn:g' xmlns:h='urn:g2' g:x='1' h:y='2' xml:lang='en'><b xmlns=''>t&#13;\r\n&amp;]]&gt;<c/></b><stream:features/><xml:z/></a>" +
		"<message xmlns:stream='http://etherx.jabber.org/streams'><stream:x/></message>"))
	for {
		tok, ok, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if tok.Kind == KindElement {
			elems = append(elems, tok.Element)
		}
	}
	for _, e := range elems {
		got, err := roundTrip(e, stanza.NSClient)
		if err != nil {
			t.Fatalf("%s: %v", dump(e), err)
		}
		if got == nil || dump(got) != dump(e) {
			t.Fatalf("round trip:\n got  %s\n want %s\n via  %s", dump(got), dump(e), AppendElement(nil, e, stanza.NSClient))
		}
	}
}

func chatMessage() *stanza.Element {
	return stanza.New("message", stanza.NSClient).
		SetAttr("from", "juliet@example.com/balcony").SetAttr("id", "ktx72v49").
		SetAttr("to", "romeo@example.net").SetAttr("type", "chat").SetAttr("xml:lang", "en").
		Append(stanza.New("body", stanza.NSClient).AppendText("Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike.")).
		Append(stanza.New("active", "http://jabber.org/protocol/chatstates")).
		Append(stanza.New("request", "urn:xmpp:receipts")).
		Append(stanza.New("origin-id", stanza.NSStanzaID).SetAttr("id", "de305d54-75b4-431b-adb2-eb6b9e546014"))
}
