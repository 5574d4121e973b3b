package binary

import (
	"strings"

	"github.com/parley-im/parley/stanza"
)

// encoder is the writing half of a Codec. It allocates nothing per
// stanza: it appends to the caller's buffer, and its only state is the
// negotiated dictionary version, the stream domain and the alias table of
// its direction.
type encoder struct {
	c         *Codec
	d         *dictionary
	maxDict   int
	sendAlias int

	version    int
	nq, na, ns int
	gen        uint32 // the peer publication last applied (client role)

	domain  string // stream domain of this direction (docs §5.3)
	aliases encAliases

	// id values of the stanza being written, for back-references.
	ids  [maxBackrefs]string
	nids int
}

func (e *encoder) init(c *Codec, maxDict, sendAlias int) {
	e.c, e.d, e.maxDict, e.sendAlias = c, c.dict, maxDict, sendAlias
	e.setVersion(1)
}

func (e *encoder) setVersion(v int) {
	e.version = v
	e.nq, e.na, e.ns = e.d.nq[v], e.d.na[v], e.d.ns[v]
}

func (e *encoder) stateBytes() int { return e.aliases.stateBytes() }

// sync applies, on a client, the server's answer that the decoder has
// read since the last call: from then on stanzas use the chosen dictionary
// and may define aliases within the server's budget.
func (e *encoder) sync() {
	if e.c.role != Client {
		return
	}
	gen, v, alias := unpackPeer(e.c.peer.Load())
	if gen == e.gen {
		return
	}
	e.gen = gen
	if v > 0 {
		e.setVersion(v)
		e.aliases.reset(min(alias, e.sendAlias))
	}
}

func (e *encoder) appendOpen(dst []byte, h Header) []byte {
	dict, alias := e.maxDict, 0
	if e.c.role == Server {
		// Answer the client's open the decoder read (if any).
		_, v, peerAlias := unpackPeer(e.c.peer.Load())
		dict = max(v, 1)
		if v > 0 {
			alias = min(peerAlias, e.sendAlias)
		}
		e.setVersion(dict)
		e.domain = h.From
	} else {
		// Until the server answers, write with version 1, which every
		// server knows, and define no aliases.
		e.gen, _, _ = unpackPeer(e.c.peer.Load())
		e.setVersion(1)
		e.domain = h.To
	}
	e.aliases.reset(alias)

	start := len(dst)
	dst = append(dst, 0, headOpen)
	version := h.Version
	if version == "" {
		version = "1.0"
	}
	fields := [...]struct {
		key byte
		val string
	}{
		{keyTo, h.To}, {keyFrom, h.From}, {keyID, h.ID}, {keyVersion, version},
		{keyLang, h.Lang}, {keyNS, h.NS},
	}
	n := 4 // dictionary, fingerprint, alias budget, frame limit
	for _, f := range fields {
		if f.val != "" {
			n++
		}
	}
	dst = appendUvarint(dst, uint64(n))
	base := e.d.ns[1] // the open is written with version 1's strings
	for _, f := range fields {
		if f.val != "" {
			dst = append(dst, f.key)
			dst = e.typed(dst, f.val, base)
		}
	}
	lim := e.c.dec.lim
	dst = append(dst, keyDict)
	dst = appendInt(dst, uint64(dict))
	dst = append(dst, keyDictFP, vHex, 4)
	dst = append(dst, e.d.fp[dict][:]...)
	dst = append(dst, keyAliasBytes)
	dst = appendInt(dst, uint64(lim.AliasBytes))
	dst = append(dst, keyMaxFrame)
	dst = appendInt(dst, uint64(lim.MaxStanzaBytes))
	return finishFrame(dst, start)
}

func (e *encoder) appendClose(dst []byte) []byte { return append(dst, 1, headClose) }

func (e *encoder) appendElement(dst []byte, el *stanza.Element) []byte {
	e.sync()
	if el == nil || el.Name == "" {
		return AppendKeepalive(dst)
	}
	start := len(dst)
	dst = append(dst, 0)
	e.nids = 0
	dst = e.node(dst, el, nsClient, true)
	clear(e.ids[:]) // hold no stanza's strings between calls
	return finishFrame(dst, start)
}

