package binary

import (
	"sync/atomic"
	"unsafe"

	"github.com/parley-im/parley/stanza"
)

// Role says which end of a connection a Codec is: the two ends negotiate
// differently (docs §6) and each encodes the JIDs of its own direction.
type Role uint8

const (
	// Server is the receiving end of a connection: it answers the client's
	// stream open and chooses the dictionary version.
	Server Role = iota
	// Client is the initiating end.
	Client
)

func (r Role) String() string {
	if r == Client {
		return "client"
	}
	return "server"
}

// Limits bounds what one peer can make the decoder hold or do. Every bound
// is checked on the wire bytes before any memory is committed for them. A
// field that is zero takes its default.
type Limits struct {
	// MaxStanzaBytes bounds a frame's payload, and also the XML form of
	// the element it carries (what an XML client or the store gets), so a
	// binary stanza can never be bigger than the XML codec would accept.
	MaxStanzaBytes int
	// MaxDepth bounds element nesting; a top-level element is at depth 1.
	MaxDepth int
	// MaxAttrs bounds the attributes of one element.
	MaxAttrs int
	// MaxChildren bounds the children (elements and text) of one element.
	MaxChildren int
	// MaxNameLen bounds literal element and attribute local names, bytes.
	MaxNameLen int
	// AliasBytes is the JID alias table the peer may build in this
	// decoder: the sum over entries of the JID's length plus 32. It is
	// announced in this end's stream open; negative means none.
	AliasBytes int
}

// Default limits.
const (
	DefaultMaxStanzaBytes = 256 << 10
	DefaultMaxDepth       = 32
	DefaultMaxAttrs       = 64
	DefaultMaxChildren    = 4096
	DefaultMaxNameLen     = 256

	// DefaultServerAliasBytes is the server's receiving table (client to
	// server), DefaultClientAliasBytes the client's (server to client):
	// the server sends most JIDs, and together they keep a server's codec
	// state under 4 KiB.
	DefaultServerAliasBytes = 1024
	DefaultClientAliasBytes = 2048

	// maxAliasBytes caps any alias table, whatever a peer announces.
	maxAliasBytes = 16 << 10
)

// DefaultLimits returns the limits used unless configured otherwise.
func DefaultLimits(r Role) Limits {
	l := Limits{
		MaxStanzaBytes: DefaultMaxStanzaBytes,
		MaxDepth:       DefaultMaxDepth,
		MaxAttrs:       DefaultMaxAttrs,
		MaxChildren:    DefaultMaxChildren,
		MaxNameLen:     DefaultMaxNameLen,
		AliasBytes:     DefaultServerAliasBytes,
	}
	if r == Client {
		l.AliasBytes = DefaultClientAliasBytes
	}
	return l
}

func (l Limits) withDefaults(r Role) Limits {
	def := DefaultLimits(r)
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = def.MaxStanzaBytes
	}
	l.MaxStanzaBytes = min(l.MaxStanzaBytes, maxFrameLen)
	if l.MaxDepth <= 0 {
		l.MaxDepth = def.MaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = def.MaxAttrs
	}
	if l.MaxChildren <= 0 {
		l.MaxChildren = def.MaxChildren
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = def.MaxNameLen
	}
	switch {
	case l.AliasBytes == 0:
		l.AliasBytes = def.AliasBytes
	case l.AliasBytes < 0:
		l.AliasBytes = 0
	}
	l.AliasBytes = min(l.AliasBytes, maxAliasBytes)
	return l
}

// Options configure a Codec.
type Options struct {
	Role   Role
	Limits Limits
	// MaxDictionary is the newest dictionary version to use; 0 means
	// Latest. A client offers it; a server accepts up to it.
	MaxDictionary int
	// SendAliasBytes bounds the alias table this end's encoder builds (and
	// so the memory it holds for it); the peer's announced AliasBytes
	// bounds it further. Zero is the default (2048 for a server, 1024 for
	// a client), negative means no aliases.
	SendAliasBytes int

	dict *dictionary // tests substitute a dictionary with more versions
}

// Header is a stream header (RFC 6120 §4.7), whatever the encoding writes
// it as. It has the fields of c2s.Header, so an adapter converts between
// them with a plain conversion.
type Header struct {
	To, From, ID, Version, Lang string
	NS                          string // content namespace (jabber:client)
}

// EventKind tells what a decoded Event is.
type EventKind int

