package binary

import (
	"bytes"
	"encoding/base32"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/stanza"
)

// b32hRef is the B32H text form as RFC 4648 §7 defines it, lower-cased,
// so the package's own coder is checked against an independent one.
var b32hRef = base32.HexEncoding.WithPadding(base32.NoPadding)

func b32hRefString(b []byte) string { return strings.ToLower(b32hRef.EncodeToString(b)) }

// b32hRefCanonical is the §5.2 rule spelled out with the reference coder:
// s decodes and re-encodes to itself.
func b32hRefCanonical(s string) bool {
	if s == "" || s != strings.ToLower(s) {
		return false
	}
	b, err := b32hRef.DecodeString(strings.ToUpper(s))
	return err == nil && b32hRefString(b) == s
}

func TestB32HMatchesRFC4648(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(b []byte) {
		t.Helper()
		s := b32hRefString(b)
		if got := string(appendB32HString(nil, b)); got != s {
			t.Fatalf("%x: encoded %q, want %q", b, got, s)
		}
		if b32hStringLen(len(b)) != len(s) {
			t.Fatalf("%d bytes: length %d, want %d", len(b), b32hStringLen(len(b)), len(s))
		}
		if n := b32hLen(s); n != len(b) {
			t.Fatalf("%q: b32hLen %d, want %d", s, n, len(b))
		}
		if got := appendB32HBytes(nil, s); !bytes.Equal(got, b) {
			t.Fatalf("%q: decoded %x, want %x", s, got, b)
		}
	}
	for v := range 1 << 16 {
		check([]byte{byte(v)})
		check([]byte{byte(v >> 8), byte(v)})
	}
	for n := 3; n <= 300; n++ {
		for range 20 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			check(b)
		}
	}
}

// TestB32HCanonical checks that b32hLen accepts exactly the strings the
// form gives back: every string of up to 3 symbols over the alphabet and
// some bytes around it, and random longer ones near the canonical set.
func TestB32HCanonical(t *testing.T) {
	const symbols = "0123456789abcdefghijklmnopqrstuvwxyzABGV=-"
	check := func(s string) {
		t.Helper()
		if got, want := b32hLen(s) > 0, b32hRefCanonical(s); got != want {
			t.Fatalf("%q: accepted %v, want %v", s, got, want)
		}
	}
	check("")
	var all func(prefix string, k int)
	all = func(prefix string, k int) {
		check(prefix)
		if k == 0 {
			return
		}
		for i := range len(symbols) {
			all(prefix+symbols[i:i+1], k-1)
		}
	}
	all("", 3)
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		b := []byte(b32hRefString(make([]byte, 1+r.IntN(12))))
		for range 1 + r.IntN(2) {
			b[r.IntN(len(b))] = symbols[r.IntN(len(symbols))]
		}
		if r.IntN(4) == 0 {
			b = b[:r.IntN(len(b)+1)]
		}
		check(string(b))
	}
}

// valueForm returns the bytes the server's encoder writes for v as an
// attribute value.
func valueForm(p *pair, v string) []byte { return p.srv.enc.typed(nil, v, p.srv.enc.ns) }

// roundTripValue sends v as an id and as an unknown attribute, both ways,
// and fails unless it comes back byte for byte.
func roundTripValue(t *testing.T, p *pair, v string) {
	t.Helper()
	el := stanza.New("message", nsClient).SetAttr("id", v).SetAttr("x-value", v)
	for _, dir := range []func(testing.TB, *stanza.Element) ([]byte, *stanza.Element){p.s2c, p.c2s} {
		if _, got := dir(t, el); got.ID() != v || got.Attr("x-value") != v {
			t.Fatalf("%q came back as %s", v, dump(got))
		}
	}
}

