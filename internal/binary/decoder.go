package binary

import (
	"strconv"
	"sync"
	"unsafe"

	"github.com/parley-im/parley/stanza"
)

// decoder is the reading half of a Codec. Input is framed, so it buffers
// until a frame is complete and then decodes it in two passes: the first
// checks the whole frame against the dictionary and the limits and sizes
// the result exactly; the second builds the tree into four allocations
// (elements, attributes, child pointers and one string arena). Once every
// fed byte is consumed it holds no buffer.
type decoder struct {
	c       *Codec
	d       *dictionary
	lim     Limits
	maxDict int

	version    int
	nq, na, ns int

	opened, closed bool
	err            error
	// late is an error in a frame length found by feed behind frames not
	// decoded yet: next reports it when it gets there, so errors come in
	// stream order however the input was cut.
	late error

	// Unconsumed input is buf[pos:]; checked is the offset of the first
	// frame whose length has not been checked against the limit yet.
	buf     []byte
	bufp    *[]byte
	pos     int
	checked int

	domain  string // stream domain of this direction (docs §5.3)
	aliases decAliases
}

func (d *decoder) init(c *Codec, lim Limits, maxDict int) {
	d.c, d.d, d.lim, d.maxDict = c, c.dict, lim, maxDict
	d.reset()
}

func (d *decoder) setVersion(v int) {
	d.version = v
	d.nq, d.na, d.ns = d.d.nq[v], d.d.na[v], d.d.ns[v]
}

func (d *decoder) reset() {
	d.release()
	d.err, d.late = nil, nil
	d.opened, d.closed = false, false
	d.setVersion(1)
	d.domain = ""
	d.aliases.reset(d.lim.AliasBytes)
	d.c.publish(0, 0) // the next open negotiates afresh
}

func (d *decoder) stateBytes() int { return cap(d.buf) + d.aliases.stateBytes() }

func (d *decoder) fail(err error) error {
	d.err = err
	d.release()
	return err
}

func (d *decoder) feed(p []byte) error {
	if d.err != nil {
		return d.err
	}
	if len(p) == 0 || d.late != nil {
		return nil
	}
	switch {
	case d.buf == nil:
		d.bufp = getBuf(len(p))
		d.buf = (*d.bufp)[:0]
		d.pos, d.checked = 0, 0
	case d.pos > 0 && cap(d.buf)-len(d.buf) < len(p):
		n := copy(d.buf, d.buf[d.pos:])
		d.buf = d.buf[:n]
		d.checked -= d.pos
		d.pos = 0
	}
	d.buf = append(d.buf, p...)
	// Check each frame's announced length as soon as it is readable, so an
	// oversized frame is refused before its payload is buffered.
	for d.checked < len(d.buf) {
		n, h := readUvarint(d.buf[d.checked:])
		var err error
		switch {
		case h == 0 && len(d.buf)-d.checked < maxFrameHeader:
			return nil
		case h <= 0 || h > maxFrameHeader:
			err = errFormat("bad-frame: malformed frame length")
		case n > uint64(d.lim.MaxStanzaBytes):
			err = errLimit("frame over the stanza size limit")
		}
		if err != nil {
			if d.checked == d.pos {
				return d.fail(err)
			}
			// Keep the frames before it, drop the rest.
			d.buf = d.buf[:d.checked]
			d.late = err
			return nil
		}
		d.checked += h + int(n)
	}
	return nil
}

func (d *decoder) next() (Event, bool, error) {
	for {
		if d.err != nil {
			return Event{}, false, d.err
		}
		rest := d.buf[d.pos:]
		if len(rest) == 0 {
			d.release()
			if d.late != nil {
				return Event{}, false, d.fail(d.late)
			}
			return Event{}, false, nil
		}
		n, h := readUvarint(rest)
		if h <= 0 || uint64(len(rest)-h) < n {
			return Event{}, false, nil
		}
		frame := rest[h : h+int(n)]
		d.pos += h + int(n)
		var ev Event
		var err error
		if n > 0 {
			ev, err = d.frame(frame)
		}
		if d.pos == len(d.buf) {
			d.release()
		}
		if err != nil {
			return Event{}, false, d.fail(err)
		}
		if n > 0 {
			return ev, true, nil
		}
	}
}

