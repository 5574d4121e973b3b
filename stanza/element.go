// Package stanza is Parley's codec-neutral element tree: the one representation
// of XMPP stanzas that every layer between the codecs and the router works on.
// XML and the binary encoding are two ways of writing the same tree, so nothing
// above a codec ever sees a wire format.
package stanza

import "strings"

// Common namespaces.
const (
	NSClient   = "jabber:client"
	NSServer   = "jabber:server"
	NSStream   = "http://etherx.jabber.org/streams"
	NSStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession  = "urn:ietf:params:xml:ns:xmpp-session"
	NSRoster   = "jabber:iq:roster"
	NSXML      = "http://www.w3.org/XML/1998/namespace"
	NSDelay    = "urn:xmpp:delay"
	NSStanzaID = "urn:xmpp:sid:0"
)

// Attr is one attribute. Name is the attribute's qualified name as it is
// written on the XML wire ("type", "xml:lang"); namespace declarations are
// never attributes, they live in Element.NS.
type Attr struct {
	Name  string
	Value string
}

// Element is a node of the tree. An Element whose Name is empty is a text
// node: it carries character data in Text and nothing else. Keeping text as
// child nodes preserves mixed content (XHTML-IM) without a second node type.
type Element struct {
	Name     string // local name; "" for a text node
	NS       string // namespace URI; "" inherits nothing, codecs resolve it from context
	Attrs    []Attr
	Children []*Element
	Text     string // only for text nodes
}

// New returns an element with the given name and namespace.
func New(name, ns string) *Element { return &Element{Name: name, NS: ns} }

// TextNode returns a text node.
func TextNode(s string) *Element { return &Element{Text: s} }

// IsText reports whether e is a text node.
func (e *Element) IsText() bool { return e.Name == "" }

// Attr returns the value of the named attribute, or "".
func (e *Element) Attr(name string) string {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			return e.Attrs[i].Value
		}
	}
	return ""
}

// HasAttr reports whether the named attribute is present.
func (e *Element) HasAttr(name string) bool {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			return true
		}
	}
	return false
}

// SetAttr sets (or with an empty value, removes) an attribute and returns e.
func (e *Element) SetAttr(name, value string) *Element {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			if value == "" {
				e.Attrs = append(e.Attrs[:i], e.Attrs[i+1:]...)
			} else {
				e.Attrs[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attrs = append(e.Attrs, Attr{Name: name, Value: value})
	}
	return e
}

// Append adds children and returns e.
func (e *Element) Append(children ...*Element) *Element {
	e.Children = append(e.Children, children...)
	return e
}

// AppendText adds a text node (if s is not empty) and returns e.
func (e *Element) AppendText(s string) *Element {
	if s != "" {
		e.Children = append(e.Children, TextNode(s))
	}
	return e
}

// Child returns the first child element with the given name and namespace;
// an empty ns matches any namespace.
func (e *Element) Child(name, ns string) *Element {
	for _, c := range e.Children {
		if c.Name == name && (ns == "" || c.NS == ns) {
			return c
		}
	}
	return nil
}

// ChildNS returns the first child element in the namespace, whatever its name.
func (e *Element) ChildNS(ns string) *Element {
	for _, c := range e.Children {
		if c.Name != "" && c.NS == ns {
			return c
		}
	}
	return nil
}

// Elements returns the child elements, skipping text nodes.
func (e *Element) Elements() []*Element {
	out := make([]*Element, 0, len(e.Children))
	for _, c := range e.Children {
		if c.Name != "" {
			out = append(out, c)
		}
	}
	return out
}

// RemoveChildren removes every child element with the name and namespace.
func (e *Element) RemoveChildren(name, ns string) {
	kept := e.Children[:0]
	for _, c := range e.Children {
		if c.Name == name && c.NS == ns {
			continue
		}
		kept = append(kept, c)
	}
	for i := len(kept); i < len(e.Children); i++ {
		e.Children[i] = nil
	}
	e.Children = kept
}

// TextContent returns the concatenated character data of e's direct text children.
func (e *Element) TextContent() string {
	if e.Name == "" {
		return e.Text
	}
	switch n := len(e.Children); {
	case n == 0:
		return ""
	case n == 1 && e.Children[0].Name == "":
		return e.Children[0].Text
	}
	var b strings.Builder
	for _, c := range e.Children {
		if c.Name == "" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// ChildText returns the text of the first matching child, or "".
func (e *Element) ChildText(name, ns string) string {
	if c := e.Child(name, ns); c != nil {
		return c.TextContent()
	}
	return ""
}

// Copy returns a deep copy of e. Routing hands the same stanza to several
// sessions; a session that stamps attributes must work on its own copy.
func (e *Element) Copy() *Element {
	if e == nil {
		return nil
	}
	c := &Element{Name: e.Name, NS: e.NS, Text: e.Text}
	if len(e.Attrs) > 0 {
		c.Attrs = append([]Attr(nil), e.Attrs...)
	}
	if len(e.Children) > 0 {
		c.Children = make([]*Element, len(e.Children))
		for i, ch := range e.Children {
			c.Children[i] = ch.Copy()
		}
	}
	return c
}

// ShallowCopy copies e's own attributes but shares its children: cheap when
// only top-level attributes (from, to, id) change on the way to a recipient.
func (e *Element) ShallowCopy() *Element {
	c := *e
	c.Attrs = append([]Attr(nil), e.Attrs...)
	c.Children = append([]*Element(nil), e.Children...)
	return &c
}

// Size estimates the bytes e holds; used for bounding queues, not exact.
func (e *Element) Size() int {
	n := 48 + len(e.Name) + len(e.NS) + len(e.Text)
	for _, a := range e.Attrs {
		n += 32 + len(a.Name) + len(a.Value)
	}
	for _, c := range e.Children {
		n += 8 + c.Size()
	}
	return n
}

// Stanza accessors for the top-level attributes routing reads.

// ID returns the id attribute.
func (e *Element) ID() string { return e.Attr("id") }

// To returns the to attribute.
func (e *Element) To() string { return e.Attr("to") }

// From returns the from attribute.
func (e *Element) From() string { return e.Attr("from") }

// Type returns the type attribute.
func (e *Element) Type() string { return e.Attr("type") }

// IsStanza reports whether e is a message, presence or iq.
func (e *Element) IsStanza() bool {
	return e.Name == "message" || e.Name == "presence" || e.Name == "iq"
}
