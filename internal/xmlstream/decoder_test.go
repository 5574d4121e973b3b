package xmlstream

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// A client session as in RFC 6120 §9 and RFC 6121: each segment is what
// the client sends between two stream restarts.
var session = []struct {
	in   string
	want []string
}{{
	// RFC 6120 §9.1.1, §9.1.2: stream header with XML declaration, STARTTLS.
	in: "<?xml version='1.0'?>\n<stream:stream\n  from='juliet@im.example.com'\n  to='im.example.com'\n  version='1.0'\n  xml:lang='en'\n  xmlns='jabber:client'\n  xmlns:stream='http://etherx.jabber.org/streams'>\n" +
		"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
	want: []string{
		"open(ns=jabber:client to=im.example.com from=juliet@im.example.com id= version=1.0 lang=en)",
		"{urn:ietf:params:xml:ns:xmpp-tls}starttls",
	},
}, {
	// §9.1.3: SASL over TLS (double quotes, as some clients write).
	in: `<?xml version="1.0" encoding="UTF-8"?><stream:stream from="juliet@im.example.com" to="im.example.com" version="1.0" xml:lang="en" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">` +
		`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-1">biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==</auth>` +
		"\n" + `<response xmlns="urn:ietf:params:xml:ns:xmpp-sasl">Yz1iaXdzLHI9b01zVEFBd0FBQUFNQUFBQU5QMFRBQUFBQUFCUFUwQUFlMTI0Njk1Yi02OWE5LTRkZTYtOWMzMC1iNTFiMzgwOGM1OWUscD1VQTU3dE0vU3ZwQVRCa0gyRlhzMFdEWHZKWXc9</response>`,
	want: []string{
		"open(ns=jabber:client to=im.example.com from=juliet@im.example.com id= version=1.0 lang=en)",
		`{urn:ietf:params:xml:ns:xmpp-sasl}auth[mechanism="SCRAM-SHA-1"]("biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==")`,
		`{urn:ietf:params:xml:ns:xmpp-sasl}response("Yz1iaXdzLHI9b01zVEFBd0FBQUFNQUFBQU5QMFRBQUFBQUFCUFUwQUFlMTI0Njk1Yi02OWE5LTRkZTYtOWMzMC1iNTFiMzgwOGM1OWUscD1VQTU3dE0vU3ZwQVRCa0gyRlhzMFdEWHZKWXc9")`,
	},
}, {
	// §9.1.4 resource binding, then RFC 6121 roster, presence, chat.
	in: "<stream:stream from='juliet@im.example.com' to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" +
		"<iq id='yhc13a95' type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>" +
		" \n " + // whitespace keepalive
		"<iq from='juliet@example.com/balcony' id='bv1bs71f' type='get'><query xmlns='jabber:iq:roster' ver='ver7'/></iq>" +
		"<presence><show>away</show><status>be right back &amp; &lt;3</status><priority>5</priority>" +
		"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>" +
		"<message from='juliet@example.com/balcony' id='ktx72v49' to='romeo@example.net' type='chat' xml:lang='en'>" +
		"<body>Art thou not Romeo, and a Montague?</body><active xmlns='http://jabber.org/protocol/chatstates'/>" +
		"<request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='de305d54'/></message>" +
		"<iq id='rs1' type='set'>\n  <query xmlns='jabber:iq:roster'>\n    <item jid='nurse@example.com' name='Nurse'>\n      <group>Servants</group>\n    </item>\n  </query>\n</iq>" +
		"<message to='romeo@example.net' type='chat'><body>line1\r\nline2 &#x1F339; &#233;t&#xE9; caf\u00e9<![CDATA[ <b>&amp;</b> ]]>end</body>" +
		"<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>!</p></body></html></message>" +
		"</stream:stream>",
	want: []string{
		"open(ns=jabber:client to=im.example.com from=juliet@im.example.com id= version=1.0 lang=en)",
		`{jabber:client}iq[id="yhc13a95" type="set"]({urn:ietf:params:xml:ns:xmpp-bind}bind({urn:ietf:params:xml:ns:xmpp-bind}resource("balcony")))`,
		`{jabber:client}iq[from="juliet@example.com/balcony" id="bv1bs71f" type="get"]({jabber:iq:roster}query[ver="ver7"])`,
		`{jabber:client}presence({jabber:client}show("away") {jabber:client}status("be right back & <3") {jabber:client}priority("5") {http://jabber.org/protocol/caps}c[hash="sha-1" node="http://psi-im.org" ver="q07IKJEyjvHSyhy//CH0CxmKi8w="])`,
		`{jabber:client}message[from="juliet@example.com/balcony" id="ktx72v49" to="romeo@example.net" type="chat" xml:lang="en"]({jabber:client}body("Art thou not Romeo, and a Montague?") {http://jabber.org/protocol/chatstates}active {urn:xmpp:receipts}request {urn:xmpp:sid:0}origin-id[id="de305d54"])`,
		`{jabber:client}iq[id="rs1" type="set"]("\n  " {jabber:iq:roster}query("\n    " {jabber:iq:roster}item[jid="nurse@example.com" name="Nurse"]("\n      " {jabber:iq:roster}group("Servants") "\n    ") "\n  ") "\n")`,
		`{jabber:client}message[to="romeo@example.net" type="chat"]({jabber:client}body("line1\nline2 🌹 été café <b>&amp;</b> end") {http://jabber.org/protocol/xhtml-im}html({http://www.w3.org/1999/xhtml}body({http://www.w3.org/1999/xhtml}p("Hi " {http://www.w3.org/1999/xhtml}em("there") "!"))))`,
		"close",
	},
}}

