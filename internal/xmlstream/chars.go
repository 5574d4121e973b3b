package xmlstream

import (
	"bytes"
	"unicode/utf8"
)

// Byte classes for the ASCII fast paths.
const (
	cNameStart = 1 << iota // may start an NCName
	cName                  // may continue an NCName
	cText                  // character data copied as is (no &, <, >, ], CR, controls)
	cAttr                  // attribute value byte copied as is (also no TAB, LF, quotes)
)

var class = func() (t [256]uint8) {
	for c := 0; c < 0x80; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
			t[c] |= cNameStart | cName
		case c >= '0' && c <= '9', c == '-', c == '.':
			t[c] |= cName
		}
		if c >= 0x20 {
			switch c {
			case '&', '<', '>', ']':
			default:
				t[c] |= cText
				if c != '"' && c != '\'' {
					t[c] |= cAttr
				}
			}
		}
	}
	return t
}()

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte of b at or
// after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// IsChar reports whether r is an XML 1.0 Char (XML §2.2); the binary
// encoding holds its text to the same rule so any stanza can be written as
// XML.
func IsChar(r rune) bool { return isChar(r) }

// IsNameStartChar reports whether r may start an NCName (XML 1.0 fifth
// edition NameStartChar without ':').
func IsNameStartChar(r rune) bool { return isNameStartRune(r) }

// IsNameChar reports whether r may continue an NCName (NameChar without ':').
func IsNameChar(r rune) bool { return isNameRune(r) }

// isChar reports whether r is an XML 1.0 Char (XML §2.2).
func isChar(r rune) bool {
	switch {
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r == 0x9 || r == 0xA || r == 0xD:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// isNameStartRune is XML 1.0 (fifth edition) NameStartChar without ':'.
func isNameStartRune(r rune) bool {
	if r < 0x80 {
		return class[r]&cNameStart != 0
	}
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

// isNameRune is XML 1.0 NameChar without ':'.
func isNameRune(r rune) bool {
	if r < 0x80 {
		return class[r]&cName != 0
	}
	return isNameStartRune(r) || r == 0xB7 || (r >= 0x300 && r <= 0x36F) || (r >= 0x203F && r <= 0x2040)
}

// scanNCName returns the end of the NCName starting at b[i]; end == i when
// there is none. Invalid UTF-8 inside a name is an error rather than a
// mere end of the name, so the caller's message is accurate.
func scanNCName(b []byte, i int) (int, error) {
	start := i
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			want := uint8(cName)
			if i == start {
				want = cNameStart
			}
			if class[c]&want == 0 {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i, errNotWellFormed("invalid UTF-8")
		}
		if i == start && !isNameStartRune(r) || i > start && !isNameRune(r) {
			break
		}
		i += size
	}
	return i, nil
}

// isName reports whether all of b is an XML Name (colons allowed); it only
// decides which error an unknown entity reference gets.
func isName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r != ':' && (i == 0 && !isNameStartRune(r) || !isNameRune(r)) {
			return false
		}
		i += size
	}
	return true
}

// Character data modes for decodeChars.
const (
	modeText  = iota // element content: references, ]]> forbidden
	modeCDATA        // CDATA section: no references, only line ends normalised
	modeAttr         // attribute value: references, whitespace normalised, < forbidden
)

// maxRefLen bounds an entity or character reference, '&' and ';' included.
// A reference is judged once this many bytes follow its '&' (or the text
// ends), which keeps the verdict independent of how input was chunked.
const maxRefLen = 32

