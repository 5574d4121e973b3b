// Package xmlstream reads and writes XMPP's XML streams (RFC 6120 §4, §11)
// and their WebSocket framing (RFC 7395).
//
// The Decoder is push-fed and incremental: the session hands it whatever the
// transport read (Feed) and pulls complete tokens (Next): the stream header,
// each top-level element as a *stanza.Element tree, and the stream close. It
// is hand-written for hostile input: every byte is checked against RFC 6120's
// restricted XML (no DTD, comments, processing instructions or entity
// references besides the predefined ones), every limit in Limits is enforced
// before memory is committed, and a decoder that has consumed all it was fed
// holds no buffer at all, so idle connections cost next to nothing.
//
// The writer side is a set of Append functions that serialise onto a []byte
// without allocating.
//
// # Trees
//
// Every element carries its full namespace in NS; prefixes are resolved
// away and xmlns declarations never appear in Attrs. Attribute names are
// kept as written when unprefixed or xml:-prefixed ("type", "xml:lang");
// other prefixed attributes, which the tree has no place to declare, are
// named "{namespace-uri}local" (Clark notation), which AppendElement writes
// back with a generated prefix. Character data becomes text nodes (Name
// ""), exactly as received after XML's own normalisation: references
// decoded, CR LF turned into LF, adjacent text and CDATA sections merged
// into one node, whitespace between child elements kept.
//
// # Errors
//
// All errors are *stanza.StreamError, to be sent to the peer and followed by
// closing the stream:
//   - not-well-formed: XML or XML-Namespaces syntax errors, including
//     invalid UTF-8 and characters XML 1.0 forbids, literal or referenced
//     (&#0;); RFC 6120 §4.9.3.13 covers these, while invalid-xml is for
//     schema validation, which this package does not do;
//   - restricted-xml: DTDs, comments, processing instructions (other than
//     the XML declaration at the start of a stream) and references to
//     entities other than the five predefined ones (RFC 6120 §11.1);
//   - bad-namespace-prefix: an undeclared prefix;
//   - invalid-namespace: a stream header that is not <stream> in the
//     http://etherx.jabber.org/streams namespace;
//   - unsupported-encoding: an XML declaration naming another encoding, or
//     UTF-16/32 input;
//   - bad-format: character data between top-level elements (only
//     whitespace is allowed there);
//   - policy-violation: a Limits bound was exceeded.
package xmlstream

import (
	"bytes"
	"sync"
	"unsafe"

	"github.com/parley-im/parley/stanza"
)

type state uint8

const (
	stProlog state = iota // stream mode, before the stream header
	stStream              // between top-level elements
	stClosed              // stream mode, after </stream:stream>
)

// step is what one tokenizer step achieved.
type step uint8

const (
	stepOn    step = iota // consumed something; go on
	stepToken             // a token is ready
	stepMore              // the buffered bytes end inside a token
)

const nsXMLNS = "http://www.w3.org/2000/xmlns/"

type binding struct{ prefix, uri string }

// frame is an element whose end tag has not arrived yet.
type frame struct {
	el      *stanza.Element
	prefix  string // as written, to match the end tag
	nsMark  int    // len(d.ns) before the element's declarations
	kidMark int    // where the element's children start in d.kids
}

// rawAttr is an attribute as parsed, before namespace resolution. prefix and
// local alias the input buffer and are valid only while one tag is handled.
type rawAttr struct {
	prefix, local []byte
	value         string
}

// A Decoder turns pushed bytes into stream tokens. It is not safe for
// concurrent use; a session owns one.
//
// Use: Feed what the transport read, then call Next until it reports
// ok == false (need more input) or an error. Errors are *stanza.StreamError
// values to be sent to the peer before closing; they are sticky: every later
// Feed or Next returns the same error.
//
// Memory: a decoder is busy while it holds unconsumed input or part of an
// element, and idle once every fed byte is consumed and no element is open,
// which is where a session spends most of its life. Only a busy decoder
// owns parsing state (input and text buffers, the open elements, scratch):
// Feed takes it from a shared pool and Next hands it back as soon as the
// decoder is idle again. An idle decoder is thus a 48-byte struct, and the
// limits and stream-level namespace bindings it points to are shared with
// other decoders for the usual configurations and stream headers. To save
// allocations, the nodes, attribute and child slices and short strings of
// one returned stanza are carved from a few arrays shared by that stanza
// alone: keeping any part of a stanza keeps those arrays alive. Slices are
// capped, so appending to them never overwrites a neighbour.
type Decoder struct {
	// *work is nil while the decoder is idle. It is embedded so that the
	// parser reads its fields as d.pos, d.stack and so on; the entry points
	// (Feed, Next, Reset) attach it before anything may touch them.
	*work

	lim   *Limits      // read-only, possibly shared: see sharedLimits
	scope *streamScope // read-only, possibly shared: see newScope
	err   error

	framed       bool
	state        state
	declOK       bool // an XML declaration may start at the next byte
	pendingClose bool // the stream header was an empty-element tag
}