func TestB32HArchiveIDs(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	ids := []string{
		archiveID,
		store.NewArchiveID(time.Now()),
		store.NewArchiveID(time.Unix(0, 0)),
		store.NewArchiveID(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)),
		store.FormatArchiveID(store.ArchivePos{0: 0x80}), // the epoch, sequence 0
		store.FormatArchiveID(store.ArchivePos{0: 0xff, 19: 0xff}),
	}
	for _, id := range ids {
		b := valueForm(p, id)
		if b[0] != vB32H || len(b) != 22 {
			t.Errorf("%q: written as % x (%d bytes), want B32H in 22", id, b, len(b))
		}
		roundTripValue(t, p, id)
	}
	// A repeat of the id in the same stanza is a back-reference to it.
	el := parseOne(t, `<message id='`+archiveID+`'><stanza-id xmlns='urn:xmpp:sid:0' by='example.com' id='`+archiveID+`'/></message>`)
	b, got := p.s2c(t, el)
	if dump(got) != dump(el) {
		t.Fatalf("got %s, want %s", dump(got), dump(el))
	}
	if !bytes.Contains(b, []byte{vBackref, 0}) {
		t.Fatalf("no back-reference in % x", b)
	}
}

// TestB32HForms checks which values the encoder writes as B32H: canonical
// strings that no smaller form takes, never anything else, and every
// value comes back exactly whatever its form.
func TestB32HForms(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	long := b32hRefString(bytes.Repeat([]byte{0xa5, 0x3c, 0x0f}, 100)) // 300 bytes: a 2-byte length
	cases := []struct {
		v    string
		form byte
		size int
	}{
		{"g0", vB32H, 3},
		{"b9vg", vB32H, 4},
		{"b9vq8", vB32H, 5},
		{"b9vq9i8", vB32H, 6},
		{"b9vq9ife", vB32H, 7},
		{"b9vq9ife2c", vB32H, 8},
		{"b9vq9ife2cs5q", vB32H, 10},
		{long, vB32H, 303},
		{"0000000", vB32H, 6}, // decimal with a leading zero, odd length
		{"ab0g", vB32H, 4},    // base64 too, where it is 5 bytes
		{"b8", vHex, 3},       // hex digits, even length: HEX is no larger
		{"deadbeef", vHex, 6}, // B32H would be 7
		{"00000000", vHex, 6},
		{"12345678", vInt, 5}, // B32H would be 7
		{msgID, vUUID, 17},
		{"AAEC", vHexUpper, 4},
		{"AQ==", vB64, 3},
		{"g1", vRaw, 4},   // bits beyond the last byte
		{"b9vh", vB64, 5}, // which base64 takes
		{"b9vq9i9", vRaw, 9},
		{"b9v", vRaw, 5}, // lengths no byte count gives
		{"b9vq9i", vRaw, 8},
		{"b9vq9ife2", vRaw, 11},
		{"B9VQ9IFE", vB64, 8}, // upper case
		{strings.ToUpper(archiveID), vB64, 26},
		{"b9wq9ife", vB64, 8}, // w–z are not base32hex
		{"zzzzzzz", vRaw, 9},
		{"b9vg====", vRaw, 10}, // padding
		{"b9vq-9ife", vRaw, 11},
		{"b9vq9ife ", vRaw, 11},
		{"", vRaw, 2},
		{"abcv", vB64, 5}, // bits beyond the last byte, canonical base64
		{"vvvvvvvv", vB32H, 7},
		{"vvvvvvvvv", vRaw, 11},
		{"0000000g", vB32H, 7},
		{"ver14", vB32H, 5},    // a client's short id: 2 bytes below RAW
		{"bv1bs71f", vB32H, 7}, // and a random 8-character one
		{"juliet1", vRaw, 9},   // bits beyond the last byte
		{"q07IKJEyjvHSy", vRaw, 15},
	}
	for _, c := range cases {
		b := valueForm(p, c.v)
		if b[0] != c.form || len(b) != c.size {
			t.Errorf("%.40q: written as % .12x… (%d bytes), want form %#02x in %d", c.v, b, len(b), c.form, c.size)
		}
		roundTripValue(t, p, c.v)
	}
}

// TestB32HSmallerThanRaw checks the claim that justifies trying B32H at
// every length: wherever it applies it beats RAW, and it beats B64
// wherever both apply.
func TestB32HSmallerThanRaw(t *testing.T) {
	for n := 1; n <= 1000; n++ {
		s := b32hRefString(make([]byte, n))
		b32h := 1 + uvarintLen(uint64(n)) + n
		if raw := len(appendRawValue(nil, s)); b32h >= raw {
			t.Errorf("%d bytes: B32H %d, RAW %d", n, b32h, raw)
		}
		if m := b64Len(s); m > 0 && b32h >= 1+uvarintLen(uint64(m))+m {
			t.Errorf("%q: B32H %d bytes, B64 fewer", s, b32h)
		}
	}
}