func (d *decoder) frame(f []byte) (Event, error) {
	switch f[0] {
	case headOpen:
		if d.closed {
			return Event{}, errUnexpected("stream open after the stream close")
		}
		return d.open(f)
	case headClose:
		if len(f) != 1 {
			return Event{}, errTrailing()
		}
		if !d.opened || d.closed {
			return Event{}, errUnexpected("stream close outside a stream")
		}
		d.closed = true
		return Event{Kind: EventClose}, nil
	}
	if !d.opened || d.closed {
		return Event{}, errUnexpected("element outside a stream")
	}
	el, err := d.element(f)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: EventElement, Element: el}, nil
}

// element decodes one top-level element frame.
func (d *decoder) element(f []byte) (*stanza.Element, error) {
	s := scan{r: reader{b: f}, d: d}
	if c := f[0]; c < headFull && c != headQNameExt && c != headLiteral {
		return nil, errReserved()
	}
	if err := s.node(1, nsClient, nsClient); err != nil {
		return nil, err
	}
	if !s.r.done() {
		return nil, errTrailing()
	}
	if s.xml+5*s.esc > d.lim.MaxStanzaBytes {
		return nil, errLimit("stanza over the size limit in its XML form")
	}
	b := build{r: reader{b: f}, d: d, xml: s.xml + 5*s.esc}
	b.elems = make([]stanza.Element, s.elems)
	if s.attrs > 0 {
		b.attrs = make([]stanza.Attr, s.attrs)
	}
	if s.kids > 0 {
		b.kids = make([]*stanza.Element, s.kids)
	}
	if s.arena > 0 {
		b.arena = make([]byte, 0, s.arena)
	}
	el, err := b.node(nsClient, 1)
	if err != nil {
		return nil, err
	}
	if b.xml > d.lim.MaxStanzaBytes {
		return nil, errLimit("stanza over the size limit in its XML form")
	}
	return el, nil
}

// scan is the first pass: it validates a frame, counts what the tree needs
// and bounds the size of its XML form, committing no memory.
type scan struct {
	r                         reader
	d                         *decoder
	elems, attrs, kids, arena int

	// xml is the size of the element's XML form as the XML writer would
	// write it, an upper bound except for escapes (counted in esc, each
	// at most 5 bytes more) and alias references (known in pass two).
	xml, esc int

	ids    int // id attributes so far
	idLen  [maxBackrefs]int
	idEsc  [maxBackrefs]int
	valLen int // decoded length of the last value
}

// view returns b as a string without copying; it must not outlive the
// frame's pass.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (s *scan) node(depth int, parentNS, ctx string) error {
	if depth > s.d.lim.MaxDepth {
		return errLimit("elements nested too deep")
	}
	s.elems++
	h, err := s.r.byte()
	if err != nil {
		return err
	}
	var ns string
	nameLen := 0
	switch {
	case h >= headEmpty:
		t := int(h - headEmpty)
		if t >= s.d.nq {
			return errBadToken()
		}
		s.elemXML(s.d.d.qnames[t].ns, len(s.d.d.qnames[t].local), ctx, depth)
		return nil
	case h >= 0x80:
		return errReserved()
	case h >= headFull:
		t := int(h - headFull)
		if t >= s.d.nq {
			return errBadToken()
		}
		ns, nameLen = s.d.d.qnames[t].ns, len(s.d.d.qnames[t].local)
	case h == headQNameExt:
		v, err := s.r.uvarint()
		if err != nil {
			return err
		}
		if v >= uint64(max(s.d.nq-qnamePage0, 0)) {
			return errBadToken()
		}
		e := &s.d.d.qnames[qnamePage0+int(v)]
		ns, nameLen = e.ns, len(e.local)
	case h == headLiteral:
		if ns, err = s.nsref(true, parentNS); err != nil {
			return err
		}
		if nameLen, err = s.name(false); err != nil {
			return err
		}
	default:
		return errReserved()
	}
	ctx = s.elemXML(ns, nameLen, ctx, depth)
	shape, err := s.r.byte()
	if err != nil {
		return err
	}
	if shape&shapeReserved != 0 {
		return errReserved()
	}
	na := int(shape & shapeAttrMask)
	if na == shapeAttrMask {
		x, err := s.r.count(len(s.r.b))
		if err != nil {
			return err
		}
		na += x
	}
	if na > s.d.lim.MaxAttrs {
		return errLimit("too many attributes")
	}
	s.attrs += na
	for i := 0; i < na; i++ {
		if err := s.attr(depth == 1); err != nil {
			return err
		}
	}
	switch shape & shapeKindMask {
	case kindChildren:
		n, err := s.r.count(len(s.r.b) - s.r.p)
		if err != nil {
			return err
		}
		if n == 0 {
			return errEmpty()
		}
		if n > s.d.lim.MaxChildren {
			return errLimit("too many children")
		}
		s.kids += n
		for i := 0; i < n; i++ {
			c, err := s.r.peek()
			if err != nil {
				return err
			}
			if c == headText {
				s.r.p++
				if err := s.text(); err != nil {
					return err
				}
				continue
			}
			if err := s.node(depth+1, ns, ctx); err != nil {
				return err
			}
		}
	case kindText:
		s.kids++
		return s.text()
	case kindBytes:
		s.kids++
		s.elems++
		n, err := s.r.count(len(s.r.b) - s.r.p)
		if err != nil {
			return err
		}
		if n == 0 {
			return errEmpty()
		}
		if _, err := s.r.bytes(n); err != nil {
			return err
		}
		s.arena += b64StringLen(n)
		s.xml += b64StringLen(n)
	}
	return nil
}

