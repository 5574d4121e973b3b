package xmlstream

// Limits bounds what one peer can make the decoder hold or do. Every limit is
// enforced while bytes arrive, before they are turned into a tree, so a
// hostile peer cannot make the server buffer more than MaxStanzaBytes per
// connection. A field that is zero or negative takes its default value.
type Limits struct {
	// MaxStanzaBytes bounds a top-level element (the stream header, or a
	// stanza with all its children) in raw bytes as received; the bytes
	// buffered for an incomplete element count too.
	MaxStanzaBytes int
	// MaxDepth bounds element nesting inside the stream; a top-level stanza
	// is at depth 1 (the stream header itself is not counted).
	MaxDepth int
	// MaxAttrs bounds the attributes written on one element, namespace
	// declarations included.
	MaxAttrs int
	// MaxNameLen bounds, in bytes, each part of a qualified name (prefix and
	// local name) of elements and attributes.
	MaxNameLen int
	// MaxChildren bounds the direct children (elements and text nodes) of
	// one element: consumers scan children linearly, so this keeps their
	// work proportional to what a reasonable stanza needs.
	MaxChildren int
}

// Default limit values; see DefaultLimits.
const (
	DefaultMaxStanzaBytes = 256 << 10
	DefaultMaxDepth       = 32
	DefaultMaxAttrs       = 64
	DefaultMaxNameLen     = 256
	DefaultMaxChildren    = 4096
)

// DefaultLimits returns the limits used for client and server streams unless
// configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxStanzaBytes: DefaultMaxStanzaBytes,
		MaxDepth:       DefaultMaxDepth,
		MaxAttrs:       DefaultMaxAttrs,
		MaxNameLen:     DefaultMaxNameLen,
		MaxChildren:    DefaultMaxChildren,
	}
}

// withDefaults fills unset fields so the decoder never compares against 0.
func (l Limits) withDefaults() Limits {
	def := DefaultLimits()
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = def.MaxStanzaBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = def.MaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = def.MaxAttrs
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = def.MaxNameLen
	}
	if l.MaxChildren <= 0 {
		l.MaxChildren = def.MaxChildren
	}
	return l
}
