package binary

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/stanza"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzDecoder/seed_* from the corpus")

// FuzzDecoder feeds arbitrary bytes in arbitrary chunks. The first input
// byte picks the role (bit 0), small limits (bit 1) and the chunking (the
// rest); the remaining bytes are the peer's stream. Properties:
//   - no panic, and every error is a *stanza.StreamError;
//   - the events and the error do not depend on the chunking;
//   - a decoder that consumed everything holds no buffer;
//   - every element decoded survives the binary codec again unchanged;
//   - its XML form is within the stanza limit and the XML codec reads it
//     back as the same tree, so anything a binary client sends can be
//     handed to XML clients and to the store.
func FuzzDecoder(f *testing.F) {
	cliOpen := NewCodec(Options{Role: Client}).AppendOpen(nil, clientHeader)
	f.Add(append([]byte{0x00}, append(cliOpen, frame(tR)...)...))
	f.Add(append([]byte{0x04}, append(cliOpen, frame(tMessage, 0x01, aTo, vAliasDef|jidLocal, 1, 'a')...)...))
	// B32H at the edges the corpus seeds do not reach: in the server's
	// open, empty, cut short, and expanding past the small limits.
	srvOpen := NewCodec(Options{Role: Server}).AppendOpen(nil, Header{From: domain, ID: archiveID})
	f.Add(append([]byte{0x01}, append(srvOpen, frame(tMessage, 0x01, aID, vB32H, 1, 0xff)...)...))
	f.Add(append([]byte{0x00}, append(cliOpen, frame(tMessage, 0x02, aID, vB32H, 3, 1, 2, 3, aID, vBackref, 0)...)...))
	f.Add(append([]byte{0x00}, append(cliOpen, frame(tMessage, 0x01, aID, vB32H, 0)...)...))
	f.Add(append([]byte{0x00}, append(cliOpen, frame(tMessage, 0x01, aID, vB32H, 5, 1, 2)...)...))
	big := append([]byte{tMessage, 0x01, aID, vB32H}, appendUvarint(nil, 1270)...)
	f.Add(append([]byte{0x02}, append(cliOpen, frame(append(big, make([]byte, 1270)...)...)...)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ctl, in := data[0], data[1:]
		opts := Options{}
		if ctl&1 != 0 {
			opts.Role = Client
		}
		if ctl&2 != 0 {
			opts.Limits = Limits{MaxStanzaBytes: 2048, MaxDepth: 4, MaxAttrs: 4, MaxChildren: 8, MaxNameLen: 8, AliasBytes: 128}
		}
		lim := opts.Limits.withDefaults(opts.Role)
		newDec := func() *Codec {
			c := NewCodec(opts)
			if opts.Role == Client {
				c.AppendOpen(nil, clientHeader)
			}
			return c
		}
		d := newDec()
		var got []string
	feed:
		for _, ch := range split(in, ctl>>2) {
			if err := d.Feed(ch); err != nil {
				checkStreamError(t, err)
				got = append(got, "error:"+condition(err))
				break
			}
			for {
				ev, ok, err := d.Next()
				if err != nil {
					checkStreamError(t, err)
					got = append(got, "error:"+condition(err))
					break feed
				}
				if !ok {
					break
				}
				got = append(got, dumpEvent(ev))
				if ev.Kind == EventElement {
					checkElement(t, ev.Element, lim)
				}
			}
		}
		if want := decodeAll(newDec(), [][]byte{in}); !equalStrings(got, want) {
			t.Fatalf("chunked:\n got  %q\n want %q", got, want)
		}
		if d.dec.err == nil && d.dec.pos == len(d.dec.buf) && d.dec.buf != nil {
			t.Fatal("idle decoder holds its buffer")
		}
	})
}

func checkStreamError(t *testing.T, err error) {
	var se *stanza.StreamError
	if !errors.As(err, &se) {
		t.Fatalf("error is not a stream error: %v", err)
	}
}

func checkElement(t *testing.T, el *stanza.Element, lim Limits) {
	t.Helper()
	want := dump(el)
	p := newPair(t, Options{}, Options{})
	if _, got := p.s2c(t, el); dump(got) != want {
		t.Fatalf("binary round trip:\n got  %s\n want %s", dump(got), want)
	}
	x := toXML(el)
	if len(x) > lim.MaxStanzaBytes {
		t.Fatalf("accepted a stanza of %d XML bytes, limit %d: %s", len(x), lim.MaxStanzaBytes, x)
	}
	again := parseOne(t, x)
	if a, b := dump(mergeText(again)), dump(mergeText(el.Copy())); a != b {
		t.Fatalf("XML round trip via %s:\n got  %s\n want %s", x, a, b)
	}
}

// mergeText joins adjacent text nodes, which XML cannot keep apart.
func mergeText(e *stanza.Element) *stanza.Element {
	var kids []*stanza.Element
	for _, c := range e.Children {
		if c.Name == "" && len(kids) > 0 && kids[len(kids)-1].Name == "" {
			kids[len(kids)-1] = stanza.TextNode(kids[len(kids)-1].Text + c.Text)
			continue
		}
		if c.Name != "" {
			mergeText(c)
		}
		kids = append(kids, c)
	}
	e.Children = kids
	return e
}

// split cuts b into chunks following a small PRNG seeded by seed: 0 feeds
// everything at once, 1..7 fixed sizes, others 1..64-byte chunks.
func split(b []byte, seed byte) [][]byte {
	if seed == 0 {
		return [][]byte{b}
	}
	var out [][]byte
	x := uint32(seed)*2654435761 + 1
	for len(b) > 0 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		n := int(x%64) + 1
		if seed < 8 {
			n = int(seed)
		}
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// TestFuzzSeeds writes the committed seed corpus when run with
// -update-seeds: client and server streams carrying the test corpus, so
// that fuzzing starts from every form the encoder writes.
func TestFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite the seed corpus")
	}
	_, els := corpus(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzDecoder")
	old, _ := filepath.Glob(filepath.Join(dir, "seed_*"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	write := func(name string, data []byte) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n[]byte(")
		b.WriteString(fmt.Sprintf("%q", data))
		b.WriteString(")\n")
		if err := os.WriteFile(filepath.Join(dir, "seed_"+name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(els); i += 4 {
		end := min(i+4, len(els))
		// The client's stream, read by a server (role bit 0).
		p := newPair(t, Options{}, Options{})
		c2s := p.cli.AppendOpen(nil, clientHeader)
		p.srv.Reset()
		mustEvent(t, p.srv, c2s)
		mustEvent(t, p.cli, p.srv.AppendOpen(nil, serverHeader))
		for _, el := range els[i:end] {
			c2s = p.cli.AppendElement(c2s, el)
			c2s = p.cli.AppendElement(c2s, el)
		}
		c2s = p.cli.AppendClose(c2s)
		write(fmt.Sprintf("c2s_%02d", i/4), append([]byte{byte(i%3) << 2}, c2s...))
		// The server's stream, read by a client (role bit 1).
		s2c := serverStream(t, els[i:end])
		write(fmt.Sprintf("s2c_%02d", i/4), append([]byte{1 | byte(i%5)<<2}, s2c...))
	}
}