// Decoder events.
const (
	EventOpen    EventKind = iota + 1 // a stream open: Header is set
	EventElement                      // a complete top-level element
	EventClose                        // the end of the stream
)

// Event is one unit read from the peer.
type Event struct {
	Kind    EventKind
	Header  Header
	Element *stanza.Element
}

// Codec reads and writes one connection in the binary encoding. The decoder
// half (Feed, Next, Reset) belongs to the connection's reader; the encoder
// half (AppendOpen, AppendElement, AppendClose) may be called from any
// goroutine but by one at a time (the session's output lock). The halves
// share only what the stream opens negotiate, through an atomic.
type Codec struct {
	role Role
	dict *dictionary
	// peer is what the decoder learnt from the peer's stream open, for the
	// encoder: a generation counter, the dictionary version to encode with
	// and the alias budget the peer accepts (see publish).
	peer atomic.Uint64
	dec  decoder
	enc  encoder
}

// NewCodec returns a codec for one connection.
func NewCodec(opts Options) *Codec {
	d := opts.dict
	if d == nil {
		d = std
	}
	maxDict := opts.MaxDictionary
	if maxDict <= 0 || maxDict > d.latest {
		maxDict = d.latest
	}
	lim := opts.Limits.withDefaults(opts.Role)
	send := opts.SendAliasBytes
	switch {
	case send == 0 && opts.Role == Client:
		send = DefaultServerAliasBytes
	case send == 0:
		send = DefaultClientAliasBytes
	case send < 0:
		send = 0
	}
	c := &Codec{role: opts.Role, dict: d}
	c.dec.init(c, lim, maxDict)
	c.enc.init(c, maxDict, min(send, maxAliasBytes))
	return c
}

// publish hands the encoder what the peer's stream open settled.
func (c *Codec) publish(version, aliasBytes int) {
	old := c.peer.Load()
	gen := old>>32 + 1
	c.peer.Store(gen<<32 | uint64(version)<<24 | uint64(aliasBytes))
}

func unpackPeer(p uint64) (gen uint32, version, aliasBytes int) {
	return uint32(p >> 32), int(p >> 24 & 0xFF), int(p & 0xFFFFFF)
}

// Feed hands over bytes read from the peer; the codec copies what it keeps.
// A frame whose announced length is over MaxStanzaBytes fails here, before
// its payload is buffered. Errors are *stanza.StreamError and sticky.
func (c *Codec) Feed(p []byte) error { return c.dec.feed(p) }

// Next returns the next complete event; ok is false when more input is
// needed. Errors are *stanza.StreamError values, to be sent to the peer
// before closing; they are sticky.
func (c *Codec) Next() (ev Event, ok bool, err error) { return c.dec.next() }

// Reset discards buffered input and decoder state and expects a new stream
// open, as after SASL success (RFC 6120 §6.4.6). It clears a sticky error.
func (c *Codec) Reset() { c.dec.reset() }

// AppendOpen appends this end's stream open. A client's offers its newest
// dictionary version; a server's answers with the version it chose for the
// client's open it has decoded (version 1 if there was none). Each open
// starts a fresh alias table for the direction it is sent in.
func (c *Codec) AppendOpen(dst []byte, h Header) []byte { return c.enc.appendOpen(dst, h) }

// AppendElement appends el as one frame. Any tree can be written: names
// and namespaces outside the dictionary travel as strings, and strings XML
// cannot carry are sanitised as the XML writer does. A text node (Name "")
// is written as a keepalive, the counterpart of whitespace between stanzas.
func (c *Codec) AppendElement(dst []byte, el *stanza.Element) []byte {
	return c.enc.appendElement(dst, el)
}

// AppendClose appends the stream close.
func (c *Codec) AppendClose(dst []byte) []byte { return c.enc.appendClose(dst) }

// AppendKeepalive appends an empty frame, which the peer ignores.
func AppendKeepalive(dst []byte) []byte { return append(dst, 0) }

// Dictionary returns the dictionary version the decoder uses: the one the
// stream opens settled, or 1 before.
func (c *Codec) Dictionary() int { return c.dec.version }

// StateBytes is the memory the codec holds between frames, in bytes: the
// codec itself, its alias tables and any buffered partial frame. It is not
// safe to call concurrently with the encoder or decoder.
func (c *Codec) StateBytes() int {
	n := int(unsafe.Sizeof(*c))
	n += c.dec.stateBytes() + c.enc.stateBytes()
	return n
}
