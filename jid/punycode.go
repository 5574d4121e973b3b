package jid

import (
	"errors"
	"math"
	"strings"
	"unicode/utf8"
)

// Punycode (RFC 3492) is implemented here rather than imported because the
// only maintained implementation lives in golang.org/x/net/idna, which this
// module does not depend on. We need it to turn A-labels ("xn--…") into the
// U-labels RFC 7622 §3.2 requires, to enforce the 63-octet DNS label limit
// on U-labels, and to give callers the ASCII form for DNS lookups.

const (
	punyBase        = 36
	punyTMin        = 1
	punyTMax        = 26
	punySkew        = 38
	punyDamp        = 700
	punyInitialBias = 72
	punyInitialN    = 128
	punyMaxInt      = math.MaxInt32
)

var errPunycode = errors.New("invalid punycode")

func punyAdapt(delta, numPoints int32, first bool) int32 {
	if first {
		delta /= punyDamp
	} else {
		delta /= 2
	}
	delta += delta / numPoints
	k := int32(0)
	for delta > ((punyBase-punyTMin)*punyTMax)/2 {
		delta /= punyBase - punyTMin
		k += punyBase
	}
	return k + (punyBase-punyTMin+1)*delta/(delta+punySkew)
}

func punyThreshold(k, bias int32) int32 {
	switch {
	case k <= bias:
		return punyTMin
	case k >= bias+punyTMax:
		return punyTMax
	}
	return k - bias
}

func punyDigit(c byte) (int32, bool) {
	switch {
	case 'a' <= c && c <= 'z':
		return int32(c - 'a'), true
	case 'A' <= c && c <= 'Z':
		return int32(c - 'A'), true
	case '0' <= c && c <= '9':
		return int32(c-'0') + 26, true
	}
	return 0, false
}

func punyEncodeDigit(d int32) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punyDecode decodes the part of an A-label after "xn--".
func punyDecode(s string) (string, error) {
	var out []rune
	pos := 0
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		for j := 0; j < i; j++ {
			if s[j] >= utf8.RuneSelf {
				return "", errPunycode
			}
			out = append(out, rune(s[j]))
		}
		pos = i + 1
	}
	n, bias, i := int32(punyInitialN), int32(punyInitialBias), int32(0)
	for pos < len(s) {
		oldi, w := i, int32(1)
		for k := int32(punyBase); ; k += punyBase {
			if pos >= len(s) {
				return "", errPunycode
			}
			digit, ok := punyDigit(s[pos])
			pos++
			if !ok || digit > (punyMaxInt-i)/w {
				return "", errPunycode
			}
			i += digit * w
			t := punyThreshold(k, bias)
			if digit < t {
				break
			}
			if w > punyMaxInt/(punyBase-t) {
				return "", errPunycode
			}
			w *= punyBase - t
		}
		length := int32(len(out) + 1)
		bias = punyAdapt(i-oldi, length, oldi == 0)
		if i/length > punyMaxInt-n {
			return "", errPunycode
		}
		n += i / length
		i %= length
		// A basic code point must not be encoded as a delta, otherwise the
		// same U-label would have several A-label spellings.
		if n < punyInitialN || n > utf8.MaxRune || (0xD800 <= n && n <= 0xDFFF) {
			return "", errPunycode
		}
		out = append(out, 0)
		copy(out[i+1:], out[i:])
		out[i] = n
		i++
	}
	return string(out), nil
}

// punyEncode encodes a U-label; the caller adds the "xn--" prefix. The input
// is valid UTF-8 (it has passed PRECIS enforcement).
func punyEncode(s string) (string, error) {
	runes := []rune(s)
	out := make([]byte, 0, len(s)+8)
	for _, r := range runes {
		if r < utf8.RuneSelf {
			out = append(out, byte(r))
		}
	}
	basic := int32(len(out))
	h := basic
	if basic > 0 {
		out = append(out, '-')
	}
	n, bias, delta := int32(punyInitialN), int32(punyInitialBias), int32(0)
	for h < int32(len(runes)) {
		m := int32(punyMaxInt)
		for _, r := range runes {
			if r >= n && r < m {
				m = r
			}
		}
		if m-n > (punyMaxInt-delta)/(h+1) {
			return "", errPunycode
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range runes {
			if r < n {
				if delta == punyMaxInt {
					return "", errPunycode
				}
				delta++
				continue
			}
			if r > n {
				continue
			}
			q := delta
			for k := int32(punyBase); ; k += punyBase {
				t := punyThreshold(k, bias)
				if q < t {
					break
				}
				out = append(out, punyEncodeDigit(t+(q-t)%(punyBase-t)))
				q = (q - t) / (punyBase - t)
			}
			out = append(out, punyEncodeDigit(q))
			bias = punyAdapt(delta, h+1, h == basic)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out), nil
}
