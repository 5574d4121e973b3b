package xmlstream

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/stanza"
)

// The writer serialises onto a caller-owned []byte so that a session can
// build a whole burst of output in one reused buffer; none of the Append
// functions allocates unless dst has to grow.
//
// Output conventions: attribute values are always single-quoted; text
// escapes & < > and CR, attribute values also ' " TAB LF CR, so that the
// peer's XML parser gives back exactly the strings of the tree. Characters
// XML 1.0 cannot carry at all (controls other than TAB, LF, CR; U+FFFE,
// U+FFFF; invalid UTF-8) are written as U+FFFD: a tree built from other
// sources must never make the server emit a stream its peer rejects as
// not-well-formed. Element and attribute names are written as they are,
// unchecked: they come from server code, not from peers (decoded names are
// valid by construction).

// AppendStreamOpen appends an XML declaration and the stream header (RFC
// 6120 §4.7): <stream:stream xmlns=h.NS xmlns:stream=... id from to version
// xml:lang>. Empty fields are left out; Version defaults to "1.0".
func AppendStreamOpen(dst []byte, h Header) []byte {
	dst = append(dst, "<?xml version='1.0'?><stream:stream"...)
	if h.NS != "" {
		dst = appendAttr(dst, "xmlns", h.NS)
	}
	dst = append(dst, " xmlns:stream='"+stanza.NSStream+"'"...)
	dst = appendHeaderAttrs(dst, h)
	return append(dst, '>')
}

// AppendStreamClose appends the stream's end tag.
func AppendStreamClose(dst []byte) []byte {
	return append(dst, "</stream:stream>"...)
}

// AppendFramedOpen appends the RFC 7395 <open/> element that stands for the
// stream header on a WebSocket; h.NS is not written (the content namespace
// is always jabber:client there).
func AppendFramedOpen(dst []byte, h Header) []byte {
	dst = append(dst, "<open xmlns='"+NSFraming+"'"...)
	dst = appendHeaderAttrs(dst, h)
	return append(dst, "/>"...)
}

// AppendFramedClose appends the RFC 7395 <close/> element.
func AppendFramedClose(dst []byte) []byte {
	return append(dst, "<close xmlns='"+NSFraming+"'/>"...)
}

func appendHeaderAttrs(dst []byte, h Header) []byte {
	if h.ID != "" {
		dst = appendAttr(dst, "id", h.ID)
	}
	if h.From != "" {
		dst = appendAttr(dst, "from", h.From)
	}
	if h.To != "" {
		dst = appendAttr(dst, "to", h.To)
	}
	v := h.Version
	if v == "" {
		v = "1.0"
	}
	dst = appendAttr(dst, "version", v)
	if h.Lang != "" {
		dst = appendAttr(dst, "xml:lang", h.Lang)
	}
	return dst
}

// Where appendElem writes an element.
const (
	nested      = iota
	topStream   // first-level child of <stream:stream>
	topFramed   // a WebSocket message of its own
	streamDecls = " xmlns:stream='" + stanza.NSStream + "'"
)

// AppendElement appends e as a first-level child of a stream whose default
// (content) namespace is parentNS, normally Header.NS. Every element gets
// xmlns='…' only where its NS differs from the namespace in scope, so
// stanzas in the content namespace carry none. An element whose NS is ""
// under a namespaced parent gets an empty xmlns declaration: NS "" means
// "no namespace", as the decoder produces it, not "inherit". Elements in
// the streams namespace (features, error) are written with the stream:
// prefix that AppendStreamOpen declares, elements in the XML namespace
// with xml:.
//
// Attribute names are written as they are, except "{uri}local" (how the
// decoder names prefixed attributes other than xml:*), for which a prefix
// is declared on the element. Attributes named xmlns or xmlns:* are
// skipped: namespaces come from NS, and a second declaration would make
// the output not well-formed.
func AppendElement(dst []byte, e *stanza.Element, parentNS string) []byte {
	return appendElem(dst, e, parentNS, topStream)
}

// AppendFramedElement appends e as one RFC 7395 WebSocket message: it
// always declares its namespace (xmlns='jabber:client' included), and
// stream-namespace elements declare the stream: prefix they use.
func AppendFramedElement(dst []byte, e *stanza.Element) []byte {
	return appendElem(dst, e, stanza.NSClient, topFramed)
}