// work is the state of a busy decoder. A pooled work is in its zero state
// except for the capacity of its scratch slices, which are cleared so that
// it pins no stanza and no input.
type work struct {
	// Unconsumed input is buf[pos:]. buf comes from bufPool and goes back
	// as soon as everything is consumed.
	buf  []byte
	bufp *[]byte
	pos  int

	// Resume state for a markup token that spans Feeds: how many of its
	// bytes have been scanned already, and the quote open at that point.
	scan  int
	quote byte
	cdata bool // inside <![CDATA[ ... ]]>

	inElem     bool // consuming a top-level element (or the stream header)
	elemBytes  int  // its bytes consumed so far
	frameElems int  // framed: top-level elements begun in this frame

	stack []frame
	ns    []binding         // declared inside the current stanza; see scope
	kids  []*stanza.Element // children of all open elements, innermost last
	raw   []rawAttr         // attributes of the tag being parsed

	// Pending character data: either textStr (one clean run, converted
	// once) or text (decoded pieces from several runs, references, CDATA).
	// text doubles as scratch for attribute values; it is pooled too.
	text    []byte
	textp   *[]byte
	textStr string

	// Per-stanza slabs: elements, attributes and child pointers of one
	// stanza are carved from a few shared arrays instead of one allocation
	// each. They are dropped when the stanza is returned, so stanzas never
	// share arrays; slices are capped so appends by consumers reallocate.
	slab     []stanza.Element
	slabNext int
	attrSlab []stanza.Attr
	kidSlab  []*stanza.Element
	arena    []byte // backing store of the stanza's short strings; see str

	tag struct {
		prefix, local []byte
		selfClose     bool
	}
}

var workPool = sync.Pool{New: func() any { return new(work) }}

// Scratch capacity a pooled work keeps. Real stanzas stay far below; a
// hostile one that grew more does not get to pin it in the pool.
const (
	maxPooledStack = DefaultMaxDepth
	maxPooledNS    = 16
	maxPooledKids  = 256
	maxPooledRaw   = 16
)

// reset puts w back in its pooled state.
func (w *work) reset() {
	w.releaseInput()
	w.releaseText()
	// Beyond their lengths the slices are already zero: every truncation
	// clears what it drops.
	clear(w.stack)
	clear(w.ns)
	clear(w.kids)
	clear(w.raw)
	*w = work{
		stack: keep(w.stack, maxPooledStack),
		ns:    keep(w.ns, maxPooledNS),
		kids:  keep(w.kids, maxPooledKids),
		raw:   keep(w.raw, maxPooledRaw),
	}
}

// keep returns s emptied, or nil if its capacity is beyond limit.
func keep[S ~[]E, E any](s S, limit int) S {
	if cap(s) > limit {
		return nil
	}
	return s[:0]
}

// NewDecoder returns a decoder for a plain XMPP stream (TCP, TLS): it
// expects an optional XML declaration, then the <stream:stream> header.
func NewDecoder(lim Limits) *Decoder {
	d := &Decoder{lim: sharedLimits(lim)}
	d.Reset()
	return d
}

// NewFramedDecoder returns a decoder for XMPP over WebSocket (RFC 7395):
// each Feed must be one whole WebSocket message holding exactly one element
// (whitespace around it is ignored). <open/> and <close/> in the framing
// namespace become KindStreamOpen and KindStreamClose and may come any
// number of times, so stream restarts need no Reset. Top-level elements that
// declare no namespace are read as jabber:client, the only content
// namespace RFC 7395 allows, as other servers do.
func NewFramedDecoder(lim Limits) *Decoder {
	d := &Decoder{lim: sharedLimits(lim), framed: true}
	d.Reset()
	return d
}

// Reset discards all state, buffered input included, and makes the decoder
// expect a new stream header (optionally preceded by an XML declaration), as
// after STARTTLS and SASL success (RFC 6120 §5.4.3.3, §6.4.6). Discarding
// the input buffered before the restart is deliberate: bytes received in
// plaintext before TLS must never be read as if they had been protected.
// It also clears a sticky error.
func (d *Decoder) Reset() {
	d.detach()
	d.err = nil
	d.scope = noScope
	d.pendingClose = false
	d.declOK = true
	d.state = stProlog
	if d.framed {
		d.state = stStream
	}
}

// detach drops the input, any partial element and the scratch buffers,
// and hands the parsing state back to the pool.
func (d *Decoder) detach() {
	w := d.work
	if w == nil {
		return
	}
	d.work = nil
	w.reset()
	workPool.Put(w)
}

// Feed appends p to the input. p is copied, so the caller may reuse it at
// once. Call Next until it reports ok == false before feeding more: a
// caller that keeps feeding without draining gets policy-violation once
// more than MaxStanzaBytes are waiting. In framed mode each call must pass
// exactly one WebSocket message.
func (d *Decoder) Feed(p []byte) error {
	if d.err != nil {
		return d.err
	}
	if len(p) == 0 {
		return nil
	}
	if d.work == nil {
		if skipSpace(p, 0) == len(p) {
			// A whitespace keepalive on an idle stream. Parsing it would
			// only rule out an XML declaration after it, in every state
			// (framed, the next frame allows one again), so an idle
			// session need not wake up for it.
			d.declOK = false
			return nil
		}
		d.work = workPool.Get().(*work)
	}
	pending := len(d.buf) - d.pos
	if d.framed && pending == 0 {
		d.frameElems = 0
		d.declOK = true
	}
	if pending > d.lim.MaxStanzaBytes {
		return d.fail(errPolicy("stanza too large"))
	}
	switch {
	case d.buf == nil:
		d.bufp = getBuf(len(p))
		d.buf = *d.bufp
		d.pos = 0
	case d.pos > 0:
		n := copy(d.buf, d.buf[d.pos:])
		d.buf = d.buf[:n]
		d.pos = 0
	}
	d.buf = append(d.buf, p...)
	return nil
}

