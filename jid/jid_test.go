package jid

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unsafe"
)

var parseTests = []struct {
	in   string
	want string // "" means Parse must fail
}{
	// Plain forms.
	{"example.com", "example.com"},
	{"localhost", "localhost"},
	{"juliet@example.com", "juliet@example.com"},
	{"juliet@example.com/balcony", "juliet@example.com/balcony"},
	{"example.com/balcony", "example.com/balcony"},
	{"a.b+c_d!#$%*=?^`{|}~@example.com", "a.b+c_d!#$%*=?^`{|}~@example.com"},
	{"x@a-b.c-d.e1", "x@a-b.c-d.e1"},
	{"x@123.example.com", "x@123.example.com"},

	// RFC 7622 §3.1 splitting: resource after the first '/', local before
	// the first '@' in front of it.
	{"example.com/res/with/slashes@and@ats", "example.com/res/with/slashes@and@ats"},
	{"juliet@example.com/a@b/c", "juliet@example.com/a@b/c"},
	{"a@b@c", ""},

	// Case mapping: localpart and domainpart lower-cased, resource kept.
	{"Juliet@Example.COM/Balcony", "juliet@example.com/Balcony"},
	{"JULIET@EXAMPLE.COM", "juliet@example.com"},
	{"RÉSUMÉ@example.com", "résumé@example.com"},
	{"ΣΑΣ@example.com", "σασ@example.com"},
	{"ß@example.com", "ß@example.com"},
	{"İ@example.com", "i\u0307@example.com"},

	// Width folding and NFC.
	{"ＪＵＬＩＥＴ@example.com", "juliet@example.com"},
	{"juliet@ｅｘａｍｐｌｅ．ｃｏｍ", "juliet@example.com"},
	{"juliet@ＥＸＡＭＰＬＥ.com", "juliet@example.com"},
	{"e\u0301@example.com/e\u0301", "\u00e9@example.com/\u00e9"},
	{"x@example.com/ＢＡＬＣＯＮＹ", "x@example.com/ＢＡＬＣＯＮＹ"}, // OpaqueString does not fold width
	{"x@example.com/a\u3000b", "x@example.com/a b"},    // non-ASCII space mapped
	{"x@example.com/ lots  of spaces ", "x@example.com/ lots  of spaces "},
	{"x@example.com/☃", "x@example.com/☃"},

	// Left-to-right localparts starting with a digit are fine (x/text's
	// UsernameCaseMapped would wrongly apply the Bidi Rule).
	{"1é@example.com", "1é@example.com"},
	{"x1é@example.com", "x1é@example.com"},

	// Trailing dot.
	{"example.com.", "example.com"},
	{"juliet@example.com./balcony", "juliet@example.com/balcony"},
	{"juliet@example.com。", "juliet@example.com"},
	{"example.com..", ""},
	{".", ""},
	{"x@.", ""},

	// Other label separators.
	{"example。com", "example.com"},
	{"example｡com", "example.com"},

	// Internationalised domains: A-labels become U-labels.
	{"münchen.de", "münchen.de"},
	{"MÜNCHEN.DE", "münchen.de"},
	{"xn--mnchen-3ya.de", "münchen.de"},
	{"XN--MNCHEN-3YA.DE", "münchen.de"},
	{"x@xn--bcher-kva.example/r", "x@bücher.example/r"},
	{"他们为什么不说中文.example", "他们为什么不说中文.example"},
	{"xn--ihqwcrb4cv8a8dqg056pqjye.example", "他们为什么不说中文.example"},
	{"xn--mnchen-wxa.de", "mönchen.de"},
	{"xn--.de", ""},
	{"xn--a.de", ""},         // truncated delta
	{"xn--abc-.de", ""},      // decodes to pure ASCII
	{"xn--ls8h.example", ""}, // U+1F4A9 is not a letter or digit
	{"xn--Mnchen-3ya.de", "münchen.de"},
	{"xn--mnchen-3ya-.de", ""}, // trailing hyphen
	{"xn--mnchen-psa.de", ""},  // encodes "mÜnchen", not a normalised U-label
	{"xn---tda.de", ""},        // empty basic part still has a delimiter
	{"xn--1ug.example", ""},    // lone ZERO WIDTH JOINER fails CONTEXTJ

	// IP addresses.
	{"127.0.0.1", "127.0.0.1"},
	{"user@192.168.0.1/r", "user@192.168.0.1/r"},
	{"１２７.０.０.１", "127.0.0.1"},
	{"[::1]", "[::1]"},
	{"[0:0::1]", "[::1]"},
	{"x@[2001:DB8::1]/r", "x@[2001:db8::1]/r"},
	{"[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]"},
	{"[::1", ""},
	{"[1.2.3.4]", ""},
	{"[fe80::1%eth0]", ""},
	{"[v1.x]", ""},
	{"[]", ""},
	{"[::1].", ""},
	{"1.2.3", ""},
	{"256.1.1.1", ""},
	{"01.2.3.4", ""},
	{"example.123", ""},

	// Empty parts.
	{"", ""},
	{"@", ""},
	{"/", ""},
	{"@/", ""},
	{"@example.com", ""},
	{"juliet@", ""},
	{"juliet@/balcony", ""},
	{"example.com/", ""},
	{"juliet@example.com/", ""},
	{"/balcony", ""},

	// Forbidden localpart characters (RFC 7622 §3.3.1) and spaces.
	{`ju"liet@example.com`, ""},
	{"ju&liet@example.com", ""},
	{"ju'liet@example.com", ""},
	{"ju:liet@example.com", ""},
	{"ju<liet@example.com", ""},
	{"ju>liet@example.com", ""},
	{"ju liet@example.com", ""},
	{"a＠b@example.com", ""}, // fullwidth '@' folds to '@'
	{"a／b@example.com", ""}, // fullwidth '/' folds to '/'
	{"☃@example.com", ""},
	{"ϓ@example.com", ""},
	{"\u200d@example.com", ""},
	{"\tjuliet@example.com", ""},

	// Bidi Rule.
	{"שלום@example.com", "שלום@example.com"},
	{"אa@example.com", ""},
	{"١٢٣@example.com", ""}, // starts with an Arabic digit (AN)
	{"x@שלום.example", "x@שלום.example"},
	{"x@שלום.1abc", ""},
	{"x@אa.example", ""},

	// Domain syntax.
	{"exa mple.com", ""},
	{"example..com", ""},
	{".example.com", ""},
	{"-example.com", ""},
	{"example-.com", ""},
	{"ex_ample.com", ""},
	{"ab--cd.com", ""},
	{"exam:ple.com", ""},
	{"example.com:5222", ""},
	{"exam<ple.com", ""},
	{"☃.example", ""},
	{"\u0301abc.example", ""},
	{"ab\u00ad.example", ""},

	// Invalid UTF-8 and control characters.
	{"\xff@example.com", ""},
	{"\xffexample.com", ""},
	{"x@example.com/\xff", ""},
	{"x@example.com/a\x00b", ""},
	{"x@example.com/a\tb", ""},
	{"x@example.com/a\x7fb", ""},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		j, err := Parse(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %q, want error", tt.in, j)
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q) error %v does not wrap ErrMalformed", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := j.String(); got != tt.want {
			t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkInvariants(t, tt.in, j)
	}
}