// elemXML counts an element's tags and namespace declaration as the XML
// writer writes them in a stream, and returns the namespace in scope for
// its children there. ctx is the namespace in scope for the element; it
// differs from the parent's namespace below a prefixed element.
func (s *scan) elemXML(ns string, nameLen int, ctx string, depth int) string {
	s.xml += 2*nameLen + 5 // <name>…</name>
	switch {
	case ns == stanza.NSXML || ns == stanza.NSStream && depth == 1:
		s.xml += 2 * len("stream:") // written with a prefix, no declaration
		return ctx
	case ns != ctx:
		s.xml += len(ns) + len(" xmlns=''")
	}
	return ns
}

// text checks a text node's string.
func (s *scan) text() error {
	s.elems++
	b, err := s.r.str()
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return errEmpty()
	}
	s.xml += len(b)
	return s.chars(b, true)
}

// chars checks a string and reserves room for it in the arena.
func (s *scan) chars(b []byte, arena bool) error {
	esc, ok := checkChars(b)
	if !ok {
		return errXML("invalid UTF-8 or a character XML forbids")
	}
	s.esc += esc
	if arena {
		s.arena += len(b)
	}
	return nil
}

// name checks a literal element name or, for attr, a literal attribute
// name, and returns its length.
func (s *scan) name(attr bool) (int, error) {
	b, err := s.r.str()
	if err != nil {
		return 0, err
	}
	if len(b) > s.d.lim.MaxNameLen {
		return 0, errLimit("name too long")
	}
	if attr && !validAttrName(b) || !attr && !isNCName(b) {
		return 0, errXML("invalid name")
	}
	s.arena += len(b)
	return len(b), nil
}

// nsref checks a namespace reference and returns the namespace (a view of
// the frame for a raw one); inherit says whether "the parent's namespace"
// is allowed. Raw namespaces must be ones XML can declare: not the xmlns
// namespace, and for attributes not empty or the XML namespace (those are
// written as plain and xml: names).
func (s *scan) nsref(inherit bool, parentNS string) (string, error) {
	v, err := s.r.uvarint()
	if err != nil {
		return "", err
	}
	switch {
	case v == nsInherit:
		if !inherit {
			return "", errReserved()
		}
		return parentNS, nil
	case v == nsRaw:
		b, err := s.r.str()
		if err != nil {
			return "", err
		}
		if string(b) == nsXMLNS || !inherit && (len(b) == 0 || string(b) == stanza.NSXML) {
			return "", errXML("namespace not allowed here")
		}
		if err := s.chars(b, true); err != nil {
			return "", err
		}
		return view(b), nil
	case v-nsToken >= uint64(s.d.ns):
		return "", errBadToken()
	}
	ns := s.d.d.strs[v-nsToken].s
	if !inherit {
		s.arena += len(ns) // copied into the "{uri}local" name
	}
	return ns, nil
}