// Next returns the next complete token. ok == false with a nil error means
// the input ends inside a token (or is all consumed): Feed more and call
// again. A non-nil error is a *stanza.StreamError.
func (d *Decoder) Next() (tok Token, ok bool, err error) {
	if d.err != nil {
		return Token{}, false, d.err
	}
	if d.pendingClose {
		// The end of an empty-element stream header needs no input of its
		// own, so it may come while the decoder is idle.
		d.pendingClose = false
		d.state = stClosed
		return Token{Kind: KindStreamClose}, true, nil
	}
	if d.work == nil {
		return Token{}, false, nil
	}
	tok, ok, err = d.next()
	if err != nil {
		return Token{}, false, d.fail(err)
	}
	if d.pos == len(d.buf) {
		if len(d.stack) == 0 && !d.inElem {
			// Idle: the token, if any, owns all its memory, so the
			// parsing state can serve another session at once, even
			// before the caller comes back for ok == false.
			d.detach()
		} else {
			d.releaseInput()
		}
	}
	return tok, ok, nil
}

// fail makes err sticky and frees everything the decoder holds.
func (d *Decoder) fail(err error) error {
	d.err = err
	d.detach()
	return err
}

func (d *Decoder) next() (Token, bool, error) {
	for {
		if d.pos == len(d.buf) {
			return Token{}, false, d.starved()
		}
		var (
			s   step
			tok Token
			err error
		)
		switch {
		case d.cdata:
			s, err = d.cdataStep()
		case len(d.stack) > 0:
			s, tok, err = d.contentStep()
		case d.state == stProlog:
			s, tok, err = d.prologStep()
		case d.state == stClosed:
			s, err = d.closedStep()
		default:
			s, tok, err = d.topStep()
		}
		if err != nil {
			return Token{}, false, err
		}
		switch s {
		case stepToken:
			return tok, true, nil
		case stepMore:
			return Token{}, false, d.starved()
		}
	}
}

// starved is called when the input ends: it enforces the size limit on what
// is buffered, and in framed mode that the frame held complete markup.
func (d *Decoder) starved() error {
	pending := len(d.buf) - d.pos
	if d.framed && (pending > 0 || len(d.stack) > 0 || d.cdata) {
		return errNotWellFormed("frame does not hold a complete element")
	}
	if d.elemBytes+pending > d.lim.MaxStanzaBytes {
		return errPolicy("stanza too large")
	}
	return nil
}

// consume advances past n bytes, counting them against the stanza limit.
func (d *Decoder) consume(n int) error {
	d.pos += n
	if d.inElem {
		d.elemBytes += n
		if d.elemBytes > d.lim.MaxStanzaBytes {
			return errPolicy("stanza too large")
		}
	}
	return nil
}

// hasPrefixPart reports whether b, shorter than s, may still grow into s.
func hasPrefixPart(b []byte, s string) bool {
	return len(b) < len(s) && string(b) == s[:len(b)]
}

// declStart decides whether an XML declaration starts b[0] ('<'). It
// needs six bytes: "<?xml" followed by whitespace ("<?xml-foo" is a PI).
func declStart(b []byte) (isDecl, more bool) {
	if len(b) < 6 {
		return false, hasPrefixPart(b, "<?xml ")
	}
	return string(b[:5]) == "<?xml" && isSpace(b[5]), false
}

// prologStep reads what precedes the stream header.
func (d *Decoder) prologStep() (step, Token, error) {
	b := d.buf[d.pos:]
	if d.declOK {
		switch b[0] {
		case 0xEF: // a UTF-8 byte order mark is allowed (XML §4.3.3)
			if len(b) < 3 {
				if hasPrefixPart(b, "\xEF\xBB\xBF") {
					return stepMore, Token{}, nil
				}
			} else if b[1] == 0xBB && b[2] == 0xBF {
				d.pos += 3
				return stepOn, Token{}, nil
			}
		case 0xFE, 0xFF, 0x00: // UTF-16 or UTF-32
			return 0, Token{}, stanza.NewStreamError(stanza.StreamUnsupportedEncoding, "only UTF-8 is supported")
		case '<':
			isDecl, more := declStart(b)
			if more {
				return stepMore, Token{}, nil
			}
			if isDecl {
				s, err := d.xmlDecl()
				return s, Token{}, err
			}
		}
		d.declOK = false
	}
	i := skipSpace(b, 0)
	d.pos += i
	if i == len(b) {
		return stepOn, Token{}, nil
	}
	if b[i] != '<' {
		return 0, Token{}, errNotWellFormed("character data before the stream header")
	}
	if len(b)-i < 3 {
		return stepMore, Token{}, nil
	}
	switch b[i+1] {
	case '?':
		return 0, Token{}, errRestricted("processing instructions are not allowed")
	case '!':
		if b[i+2] == '[' {
			return 0, Token{}, errNotWellFormed("CDATA section before the stream header")
		}
		return 0, Token{}, errRestricted("comments and DTDs are not allowed")
	case '/':
		return 0, Token{}, errNotWellFormed("end tag before the stream header")
	}
	return d.startTag()
}

// maxDeclLen bounds the XML declaration; a real one is under 60 bytes.
const maxDeclLen = 1024