// finishFrame writes the length of the payload that follows the one byte
// reserved at start, moving the payload when the length needs more bytes.
func finishFrame(dst []byte, start int) []byte {
	n := len(dst) - start - 1
	if n < 0x80 {
		dst[start] = byte(n)
		return dst
	}
	if n > maxFrameLen {
		panic("binary: element too large for one frame")
	}
	k := uvarintLen(uint64(n))
	for i := 1; i < k; i++ {
		dst = append(dst, 0)
	}
	copy(dst[start+k:], dst[start+1:start+1+n])
	appendUvarint(dst[:start], uint64(n))
	return dst
}

// writable reports whether an attribute is written at all: like the XML
// writer, namespace declarations and malformed Clark names are skipped.
func writable(name string) bool {
	switch {
	case name == "" || name == "xmlns" || strings.HasPrefix(name, "xmlns:"):
		return false
	case name[0] == '{':
		end := strings.IndexByte(name, '}')
		return end > 0 && end < len(name)-1
	}
	return true
}

func (e *encoder) node(dst []byte, el *stanza.Element, parentNS string, top bool) []byte {
	nattr := 0
	for i := range el.Attrs {
		if writable(el.Attrs[i].Name) {
			nattr++
		}
	}
	nkids := 0
	var only *stanza.Element
	for _, c := range el.Children {
		if c != nil && (c.Name != "" || c.Text != "") {
			nkids++
			only = c
		}
	}
	kind := kindNone
	switch {
	case nkids > 1 || nkids == 1 && only.Name != "":
		kind = kindChildren
	case nkids == 1:
		kind = kindText
	}
	t, tok := e.d.qnameIdx[qname{el.NS, el.Name}]
	tok = tok && t < e.nq
	b64 := -1
	if kind == kindText && tok && e.d.qnames[t].b64 {
		if b64 = b64Len(only.Text); b64 > 0 {
			kind = kindBytes
		}
	}
	switch {
	case tok && t < qnamePage0 && nattr == 0 && kind == kindNone:
		return append(dst, byte(headEmpty+t))
	case tok && t < qnamePage0:
		dst = append(dst, byte(headFull+t))
	case tok:
		dst = append(dst, headQNameExt)
		dst = appendUvarint(dst, uint64(t-qnamePage0))
	default:
		dst = append(dst, headLiteral)
		if el.NS == parentNS {
			dst = append(dst, nsInherit)
		} else {
			dst = e.nsref(dst, el.NS)
		}
		dst = appendName(dst, el.Name)
	}
	dst = append(dst, byte(kind|min(nattr, shapeAttrMask)))
	if nattr >= shapeAttrMask {
		dst = appendUvarint(dst, uint64(nattr-shapeAttrMask))
	}
	nameIsValue := tok && e.d.qnames[t].nameIsValue
	for i := range el.Attrs {
		if writable(el.Attrs[i].Name) {
			dst = e.attr(dst, &el.Attrs[i], top, nameIsValue)
		}
	}
	switch kind {
	case kindChildren:
		dst = appendUvarint(dst, uint64(nkids))
		for _, c := range el.Children {
			switch {
			case c == nil || c.Name == "" && c.Text == "":
			case c.Name == "":
				dst = append(dst, headText)
				dst = appendRaw(dst, c.Text)
			default:
				dst = e.node(dst, c, el.NS, false)
			}
		}
	case kindText:
		dst = appendRaw(dst, only.Text)
	case kindBytes:
		dst = appendUvarint(dst, uint64(b64))
		dst = appendB64Bytes(dst, only.Text)
	}
	return dst
}

// nsref writes a namespace as a string token or a string (never inherit).
func (e *encoder) nsref(dst []byte, ns string) []byte {
	if t, ok := e.d.strIdx[ns]; ok && t < e.ns {
		return appendUvarint(dst, uint64(nsToken+t))
	}
	dst = append(dst, nsRaw)
	return appendRaw(dst, ns)
}