const nsXMLNS = "http://www.w3.org/2000/xmlns/"

func (s *scan) attr(top bool) error {
	c, err := s.r.byte()
	if err != nil {
		return err
	}
	aliasOK, isID := false, false
	nameLen := 0
	switch c {
	case anameLiteral:
		if nameLen, err = s.name(true); err != nil {
			return err
		}
	case anameClark:
		uri, err := s.nsref(false, "")
		if err != nil {
			return err
		}
		local, err := s.name(false)
		if err != nil {
			return err
		}
		s.arena += 2 // the braces of "{uri}local"
		// The XML writer declares a prefix for it: xmlns:nsK='uri' nsK:local.
		nameLen = len(uri) + local + 24
	default:
		t := int(c) - anameToken
		if c == anameExt {
			v, err := s.r.count(s.d.na)
			if err != nil {
				return errBadToken()
			}
			t = attrPage0 + v
		}
		if t >= s.d.na {
			return errBadToken()
		}
		nameLen = len(s.d.d.attrs[t].name)
		aliasOK = top && (t == s.d.d.attrFrom || t == s.d.d.attrTo)
		isID = t == s.d.d.attrID
	}
	esc := s.esc
	if err := s.value(aliasOK, isID); err != nil {
		return err
	}
	s.xml += nameLen + s.valLen + 4
	if isID {
		if s.ids < maxBackrefs {
			s.idLen[s.ids], s.idEsc[s.ids] = s.valLen, s.esc-esc
		}
		s.ids++
	}
	return nil
}

// value checks a value and sets valLen to the length of its string (0 for
// alias references, which pass two counts).
func (s *scan) value(aliasOK, isID bool) error {
	m, err := s.r.byte()
	if err != nil {
		return err
	}
	n := 0
	switch {
	case m >= vToken:
		if int(m-vToken) >= s.d.ns {
			return errBadToken()
		}
		n = len(s.d.d.strs[m-vToken].s)
	case m >= vAlias:
		if !aliasOK {
			return errBadAlias()
		}
	case m >= vSmallInt:
		n = decimalLen(uint64(m - vSmallInt))
		s.arena += n
	case m >= vAliasDef:
		if !aliasOK {
			return errBadAlias()
		}
		n, err = s.jid(m&0x0F, false)
	case m >= vJID:
		n, err = s.jid(m&0x0F, true)
	case m == vRaw:
		b, err := s.r.str()
		if err != nil {
			return err
		}
		n = len(b)
		if err := s.chars(b, true); err != nil {
			return err
		}
	case m == vInt:
		v, err := s.r.uvarint()
		if err != nil {
			return err
		}
		n = decimalLen(v)
		s.arena += n
	case m == vUUID || m == vUUIDUpper:
		if _, err := s.r.bytes(16); err != nil {
			return err
		}
		n = 36
		s.arena += n
	case m == vHex || m == vHexUpper || m == vB64 || m == vB32H:
		k, err := s.r.count(len(s.r.b) - s.r.p)
		if err != nil {
			return err
		}
		if k == 0 {
			return errEmpty()
		}
		if _, err := s.r.bytes(k); err != nil {
			return err
		}
		switch m {
		case vB64:
			n = b64StringLen(k)
		case vB32H:
			n = b32hStringLen(k)
		default:
			n = 2 * k
		}
		s.arena += n
	case m == vTime:
		_, f, _, err := readTime(&s.r)
		if err != nil {
			return err
		}
		n = timeLen(f)
		s.arena += n
	case m == vBackref:
		if !isID {
			return errBadBackref()
		}
		i, err := s.r.uvarint()
		if err != nil {
			return err
		}
		if i >= uint64(min(s.ids, maxBackrefs)) {
			return errBadBackref()
		}
		n = s.idLen[i]
		s.esc += s.idEsc[i]
	case m == vTokenExt:
		v, err := s.r.uvarint()
		if err != nil {
			return err
		}
		if v >= uint64(max(s.d.ns-strPage0, 0)) {
			return errBadToken()
		}
		n = len(s.d.d.strs[strPage0+int(v)].s)
	case m == vAliasExt || m == vAliasSet:
		if !aliasOK {
			return errBadAlias()
		}
		if _, err := s.r.uvarint(); err != nil {
			return err
		}
		if m == vAliasSet {
			f, err := s.r.byte()
			if err != nil {
				return err
			}
			if f&0xF0 != 0 {
				return errReserved()
			}
			if n, err = s.jid(f, false); err != nil {
				return err
			}
		}
	default:
		return errReserved()
	}
	s.valLen = n
	return err
}