func TestSession(t *testing.T) {
	d := newStream()
	for i, seg := range session {
		if i > 0 {
			d.Reset()
		}
		if err := d.Feed([]byte(seg.in)); err != nil {
			t.Fatal(err)
		}
		got, _ := drain(d, nil)
		if !equalStrings(got, seg.want) {
			t.Fatalf("segment %d:\n got  %q\n want %q", i, got, seg.want)
		}
	}
}

func TestSessionSplits(t *testing.T) {
	for _, seg := range session {
		checkSplits(t, newStream, seg.in)
	}
}

// Prefixes resolve to namespaces; the tree never shows a prefix except
// xml:, and never a declaration.
func TestNamespaces(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<message/>", "{jabber:client}message"},
		{"<message xmlns='jabber:server'/>", "{jabber:server}message"},
		{"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
			"{http://etherx.jabber.org/streams}features({urn:ietf:params:xml:ns:xmpp-bind}bind)"},
		{"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
			"{http://etherx.jabber.org/streams}error({urn:ietf:params:xml:ns:xmpp-streams}not-well-formed)"},
		{"<a:message xmlns:a='jabber:client'><a:body>x</a:body><body/></a:message>",
			`{jabber:client}message({jabber:client}body("x") {jabber:client}body)`},
		{"<message><x xmlns='urn:x'><y/><z xmlns=''><w/></z></x></message>",
			"{jabber:client}message({urn:x}x({urn:x}y {}z({}w)))"},
		{"<message xml:lang='de' xmlns:g='google:roster' g:t='B' type='chat'/>",
			`{jabber:client}message[xml:lang="de" {google:roster}t="B" type="chat"]`},
		{"<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:space='preserve'/>",
			`{jabber:client}message[xml:space="preserve"]`},
		{"<db:result xmlns:db='jabber:server:dialback' from='a' to='b'>key</db:result>",
			`{jabber:server:dialback}result[from="a" to="b"]("key")`},
		{"<p:a xmlns:p='urn:1'><p:b xmlns:p='urn:2'/><p:c/></p:a>", "{urn:1}a({urn:2}b {urn:1}c)"},
	}
	for _, tt := range tests {
		in := hdr + tt.in
		want := checkSplits(t, newStream, in)
		if len(want) != 2 || want[1] != tt.want {
			t.Errorf("%s:\n got  %q\n want %q", tt.in, want, tt.want)
		}
	}
}

