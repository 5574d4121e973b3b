package jid

import (
	"errors"
	"testing"
)

// FuzzParse checks that parsing never panics, that every error wraps
// ErrMalformed, and that a parsed JID survives a round trip through its
// string form (see checkInvariants). The seed corpus lives in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrMalformed", s, err)
			}
			if !j.IsZero() {
				t.Fatalf("Parse(%q) returned %q with an error", s, j)
			}
			return
		}
		checkInvariants(t, s, j)
		if fast, ok := parseFast(s); ok && fast != j {
			t.Fatalf("Parse(%q): fast path %#v differs from result %#v", s, fast, j)
		}
		if slow, err := parseSlow(s); err != nil || slow != j {
			t.Fatalf("Parse(%q) = %#v, slow path = %#v, %v", s, j, slow, err)
		}
	})
}

// FuzzNickname checks that Nickname is idempotent and that its output is
// always usable as a resourcepart.
func FuzzNickname(f *testing.F) {
	for _, s := range []string{"Juliet", "  a  b  ", "Ｊ", "ⅸ", "\u3000x", "e\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Nickname(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Nickname(%q): error %v does not wrap ErrMalformed", s, err)
			}
			return
		}
		if again, err := Nickname(n); err != nil || again != n {
			t.Fatalf("Nickname(%q) = %q, but Nickname(%q) = %q, %v", s, n, n, again, err)
		}
		if r, err := normResource(n); err != nil || r != n {
			t.Fatalf("Nickname(%q) = %q is not a normalised resourcepart: %q, %v", s, n, r, err)
		}
	})
}

// FuzzPunycode checks that decoding never panics and that anything that
// decodes re-encodes to the same (lower-cased) text.
func FuzzPunycode(f *testing.F) {
	for _, s := range []string{"mnchen-3ya", "bcher-kva", "ihqwcrb4cv8a8dqg056pqjye", "-tda", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := punyDecode(s)
		if err != nil {
			return
		}
		enc, err := punyEncode(u)
		if err != nil {
			t.Fatalf("punyEncode(punyDecode(%q) = %q): %v", s, u, err)
		}
		back, err := punyDecode(enc)
		if err != nil || back != u {
			t.Fatalf("punyDecode(%q) = %q, %v; want %q", enc, back, err, u)
		}
	})
}