// readTime reads and checks a date-time value after its marker.
func readTime(r *reader) (unix int64, f int, frac uint64, err error) {
	u, err := r.uvarint()
	if err != nil {
		return 0, 0, 0, err
	}
	if unix = unzigzag(u); unix < minUnix || unix > maxUnix {
		return 0, 0, 0, errBadTime()
	}
	c, err := r.byte()
	if err != nil {
		return 0, 0, 0, err
	}
	if c > 9 {
		return 0, 0, 0, errBadTime()
	}
	if c > 0 {
		if frac, err = r.uvarint(); err != nil {
			return 0, 0, 0, err
		}
		if frac >= pow10[c] {
			return 0, 0, 0, errBadTime()
		}
	}
	return unix, int(c), frac, nil
}

// jid checks a JID body and returns the JID's length; arena says whether
// its string goes in the arena (alias definitions get their own
// allocation, as the table keeps them).
func (s *scan) jid(flags byte, arena bool) (int, error) {
	n := 0
	part := func() error {
		b, err := s.r.str()
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return errBadJID()
		}
		n += len(b)
		return s.chars(b, false)
	}
	if flags&jidLocal != 0 {
		if err := part(); err != nil {
			return 0, err
		}
		n++ // '@'
	}
	switch flags & jidDomainMask {
	case jidDomainStream:
		if s.d.domain == "" {
			return 0, errBadJID()
		}
		n += len(s.d.domain)
	case jidDomainSub:
		if s.d.domain == "" {
			return 0, errBadJID()
		}
		if err := part(); err != nil {
			return 0, err
		}
		n += 1 + len(s.d.domain)
	case jidDomainRaw:
		if err := part(); err != nil {
			return 0, err
		}
	default:
		return 0, errReserved()
	}
	if flags&jidResource != 0 {
		if err := part(); err != nil {
			return 0, err
		}
		n++ // '/'
	}
	if arena {
		s.arena += n
	}
	return n, nil
}

// build is the second pass over a frame that scan accepted: reads cannot
// fail any more, only the alias table and duplicate attributes can.
type build struct {
	r     reader
	d     *decoder
	elems []stanza.Element
	attrs []stanza.Attr
	kids  []*stanza.Element
	arena []byte

	ids  [maxBackrefs]string
	nids int

	xml int // scan's bound on the XML form, plus alias references
}

func (b *build) byte() byte {
	c := b.r.b[b.r.p]
	b.r.p++
	return c
}

func (b *build) uvarint() uint64 {
	v, n := readUvarint(b.r.b[b.r.p:])
	b.r.p += n
	return v
}

func (b *build) take(n int) []byte {
	p := b.r.b[b.r.p : b.r.p+n]
	b.r.p += n
	return p
}

func (b *build) str() []byte { return b.take(int(b.uvarint())) }

// keep copies p into the arena and returns it as a string.
func (b *build) keep(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	return b.since(start)
}

// since returns what was appended to the arena from start on as a string.
// The arena was sized by scan and is only appended to, so the bytes are
// never written again.
func (b *build) since(start int) string {
	if len(b.arena) == start {
		return ""
	}
	return unsafe.String(&b.arena[start], len(b.arena)-start)
}