// checkInvariants verifies the properties every valid JID must have. It is
// shared by the table tests and the fuzz target.
func checkInvariants(t *testing.T, in string, j JID) {
	t.Helper()
	l, d, r := j.Local(), j.Domain(), j.Resource()
	if d == "" || len(d) > MaxPartLen || len(l) > MaxPartLen || len(r) > MaxPartLen {
		t.Fatalf("Parse(%q): part lengths out of bounds: %d %d %d", in, len(l), len(d), len(r))
	}
	s := j.String()
	if n := len(s); n < 1 || n > 3*MaxPartLen+2 {
		t.Fatalf("Parse(%q): String() length %d out of bounds", in, n)
	}
	want := d
	if l != "" {
		want = l + "@" + want
	}
	if r != "" {
		want += "/" + r
	}
	if s != want {
		t.Fatalf("Parse(%q): String() = %q, parts assemble to %q", in, s, want)
	}
	if j.IsZero() || j.IsBare() != (r == "") {
		t.Fatalf("Parse(%q): IsZero/IsBare inconsistent", in)
	}
	j2, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q) = %q, but reparsing it fails: %v", in, s, err)
	}
	if j2 != j {
		t.Fatalf("Parse(%q) = %q, reparsed as different JID %q (%#v vs %#v)", in, s, j2, j, j2)
	}
	j3, err := New(l, d, r)
	if err != nil || j3 != j {
		t.Fatalf("New(%q, %q, %q) = %q, %v; want %q", l, d, r, j3, err, s)
	}
	b, err := Parse(j.BareString())
	if err != nil || b != j.Bare() || !b.IsBare() || b.BareString() != j.BareString() {
		t.Fatalf("Parse(%q).Bare() inconsistent: %q, %v", in, b, err)
	}
	ascii := j.DomainASCII()
	if !isASCII(ascii) {
		t.Fatalf("Parse(%q).DomainASCII() = %q is not ASCII", in, ascii)
	}
	if ad, err := Parse(ascii); err != nil || ad.Domain() != d {
		t.Fatalf("Parse(%q).DomainASCII() = %q, which parses to %q, %v", in, ascii, ad, err)
	}
}