// Stream-level prefix declarations stay in scope for the whole stream.
func TestStreamLevelPrefixes(t *testing.T) {
	in := "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>" +
		"<db:result from='a.example' to='b.example'>abc</db:result>"
	got := oneShot(newStream, in)
	want := []string{"open(ns=jabber:server to= from= id= version= lang=)", `{jabber:server:dialback}result[from="a.example" to="b.example"]("abc")`}
	if !equalStrings(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<a>&lt;&gt;&amp;&quot;&apos;</a>", `{jabber:client}a("<>&\"'")`},
		{"<a>&#65;&#x42;&#X43;</a>", ""}, // &#X is not a character reference
		{"<a>&#0000000065;</a>", `{jabber:client}a("A")`},
		{"<a>x\r\ny\rz\n</a>", `{jabber:client}a("x\ny\nz\n")`},
		{"<a>&#13;&#10;</a>", `{jabber:client}a("\r\n")`},
		{"<a b='x\r\ny\tz\nw&#9;&#10;&#13;'/>", `{jabber:client}a[b="x y z w\t\n\r"]`},
		{`<a b="it's" c='say "hi"' d='a>b'/>`, `{jabber:client}a[b="it's" c="say \"hi\"" d="a>b"]`},
		{"<a>1<![CDATA[2]]>3<![CDATA[]]><![CDATA[4]]>]</a>", `{jabber:client}a("1234]")`},
		{"<a><![CDATA[]]]]><![CDATA[>]]></a>", `{jabber:client}a("]]>")`},
		{"<a><![CDATA[\r\n<&>]]></a>", `{jabber:client}a("\n<&>")`},
		{"<a>]]</a>", `{jabber:client}a("]]")`},
		{"<a>] ]></a>", `{jabber:client}a("] ]>")`},
		{"<a> <b/> </a>", `{jabber:client}a(" " {jabber:client}b " ")`},
		{"<a>\U0010FFFD\uFFFD\uE000</a>", `{jabber:client}a("\U0010fffd` + "\uFFFD" + `\ue000")`},
		{"<\u00e9l\u00e8ve \u00e2ge='3'/>", `{jabber:client}élève[âge="3"]`},
	}
	for _, tt := range tests {
		in := hdr + tt.in
		got := checkSplits(t, newStream, in)
		if tt.want == "" {
			if c := got[len(got)-1]; c != "error:not-well-formed" {
				t.Errorf("%s: got %q, want not-well-formed", tt.in, got)
			}
			continue
		}
		if len(got) != 2 || got[1] != tt.want {
			t.Errorf("%s:\n got  %q\n want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	const (
		nwf        = stanza.StreamNotWellFormed
		restricted = stanza.StreamRestrictedXML
		badPrefix  = stanza.StreamBadNamespacePrefix
		invalidNS  = stanza.StreamInvalidNamespace
		badFormat  = stanza.StreamBadFormat
		encoding   = stanza.StreamUnsupportedEncoding
	)
	tests := []struct {
		in   string
		cond string
	}{
		// Restricted XML (RFC 6120 §11.1).
		{"<!DOCTYPE stream>" + hdr, restricted},
		{hdr + "<!DOCTYPE foo>", restricted},
		{hdr + "<!-- hi -->", restricted},
		{hdr + "<message><!-- hi --></message>", restricted},
		{"<!-- hi -->" + hdr, restricted},
		{hdr + "<?pi x?>", restricted},
		{hdr + "<message><?pi x?></message>", restricted},
		{"<?pi x?>" + hdr, restricted},
		{" <?xml version='1.0'?>" + hdr, restricted},
		{hdr + "<?xml version='1.0'?>", restricted},
		{"<?xml-stylesheet href='x'?>" + hdr, restricted},
		{hdr + "<message><body>&foo;</body></message>", restricted},
		{hdr + "<message a='&nbsp;'/>", restricted},
		{hdr + "<message><body>&" + strings.Repeat("a", 29) + ";</body></message>", restricted},
		// Characters (XML §2.2): not-well-formed.
		{hdr + "<message><body>&#0;</body></message>", nwf},
		{hdr + "<message><body>&#x1;</body></message>", nwf},
		{hdr + "<message><body>&#xD800;</body></message>", nwf},
		{hdr + "<message><body>&#xFFFE;</body></message>", nwf},
		{hdr + "<message><body>&#x110000;</body></message>", nwf},
		{hdr + "<message><body>&#99999999999999;</body></message>", nwf},
		{hdr + "<message><body>&#;</body></message>", nwf},
		{hdr + "<message><body>&#x;</body></message>", nwf},
		{hdr + "<message><body>&#12a;</body></message>", nwf},
		{hdr + "<message><body>&;</body></message>", nwf},
		{hdr + "<message><body>& amp;</body></message>", nwf},
		{hdr + "<message><body>AT&T</body></message>", nwf},
		{hdr + "<message><body>&" + strings.Repeat("a", 40) + ";</body></message>", nwf},
		{hdr + "<message><body>\xff</body></message>", nwf},
		{hdr + "<message><body>\xc3</body></message>", nwf},
		{hdr + "<message><body>\x00</body></message>", nwf},
		{hdr + "<message><body>\x1b</body></message>", nwf},
		{hdr + "<message><body>\xef\xbf\xbe</body></message>", nwf},
		{hdr + "<message><body>\xed\xa0\x80</body></message>", nwf},
		{hdr + "<message><body><![CDATA[\x00]]></body></message>", nwf},
		{hdr + "<message a='\x7f\x01'/>", nwf},
		{hdr + "<m\xffessage/>", nwf},
		{hdr + "<message><body>]]></body></message>", nwf},
		// Markup.
		{hdr + "<message><body>a</message>", nwf},
		{hdr + "<message a='1' a='2'/>", nwf},
		{hdr + "<message a='1' b='2' a='3'/>", nwf},
		{hdr + "<message xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/>", nwf},
		{hdr + "<message xmlns='jabber:client' xmlns='jabber:client'/>", nwf},
		{hdr + "<message a='<'/>", nwf},
		{hdr + "<message a=1/>", nwf},
		{hdr + "<message a='1'b='2'/>", nwf},
		{hdr + "<message a/>", nwf},
		{hdr + "<message a='1/>", nwf + "?"}, // the value has not ended
		{hdr + "<message a = '1' / >", nwf},
		{hdr + "< message/>", nwf},
		{hdr + "<1message/>", nwf},
		{hdr + "<-a/>", nwf},
		{hdr + "<a:b:c xmlns:a='x'/>", nwf},
		{hdr + "<a:/>", nwf},
		{hdr + "<:a/>", nwf},
		{hdr + "<a><![CDATX[x]]></a>", nwf},
		{hdr + "<a><!", nwf + "?"}, // incomplete: no error yet
		{hdr + "</a>", nwf},
		{hdr + "<a></a b>", nwf},
		{hdr + "<a></ a>", nwf},
		{hdr + "<a></a >", ""},
		{hdr + "</stream:stream><a/>", nwf},
		{hdr + "</stream:stream>x", nwf},
		{hdr + "</stream>", nwf},
		{hdr + "</stream:streamx>", nwf},
		{"<a/>", invalidNS},
		{"x" + hdr, nwf},
		{"</stream:stream>", nwf},
		{hdr + "hello", badFormat},
		{hdr + "&amp;", badFormat},
		{hdr + "<![CDATA[ ]]>", badFormat},
		// Namespaces (XML Namespaces; RFC 6120 §4.8, §11.2).
		{hdr + "<p:message/>", badPrefix},
		{hdr + "<message p:a='1'/>", badPrefix},
		{hdr + "<message><p:body/></message>", badPrefix},
		{hdr + "<p:a xmlns:p='urn:p'/><p:b/>", badPrefix},
		{"<stream:stream xmlns='jabber:client'>", badPrefix},
		{"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' x:y='1'>", badPrefix},
		{"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>", invalidNS},
		{"<stream xmlns='jabber:client'>", invalidNS},
		{"<stream:str xmlns:stream='http://etherx.jabber.org/streams'>", invalidNS},
		{"<s:stream xmlns:s='http://etherx.jabber.org/streams'></stream:stream>", nwf},
		{hdr + "<xmlns:a/>", nwf},
		{hdr + "<a xmlns:xml='urn:x'/>", nwf},
		{hdr + "<a xmlns:xmlns='urn:x'/>", nwf},
		{hdr + "<a xmlns:p=''/>", nwf},
		{hdr + "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>", nwf},
		{hdr + "<a xmlns='http://www.w3.org/XML/1998/namespace'/>", nwf},
		{hdr + "<a xmlns='http://www.w3.org/2000/xmlns/'/>", nwf},
		{hdr + "<a xmlns:xml='http://www.w3.org/XML/1998/namespace'/>", ""},
		// XML declaration and encoding (RFC 6120 §11.5, §11.6).
		{"<?xml version='1.0' encoding='UTF-16'?>" + hdr, encoding},
		{"<?xml version='1.0' encoding='utf-8'?>" + hdr, ""},
		{"<?xml version='1.0' standalone='yes'?>" + hdr, ""},
		{"\xef\xbb\xbf<?xml version='1.0'?>" + hdr, ""},
		{"\xfe\xff\x00<", encoding},
		{"<?xml version='2.0'?>" + hdr, nwf},
		{"<?xml encoding='UTF-8'?>" + hdr, nwf},
		{"<?xml version='1.0' standalone='yes' encoding='UTF-8'?>" + hdr, nwf},
		{"<?xml version='1.0'version='1.0'?>" + hdr, nwf},
		{"<?xml version='1.0' foo='bar'?>" + hdr, nwf},
		{"<?xml version='1.0'?><?xml version='1.0'?>" + hdr, restricted},
		{"<?xml " + strings.Repeat(" ", 2000) + "version='1.0'?>" + hdr, nwf},
	}
	for _, tt := range tests {
		got := checkSplits(t, newStream, tt.in)
		last := got[len(got)-1]
		switch {
		case strings.HasSuffix(tt.cond, "?"):
			if strings.HasPrefix(last, "error:") {
				t.Errorf("%q: got %q, want no error yet", tt.in, got)
			}
		case tt.cond == "":
			if strings.HasPrefix(last, "error:") {
				t.Errorf("%q: got %q, want success", tt.in, got)
			}
		case last != "error:"+tt.cond:
			t.Errorf("%q: got %q, want %s", tt.in, got, tt.cond)
		}
	}
}

// Errors are sticky and the decoder frees its buffers on failure.
func TestErrorSticky(t *testing.T) {
	d := newStream()
	d.Feed([]byte(hdr + "<a><!-- x --></a><b/>"))
	got, _ := drain(d, nil)
	if got[len(got)-1] != "error:restricted-xml" {
		t.Fatalf("got %q", got)
	}
	if _, _, err := d.Next(); condition(err) != stanza.StreamRestrictedXML {
		t.Fatalf("Next after error: %v", err)
	}
	if err := d.Feed([]byte("<c/>")); condition(err) != stanza.StreamRestrictedXML {
		t.Fatalf("Feed after error: %v", err)
	}
	if n := d.retained(); n != 0 {
		t.Fatalf("failed decoder retains %d bytes", n)
	}
}

func TestSelfClosingStreamHeader(t *testing.T) {
	got := oneShot(newStream, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'/>")
	want := []string{"open(ns=jabber:client to= from= id= version= lang=)", "close"}
	if !equalStrings(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestIdleRetainsNothing(t *testing.T) {
	d := newStream()
	feed := func(s string) []string {
		t.Helper()
		if err := d.Feed([]byte(s)); err != nil {
			t.Fatal(err)
		}
		out, alive := drain(d, nil)
		if !alive {
			t.Fatalf("%q: %q", s, out)
		}
		return out
	}
	// A header whose attribute values need decoding uses scratch space.
	feed("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example&#46;com'>")
	if n := d.retained(); n != 0 {
		t.Fatalf("after header: %d bytes retained", n)
	}
	stanzas := []string{
		"<message to='a@b'><body>plain</body></message>",
		"<message to='a@b'><body>refs &amp; &#233; and\r\nCRLF<![CDATA[cdata]]></body></message>",
		"<presence a='x&amp;y'/>  ",
		"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>\n",
	}
	for _, s := range stanzas {
		if got := feed(s); len(got) != 1 {
			t.Fatalf("%q: got %q", s, got)
		}
		if n := d.retained(); n != 0 {
			t.Fatalf("after %q: %d bytes retained", s, n)
		}
	}
	// Half a stanza must be buffered; the rest completes it and frees it.
	feed("<message><body>half")
	if d.retained() == 0 {
		t.Fatal("partial stanza: nothing retained")
	}
	feed(" &amp; the rest</body></mess")
	if got := feed("age>"); len(got) != 1 {
		t.Fatalf("got %q", got)
	}
	if n := d.retained(); n != 0 {
		t.Fatalf("after completion: %d bytes retained", n)
	}
	// Megabytes of keepalive whitespace are never buffered.
	sp := bytes.Repeat([]byte{' '}, 64<<10)
	for i := 0; i < 32; i++ {
		feed(string(sp))
		if n := d.retained(); n != 0 {
			t.Fatalf("whitespace: %d bytes retained", n)
		}
	}
}

// The decoder copies what it is fed, and what it returns does not alias
// its (pooled) buffers.
func TestNoAliasing(t *testing.T) {
	d := newStream()
	p := []byte(hdr + "<message id='abc' to='x@y'><body>hello world</body></message>")
	d.Feed(p)
	for i := range p {
		p[i] = 'X'
	}
	got, _ := drain(d, nil)
	want := `{jabber:client}message[id="abc" to="x@y"]({jabber:client}body("hello world"))`
	if len(got) != 2 || got[1] != want {
		t.Fatalf("got %q", got)
	}
	d.Feed([]byte("<message id='z'><body>one &amp; one</body></message>"))
	tok, ok, err := d.Next()
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	first := dump(tok.Element)
	for i := 0; i < 10; i++ {
		d.Feed([]byte("<message id='qqqqqqqq'><body>overwrite &amp; overwrite</body></message>"))
		drain(d, nil)
	}
	if dump(tok.Element) != first {
		t.Fatalf("element changed: %s -> %s", first, dump(tok.Element))
	}
}

// Appending to a decoded element's slices must not clobber its siblings,
// which are carved from shared per-stanza arrays.
func TestSlabIsolation(t *testing.T) {
	d := newStream()
	d.Feed([]byte(hdr + "<m a='1'><x b='2'/><y c='3'/><z/></m>"))
	got, _ := drain(d, nil)
	tok := got[1]
	d.Feed([]byte("<m a='1'><x b='2'/><y c='3'/><z/></m>"))
	t2, _, _ := d.Next()
	m := t2.Element
	m.Attrs = append(m.Attrs, stanza.Attr{Name: "n", Value: "v"})
	m.Children[0].Attrs = append(m.Children[0].Attrs, stanza.Attr{Name: "n", Value: "v"})
	m.Children[0].Append(stanza.New("new", "urn:x"))
	if s := dump(m.Children[1]); s != `{jabber:client}y[c="3"]` {
		t.Fatalf("sibling clobbered: %s (first was %s)", s, tok)
	}
}

func TestReset(t *testing.T) {
	d := newStream()
	// The client (or an attacker injecting plaintext) sends more after
	// <starttls/>; none of it may survive the restart.
	d.Feed([]byte("<?xml version='1.0'?>" + hdr + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='set' id='evil'><query xmlns='jabber:iq:roster'/></iq>"))
	tok, ok, err := d.Next()
	if !ok || err != nil || tok.Kind != KindStreamOpen {
		t.Fatal(tok, ok, err)
	}
	tok, ok, err = d.Next()
	if !ok || err != nil || tok.Element.Name != "starttls" {
		t.Fatal(tok, ok, err)
	}
	d.Reset()
	if n := d.retained(); n != 0 {
		t.Fatalf("after Reset: %d bytes retained", n)
	}
	// A new header, with a declaration again, and different bindings.
	d.Feed([]byte("<?xml version='1.0'?><s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'><message/></s:stream>"))
	got, _ := drain(d, nil)
	want := []string{"open(ns=jabber:client to= from= id= version= lang=)", "{jabber:client}message", "close"}
	if !equalStrings(got, want) {
		t.Fatalf("got %q", got)
	}
	// Old bindings are gone: the stream: prefix is no longer declared.
	d.Reset()
	d.Feed([]byte("<s:stream xmlns:s='http://etherx.jabber.org/streams'><stream:features/>"))
	got, _ = drain(d, nil)
	if got[len(got)-1] != "error:bad-namespace-prefix" {
		t.Fatalf("got %q", got)
	}
	// Reset clears the sticky error, and mid-stanza state.
	d.Reset()
	d.Feed([]byte(hdr + "<message><body>unfinished"))
	drain(d, nil)
	d.Reset()
	d.Feed([]byte(hdr + "<presence/>"))
	got, _ = drain(d, nil)
	if len(got) != 2 || got[1] != "{jabber:client}presence" {
		t.Fatalf("got %q", got)
	}
}

func TestLimits(t *testing.T) {
	small := func(mod func(*Limits)) func() *Decoder {
		return func() *Decoder {
			l := DefaultLimits()
			mod(&l)
			return NewDecoder(l)
		}
	}
	// The header counts against the limits too, so keep it small.
	const sh = "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>"
	stanza100 := "<message to='romeo@example.net'><body>" + strings.Repeat("x", 100-len("<message to='romeo@example.net'><body></body></message>")) + "</body></message>"
	if len(stanza100) != 100 {
		t.Fatal(len(stanza100))
	}
	tests := []struct {
		name string
		dec  func() *Decoder
		in   string
		cond string // "" for success
	}{
		{"size ok", small(func(l *Limits) { l.MaxStanzaBytes = 100 }), sh + stanza100 + stanza100, ""},
		{"size", small(func(l *Limits) { l.MaxStanzaBytes = 99 }), sh + stanza100, stanza.StreamPolicyViolation},
		{"size incomplete", small(func(l *Limits) { l.MaxStanzaBytes = 99 }), sh + stanza100[:99] + "xx", stanza.StreamPolicyViolation},
		{"size header", small(func(l *Limits) { l.MaxStanzaBytes = 50 }), sh, stanza.StreamPolicyViolation},
		{"size tag", small(func(l *Limits) { l.MaxStanzaBytes = 80 }), sh + "<message a='" + strings.Repeat("y", 80), stanza.StreamPolicyViolation},
		{"size text", small(func(l *Limits) { l.MaxStanzaBytes = 80 }), sh + "<a>" + strings.Repeat("y", 80), stanza.StreamPolicyViolation},
		{"depth ok", small(func(l *Limits) { l.MaxDepth = 3 }), sh + "<a><b><c/></b></a>", ""},
		{"depth", small(func(l *Limits) { l.MaxDepth = 3 }), sh + "<a><b><c><d/></c></b></a>", stanza.StreamPolicyViolation},
		{"depth open", small(func(l *Limits) { l.MaxDepth = 3 }), sh + "<a><b><c><d>", stanza.StreamPolicyViolation},
		{"attrs ok", small(func(l *Limits) { l.MaxAttrs = 3 }), sh + "<a xmlns='urn:a' b='1' c='2'/>", ""},
		{"attrs", small(func(l *Limits) { l.MaxAttrs = 3 }), sh + "<a xmlns='urn:a' b='1' c='2' d='3'/>", stanza.StreamPolicyViolation},
		{"name ok", small(func(l *Limits) { l.MaxNameLen = 6 }), sh + "<abcdef xmlns:ghijkl='x' ghijkl:mnopqr='1'/>", ""},
		{"name", small(func(l *Limits) { l.MaxNameLen = 6 }), sh + "<abcdefg/>", stanza.StreamPolicyViolation},
		{"prefix", small(func(l *Limits) { l.MaxNameLen = 6 }), sh + "<abcdefg:a/>", stanza.StreamPolicyViolation},
		{"attr name", small(func(l *Limits) { l.MaxNameLen = 6 }), sh + "<a bcdefgh='1'/>", stanza.StreamPolicyViolation},
		{"end tag name", small(func(l *Limits) { l.MaxNameLen = 6 }), sh + "<a></abcdefgh>", stanza.StreamPolicyViolation},
		{"children ok", small(func(l *Limits) { l.MaxChildren = 3 }), sh + "<a>x<b/>y</a>", ""},
		{"children", small(func(l *Limits) { l.MaxChildren = 3 }), sh + "<a>x<b/>y<c/></a>", stanza.StreamPolicyViolation},
		{"children self", small(func(l *Limits) { l.MaxChildren = 2 }), sh + "<a><b/><b/><b/></a>", stanza.StreamPolicyViolation},
		{"bindings ok", small(func(l *Limits) {}), sh + strings.Repeat("<a xmlns:p='u' xmlns:q='v' xmlns:r='w' xmlns:s='x'>", 30) + strings.Repeat("</a>", 30), ""},
		{"bindings", small(func(l *Limits) {}), sh + strings.Repeat("<a xmlns:p='u' xmlns:q='v' xmlns:r='w' xmlns:s='x' xmlns:t='y'>", 30) + strings.Repeat("</a>", 30), stanza.StreamPolicyViolation},
	}
	for _, tt := range tests {
		got := oneShot(tt.dec, tt.in)
		last := got[len(got)-1]
		if tt.cond == "" && strings.HasPrefix(last, "error:") || tt.cond != "" && last != "error:"+tt.cond {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.cond)
		}
		// Trickled in byte by byte, the verdict is the same.
		var chunks [][]byte
		for i := range len(tt.in) {
			chunks = append(chunks, []byte{tt.in[i]})
		}
		got = feedChunks(tt.dec, chunks)
		last = got[len(got)-1]
		if tt.cond == "" && strings.HasPrefix(last, "error:") || tt.cond != "" && last != "error:"+tt.cond {
			t.Errorf("%s byte by byte: got %q, want %q", tt.name, got, tt.cond)
		}
	}
}

// A decoder fed without draining refuses to buffer without bound.
func TestFeedWithoutDraining(t *testing.T) {
	l := DefaultLimits()
	l.MaxStanzaBytes = 1000
	d := NewDecoder(l)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = d.Feed([]byte(strings.Repeat("<a/>", 100)))
	}
	if condition(err) != stanza.StreamPolicyViolation {
		t.Fatalf("got %v", err)
	}
}

// Zero limits mean defaults.
func TestZeroLimits(t *testing.T) {
	d := NewDecoder(Limits{})
	if *d.lim != DefaultLimits() {
		t.Fatalf("got %+v", *d.lim)
	}
}

func TestFramed(t *testing.T) {
	frames := []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0' xml:lang='en'/>",
		"<?xml version='1.0'?><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
		"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
		"  ",
		"\n<message xmlns='jabber:client' to='romeo@example.net'><body>hi</body></message>\n",
		"<message to='romeo@example.net'><body>no xmlns</body></message>",
		"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='wss://other.example.com/'/>",
	}
	want := []string{
		"open(ns=jabber:client to=example.com from= id= version=1.0 lang=en)",
		`{urn:ietf:params:xml:ns:xmpp-sasl}auth[mechanism="PLAIN"]("AGp1bGlldAByMG0zMG15cjBtMzA=")`,
		"open(ns=jabber:client to=example.com from= id= version=1.0 lang=)",
		`{jabber:client}iq[type="set" id="b1"]({urn:ietf:params:xml:ns:xmpp-bind}bind)`,
		`{jabber:client}message[to="romeo@example.net"]({jabber:client}body("hi"))`,
		`{jabber:client}message[to="romeo@example.net"]({jabber:client}body("no xmlns"))`,
		`{http://etherx.jabber.org/streams}error({urn:ietf:params:xml:ns:xmpp-streams}conflict)`,
		`close:{urn:ietf:params:xml:ns:xmpp-framing}close[see-other-uri="wss://other.example.com/"]`,
	}
	d := newFramed()
	var got []string
	for _, f := range frames {
		if err := d.Feed([]byte(f)); err != nil {
			t.Fatal(err)
		}
		got, _ = drain(d, got)
		if n := d.retained(); n != 0 {
			t.Fatalf("frame %q: %d bytes retained", f, n)
		}
	}
	if !equalStrings(got, want) {
		t.Fatalf("\n got  %q\n want %q", got, want)
	}

	bad := []struct{ frame, cond string }{
		{"<message/><message/>", stanza.StreamNotWellFormed},
		{"<message><body>cut", stanza.StreamNotWellFormed},
		{"<message", stanza.StreamNotWellFormed},
		{"<message><![CDATA[x", stanza.StreamNotWellFormed},
		{"text", stanza.StreamNotWellFormed},
		{"<message/>text", stanza.StreamNotWellFormed},
		{"</message>", stanza.StreamNotWellFormed},
		{"<!-- c --><message/>", stanza.StreamRestrictedXML},
		{"<stream:features/>", stanza.StreamBadNamespacePrefix},
		{"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", stanza.StreamNotWellFormed},
	}
	for _, tt := range bad {
		d := newFramed()
		d.Feed([]byte(tt.frame))
		got, _ := drain(d, nil)
		if got[len(got)-1] != "error:"+tt.cond {
			t.Errorf("%q: got %q, want %s", tt.frame, got, tt.cond)
		}
	}
}