// xmlDecl reads <?xml ...?> at pos.
func (d *Decoder) xmlDecl() (step, error) {
	b := d.buf[d.pos:]
	from := max(d.scan-1, 5)
	end := bytes.Index(b[from:], []byte("?>"))
	if end < 0 {
		if len(b) > maxDeclLen {
			return 0, errNotWellFormed("XML declaration too long")
		}
		d.scan = len(b)
		return stepMore, nil
	}
	end += from
	d.scan = 0
	if end > maxDeclLen {
		return 0, errNotWellFormed("XML declaration too long")
	}
	if err := parseDecl(b[5:end]); err != nil {
		return 0, err
	}
	d.declOK = false
	d.pos += end + 2
	return stepOn, nil
}

// parseDecl checks the pseudo-attributes of an XML declaration (XML §2.8):
// version, then optionally encoding (which must be UTF-8, RFC 6120 §11.6)
// and standalone, in that order.
func parseDecl(s []byte) error {
	bad := errNotWellFormed("malformed XML declaration")
	seen := 0 // 1 version, 2 encoding, 3 standalone
	for i := 0; ; {
		j := skipSpace(s, i)
		if j == len(s) {
			break
		}
		if j == i {
			return bad
		}
		k, err := scanNCName(s, j)
		if err != nil || k == j {
			return bad
		}
		name := s[j:k]
		k = skipSpace(s, k)
		if k == len(s) || s[k] != '=' {
			return bad
		}
		k = skipSpace(s, k+1)
		if k == len(s) || s[k] != '"' && s[k] != '\'' {
			return bad
		}
		q := bytes.IndexByte(s[k+1:], s[k])
		if q < 0 {
			return bad
		}
		val := s[k+1 : k+1+q]
		i = k + 1 + q + 1
		switch string(name) {
		case "version":
			if seen != 0 || len(val) < 3 || val[0] != '1' || val[1] != '.' {
				return bad
			}
			for _, c := range val[2:] {
				if c < '0' || c > '9' {
					return bad
				}
			}
			seen = 1
		case "encoding":
			if seen != 1 {
				return bad
			}
			if !bytes.EqualFold(val, []byte("UTF-8")) {
				return stanza.NewStreamError(stanza.StreamUnsupportedEncoding, "only UTF-8 is supported")
			}
			seen = 2
		case "standalone":
			if seen != 1 && seen != 2 || string(val) != "yes" && string(val) != "no" {
				return bad
			}
			seen = 3
		default:
			return bad
		}
	}
	if seen == 0 {
		return bad
	}
	return nil
}

// closedStep allows only whitespace after </stream:stream>.
func (d *Decoder) closedStep() (step, error) {
	b := d.buf[d.pos:]
	i := skipSpace(b, 0)
	d.pos += i
	if i < len(b) {
		return 0, errNotWellFormed("data after the end of the stream")
	}
	return stepOn, nil
}

// topStep reads between top-level elements: whitespace keepalives, the
// next element's start tag, or the stream's end tag.
func (d *Decoder) topStep() (step, Token, error) {
	b := d.buf[d.pos:]
	if d.declOK {
		if b[0] == '<' {
			isDecl, more := declStart(b)
			if more {
				return stepMore, Token{}, nil
			}
			if isDecl {
				s, err := d.xmlDecl()
				return s, Token{}, err
			}
		}
		d.declOK = false
	}
	i := skipSpace(b, 0)
	d.pos += i
	if i == len(b) {
		return stepOn, Token{}, nil
	}
	if b[i] != '<' {
		if d.framed {
			return 0, Token{}, errNotWellFormed("character data outside the element")
		}
		// Well-formed, but a stream's children are elements (RFC 6120 §4.1).
		return 0, Token{}, stanza.NewStreamError(stanza.StreamBadFormat, "character data at stream level")
	}
	if len(b)-i < 3 {
		return stepMore, Token{}, nil
	}
	switch b[i+1] {
	case '/':
		if d.framed {
			return 0, Token{}, errNotWellFormed("unexpected end tag")
		}
		return d.endTag()
	case '?':
		return 0, Token{}, errRestricted("processing instructions are not allowed")
	case '!':
		if b[i+2] != '[' {
			return 0, Token{}, errRestricted("comments and DTDs are not allowed")
		}
		if d.framed {
			return 0, Token{}, errNotWellFormed("CDATA section outside the element")
		}
		return 0, Token{}, stanza.NewStreamError(stanza.StreamBadFormat, "character data at stream level")
	}
	if d.framed && d.frameElems > 0 {
		return 0, Token{}, errNotWellFormed("more than one element in a frame")
	}
	return d.startTag()
}

// contentStep reads inside a top-level element.
func (d *Decoder) contentStep() (step, Token, error) {
	b := d.buf[d.pos:]
	if b[0] != '<' {
		s, err := d.textStep()
		return s, Token{}, err
	}
	if len(b) < 2 {
		return stepMore, Token{}, nil
	}
	switch b[1] {
	case '/':
		return d.endTag()
	case '?':
		return 0, Token{}, errRestricted("processing instructions are not allowed")
	case '!':
		if len(b) < 3 {
			return stepMore, Token{}, nil
		}
		if b[2] != '[' {
			return 0, Token{}, errRestricted("comments and DTDs are not allowed")
		}
		const open = "<![CDATA["
		if len(b) < len(open) {
			if hasPrefixPart(b, open) {
				return stepMore, Token{}, nil
			}
			return 0, Token{}, errNotWellFormed("malformed CDATA section")
		}
		if string(b[:len(open)]) != open {
			return 0, Token{}, errNotWellFormed("malformed CDATA section")
		}
		d.cdata = true
		return stepOn, Token{}, d.consume(len(open))
	}
	return d.startTag()
}