func (b *build) node(parentNS string, depth int) (*stanza.Element, error) {
	el := &b.elems[0]
	b.elems = b.elems[1:]
	h := b.byte()
	switch {
	case h >= headEmpty:
		e := &b.d.d.qnames[h-headEmpty]
		el.Name, el.NS = e.local, e.ns
		return el, nil
	case h >= headFull:
		e := &b.d.d.qnames[h-headFull]
		el.Name, el.NS = e.local, e.ns
	case h == headQNameExt:
		e := &b.d.d.qnames[qnamePage0+int(b.uvarint())]
		el.Name, el.NS = e.local, e.ns
	default: // headLiteral
		el.NS = b.nsref(parentNS)
		el.Name = b.keep(b.str())
	}
	shape := b.byte()
	na := int(shape & shapeAttrMask)
	if na == shapeAttrMask {
		na += int(b.uvarint())
	}
	if na > 0 {
		el.Attrs = b.attrs[:na:na]
		b.attrs = b.attrs[na:]
		for i := range el.Attrs {
			if err := b.attr(&el.Attrs[i]); err != nil {
				return nil, err
			}
		}
		if err := checkDuplicates(el.Attrs); err != nil {
			return nil, err
		}
	}
	switch shape & shapeKindMask {
	case kindChildren:
		n := int(b.uvarint())
		el.Children = b.kids[:n:n]
		b.kids = b.kids[n:]
		for i := range el.Children {
			if b.r.b[b.r.p] == headText {
				b.r.p++
				el.Children[i] = b.text(b.keep(b.str()))
				continue
			}
			c, err := b.node(el.NS, depth+1)
			if err != nil {
				return nil, err
			}
			el.Children[i] = c
		}
	case kindText:
		el.Children = b.kids[:1:1]
		b.kids = b.kids[1:]
		el.Children[0] = b.text(b.keep(b.str()))
	case kindBytes:
		el.Children = b.kids[:1:1]
		b.kids = b.kids[1:]
		start := len(b.arena)
		b.arena = appendB64String(b.arena, b.take(int(b.uvarint())))
		el.Children[0] = b.text(b.since(start))
	}
	return el, nil
}

func (b *build) text(s string) *stanza.Element {
	t := &b.elems[0]
	b.elems = b.elems[1:]
	t.Text = s
	return t
}

func checkDuplicates(attrs []stanza.Attr) error {
	for i := 1; i < len(attrs); i++ {
		for j := 0; j < i; j++ {
			if attrs[i].Name == attrs[j].Name {
				return errXML("duplicate attribute")
			}
		}
	}
	return nil
}

func (b *build) nsref(parentNS string) string {
	v := b.uvarint()
	switch v {
	case nsInherit:
		return parentNS
	case nsRaw:
		return b.keep(b.str())
	}
	return b.d.d.strs[v-nsToken].s
}

func (b *build) attr(a *stanza.Attr) error {
	c := b.byte()
	isID := false
	switch c {
	case anameLiteral:
		a.Name = b.keep(b.str())
	case anameClark:
		start := len(b.arena)
		b.arena = append(b.arena, '{')
		if v := b.uvarint(); v == nsRaw {
			b.arena = append(b.arena, b.str()...)
		} else {
			b.arena = append(b.arena, b.d.d.strs[v-nsToken].s...)
		}
		b.arena = append(b.arena, '}')
		b.arena = append(b.arena, b.str()...)
		a.Name = b.since(start)
	default:
		t := int(c) - anameToken
		if c == anameExt {
			t = attrPage0 + int(b.uvarint())
		}
		a.Name = b.d.d.attrs[t].name
		isID = t == b.d.d.attrID
	}
	v, err := b.value()
	if err != nil {
		return err
	}
	a.Value = v
	if isID {
		if b.nids < maxBackrefs {
			b.ids[b.nids] = v
		}
		b.nids++
	}
	return nil
}