// decodeChars validates the raw character data s and decodes references,
// line ends and (for attributes) whitespace (XML §2.11, §3.3.3, §4.6).
// Most data needs no change: then d.text is left untouched, changed is
// false and the caller may use s itself. Otherwise the decoded form of all
// of s is appended to d.text and changed is true.
//
// Characters outside XML's Char production, invalid UTF-8 and malformed
// references are not-well-formed (they break XML §2.2's Legal Character
// and §4.1's well-formedness constraints, which is what RFC 6120 §4.9.3.13
// means; invalid-xml is for validation against a schema, which the decoder
// does not do); well-formed references to entities other than the five
// predefined ones are restricted-xml (RFC 6120 §11.1).
func (d *Decoder) decodeChars(s []byte, mode int) (changed bool, err error) {
	want := uint8(cText)
	if mode == modeAttr {
		want = cAttr
	}
	run := 0 // start of the bytes of s not yet copied to d.text (once changed)
	emit := func(i int, repl []byte) {
		if !changed {
			changed = true
			if d.textp == nil {
				d.getText()
			}
		}
		d.text = append(d.text, s[run:i]...)
		d.text = append(d.text, repl...)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if class[c]&want != 0 {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return changed, errNotWellFormed("invalid UTF-8")
			}
			if !isChar(r) {
				return changed, errNotWellFormed("character not allowed in XML")
			}
			i += size
			continue
		}
		switch c {
		case '"', '\'', ']':
			// Quotes only get here in attribute mode, where the one not
			// delimiting the value is plain data.
			i++
		case '>':
			if mode == modeText && i >= 2 && s[i-1] == ']' && s[i-2] == ']' {
				return changed, errNotWellFormed("']]>' in character data")
			}
			i++
		case '\t', '\n':
			if mode == modeAttr {
				emit(i, space)
				run = i + 1
			}
			i++
		case '\r':
			// CR LF and lone CR both become LF (a space in attribute values).
			repl := newline
			if mode == modeAttr {
				repl = space
			}
			emit(i, repl)
			i++
			if i < len(s) && s[i] == '\n' {
				i++
			}
			run = i
		case '<':
			// Text segments end at '<', so only attribute values and CDATA
			// sections get here; CDATA may hold it.
			if mode != modeCDATA {
				return changed, errNotWellFormed("'<' in attribute value")
			}
			i++
		case '&':
			if mode == modeCDATA {
				i++
				continue
			}
			var r rune
			n, err := parseRef(s[i:], &r)
			if err != nil {
				return changed, err
			}
			var tmp [utf8.UTFMax]byte
			emit(i, utf8.AppendRune(tmp[:0], r))
			i += n
			run = i
		default:
			return changed, errNotWellFormed("control character not allowed in XML")
		}
	}
	if changed {
		d.text = append(d.text, s[run:]...)
	}
	return changed, nil
}

var (
	space   = []byte{' '}
	newline = []byte{'\n'}
)

// parseRef parses the reference at the start of s (s[0] == '&'), stores the
// character it stands for in *r and returns its length.
func parseRef(s []byte, r *rune) (int, error) {
	w := s
	if len(w) > maxRefLen {
		w = w[:maxRefLen]
	}
	semi := bytes.IndexByte(w, ';')
	if semi < 0 {
		return 0, errNotWellFormed("malformed entity reference")
	}
	body := s[1:semi]
	if len(body) > 0 && body[0] == '#' {
		v, ok := parseCharRef(body[1:])
		if !ok {
			return 0, errNotWellFormed("malformed character reference")
		}
		if !isChar(v) {
			return 0, errNotWellFormed("character reference to a character not allowed in XML")
		}
		*r = v
		return semi + 1, nil
	}
	switch string(body) {
	case "lt":
		*r = '<'
	case "gt":
		*r = '>'
	case "amp":
		*r = '&'
	case "quot":
		*r = '"'
	case "apos":
		*r = '\''
	default:
		if isName(body) {
			return 0, errRestricted("entity references are not allowed")
		}
		return 0, errNotWellFormed("malformed entity reference")
	}
	return semi + 1, nil
}

// parseCharRef parses the digits of "#123" or "#x7B" (without '#').
func parseCharRef(b []byte) (rune, bool) {
	base := rune(10)
	if len(b) > 0 && b[0] == 'x' {
		base = 16
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var v rune
	for _, c := range b {
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		v = v*base + d
		if v > utf8.MaxRune {
			return 0, false
		}
	}
	return v, true
}

// safeLen returns how much of the unterminated character data b can be
// decoded now. It holds back a tail whose meaning depends on bytes not yet
// received: an incomplete UTF-8 sequence, a CR that may start CR LF, up to
// two ']' that may start "]]>" and, outside CDATA, a reference whose ';'
// has not arrived. The tail is at most maxRefLen bytes.
func safeLen(b []byte, mode int) int {
	n := len(b)
	for k := 1; k <= utf8.UTFMax-1 && k <= n; k++ {
		c := b[n-k]
		if c < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[n-k:]) {
				n -= k
			}
			break
		}
	}
	if n > 0 && b[n-1] == '\r' {
		n--
	}
	for k := 0; k < 2 && n > 0 && b[n-1] == ']'; k++ {
		n--
	}
	if mode != modeCDATA {
		if amp := bytes.LastIndexByte(b[:n], '&'); amp >= 0 && len(b)-amp < maxRefLen &&
			bytes.IndexByte(b[amp:n], ';') < 0 {
			n = amp
		}
	}
	return n
}