// textStep consumes character data up to the next '<', or as much of it as
// can be decoded when the input ends first.
func (d *Decoder) textStep() (step, error) {
	b := d.buf[d.pos:]
	n := bytes.IndexByte(b, '<')
	final := n >= 0
	if !final {
		if n = safeLen(b, modeText); n == 0 {
			return stepMore, nil
		}
	}
	seg := b[:n]
	d.spillTextStr()
	had := len(d.text)
	changed, err := d.decodeChars(seg, modeText)
	if err != nil {
		return 0, err
	}
	if !changed {
		if final && had == 0 {
			// The common case: one clean run, converted once.
			d.textStr = d.str(seg)
		} else {
			d.appendText(seg)
		}
	}
	return stepOn, d.consume(n)
}

// cdataStep consumes the content of a CDATA section; like textStep it may
// stop early and hold back a tail.
func (d *Decoder) cdataStep() (step, error) {
	b := d.buf[d.pos:]
	n := bytes.Index(b, []byte("]]>"))
	adv := n + 3
	if n < 0 {
		if n = safeLen(b, modeCDATA); n == 0 {
			return stepMore, nil
		}
		adv = n
	} else {
		d.cdata = false
	}
	d.spillTextStr()
	changed, err := d.decodeChars(b[:n], modeCDATA)
	if err != nil {
		return 0, err
	}
	if !changed {
		d.appendText(b[:n])
	}
	return stepOn, d.consume(adv)
}

// spillTextStr moves a pending clean run into the text buffer because more
// character data follows it (CDATA after text).
func (d *Decoder) spillTextStr() {
	if d.textStr != "" {
		d.appendText([]byte(d.textStr))
		d.textStr = ""
	}
}

func (d *Decoder) appendText(b []byte) {
	if len(b) == 0 {
		return
	}
	if d.textp == nil {
		d.getText()
	}
	d.text = append(d.text, b...)
}

func (d *Decoder) getText() {
	d.textp = getBuf(0)
	d.text = append(*d.textp, d.text...)
}

// flushText turns pending character data into a text node child of the
// innermost open element. Adjacent text, references and CDATA sections
// thus become a single node.
func (d *Decoder) flushText() error {
	var s string
	switch {
	case len(d.text) > 0:
		s = d.str(d.text)
		d.text = d.text[:0]
	case d.textStr != "":
		s = d.textStr
		d.textStr = ""
	default:
		return nil
	}
	t := d.newElem()
	t.Text = s
	return d.addKid(t)
}

// scanTag finds the end of the start tag at the head of b, resuming where
// the previous call stopped; it returns the tag's length including '>'.
// Quotes are tracked so that a '>' inside an attribute value does not end
// the tag.
func (d *Decoder) scanTag(b []byte) (int, bool) {
	i, q := max(d.scan, 1), d.quote
	for i < len(b) {
		if q != 0 {
			j := bytes.IndexByte(b[i:], q)
			if j < 0 {
				i = len(b)
				break
			}
			i += j + 1
			q = 0
			continue
		}
		switch b[i] {
		case '>':
			d.scan, d.quote = 0, 0
			return i + 1, true
		case '"', '\'':
			q = b[i]
		}
		i++
	}
	d.scan, d.quote = i, q
	return 0, false
}

// qname reads a qualified name at b[i] (XML Namespaces §4).
func (d *Decoder) qname(b []byte, i int) (prefix, local []byte, end int, err error) {
	e, err := scanNCName(b, i)
	if err != nil {
		return nil, nil, 0, err
	}
	if e == i {
		return nil, nil, 0, errNotWellFormed("malformed tag")
	}
	local = b[i:e]
	if e < len(b) && b[e] == ':' {
		prefix = local
		s := e + 1
		if e, err = scanNCName(b, s); err != nil {
			return nil, nil, 0, err
		}
		if e == s {
			return nil, nil, 0, errNotWellFormed("malformed qualified name")
		}
		local = b[s:e]
		if e < len(b) && b[e] == ':' {
			return nil, nil, 0, errNotWellFormed("malformed qualified name")
		}
	}
	if len(local) > d.lim.MaxNameLen || len(prefix) > d.lim.MaxNameLen {
		return nil, nil, 0, errPolicy("name too long")
	}
	return prefix, local, e, nil
}