// value builds a value; scan has checked where aliases may appear.
func (b *build) value() (string, error) {
	m := b.byte()
	switch {
	case m >= vToken:
		return b.d.d.strs[m-vToken].s, nil
	case m >= vAlias:
		return b.aliasRef(int(m - vAlias))
	case m >= vSmallInt:
		start := len(b.arena)
		b.arena = strconv.AppendUint(b.arena, uint64(m-vSmallInt), 10)
		return b.since(start), nil
	case m >= vAliasDef:
		jid := b.jid(m&0x0F, true)
		return jid, b.d.aliases.define(len(b.d.aliases.e), jid)
	case m >= vJID:
		return b.jid(m&0x0F, false), nil
	}
	start := len(b.arena)
	switch m {
	case vRaw:
		return b.keep(b.str()), nil
	case vInt:
		b.arena = strconv.AppendUint(b.arena, b.uvarint(), 10)
	case vUUID, vUUIDUpper:
		b.arena = appendUUIDString(b.arena, b.take(16), m == vUUIDUpper)
	case vHex, vHexUpper:
		b.arena = appendHexString(b.arena, b.str(), m == vHexUpper)
	case vB64:
		b.arena = appendB64String(b.arena, b.str())
	case vB32H:
		b.arena = appendB32HString(b.arena, b.str())
	case vTime:
		unix := unzigzag(b.uvarint())
		f := int(b.byte())
		var frac uint64
		if f > 0 {
			frac = b.uvarint()
		}
		b.arena = appendTimeString(b.arena, unix, f, frac)
	case vBackref:
		return b.ids[b.uvarint()], nil
	case vTokenExt:
		return b.d.d.strs[strPage0+int(b.uvarint())].s, nil
	case vAliasExt:
		return b.aliasRef(aliasPage0 + int(b.uvarint()))
	case vAliasSet:
		i := b.uvarint()
		if i >= uint64(len(b.d.aliases.e)) {
			return "", errBadAlias()
		}
		jid := b.jid(b.byte(), true)
		return jid, b.d.aliases.define(int(i), jid)
	}
	return b.since(start), nil
}

func (b *build) aliasRef(i int) (string, error) {
	t := &b.d.aliases
	if i >= len(t.e) {
		return "", errBadAlias()
	}
	b.xml += len(t.e[i].jid) + 5*t.e[i].esc
	return t.e[i].jid, nil
}

// jid builds a JID value, in the arena or (own) in its own allocation.
func (b *build) jid(flags byte, own bool) string {
	var local, label, res []byte
	if flags&jidLocal != 0 {
		local = b.str()
	}
	kind := flags & jidDomainMask
	if kind != jidDomainStream {
		label = b.str()
	}
	if flags&jidResource != 0 {
		res = b.str()
	}
	dst := b.arena
	if own {
		n := len(local) + 1 + len(label) + 1 + len(b.d.domain) + 1 + len(res)
		dst = make([]byte, 0, n)
	}
	start := len(dst)
	if local != nil {
		dst = append(dst, local...)
		dst = append(dst, '@')
	}
	switch kind {
	case jidDomainStream:
		dst = append(dst, b.d.domain...)
	case jidDomainSub:
		dst = append(dst, label...)
		dst = append(dst, '.')
		dst = append(dst, b.d.domain...)
	default:
		dst = append(dst, label...)
	}
	if res != nil {
		dst = append(dst, '/')
		dst = append(dst, res...)
	}
	if own {
		return unsafe.String(&dst[0], len(dst))
	}
	b.arena = dst
	return b.since(start)
}

// open decodes a stream open and settles the negotiation (docs §6).
func (d *decoder) open(f []byte) (Event, error) {
	r := reader{b: f, p: 1}
	n, err := r.uvarint()
	if err != nil {
		return Event{}, err
	}
	if n > maxOpenFields {
		return Event{}, errLimit("too many stream open fields")
	}
	var h Header
	dict, alias := uint64(1), uint64(0)
	fp := ""
	var seen uint64
	for i := 0; i < int(n); i++ {
		k, err := r.byte()
		if err != nil {
			return Event{}, err
		}
		if k < 64 {
			if seen&(1<<k) != 0 {
				return Event{}, errFormat("bad-frame: repeated stream open field")
			}
			seen |= 1 << k
		}
		v, err := d.openValue(&r)
		if err != nil {
			return Event{}, err
		}
		switch k {
		case keyTo:
			h.To = v
		case keyFrom:
			h.From = v
		case keyID:
			h.ID = v
		case keyVersion:
			h.Version = v
		case keyLang:
			h.Lang = v
		case keyNS:
			h.NS = v
		case keyDict, keyAliasBytes:
			x, ok := parseUint(v)
			if !ok {
				return Event{}, errFormat("bad-value: stream open field is not a number")
			}
			if k == keyDict {
				dict = x
			} else {
				alias = min(x, maxAliasBytes)
			}
		case keyDictFP:
			fp = v
		}
	}
	if !r.done() {
		return Event{}, errTrailing()
	}
	var version int
	if d.c.role == Server {
		// The client offers its newest version; versions are
		// append-only, so the server takes the older of the two newest
		// and checks the fingerprint where it knows the client's.
		if dict < 1 || dict > 255 {
			return Event{}, errDictionary("no usable dictionary version offered")
		}
		version = min(int(dict), d.maxDict)
		if fp != "" && int(dict) <= d.maxDict && fp != d.d.fingerprintHex(int(dict)) {
			return Event{}, errDictionary("dictionary fingerprint differs")
		}
		d.domain = h.To
	} else {
		if dict < 1 || int(dict) > d.maxDict {
			return Event{}, errDictionary("server chose a version not offered")
		}
		version = int(dict)
		if fp != "" && fp != d.d.fingerprintHex(version) {
			return Event{}, errDictionary("dictionary fingerprint differs")
		}
		d.domain = h.From
	}
	d.setVersion(version)
	d.aliases.reset(d.lim.AliasBytes)
	d.opened, d.closed = true, false
	d.c.publish(version, int(alias))
	return Event{Kind: EventOpen, Header: h}, nil
}

