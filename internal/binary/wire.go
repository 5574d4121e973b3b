package binary

// Wire constants. docs/binary-protocol.md is the normative description;
// the names below follow its section on each byte.

// Head byte: what a node is (docs §4.1).
const (
	headText     = 0x00 // text node: string (only inside a child list)
	headQNameExt = 0x01 // qname token beyond the first page: uvarint(t-112), shape
	headLiteral  = 0x02 // nsref, local name, shape
	headOpen     = 0x08 // stream open (top level only)
	headClose    = 0x09 // stream close (top level only)
	headFull     = 0x10 // 0x10+t: qname token t < 112, shape follows
	headEmpty    = 0x90 // 0x90+t: qname token t < 112, no attributes, no content

	qnamePage0 = 112 // qname tokens written in one byte
)

// Shape byte (docs §4.2).
const (
	shapeAttrMask = 0x0F // attribute count; 15 means uvarint(count-15) follows
	shapeKindMask = 0x30
	shapeReserved = 0xC0

	kindNone     = 0 << 4
	kindChildren = 1 << 4 // uvarint count ≥ 1, then the nodes
	kindText     = 2 << 4 // one text child: string
	kindBytes    = 3 << 4 // one text child, canonical base64 of uvarint n ≥ 1 bytes
)

// Attribute name byte (docs §4.3).
const (
	anameLiteral = 0x00 // string: NCName or "xml:"+NCName
	anameClark   = 0x01 // nsref (not inherit), local name: "{uri}local"
	anameExt     = 0x02 // uvarint(t-253)
	anameToken   = 0x03 // 0x03+t: attribute token t < 253

	attrPage0 = 253
)

// Namespace reference, a uvarint (docs §4.4).
const (
	nsInherit = 0 // the parent's namespace (jabber:client at top level)
	nsRaw     = 1 // a string follows
	nsToken   = 2 // 2+t: string token t
)

// Value marker byte (docs §5).
const (
	vRaw       = 0x00 // string
	vInt       = 0x01 // uvarint, written in decimal
	vUUID      = 0x02 // 16 bytes, lowercase 8-4-4-4-12
	vUUIDUpper = 0x03 // 16 bytes, uppercase
	vHex       = 0x04 // uvarint n ≥ 1, n bytes, lowercase hex
	vHexUpper  = 0x05 // same, uppercase
	vB64       = 0x06 // uvarint n ≥ 1, n bytes, canonical padded base64
	vTime      = 0x07 // svarint Unix seconds, fraction digits f ≤ 9, [uvarint fraction]
	vBackref   = 0x08 // uvarint i: the i-th id value of this stanza
	vTokenExt  = 0x09 // uvarint(t-128): string token t
	vAliasExt  = 0x0A // uvarint(i-32): alias i
	vAliasSet  = 0x0B // uvarint i, flags byte, JID body: replaces alias i
	vB32H      = 0x0C // uvarint n ≥ 1, n bytes, lowercase unpadded base32hex
	vJID       = 0x10 // 0x10|flags, JID body
	vAliasDef  = 0x20 // 0x20|flags, JID body: appended to the alias table
	vSmallInt  = 0x30 // 0x30+n, n ≤ 47
	vAlias     = 0x60 // 0x60+i, alias i < 32
	vToken     = 0x80 // 0x80+t, string token t < 128

	smallIntMax = 47
	aliasPage0  = 32
	strPage0    = 128
)

// JID flags, the low nibble of vJID/vAliasDef and the byte after vAliasSet's
// index (docs §5.3).
const (
	jidLocal        = 0x01
	jidResource     = 0x02
	jidDomainMask   = 0x0C
	jidDomainStream = 0x00 // the stream domain of this direction
	jidDomainSub    = 0x04 // string label + "." + stream domain
	jidDomainRaw    = 0x08 // string
)

// Stream open field keys (docs §6.1).
const (
	keyTo         = 1
	keyFrom       = 2
	keyID         = 3
	keyVersion    = 4
	keyLang       = 5
	keyNS         = 6
	keyDict       = 16 // client: highest dictionary version known; server: the one chosen
	keyDictFP     = 17 // fingerprint of that version (4 bytes, HEX value)
	keyAliasBytes = 18 // alias table budget the sender of the open accepts
	keyMaxFrame   = 19 // largest frame payload the sender of the open accepts

	maxOpenFields = 32
)

const (
	// maxFrameHeader is the longest frame length prefix: 4 bytes, so a frame
	// payload is below 2^28 bytes whatever the limits say.
	maxFrameHeader = 4
	maxFrameLen    = 1<<28 - 1

	// aliasOverhead is what an alias entry costs beyond its JID's bytes in
	// the table budget (docs §7).
	aliasOverhead = 32

	// maxBackrefs is how many id values of one stanza can be referenced.
	maxBackrefs = 8
)

// appendUvarint appends v in LEB128 (7 bits a byte, low group first).
func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// uvarintLen is the number of bytes appendUvarint writes for v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// readUvarint decodes a minimal LEB128 value from b. n > 0 is the bytes
// used; n == 0 means b ends inside the value; n < 0 means it is malformed
// (longer than 10 bytes, over 64 bits, or not minimal).
func readUvarint(b []byte) (v uint64, n int) {
	var shift uint
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		if i == 9 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, -1 // a trailing zero group: not minimal
			}
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// reader walks one frame. Every method fails with a bad-format error when
// the frame ends early or holds a malformed number.
type reader struct {
	b []byte
	p int
}

func (r *reader) done() bool { return r.p >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.p >= len(r.b) {
		return 0, errTruncated()
	}
	c := r.b[r.p]
	r.p++
	return c, nil
}

func (r *reader) peek() (byte, error) {
	if r.p >= len(r.b) {
		return 0, errTruncated()
	}
	return r.b[r.p], nil
}

func (r *reader) uvarint() (uint64, error) {
	v, n := readUvarint(r.b[r.p:])
	switch {
	case n == 0:
		return 0, errTruncated()
	case n < 0:
		return 0, errBadNumber()
	}
	r.p += n
	return v, nil
}

// count reads a uvarint that counts or sizes something within this frame:
// it cannot exceed the bytes left (or lim), which keeps every later
// multiplication and allocation small.
func (r *reader) count(lim int) (int, error) {
	v, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if v > uint64(lim) {
		return 0, errTruncated()
	}
	return int(v), nil
}

// bytes returns the next n bytes (aliasing the frame).
func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.p {
		return nil, errTruncated()
	}
	b := r.b[r.p : r.p+n]
	r.p += n
	return b, nil
}

// str reads a length-prefixed string (aliasing the frame).
func (r *reader) str() ([]byte, error) {
	n, err := r.count(len(r.b) - r.p)
	if err != nil {
		return nil, err
	}
	return r.bytes(n)
}