// parseTag parses the complete start tag into d.tag and d.raw.
func (d *Decoder) parseTag(tag []byte) error {
	prefix, local, i, err := d.qname(tag, 1)
	if err != nil {
		return err
	}
	d.tag.prefix, d.tag.local = prefix, local
	last := len(tag) - 1 // the '>'
	for {
		j := skipSpace(tag, i)
		switch tag[j] {
		case '>':
			d.tag.selfClose = false
			return nil
		case '/':
			if j+1 != last {
				return errNotWellFormed("malformed tag")
			}
			d.tag.selfClose = true
			return nil
		}
		if j == i {
			return errNotWellFormed("missing whitespace before attribute")
		}
		ap, al, k, err := d.qname(tag, j)
		if err != nil {
			return err
		}
		k = skipSpace(tag, k)
		if tag[k] != '=' {
			return errNotWellFormed("malformed attribute")
		}
		k = skipSpace(tag, k+1)
		q := tag[k]
		if q != '"' && q != '\'' {
			return errNotWellFormed("unquoted attribute value")
		}
		end := bytes.IndexByte(tag[k+1:last], q)
		if end < 0 {
			return errNotWellFormed("malformed attribute")
		}
		raw := tag[k+1 : k+1+end]
		for n := range d.raw {
			if string(d.raw[n].local) == string(al) && string(d.raw[n].prefix) == string(ap) {
				return errNotWellFormed("duplicate attribute")
			}
		}
		if len(d.raw) == d.lim.MaxAttrs {
			return errPolicy("too many attributes")
		}
		val, err := d.attrValue(raw)
		if err != nil {
			return err
		}
		d.raw = append(d.raw, rawAttr{prefix: ap, local: al, value: val})
		i = k + 1 + end + 1
	}
}

// attrValue decodes an attribute value; d.text is free for scratch here
// because pending text is flushed before a tag is parsed.
func (d *Decoder) attrValue(raw []byte) (string, error) {
	changed, err := d.decodeChars(raw, modeAttr)
	if err != nil {
		return "", err
	}
	if !changed {
		return d.str(raw), nil
	}
	s := d.str(d.text)
	d.text = d.text[:0]
	return s, nil
}

func (d *Decoder) clearRaw() {
	clear(d.raw)
	d.raw = d.raw[:0]
}

// startTag handles a start tag at pos: the stream header, a top-level
// element or a child.
func (d *Decoder) startTag() (step, Token, error) {
	b := d.buf[d.pos:]
	n, ok := d.scanTag(b)
	if !ok {
		return stepMore, Token{}, nil
	}
	if err := d.flushText(); err != nil {
		return 0, Token{}, err
	}
	defer d.clearRaw()
	if err := d.parseTag(b[:n]); err != nil {
		return 0, Token{}, err
	}
	top := len(d.stack) == 0
	if top {
		d.inElem, d.elemBytes = true, 0
	}
	if err := d.consume(n); err != nil {
		return 0, Token{}, err
	}
	if d.state == stProlog {
		tok, err := d.streamHeader()
		return stepToken, tok, err
	}
	if top && d.framed {
		d.frameElems++
	}
	if len(d.stack) >= d.lim.MaxDepth {
		return 0, Token{}, errPolicy("elements nested too deeply")
	}
	mark := len(d.ns)
	el, err := d.element()
	if err != nil {
		return 0, Token{}, err
	}
	if d.tag.selfClose {
		clear(d.ns[mark:])
		d.ns = d.ns[:mark]
		return d.complete(el)
	}
	prefix := ""
	if len(d.tag.prefix) > 0 {
		prefix = d.str(d.tag.prefix)
	}
	d.stack = append(d.stack, frame{el: el, prefix: prefix, nsMark: mark, kidMark: len(d.kids)})
	return stepOn, Token{}, nil
}

// pushDecls validates the namespace declarations of the parsed tag and
// brings them into scope (XML Namespaces §3, "Reserved Prefixes and
// Namespace Names"); violations are not-well-formed.
func (d *Decoder) pushDecls() error {
	for i := range d.raw {
		a := &d.raw[i]
		var prefix string
		switch {
		case len(a.prefix) == 0 && string(a.local) == "xmlns":
			if a.value == stanza.NSXML || a.value == nsXMLNS {
				return errNotWellFormed("reserved namespace as default")
			}
		case string(a.prefix) == "xmlns":
			switch {
			case string(a.local) == "xmlns":
				return errNotWellFormed("the xmlns prefix cannot be declared")
			case string(a.local) == "xml":
				if a.value != stanza.NSXML {
					return errNotWellFormed("the xml prefix cannot be rebound")
				}
				continue // always bound; nothing to push
			case a.value == stanza.NSXML || a.value == nsXMLNS:
				return errNotWellFormed("reserved namespace bound to a prefix")
			case a.value == "":
				return errNotWellFormed("a prefix cannot be undeclared")
			}
			prefix = d.str(a.local)
		default:
			continue
		}
		if len(d.ns)+len(d.scope.ns) == maxBindings {
			return errPolicy("too many namespace declarations")
		}
		d.ns = append(d.ns, binding{prefix: prefix, uri: a.value})
	}
	return nil
}

// maxBindings bounds the namespace declarations in scope at once (stream
// level included). Resolving a name scans them, so without a bound a stanza
// that declares MaxAttrs prefixes on each of MaxDepth levels would make
// every name lookup cost thousands of comparisons. Real stanzas have a
// handful.
const maxBindings = 128

func isDecl(a *rawAttr) bool {
	return string(a.prefix) == "xmlns" || len(a.prefix) == 0 && string(a.local) == "xmlns"
}

// lookup resolves a prefix ("" for the default namespace).
func (d *Decoder) lookup(prefix []byte) (string, bool) {
	if string(prefix) == "xml" {
		return stanza.NSXML, true
	}
	for i := len(d.ns) - 1; i >= 0; i-- {
		if d.ns[i].prefix == string(prefix) {
			return d.ns[i].uri, true
		}
	}
	for _, b := range d.scope.ns {
		// The stream header binds each prefix at most once, so the order
		// of the search does not matter here.
		if b.prefix == string(prefix) {
			return b.uri, true
		}
	}
	if len(prefix) == 0 {
		if d.framed {
			return stanza.NSClient, true
		}
		return "", true
	}
	return "", false
}