func TestErrorsHaveContext(t *testing.T) {
	for _, tt := range []struct{ in, part string }{
		{"ju<liet@example.com", "localpart"},
		{"juliet@exa mple.com", "domainpart"},
		{"juliet@example.com/\x00", "resourcepart"},
	} {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.part) {
			t.Errorf("Parse(%q) error %v does not mention %s", tt.in, err, tt.part)
		}
	}
	_, err := Parse(strings.Repeat("a", 2000) + "@example.com")
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error for long input is missing or not truncated: %v", err)
	}
}

func TestLengthLimits(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	domain1023 := strings.Repeat(label63+".", 15) + strings.Repeat("b", 1023-16*64+63+1)
	if len(domain1023) != 1023 {
		t.Fatalf("test bug: domain length %d", len(domain1023))
	}
	ok := []string{
		strings.Repeat("a", 1023) + "@example.com",
		"example.com/" + strings.Repeat("r", 1023),
		label63 + ".com",
		domain1023,
		domain1023 + ".",
		strings.Repeat("a", 1023) + "@" + domain1023 + "/" + strings.Repeat("r", 1023),
		// Fullwidth input may be longer than the limit as long as the
		// normalised form is not.
		strings.Repeat("ａ", 1023) + "@example.com",
		// 1023 bytes of 2-byte characters plus one ASCII byte.
		strings.Repeat("é", 511) + "a@example.com",
	}
	for _, s := range ok {
		j, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%.40q...) (%d bytes): %v", s, len(s), err)
			continue
		}
		checkInvariants(t, s, j)
	}
	bad := []string{
		strings.Repeat("a", 1024) + "@example.com",
		"example.com/" + strings.Repeat("r", 1024),
		strings.Repeat("a", 64) + ".com",
		domain1023 + "b",
		"b." + domain1023,
		strings.Repeat("ａ", 1024) + "@example.com",
		strings.Repeat("é", 512) + "@example.com",
		"example.com/" + strings.Repeat("é", 512),
		strings.Repeat("a", 100000),
		// A U-label whose A-label form exceeds 63 bytes.
		strings.Repeat("ü", 60) + ".example",
	}
	for _, s := range bad {
		if j, err := Parse(s); err == nil {
			t.Errorf("Parse(%.40q...) (%d bytes) = %.40q..., want error", s, len(s), j)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%.40q...): error %v does not wrap ErrMalformed", s, err)
		}
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		local, domain, resource string
		want                    string
	}{
		{"Juliet", "Example.com", "Balcony", "juliet@example.com/Balcony"},
		{"", "example.com", "", "example.com"},
		{"", "example.com", "r/with@seps", "example.com/r/with@seps"},
		{"juliet", "example.com.", "", "juliet@example.com"},
		{"a@b", "example.com", "", ""},
		{"a/b", "example.com", "", ""},
		{"juliet", "example.com/r", "", ""},
		{"juliet", "a@example.com", "", ""},
		{"juliet", "", "r", ""},
		{"", "", "", ""},
	} {
		j, err := New(tt.local, tt.domain, tt.resource)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("New(%q, %q, %q) = %q, %v; want ErrMalformed", tt.local, tt.domain, tt.resource, j, err)
			}
			continue
		}
		if err != nil || j.String() != tt.want {
			t.Errorf("New(%q, %q, %q) = %q, %v; want %q", tt.local, tt.domain, tt.resource, j, err, tt.want)
			continue
		}
		if j != MustParse(tt.want) {
			t.Errorf("New(%q, %q, %q) != MustParse(%q)", tt.local, tt.domain, tt.resource, tt.want)
		}
	}
}