func (e *encoder) attr(dst []byte, a *stanza.Attr, top, nameIsValue bool) []byte {
	name := a.Name
	if name[0] == '{' {
		end := strings.IndexByte(name, '}')
		uri, local := name[1:end], name[end+1:]
		switch uri {
		case "":
			name = local
		case stanza.NSXML:
			if local != "lang" {
				dst = append(dst, anameLiteral)
				dst = appendUvarint(dst, uint64(len(local)+4))
				dst = append(dst, "xml:"...)
				dst = append(dst, local...)
				return e.typed(dst, a.Value, e.ns)
			}
			name = "xml:lang"
		default:
			dst = append(dst, anameClark)
			dst = e.nsref(dst, uri)
			dst = appendName(dst, local)
			return e.typed(dst, a.Value, e.ns)
		}
	}
	t, ok := e.d.attrIdx[name]
	if !ok || t >= e.na {
		dst = append(dst, anameLiteral)
		dst = appendName(dst, name)
		return e.typed(dst, a.Value, e.ns)
	}
	if t < attrPage0 {
		dst = append(dst, byte(anameToken+t))
	} else {
		dst = append(dst, anameExt)
		dst = appendUvarint(dst, uint64(t-attrPage0))
	}
	v := a.Value
	switch e.d.attrs[t].class {
	case classText:
		if !nameIsValue || e.d.attrs[t].name != "name" {
			return appendRawValue(dst, v)
		}
	case classJID:
		if top && (t == e.d.attrFrom || t == e.d.attrTo) && e.aliases.budget > 0 {
			return e.alias(dst, v)
		}
		return e.jid(dst, v, vJID, -1)
	}
	if t != e.d.attrID {
		return e.typed(dst, v, e.ns)
	}
	// An id: a repeat of an earlier id of this stanza (XEP-0359 origin-id
	// equal to the message id) is a back-reference.
	for i := 0; i < min(e.nids, maxBackrefs); i++ {
		if e.ids[i] == v && len(v) > 2 {
			dst = append(dst, vBackref)
			dst = appendUvarint(dst, uint64(i))
			e.addID(v)
			return dst
		}
	}
	dst = e.typed(dst, v, e.ns)
	e.addID(v)
	return dst
}

func (e *encoder) addID(v string) {
	if e.nids < maxBackrefs {
		e.ids[e.nids] = v
	}
	e.nids++
}

// typed writes a value in the smallest form that gives it back exactly:
// a string token (among the first ns), a number, a UUID, hex, a date-time,
// base32hex or base64 bytes, or else the string itself.
//
// Where two forms apply the earlier one is never larger: decimal is INT
// (about 0.48 bytes a digit against B32H's 0.63), an even-length run of
// lower-case hex digits is HEX (L/2 bytes against 5L/8), and base32hex
// digits are base64 symbols too, where B32H takes 5L/8 bytes against
// 3L/4. B32H needs no minimum length: for every L it accepts (2, 4, 5, 7,
// 8, …) its 1+uvarint(5L/8)+5L/8 bytes are below RAW's 1+uvarint(L)+L,
// by 1 byte at L = 2 and by about 3L/8 in general.
func (e *encoder) typed(dst []byte, v string, ns int) []byte {
	if len(v) <= maxTokenString {
		if t, ok := e.d.strIdx[v]; ok && t < ns {
			return appendStrToken(dst, t)
		}
	}
	if n, ok := parseUint(v); ok {
		return appendInt(dst, n)
	}
	if upper, ok := uuidString(v); ok {
		dst = append(dst, pick(upper, vUUIDUpper, vUUID))
		return appendUUIDBytes(dst, v)
	}
	if upper, ok := hexString(v); ok {
		dst = append(dst, pick(upper, vHexUpper, vHex))
		dst = appendUvarint(dst, uint64(len(v)/2))
		return appendHexBytes(dst, v)
	}
	if len(v) >= 20 && len(v) <= 30 && v[len(v)-1] == 'Z' {
		if unix, f, frac, ok := parseTime(v); ok {
			dst = append(dst, vTime)
			dst = appendUvarint(dst, zigzag(unix))
			dst = append(dst, byte(f))
			if f > 0 {
				dst = appendUvarint(dst, frac)
			}
			return dst
		}
	}
	if n := b32hLen(v); n > 0 {
		dst = append(dst, vB32H)
		dst = appendUvarint(dst, uint64(n))
		return appendB32HBytes(dst, v)
	}
	if n := b64Len(v); n > 0 {
		dst = append(dst, vB64)
		dst = appendUvarint(dst, uint64(n))
		return appendB64Bytes(dst, v)
	}
	return appendRawValue(dst, v)
}