// elemNS resolves the parsed tag's element namespace.
func (d *Decoder) elemNS() (string, error) {
	if string(d.tag.prefix) == "xmlns" {
		return "", errNotWellFormed("element with the xmlns prefix")
	}
	ns, ok := d.lookup(d.tag.prefix)
	if !ok {
		return "", errBadPrefix()
	}
	return ns, nil
}

// attrName resolves an attribute name. Unprefixed names and xml:* are kept
// as written; other prefixed names become "{namespace-uri}local" (Clark
// notation) because prefixes are arbitrary and the tree has no place for
// their declarations; AppendElement declares a prefix for them again.
func (d *Decoder) attrName(a *rawAttr) (string, error) {
	switch {
	case len(a.prefix) == 0:
		return d.str(a.local), nil
	case string(a.prefix) == "xml":
		if string(a.local) == "lang" {
			return "xml:lang", nil
		}
		return "xml:" + string(a.local), nil
	}
	uri, ok := d.lookup(a.prefix)
	if !ok {
		return "", errBadPrefix()
	}
	return "{" + uri + "}" + string(a.local), nil
}

// element builds the parsed tag's element, bringing its declarations into
// scope.
func (d *Decoder) element() (*stanza.Element, error) {
	if err := d.pushDecls(); err != nil {
		return nil, err
	}
	ns, err := d.elemNS()
	if err != nil {
		return nil, err
	}
	el := d.newElem()
	el.Name = d.str(d.tag.local)
	el.NS = ns
	n := 0
	for i := range d.raw {
		if !isDecl(&d.raw[i]) {
			n++
		}
	}
	if n == 0 {
		return el, nil
	}
	attrs := d.newAttrs(n)
	n, clark := 0, false
	for i := range d.raw {
		a := &d.raw[i]
		if isDecl(a) {
			continue
		}
		name, err := d.attrName(a)
		if err != nil {
			return nil, err
		}
		clark = clark || name[0] == '{'
		attrs[n] = stanza.Attr{Name: name, Value: a.value}
		n++
	}
	if clark {
		// Two prefixes bound to one namespace make distinct qualified names
		// the same attribute (XML Namespaces §6.3).
		for i := range attrs {
			for j := i + 1; j < len(attrs); j++ {
				if attrs[i].Name == attrs[j].Name {
					return nil, errNotWellFormed("duplicate attribute")
				}
			}
		}
	}
	el.Attrs = attrs
	return el, nil
}

// streamHeader turns the parsed tag into the stream header token (RFC 6120
// §4.7, §4.8).
func (d *Decoder) streamHeader() (Token, error) {
	d.inElem, d.elemBytes = false, 0
	if err := d.pushDecls(); err != nil {
		return Token{}, err
	}
	ns, err := d.elemNS()
	if err != nil {
		return Token{}, err
	}
	if string(d.tag.local) != "stream" || ns != stanza.NSStream {
		return Token{}, stanza.NewStreamError(stanza.StreamInvalidNamespace, "expected a stream header in the streams namespace")
	}
	def, _ := d.lookup(nil)
	h := &Header{NS: def}
	for i := range d.raw {
		a := &d.raw[i]
		if isDecl(a) {
			continue
		}
		name, err := d.attrName(a)
		if err != nil {
			return Token{}, err
		}
		switch name {
		case "to":
			h.To = a.value
		case "from":
			h.From = a.value
		case "id":
			h.ID = a.value
		case "version":
			h.Version = a.value
		case "xml:lang":
			h.Lang = a.value
		}
	}
	// The header's bindings stay in force for the whole stream, apart from
	// the stanzas' own, which come and go in d.ns.
	d.scope = newScope(intern(d.tag.prefix), d.ns)
	clear(d.ns)
	d.ns = d.ns[:0]
	// Like a stanza, the header leaves nothing behind: the scratch its
	// attribute values were decoded in goes back to the pool, and its
	// strings keep their arena chunk to themselves.
	d.releaseText()
	d.arena = nil
	d.state = stStream
	d.pendingClose = d.tag.selfClose
	return Token{Kind: KindStreamOpen, Header: h}, nil
}

// endTag handles an end tag at pos: of the innermost open element, or at
// stream level the stream's own.
func (d *Decoder) endTag() (step, Token, error) {
	b := d.buf[d.pos:]
	from := max(d.scan, 2)
	k := bytes.IndexByte(b[from:], '>')
	if k < 0 {
		d.scan = len(b)
		return stepMore, Token{}, nil
	}
	n := from + k + 1
	d.scan = 0
	prefix, local, e, err := d.qname(b[:n], 2)
	if err != nil {
		return 0, Token{}, err
	}
	if skipSpace(b, e) != n-1 {
		return 0, Token{}, errNotWellFormed("malformed end tag")
	}
	if len(d.stack) == 0 {
		if string(local) != "stream" || string(prefix) != d.scope.prefix {
			return 0, Token{}, errNotWellFormed("mismatched end tag")
		}
		d.pos += n
		d.state = stClosed
		return stepToken, Token{Kind: KindStreamClose}, nil
	}
	f := d.stack[len(d.stack)-1]
	if string(local) != f.el.Name || string(prefix) != f.prefix {
		return 0, Token{}, errNotWellFormed("mismatched end tag")
	}
	if err := d.flushText(); err != nil {
		return 0, Token{}, err
	}
	if err := d.consume(n); err != nil {
		return 0, Token{}, err
	}
	if kids := d.kids[f.kidMark:]; len(kids) > 0 {
		c := d.newKids(len(kids))
		copy(c, kids)
		f.el.Children = c
		clear(kids)
		d.kids = d.kids[:f.kidMark]
	}
	clear(d.ns[f.nsMark:])
	d.ns = d.ns[:f.nsMark]
	d.stack[len(d.stack)-1] = frame{}
	d.stack = d.stack[:len(d.stack)-1]
	return d.complete(f.el)
}