func TestAccessors(t *testing.T) {
	j := MustParse("Juliet@Example.com/Balcony")
	if j.Local() != "juliet" || j.Domain() != "example.com" || j.Resource() != "Balcony" {
		t.Errorf("parts = %q %q %q", j.Local(), j.Domain(), j.Resource())
	}
	if j.IsBare() || j.IsZero() {
		t.Error("full JID reported bare or zero")
	}
	if got := j.BareString(); got != "juliet@example.com" {
		t.Errorf("BareString = %q", got)
	}
	b := j.Bare()
	if b.String() != "juliet@example.com" || !b.IsBare() || b.Resource() != "" || b.Local() != "juliet" {
		t.Errorf("Bare = %q", b)
	}
	if b != MustParse("juliet@example.com") || !b.Equal(MustParse("JULIET@example.com")) {
		t.Error("Bare not equal to parsed bare JID")
	}
	if j.Equal(b) {
		t.Error("full JID equals its bare JID")
	}

	w, err := b.WithResource("Ｏｒｃｈａｒｄ")
	if err != nil || w.String() != "juliet@example.com/Ｏｒｃｈａｒｄ" || w.Resource() != "Ｏｒｃｈａｒｄ" {
		t.Errorf("WithResource = %q, %v", w, err)
	}
	w, err = j.WithResource("e\u0301")
	if err != nil || w != MustParse("juliet@example.com/\u00e9") {
		t.Errorf("WithResource replacing = %q, %v", w, err)
	}
	if w, err = j.WithResource(""); err != nil || w != b {
		t.Errorf(`WithResource("") = %q, %v; want bare`, w, err)
	}
	if _, err = j.WithResource("\x00"); !errors.Is(err, ErrMalformed) {
		t.Errorf("WithResource(NUL) error = %v", err)
	}
	if _, err = (JID{}).WithResource("r"); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero.WithResource error = %v", err)
	}

	d := MustParse("example.com/r")
	if d.Local() != "" || d.Domain() != "example.com" || d.Resource() != "r" || d.BareString() != "example.com" {
		t.Errorf("domain JID parts = %q %q %q", d.Local(), d.Domain(), d.Resource())
	}

	var z JID
	if !z.IsZero() || z.String() != "" || z.Local() != "" || z.Domain() != "" || z.Resource() != "" ||
		z.BareString() != "" || !z.Bare().IsZero() || z.DomainASCII() != "" {
		t.Error("zero JID accessors not empty")
	}

	if got := MustParse("x@münchen.de/r").DomainASCII(); got != "xn--mnchen-3ya.de" {
		t.Errorf("DomainASCII = %q", got)
	}
	if got := MustParse("x@a.他们为什么不说中文.example").DomainASCII(); got != "a.xn--ihqwcrb4cv8a8dqg056pqjye.example" {
		t.Errorf("DomainASCII = %q", got)
	}
}

func TestMapKey(t *testing.T) {
	m := map[JID]int{}
	m[MustParse("juliet@example.com/balcony")] = 1
	if m[MustParse("JULIET@EXAMPLE.COM./balcony")] != 1 {
		t.Error("equivalent JIDs are different map keys")
	}
	if m[MustParse("juliet@example.com/Balcony")] != 0 {
		t.Error("resource comparison should be case-sensitive")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic")
		}
	}()
	MustParse("@")
}

func TestText(t *testing.T) {
	type cfg struct {
		Admin JID `json:"admin"`
		Other JID `json:"other"`
	}
	var c cfg
	if err := json.Unmarshal([]byte(`{"admin":"Admin@Example.com","other":""}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Admin != MustParse("admin@example.com") || !c.Other.IsZero() {
		t.Errorf("decoded %+v", c)
	}
	out, err := json.Marshal(c)
	if err != nil || string(out) != `{"admin":"admin@example.com","other":""}` {
		t.Errorf("encoded %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"admin":"@"}`), &c); !errors.Is(err, ErrMalformed) {
		t.Errorf("decoding invalid JID: %v", err)
	}
}

func TestNickname(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Juliet", "Juliet"},
		{"  Juliet   Capulet ", "Juliet Capulet"},
		{"Ｊｕｌｉｅｔ", "Juliet"},
		{"Juliet\u3000Capulet", "Juliet Capulet"},
		{"☃ snowman", "☃ snowman"},
		{"ⅸ", "ix"},
		{"", ""},
		{"   ", ""},
		{"a\x00b", ""},
		{"\xff", ""},
		{strings.Repeat("n", 1024), ""},
	} {
		got, err := Nickname(tt.in)
		if tt.want == "" {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Nickname(%q) = %q, %v; want ErrMalformed", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Nickname(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		if again, err := Nickname(got); err != nil || again != got {
			t.Errorf("Nickname not idempotent on %q: %q, %v", got, again, err)
		}
		if _, err := MustParse("room@muc.example").WithResource(got); err != nil {
			t.Errorf("Nickname(%q) = %q not usable as resource: %v", tt.in, got, err)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	const full = "juliet@example.com/balcony"
	var j JID
	allocs := testing.AllocsPerRun(100, func() {
		j, _ = Parse(full)
		_ = j.String()
		_ = j.BareString()
		_ = j.Bare()
		_ = j.Local()
		_ = j.Domain()
		_ = j.Resource()
		_ = j.DomainASCII()
	})
	if allocs != 0 {
		t.Errorf("fast path allocates %v times", allocs)
	}
	// Already-normal non-ASCII input is reused rather than rebuilt; PRECIS
	// itself still allocates, but the result must share the input.
	in := "josé@example.com/balcony"
	if j, err := Parse(in); err != nil || j.String() != in {
		t.Fatalf("Parse(%q) = %q, %v", in, j, err)
	} else if unsafe.StringData(j.String()) != unsafe.StringData(in) {
		t.Errorf("Parse(%q) copied already-normal input", in)
	}
}