func pick(c bool, a, b byte) byte {
	if c {
		return a
	}
	return b
}

func appendStrToken(dst []byte, t int) []byte {
	if t < strPage0 {
		return append(dst, byte(vToken+t))
	}
	dst = append(dst, vTokenExt)
	return appendUvarint(dst, uint64(t-strPage0))
}

func appendInt(dst []byte, n uint64) []byte {
	if n <= smallIntMax {
		return append(dst, byte(vSmallInt+n))
	}
	dst = append(dst, vInt)
	return appendUvarint(dst, n)
}

// alias writes a top-level from or to through the alias table: the
// entry's index if the JID has one, else the JID with a definition.
func (e *encoder) alias(dst []byte, v string) []byte {
	if i := e.aliases.find(v); i >= 0 {
		if i < aliasPage0 {
			return append(dst, byte(vAlias+i))
		}
		dst = append(dst, vAliasExt)
		return appendUvarint(dst, uint64(i-aliasPage0))
	}
	local, domain, res, ok := splitJID(v)
	switch {
	case !ok || !cleanString(v):
		return appendRawValue(dst, v)
	case local == "" && res == "" && domain == e.domain:
		// The stream domain itself is one byte already.
		return e.jid(dst, v, vJID, -1)
	}
	i, set, ok := e.aliases.add(v)
	switch {
	case !ok:
		return e.jid(dst, v, vJID, -1)
	case set:
		return e.jid(dst, v, vAliasSet, i)
	}
	return e.jid(dst, v, vAliasDef, -1)
}

// jid writes v as a JID value with the given marker (vJID, vAliasDef, or
// vAliasSet with the index), or as a string if it has no JID shape.
func (e *encoder) jid(dst []byte, v string, marker byte, index int) []byte {
	local, domain, res, ok := splitJID(v)
	if !ok || !cleanString(v) {
		return appendRawValue(dst, v)
	}
	var flags byte
	if local != "" {
		flags |= jidLocal
	}
	if res != "" {
		flags |= jidResource
	}
	label := ""
	switch sd := e.domain; {
	case sd != "" && domain == sd:
		flags |= jidDomainStream
	case sd != "" && len(domain) > len(sd)+1 && strings.HasSuffix(domain, sd) && domain[len(domain)-len(sd)-1] == '.':
		flags |= jidDomainSub
		label = domain[:len(domain)-len(sd)-1]
	default:
		flags |= jidDomainRaw
		label = domain
	}
	if marker == vAliasSet {
		dst = append(dst, vAliasSet)
		dst = appendUvarint(dst, uint64(index))
		dst = append(dst, flags)
	} else {
		dst = append(dst, marker|flags)
	}
	if local != "" {
		dst = appendUvarint(dst, uint64(len(local)))
		dst = append(dst, local...)
	}
	if flags&jidDomainMask != jidDomainStream {
		dst = appendUvarint(dst, uint64(len(label)))
		dst = append(dst, label...)
	}
	if res != "" {
		dst = appendUvarint(dst, uint64(len(res)))
		dst = append(dst, res...)
	}
	return dst
}

// appendRaw writes a string, sanitised if XML could not carry it.
func appendRaw(dst []byte, s string) []byte {
	if !cleanString(s) {
		s = sanitize(s)
	}
	dst = appendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendRawValue writes a value as a plain string.
func appendRawValue(dst []byte, s string) []byte {
	return appendRaw(append(dst, vRaw), s)
}

// appendName writes a name as it is: like the XML writer, the encoder
// trusts names, which come from server code or from decoders that checked
// them.
func appendName(dst []byte, s string) []byte {
	dst = appendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
