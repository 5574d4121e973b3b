package binary

import (
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/internal/xmlstream"
)

// Everything a binary peer sends must be writable as XML: the server hands
// the same tree to XML clients and to the store. So strings are checked
// against XML 1.0's Char production and names against NCName, exactly what
// an XML parser would have enforced on the XML form.

const (
	aOK    = 1 << iota // an XML Char written as is in XML text
	aEsc               // an XML Char that XML escapes (& < > ' " TAB LF CR)
	aName              // may continue an NCName
	aStart             // may start an NCName
)

var ascii = func() (t [128]uint8) {
	for c := 0; c < 128; c++ {
		switch {
		case c == '&', c == '<', c == '>', c == '\'', c == '"', c == '\t', c == '\n', c == '\r':
			t[c] = aEsc
		case c >= 0x20:
			t[c] = aOK
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
			t[c] |= aName | aStart
		case c >= '0' && c <= '9', c == '-', c == '.':
			t[c] |= aName
		}
	}
	return t
}()

// checkChars reports whether b is valid UTF-8 made of XML Chars, and how
// many of its bytes XML would write as an entity or character reference.
func checkChars(b []byte) (esc int, ok bool) {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch ascii[c] & (aOK | aEsc) {
			case aOK:
			case aEsc:
				esc++
			default:
				return 0, false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 || !isChar(r) {
			return 0, false
		}
		i += size
	}
	return esc, true
}

// escCount counts the bytes of s that XML escapes (s is known valid).
func escCount(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < utf8.RuneSelf && ascii[c]&aEsc != 0 {
			n++
		}
	}
	return n
}

// cleanString reports whether s needs no sanitising.
func cleanString(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if ascii[c]&(aOK|aEsc) == 0 {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || !isChar(r) {
			return false
		}
		i += size
	}
	return true
}

// sanitize replaces invalid UTF-8 and characters XML cannot carry with
// U+FFFD, as the XML writer does: the encoder must never emit a string its
// peer rejects.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || !isChar(r) {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// The XML character and name rules are xmlstream's: one definition of what
// XML accepts, since every binary stanza must be writable as XML.
func isChar(r rune) bool      { return xmlstream.IsChar(r) }
func isNameStart(r rune) bool { return xmlstream.IsNameStartChar(r) }
func isNameChar(r rune) bool  { return xmlstream.IsNameChar(r) }

// isNCName reports whether b is an XML NCName (a name without colons).
func isNCName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); {
		r, size := rune(b[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return false
			}
		}
		if i == 0 && !isNameStart(r) || i > 0 && !isNameChar(r) {
			return false
		}
		i += size
	}
	return true
}

// validAttrName reports whether a literal attribute name is one the tree
// can hold and XML can write: an NCName other than xmlns, or "xml:" and an
// NCName.
func validAttrName(b []byte) bool {
	if len(b) > 4 && string(b[:4]) == "xml:" {
		return isNCName(b[4:])
	}
	return isNCName(b) && string(b) != "xmlns"
}