// openValue reads one stream open value. The open is written with version
// 1's strings and holds no JIDs, aliases or back-references.
func (d *decoder) openValue(r *reader) (string, error) {
	m, err := r.byte()
	if err != nil {
		return "", err
	}
	var out []byte
	switch {
	case m >= vToken:
		if int(m-vToken) >= d.d.ns[1] {
			return "", errBadToken()
		}
		return d.d.strs[m-vToken].s, nil
	case m >= vSmallInt && m < vAlias:
		return strconv.Itoa(int(m - vSmallInt)), nil
	case m == vRaw:
		b, err := r.str()
		if err != nil {
			return "", err
		}
		if _, ok := checkChars(b); !ok {
			return "", errXML("invalid UTF-8 or a character XML forbids")
		}
		return string(b), nil
	case m == vInt:
		v, err := r.uvarint()
		if err != nil {
			return "", err
		}
		return strconv.FormatUint(v, 10), nil
	case m == vUUID || m == vUUIDUpper:
		b, err := r.bytes(16)
		if err != nil {
			return "", err
		}
		out = appendUUIDString(nil, b, m == vUUIDUpper)
	case m == vHex || m == vHexUpper || m == vB64 || m == vB32H:
		b, err := r.str()
		if err != nil {
			return "", err
		}
		if len(b) == 0 {
			return "", errEmpty()
		}
		switch m {
		case vB64:
			out = appendB64String(nil, b)
		case vB32H:
			out = appendB32HString(nil, b)
		default:
			out = appendHexString(nil, b, m == vHexUpper)
		}
	case m == vTime:
		unix, f, frac, err := readTime(r)
		if err != nil {
			return "", err
		}
		out = appendTimeString(nil, unix, f, frac)
	case m == vTokenExt:
		v, err := r.uvarint()
		if err != nil {
			return "", err
		}
		if v >= uint64(max(d.d.ns[1]-strPage0, 0)) {
			return "", errBadToken()
		}
		return d.d.strs[strPage0+int(v)].s, nil
	default:
		return "", errFormat("bad-value: value form not allowed in a stream open")
	}
	return string(out), nil
}

// Input buffers come from a pool shared by all decoders and go back as
// soon as everything fed has been consumed; buffers grown past maxPooled
// by a big frame are left to the collector.
const (
	minBuf    = 4 << 10
	maxPooled = 64 << 10
)

var bufPool sync.Pool // of *[]byte

func getBuf(n int) *[]byte {
	if v := bufPool.Get(); v != nil {
		p := v.(*[]byte)
		if cap(*p) >= n {
			return p
		}
		*p = make([]byte, 0, n)
		return p
	}
	b := make([]byte, 0, max(n, minBuf))
	return &b
}

func (d *decoder) release() {
	if d.bufp != nil && cap(d.buf) <= maxPooled {
		*d.bufp = d.buf[:0]
		bufPool.Put(d.bufp)
	}
	d.buf, d.bufp, d.pos, d.checked = nil, nil, 0, 0
}
