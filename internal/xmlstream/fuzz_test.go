package xmlstream

import (
	"strings"
	"testing"
)

// FuzzDecoder feeds arbitrary bytes in arbitrary chunks. The first input
// byte picks the mode and the chunking; the rest is the stream. Properties:
// no panic; in stream mode the tokens and the final error do not depend on
// the chunking; every element decoded survives AppendElement and a second
// decoding unchanged.
func FuzzDecoder(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzDecoder holds the seeds;
	// these few keep the target useful without it.
	f.Add([]byte("\x00" + hdr + "<message to='a@b'><body>hi</body></message></stream:stream>"))
	f.Add([]byte("\x01<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ctl, in := data[0], data[1:]
		lim := DefaultLimits()
		if ctl&2 != 0 {
			// Small limits, so that the fuzzer reaches them.
			lim = Limits{MaxStanzaBytes: 1 << 20, MaxDepth: 4, MaxAttrs: 4, MaxNameLen: 8, MaxChildren: 4}
		}
		chunks := split(in, ctl>>2)
		if ctl&1 != 0 {
			fuzzFramed(t, lim, chunks)
			return
		}
		newDec := func() *Decoder { return NewDecoder(lim) }
		d := newDec()
		var got []string
		ns := ""
	feed:
		for _, c := range chunks {
			if err := d.Feed(c); err != nil {
				got = append(got, "error:"+condition(err))
				break
			}
			for {
				tok, ok, err := d.Next()
				if err != nil {
					if strings.HasPrefix(condition(err), "non-stream-error") {
						t.Fatalf("error is not a stream error: %v", err)
					}
					got = append(got, "error:"+condition(err))
					break feed
				}
				if !ok {
					break
				}
				got = append(got, dumpToken(tok))
				switch tok.Kind {
				case KindStreamOpen:
					ns = tok.Header.NS
				case KindElement:
					checkRoundTrip(t, tok, ns)
				}
			}
		}
		want := oneShot(newDec, string(in))
		if !equalStrings(got, want) {
			t.Fatalf("chunked %q:\n got  %q\n want %q", chunks, got, want)
		}
		checkIdle(t, d)
	})
}

func fuzzFramed(t *testing.T, lim Limits, frames [][]byte) {
	d := NewFramedDecoder(lim)
	for _, f := range frames {
		if err := d.Feed(f); err != nil {
			checkIdle(t, d)
			return
		}
		for {
			tok, ok, err := d.Next()
			if err != nil {
				checkIdle(t, d)
				return
			}
			if !ok {
				checkIdle(t, d)
				break
			}
			if tok.Kind != KindElement {
				continue
			}
			buf := AppendFramedElement(nil, tok.Element)
			d2 := NewFramedDecoder(Limits{MaxStanzaBytes: 1 << 30, MaxDepth: 1 << 20, MaxAttrs: 1 << 20, MaxNameLen: 1 << 20, MaxChildren: 1 << 30})
			if err := d2.Feed(buf); err != nil {
				t.Fatal(err)
			}
			tok2, ok, err := d2.Next()
			if err != nil || !ok {
				t.Fatalf("re-decoding %q: %v %v", buf, ok, err)
			}
			if tok2.Kind != KindElement || dump(tok2.Element) != dump(tok.Element) {
				t.Fatalf("framed round trip via %q:\n got  %s\n want %s", buf, dumpToken(tok2), dump(tok.Element))
			}
		}
	}
}

func checkRoundTrip(t *testing.T, tok Token, ns string) {
	t.Helper()
	got, err := roundTrip(tok.Element, ns)
	if err != nil {
		t.Fatalf("re-decoding %q: %v", AppendElement(nil, tok.Element, ns), err)
	}
	if got == nil || dump(got) != dump(tok.Element) {
		t.Fatalf("round trip via %q:\n got  %s\n want %s", AppendElement(nil, tok.Element, ns), dump(got), dump(tok.Element))
	}
}

// split cuts b into chunks whose sizes follow a small PRNG seeded by seed:
// seed 0 feeds everything at once, other seeds give 1..64-byte chunks.
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
			n = int(seed) // small fixed sizes, including byte by byte
		}
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}