func appendElem(dst []byte, e *stanza.Element, ctx string, where int) []byte {
	if e.Name == "" {
		return appendEscaped(dst, e.Text, false)
	}
	prefix, decl := "", ""
	childCtx := e.NS
	switch {
	case e.NS == stanza.NSXML:
		prefix, childCtx = "xml", ctx
	case e.NS == stanza.NSStream && where != nested:
		prefix, childCtx = "stream", ctx
		if where == topFramed {
			decl = streamDecls
		}
	}
	dst = append(dst, '<')
	if prefix != "" {
		dst = append(dst, prefix...)
		dst = append(dst, ':')
	}
	dst = append(dst, e.Name...)
	switch {
	case decl != "":
		dst = append(dst, decl...)
	case prefix == "" && (e.NS != ctx || where == topFramed):
		dst = appendAttr(dst, "xmlns", e.NS)
	}
	dst = appendAttrs(dst, e.Attrs)
	if len(e.Children) == 0 {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	for _, c := range e.Children {
		dst = appendElem(dst, c, childCtx, nested)
	}
	dst = append(dst, "</"...)
	if prefix != "" {
		dst = append(dst, prefix...)
		dst = append(dst, ':')
	}
	dst = append(dst, e.Name...)
	return append(dst, '>')
}

func appendAttrs(dst []byte, attrs []stanza.Attr) []byte {
	for i := range attrs {
		name := attrs[i].Name
		switch {
		case name == "":
			continue
		case name[0] == '{':
			dst = appendClarkAttr(dst, attrs, i)
		case name == "xmlns" || strings.HasPrefix(name, "xmlns:"):
			continue
		default:
			dst = appendAttr(dst, name, attrs[i].Value)
		}
	}
	return dst
}

// appendClarkAttr writes attrs[i], named "{uri}local": with prefix xml for
// the XML namespace, otherwise with a prefix "nsK" declared right there,
// K being the index of the first attribute in that namespace.
func appendClarkAttr(dst []byte, attrs []stanza.Attr, i int) []byte {
	name := attrs[i].Name
	end := strings.IndexByte(name, '}')
	if end < 0 {
		return dst // malformed; writing it would break the stream
	}
	uri, local := name[1:end], name[end+1:]
	dst = append(dst, ' ')
	switch uri {
	case "":
		dst = append(dst, local...)
	case stanza.NSXML:
		dst = append(dst, "xml:"...)
		dst = append(dst, local...)
	default:
		k := i
		for j := 0; j < i; j++ {
			if n := attrs[j].Name; len(n) > len(uri)+1 && n[0] == '{' && n[1+len(uri)] == '}' && n[1:1+len(uri)] == uri {
				k = j
				break
			}
		}
		if k == i {
			dst = append(dst, "xmlns:ns"...)
			dst = strconv.AppendInt(dst, int64(k), 10)
			dst = append(dst, "='"...)
			dst = appendEscaped(dst, uri, true)
			dst = append(dst, "' "...)
		}
		dst = append(dst, "ns"...)
		dst = strconv.AppendInt(dst, int64(k), 10)
		dst = append(dst, ':')
		dst = append(dst, local...)
	}
	dst = append(dst, "='"...)
	dst = appendEscaped(dst, attrs[i].Value, true)
	return append(dst, '\'')
}

func appendAttr(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, "='"...)
	dst = appendEscaped(dst, value, true)
	return append(dst, '\'')
}

// appendEscaped writes s as character data or (attr) as a single-quoted
// attribute value.
func appendEscaped(dst []byte, s string, attr bool) []byte {
	run := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if class[c]&cAttr != 0 || c == ']' || !attr && (c == '"' || c == '\'' || c == '\n' || c == '\t') {
				i++
				continue
			}
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if (r != utf8.RuneError || size > 1) && isChar(r) {
				i += size
				continue
			}
			dst = append(dst, s[run:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			run = i
			continue
		}
		var esc string
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '\'':
			esc = "&apos;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			esc = "\uFFFD"
		}
		dst = append(dst, s[run:i]...)
		dst = append(dst, esc...)
		i++
		run = i
	}
	return append(dst, s[run:]...)
}