// complete handles an element whose end has been read.
func (d *Decoder) complete(el *stanza.Element) (step, Token, error) {
	if len(d.stack) > 0 {
		return stepOn, Token{}, d.addKid(el)
	}
	d.endStanza()
	if d.framed && el.NS == NSFraming {
		switch el.Name {
		case "open":
			h := &Header{
				NS:      stanza.NSClient,
				To:      el.Attr("to"),
				From:    el.Attr("from"),
				ID:      el.Attr("id"),
				Version: el.Attr("version"),
				Lang:    el.Attr("xml:lang"),
			}
			return stepToken, Token{Kind: KindStreamOpen, Header: h}, nil
		case "close":
			return stepToken, Token{Kind: KindStreamClose, Element: el}, nil
		}
	}
	return stepToken, Token{Kind: KindElement, Element: el}, nil
}

func (d *Decoder) addKid(el *stanza.Element) error {
	if len(d.kids)-d.stack[len(d.stack)-1].kidMark >= d.lim.MaxChildren {
		return errPolicy("too many children")
	}
	d.kids = append(d.kids, el)
	return nil
}

// endStanza resets the per-stanza state once a top-level element is done,
// so that nothing of it stays referenced from the decoder.
func (d *Decoder) endStanza() {
	d.inElem, d.elemBytes = false, 0
	d.releaseText()
	d.slab, d.slabNext = nil, 0
	d.attrSlab, d.kidSlab = nil, nil
	d.arena = nil
	d.clearRaw()
	// Scratch that a huge stanza grew is not kept for the small ones.
	if cap(d.kids) > 256 {
		d.kids = nil
	}
	if cap(d.raw) > 16 {
		d.raw = nil
	}
}

// newElem carves an element from the stanza's slab; slabs grow 2, 4, 8,
// ... 32 so small stanzas stay small.
func (d *Decoder) newElem() *stanza.Element {
	if len(d.slab) == 0 {
		n := max(d.slabNext, 2)
		d.slab = make([]stanza.Element, n)
		d.slabNext = min(2*n, 32)
	}
	e := &d.slab[0]
	d.slab = d.slab[1:]
	return e
}

// Strings of a stanza up to maxArenaString bytes share arena chunks of
// arenaChunk bytes: ids, JIDs and short bodies then cost one allocation per
// stanza instead of one each. A kept string pins at most one chunk; longer
// strings, which would pin more, get their own allocation.
const (
	maxArenaString = 128
	arenaChunk     = 256
)

// str returns b as a string that does not alias the input buffer: a shared
// interned string for known words, else a copy.
func (d *Decoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) <= maxInternLen {
		if s, ok := internTab[string(b)]; ok {
			return s
		}
	}
	if len(b) > maxArenaString {
		return string(b)
	}
	if cap(d.arena)-len(d.arena) < len(b) {
		d.arena = make([]byte, 0, arenaChunk)
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	// The bytes are never written again: the arena is only appended to,
	// and replaced (never reused) when full or when the stanza ends.
	return unsafe.String(&d.arena[start], len(b))
}

func (d *Decoder) newAttrs(n int) []stanza.Attr {
	if len(d.attrSlab) < n {
		d.attrSlab = make([]stanza.Attr, max(n, 8))
	}
	a := d.attrSlab[:n:n]
	d.attrSlab = d.attrSlab[n:]
	return a
}

func (d *Decoder) newKids(n int) []*stanza.Element {
	if len(d.kidSlab) < n {
		d.kidSlab = make([]*stanza.Element, max(n, 8))
	}
	k := d.kidSlab[:n:n]
	d.kidSlab = d.kidSlab[n:]
	return k
}

// Buffer pool shared by all decoders: input buffers and text scratch.
// Buffers beyond maxPooled (grown by a large stanza) are left to the GC so
// the pool does not pin memory for the rare big one.
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

func putBuf(p *[]byte, b []byte) {
	if cap(b) > maxPooled {
		return
	}
	*p = b[:0]
	bufPool.Put(p)
}

func (w *work) releaseInput() {
	if w.bufp != nil {
		putBuf(w.bufp, w.buf)
	}
	w.buf, w.bufp, w.pos = nil, nil, 0
	w.scan, w.quote = 0, 0
}

func (w *work) releaseText() {
	if w.textp != nil {
		putBuf(w.textp, w.text)
	}
	w.text, w.textp = nil, nil
}

// retained reports the bytes of buffer capacity the decoder holds; tests use
// it to check that an idle decoder holds none.
func (d *Decoder) retained() int {
	if d.work == nil {
		return 0
	}
	return cap(d.buf) + cap(d.text) + cap(d.arena)
}