// TestB32HInOpen checks a stream id in the form, which the open carries
// like any value.
func TestB32HInOpen(t *testing.T) {
	srv := NewCodec(Options{Role: Server})
	cli := NewCodec(Options{Role: Client})
	mustEvent(t, srv, cli.AppendOpen(nil, clientHeader))
	h := serverHeader
	h.ID = archiveID
	b := srv.AppendOpen(nil, h)
	if !bytes.Contains(b, append([]byte{keyID, vB32H, 20}, appendB32HBytes(nil, archiveID)...)) {
		t.Fatalf("stream id not in B32H: % x", b)
	}
	if ev := mustEvent(t, cli, b); ev.Kind != EventOpen || ev.Header != h {
		t.Fatalf("client read %s, want %+v", dumpEvent(ev), h)
	}
}

// TestB32HDecode checks the decoder: any bytes decode to their base32hex
// form, and malformed or oversized B32H values are refused.
func TestB32HDecode(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte{1, 0x00}, "00"},
		{[]byte{1, 0xff}, "vs"},
		{[]byte{3, 0xff, 0xff, 0xff}, "vvvvu"},
		{[]byte{5, 0, 0, 0, 0, 0}, "00000000"},
	} {
		srv := openServer(t, Limits{})
		ev := mustEvent(t, srv, frame(append([]byte{tMessage, 0x01, aID, vB32H}, c.in...)...))
		if got := ev.Element.ID(); got != c.want {
			t.Errorf("% x: id %q, want %q", c.in, got, c.want)
		}
	}
	big := append([]byte{tMessage, 0x01, aID, vB32H}, appendUvarint(nil, 620)...)
	big = append(big, make([]byte, 620)...)
	cases := []struct {
		name string
		lim  Limits
		in   []byte
		cond string
	}{
		{"no length", Limits{}, frame(tMessage, 0x01, aID, vB32H), stanza.StreamBadFormat},
		{"empty", Limits{}, frame(tMessage, 0x01, aID, vB32H, 0), stanza.StreamBadFormat},
		{"truncated", Limits{}, frame(tMessage, 0x01, aID, vB32H, 5, 1, 2, 3, 4), stanza.StreamBadFormat},
		{"length past the frame", Limits{}, frame(tMessage, 0x01, aID, vB32H, 0xFF, 0xFF, 0x03, 1), stanza.StreamBadFormat},
		{"length over 64 bits", Limits{}, frame(tMessage, 0x01, aID, vB32H, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F), stanza.StreamBadFormat},
		{"non-minimal length", Limits{}, frame(tMessage, 0x01, aID, vB32H, 0x81, 0x00, 1), stanza.StreamBadFormat},
		// 620 bytes are 992 characters: within the frame limit, over it
		// as XML.
		{"XML form over the limit", Limits{MaxStanzaBytes: 1000}, frame(big...), stanza.StreamPolicyViolation},
		{"empty in an open", Limits{}, frame(headOpen, 1, keyID, vB32H, 0), stanza.StreamBadFormat},
		{"truncated in an open", Limits{}, frame(headOpen, 1, keyID, vB32H, 3, 1), stanza.StreamBadFormat},
	}
	for _, c := range cases {
		srv := openServer(t, c.lim)
		err := srv.Feed(c.in)
		if err == nil {
			_, _, err = srv.Next()
		}
		if condition(err) != c.cond {
			t.Errorf("%s: got %v, want %s", c.name, err, c.cond)
		}
	}
	// The same value within the limit is accepted.
	srv := openServer(t, Limits{MaxStanzaBytes: 1100})
	if ev := mustEvent(t, srv, frame(big...)); len(ev.Element.ID()) != 992 {
		t.Fatalf("id of %d characters", len(ev.Element.ID()))
	}
}
