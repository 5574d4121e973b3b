package jid

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/bidi"
)

// TestFastPathMatchesSlowPath checks the one property the fast path must
// have: whenever it accepts an input, the full PRECIS pipeline accepts it
// too and produces the identical JID. Inputs are drawn mostly from an ASCII
// alphabet weighted towards separators, case and the characters that sit at
// the edges of the fast path's byte classes, so that both acceptance and
// every rejection branch are exercised.
func TestFastPathMatchesSlowPath(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const (
		common = "abcdefghijklmnopqrstuvwxyz0123456789"
		edges  = "-.-.@/AZaz09 !\"&'/:<>@~`[]_+%\x7f\x00\t"
	)
	part := func(alphabet string, max int) string {
		var b strings.Builder
		for range rng.IntN(max + 1) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	mixed := func(max int) string {
		if rng.IntN(4) == 0 {
			return part(common+edges, max)
		}
		return part(common, max)
	}
	label := func() string {
		switch rng.IntN(20) {
		case 0:
			return "xn--" + part(common, 8)
		case 1:
			return strings.Repeat("a", 62+rng.IntN(3))
		case 2:
			return part("0123456789", 3)
		}
		return mixed(8)
	}
	gen := func() string {
		var b strings.Builder
		if rng.IntN(3) > 0 {
			b.WriteString(mixed(10))
			b.WriteByte('@')
		}
		for i := range 1 + rng.IntN(4) {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(label())
		}
		if rng.IntN(5) == 0 {
			b.WriteByte('.')
		}
		if rng.IntN(2) == 0 {
			b.WriteByte('/')
			b.WriteString(part(common+edges+"ABCXYZ   ", 12))
		}
		return b.String()
	}

	inputs := []string{
		"", "a", "a@b", "a@b/c", "@b", "a@", "b/", "a@b/", "a@b.", "1.2.3.4",
		strings.Repeat("a", MaxPartLen) + "@b",
		strings.Repeat("a", MaxPartLen+1) + "@b",
		"b/" + strings.Repeat("r", MaxPartLen),
		"b/" + strings.Repeat("r", MaxPartLen+1),
		strings.Repeat(strings.Repeat("d", 63)+".", 15) + strings.Repeat("d", 63),
	}
	for range n {
		inputs = append(inputs, gen())
	}
	accepted := 0
	for _, s := range inputs {
		fast, ok := parseFast(s)
		if !ok {
			continue
		}
		accepted++
		slow, err := parseSlow(s)
		if err != nil {
			t.Fatalf("fast path accepted %q, slow path rejects it: %v", s, err)
		}
		if fast != slow {
			t.Fatalf("fast path gives %#v for %q, slow path %#v", fast, s, slow)
		}
	}
	// Guard against a generator change silently making the test vacuous.
	if accepted < len(inputs)/10 {
		t.Fatalf("only %d of %d inputs took the fast path", accepted, len(inputs))
	}
	t.Logf("%d of %d inputs took the fast path", accepted, len(inputs))
}

// TestLocalpartMatchesUsernameCaseMapped pins down the one intended
// difference from precis.UsernameCaseMapped: following the Directionality
// Rule of RFC 8265 we apply the Bidi Rule only to strings containing
// right-to-left characters, so left-to-right names like "1é" are accepted.
// Everything else, output included, must agree with x/text.
func TestLocalpartMatchesUsernameCaseMapped(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	alpha := []rune("abcXYZ019.-_ßüÜéE\u0301ＡａＺ１Σσςİıשלוםعربي١٢日本語한국어\u0915\u094d\u200d\u200c ☃ⅸ\u3000＠<")
	extra := 0
	for i := range 100000 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteRune(alpha[rng.IntN(len(alpha))])
		}
		s := b.String()
		if i == 0 {
			s = "1é"
		}
		ours, err1 := normLocal(s)
		ref, err2 := precis.UsernameCaseMapped.String(s)
		if err2 == nil && strings.ContainsAny(ref, localForbidden) {
			err2 = errors.New("forbidden")
		}
		switch {
		case err1 == nil && err2 == nil && ours != ref:
			t.Fatalf("normLocal(%q) = %q, UsernameCaseMapped gives %q", s, ours, ref)
		case err1 != nil && err2 == nil:
			t.Fatalf("normLocal(%q) fails (%v), UsernameCaseMapped gives %q", s, err1, ref)
		case err1 == nil && err2 != nil:
			if !errors.Is(err2, bidirule.ErrInvalid) || bidirule.DirectionString(ours) == bidi.RightToLeft {
				t.Fatalf("normLocal(%q) = %q, UsernameCaseMapped fails for another reason: %v", s, ours, err2)
			}
			extra++
		}
	}
	if extra == 0 {
		t.Fatal("no left-to-right string rejected by x/text's Bidi check was generated")
	}
}
