package xmlstream

import "github.com/parley-im/parley/stanza"

// NSFraming is the namespace of the RFC 7395 <open/> and <close/> elements
// that stand for the stream header and footer on a WebSocket.
const NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// Kind says what a Token carries.
type Kind uint8

// Token kinds.
const (
	// KindStreamOpen is a stream header (<stream:stream ...> or, framed,
	// <open/>); Token.Header is set.
	KindStreamOpen Kind = iota + 1
	// KindElement is a complete top-level element (a stanza, a nonza such as
	// <starttls/> or <auth/>, or <stream:features/>); Token.Element is set.
	KindElement
	// KindStreamClose is </stream:stream> or, framed, <close/>; in framed
	// mode Token.Element holds the <close/> element so that its attributes
	// (see-other-uri) can be read.
	KindStreamClose
)

// String returns the kind's name, for logs.
func (k Kind) String() string {
	switch k {
	case KindStreamOpen:
		return "StreamOpen"
	case KindElement:
		return "Element"
	case KindStreamClose:
		return "StreamClose"
	}
	return "Kind(?)"
}

// Token is one complete unit of the stream.
type Token struct {
	Kind    Kind
	Header  *Header         // KindStreamOpen only
	Element *stanza.Element // KindElement; framed KindStreamClose
}

// Header holds the stream header attributes (RFC 6120 §4.7). On input
// absent attributes are "". On output (AppendStreamOpen) empty fields are
// omitted, except Version, which defaults to "1.0".
type Header struct {
	// NS is the stream's content namespace: the default namespace the
	// header declares (jabber:client, jabber:server), which top-level
	// elements without their own xmlns inherit. A framed stream has no such
	// declaration; its decoder reports jabber:client, the only content
	// namespace RFC 7395 allows. The decoder does not judge NS: checking it
	// is the session's business (invalid-namespace).
	NS      string
	To      string
	From    string
	ID      string
	Version string
	Lang    string // xml:lang
}
