package jid

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

// maxRawPartLen bounds the work done on a part before normalisation. PRECIS
// mappings shrink text by at most a factor of three (width folding of
// fullwidth forms, NFC composition of conjoining Hangul jamo), so anything
// longer cannot normalise to MaxPartLen bytes; rejecting it early stops an
// attacker from making us run the Unicode pipeline over megabytes.
const maxRawPartLen = 4 * MaxPartLen

// maxDNSLabelLen is the DNS limit on one label (RFC 1035 §2.3.4). For
// U-labels it applies to the A-label form (RFC 5890 §2.3.2.1).
const maxDNSLabelLen = 63

// localForbidden are the characters RFC 7622 §3.3.1 excludes from
// localparts on top of the PRECIS IdentifierClass, mostly because they
// would make JIDs ambiguous inside URIs and XML.
const localForbidden = "\"&'/:<>@"

var (
	// localProfile is RFC 8265 UsernameCaseMapped without the Bidi Rule.
	// precis.UsernameCaseMapped applies the Bidi Rule to every non-ASCII
	// string, which wrongly rejects left-to-right names such as "1é";
	// the Directionality Rule of RFC 8265 applies it only to strings with
	// right-to-left code points, which normLocal does itself.
	localProfile = precis.NewIdentifier(
		precis.FoldWidth,
		precis.LowerCase(),
		precis.Norm(norm.NFC),
	)

	// domainProfile performs the IDNA2008 mappings recommended by RFC 5895
	// (lower case, width folding, NFC) on one label and rejects code points
	// outside the PRECIS IdentifierClass, which for non-ASCII characters is
	// close to the IDNA2008 PVALID set. ASCII characters other than LDH are
	// rejected separately. This stands in for golang.org/x/net/idna, which
	// this module does not depend on.
	domainProfile = precis.NewIdentifier(
		precis.FoldWidth,
		precis.LowerCase(),
		precis.Norm(norm.NFC),
	)

	// dotMapper maps the label separators that UTS #46 and RFC 3490
	// recognise besides U+002E FULL STOP, so that a domain typed with an
	// East Asian input method ends up with the same labels.
	dotMapper = strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".")
)

// Byte classes for the allocation-free fast path and the ASCII checks.
const (
	classLocal    = 1 << iota // allowed in a normalised ASCII localpart
	classLDH                  // lower-case letter, digit or hyphen
	classResource             // allowed in an ASCII resourcepart
)

var byteClass = func() (t [256]uint8) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] |= classResource
		if c != ' ' && !('A' <= c && c <= 'Z') && !strings.ContainsRune(localForbidden, rune(c)) {
			t[c] |= classLocal
		}
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' {
			t[c] |= classLDH
		}
	}
	return t
}()

// parseFast accepts exactly those inputs that are pure ASCII and already in
// normal form, returning a JID that reuses s. It reports false for anything
// it is unsure about (upper case, A-labels, IP addresses, a trailing dot,
// errors); parseSlow then decides. TestFastPathMatchesSlowPath checks that
// whenever this accepts, parseSlow produces the identical JID.
func parseFast(s string) (JID, bool) {
	slash := strings.IndexByte(s, '/')
	head := s
	if slash >= 0 {
		head = s[:slash]
		res := s[slash+1:]
		if len(res) == 0 || len(res) > MaxPartLen {
			return JID{}, false
		}
		for i := 0; i < len(res); i++ {
			if byteClass[res[i]]&classResource == 0 {
				return JID{}, false
			}
		}
	}
	at := strings.IndexByte(head, '@')
	domain := head
	if at >= 0 {
		if at == 0 || at > MaxPartLen {
			return JID{}, false
		}
		for i := 0; i < at; i++ {
			if byteClass[head[i]]&classLocal == 0 {
				return JID{}, false
			}
		}
		domain = head[at+1:]
	}
	if len(domain) == 0 || len(domain) > MaxPartLen || !fastDomain(domain) {
		return JID{}, false
	}
	j := JID{s: s, domainEnd: uint16(len(head))}
	if at > 0 {
		j.localLen = uint16(at)
	}
	return j, true
}

// fastDomain reports whether d is a non-empty sequence of NR-LDH labels
// without a trailing dot whose last label is not all digits (which would
// need the IPv4 check).
func fastDomain(d string) bool {
	start := 0
	digits := true
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			c := d[i]
			if byteClass[c]&classLDH == 0 {
				return false
			}
			if c < '0' || c > '9' {
				digits = false
			}
			continue
		}
		label := d[start:i]
		n := len(label)
		if n == 0 || n > maxDNSLabelLen || label[0] == '-' || label[n-1] == '-' ||
			n >= 4 && label[2] == '-' && label[3] == '-' {
			return false
		}
		if i == len(d) {
			return !digits
		}
		start = i + 1
		digits = true
	}
	return false
}

func parseSlow(s string) (JID, error) {
	if len(s) > 3*maxRawPartLen+2 {
		return JID{}, malformed("address", s, "too long")
	}
	rest, res, hasRes := strings.Cut(s, "/")
	local, domain, hasLocal := strings.Cut(rest, "@")
	if !hasLocal {
		local, domain = "", local
	}
	return build(local, hasLocal, domain, res, hasRes, s)
}

// build normalises the parts and assembles a JID. If orig is non-empty it is
// the string the parts were cut from, and is reused when normalisation
// changed nothing, saving an allocation.
func build(local string, hasLocal bool, domain, res string, hasRes bool, orig string) (JID, error) {
	var nl, nd, nr string
	var err error
	if hasLocal {
		if nl, err = normLocal(local); err != nil {
			return JID{}, err
		}
	}
	if nd, err = normDomain(domain); err != nil {
		return JID{}, err
	}
	if hasRes {
		if nr, err = normResource(res); err != nil {
			return JID{}, err
		}
	}
	j := JID{localLen: uint16(len(nl)), domainEnd: uint16(len(nd))}
	if hasLocal {
		j.domainEnd += uint16(len(nl)) + 1
	}
	switch {
	case orig != "" && nl == local && nd == domain && nr == res:
		j.s = orig
	case hasLocal && hasRes:
		j.s = nl + "@" + nd + "/" + nr
	case hasLocal:
		j.s = nl + "@" + nd
	case hasRes:
		j.s = nd + "/" + nr
	default:
		j.s = nd
	}
	return j, nil
}

func malformed(part, value, reason string) error {
	const maxQuoted = 64
	if len(value) > maxQuoted {
		n := maxQuoted
		for n > maxQuoted-utf8.UTFMax && !utf8.RuneStart(value[n]) {
			n--
		}
		value = value[:n] + "..."
	}
	return fmt.Errorf("%w: %s %q: %s", ErrMalformed, part, value, reason)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// enforce applies p until the result is stable. RFC 8266 §2.1 records that
// PRECIS rules are not idempotent for every code point, and x/text does not
// promise idempotence for the other profiles either (no counter-example is
// known). A JID whose String form parsed to a different JID would break
// routing and comparison, so for non-ASCII text we pay for one extra pass
// to guarantee it, and reject strings that do not settle.
func enforce(p *precis.Profile, s string) (string, error) {
	out, err := p.String(s)
	if err != nil {
		return "", err
	}
	for range 4 {
		if isASCII(out) {
			// ASCII enforcement is a plain case map and class check.
			return out, nil
		}
		again, err := p.String(out)
		if err != nil {
			return "", err
		}
		if again == out {
			return out, nil
		}
		out = again
	}
	return "", errors.New("normalisation does not converge")
}

func checkLen(part, orig, norm string) error {
	if len(norm) > MaxPartLen {
		return malformed(part, orig, fmt.Sprintf("longer than %d bytes", MaxPartLen))
	}
	return nil
}

func normLocal(s string) (string, error) {
	const part = "localpart"
	if s == "" {
		return "", malformed(part, s, "empty")
	}
	if len(s) > maxRawPartLen {
		return "", malformed(part, s, "too long")
	}
	if !utf8.ValidString(s) {
		// PRECIS would silently turn this into U+FFFD.
		return "", malformed(part, s, "invalid UTF-8")
	}
	out, err := enforce(localProfile, s)
	if err != nil {
		return "", malformed(part, s, err.Error())
	}
	if bidirule.DirectionString(out) == bidi.RightToLeft && !bidirule.ValidString(out) {
		return "", malformed(part, s, "violates the Bidi Rule")
	}
	// Checked after mapping because width folding turns e.g. U+FF20
	// FULLWIDTH COMMERCIAL AT into '@'.
	if i := strings.IndexAny(out, localForbidden); i >= 0 {
		return "", malformed(part, s, fmt.Sprintf("contains forbidden character %q", out[i]))
	}
	return out, checkLen(part, s, out)
}

func normResource(s string) (string, error) {
	const part = "resourcepart"
	if s == "" {
		return "", malformed(part, s, "empty")
	}
	if len(s) > maxRawPartLen {
		return "", malformed(part, s, "too long")
	}
	if !utf8.ValidString(s) {
		// PRECIS would silently turn this into U+FFFD.
		return "", malformed(part, s, "invalid UTF-8")
	}
	out, err := enforce(precis.OpaqueString, s)
	if err != nil {
		return "", malformed(part, s, err.Error())
	}
	return out, checkLen(part, s, out)
}

func normDomain(s string) (string, error) {
	const part = "domainpart"
	if s == "" {
		return "", malformed(part, s, "empty")
	}
	if len(s) > maxRawPartLen {
		return "", malformed(part, s, "too long")
	}
	if !utf8.ValidString(s) {
		// PRECIS would silently turn this into U+FFFD.
		return "", malformed(part, s, "invalid UTF-8")
	}
	if s[0] == '[' {
		return normIPLiteral(s)
	}
	d := s
	ascii := isASCII(d)
	if !ascii {
		d = dotMapper.Replace(d)
	}
	// RFC 7622 §3.2: a trailing dot denotes the DNS root and is stripped.
	// Only one, so that "example.com.." stays invalid.
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", malformed(part, s, "empty")
	}

	// Normalise label by label, copying only once a label changes.
	var b strings.Builder
	changed := false
	rtl := false
	last := ""
	for rest := d; ; {
		label, tail, more := strings.Cut(rest, ".")
		nl, err := normLabel(label)
		if err != nil {
			return "", malformed(part, s, err.Error())
		}
		if !changed && nl != label {
			changed = true
			b.Grow(len(d) + 8)
			b.WriteString(d[:len(d)-len(rest)])
		}
		if changed {
			b.WriteString(nl)
			if more {
				b.WriteByte('.')
			}
		}
		if !rtl && !isASCII(nl) && bidirule.DirectionString(nl) == bidi.RightToLeft {
			rtl = true
		}
		last = nl
		if !more {
			break
		}
		rest = tail
	}
	if changed {
		d = b.String()
	}

	if rtl {
		// RFC 5893 §2: in a domain name with a right-to-left label every
		// label, including ASCII ones, must satisfy the Bidi Rule.
		for label := range strings.SplitSeq(d, ".") {
			if !bidirule.ValidString(label) {
				return "", malformed(part, s, "violates the Bidi Rule")
			}
		}
	}
	if allDigits(last) {
		// A numeric top-level label cannot be a host name (RFC 3696 §2),
		// so this must be a dotted-quad IPv4 address. netip rejects
		// leading zeros, which some resolvers would read as octal.
		ip, err := netip.ParseAddr(d)
		if err != nil || !ip.Is4() {
			return "", malformed(part, s, "numeric top-level label but not an IPv4 address")
		}
	}
	return d, checkLen(part, s, d)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// normIPLiteral handles "[IPv6]" domainparts (RFC 7622 §3.2, RFC 3986
// IP-literal). The address is put in RFC 5952 canonical form so that
// different spellings of the same address compare equal.
func normIPLiteral(s string) (string, error) {
	if len(s) < 2 || s[len(s)-1] != ']' {
		return "", malformed("domainpart", s, "unterminated IP literal")
	}
	ip, err := netip.ParseAddr(s[1 : len(s)-1])
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return "", malformed("domainpart", s, "invalid IPv6 literal")
	}
	return "[" + ip.String() + "]", nil
}

// normLabel normalises one domain label to an NR-LDH label or a U-label.
func normLabel(label string) (string, error) {
	if label == "" {
		return "", errors.New("empty label")
	}
	if isASCII(label) {
		return normASCIILabel(label)
	}
	u, err := enforce(domainProfile, label)
	if err != nil {
		return "", err
	}
	if isASCII(u) {
		// Fullwidth Latin letters fold to plain ASCII.
		return normASCIILabel(u)
	}
	return u, checkULabel(u)
}

func normASCIILabel(label string) (string, error) {
	for i := 0; i < len(label); i++ {
		if c := label[i]; 'A' <= c && c <= 'Z' {
			label = strings.ToLower(label)
			break
		}
	}
	n := len(label)
	if n == 0 {
		return "", errors.New("empty label")
	}
	if n > maxDNSLabelLen {
		return "", fmt.Errorf("label longer than %d bytes", maxDNSLabelLen)
	}
	for i := 0; i < n; i++ {
		if byteClass[label[i]]&classLDH == 0 {
			return "", fmt.Errorf("invalid character %q in label", label[i])
		}
	}
	if label[0] == '-' || label[n-1] == '-' {
		return "", errors.New("label starts or ends with a hyphen")
	}
	if n >= 4 && label[2] == '-' && label[3] == '-' {
		if label[:2] == "xn" {
			return decodeALabel(label)
		}
		// RFC 5890 §2.3.1: reserved LDH labels are not valid host names.
		return "", errors.New("label has hyphens in positions 3 and 4")
	}
	return label, nil
}

// decodeALabel converts an A-label to the U-label RFC 7622 §3.2 requires in
// a JID. It only accepts the canonical encoding of a valid, already
// normalised U-label (RFC 5891 §5.3), so every A-label has exactly one
// JID spelling and decoding cannot smuggle in unnormalised text.
func decodeALabel(label string) (string, error) {
	u, err := punyDecode(label[4:])
	if err != nil || isASCII(u) {
		return "", errors.New("invalid A-label")
	}
	if nu, err := enforce(domainProfile, u); err != nil || nu != u {
		return "", errors.New("punycode does not encode a normalised U-label")
	}
	if err := checkULabel(u); err != nil {
		return "", err
	}
	if enc, err := punyEncode(u); err != nil || enc != label[4:] {
		return "", errors.New("non-canonical A-label")
	}
	return u, nil
}

// checkULabel applies the IDNA2008 label rules (RFC 5891 §4.2.3, §5.4) that
// PRECIS enforcement does not cover, to a label that is already mapped.
func checkULabel(u string) error {
	// Every code point costs at least one byte of the A-label, so this
	// cheap bound keeps the quadratic Punycode encoder off long input.
	if utf8.RuneCountInString(u) > maxDNSLabelLen-len("xn--") {
		return fmt.Errorf("label longer than %d bytes in ASCII form", maxDNSLabelLen)
	}
	r0, _ := utf8.DecodeRuneInString(u)
	if unicode.Is(unicode.M, r0) {
		return errors.New("label starts with a combining mark")
	}
	if u[0] == '-' || u[len(u)-1] == '-' {
		return errors.New("label starts or ends with a hyphen")
	}
	var head [4]rune
	n := 0
	for _, r := range u {
		if n < len(head) {
			head[n] = r
		}
		n++
		if r < utf8.RuneSelf && byteClass[r]&classLDH == 0 {
			return fmt.Errorf("invalid character %q in label", r)
		}
	}
	if n >= 4 && head[2] == '-' && head[3] == '-' {
		return errors.New("label has hyphens in positions 3 and 4")
	}
	enc, err := punyEncode(u)
	if err != nil || len(enc)+4 > maxDNSLabelLen {
		return fmt.Errorf("label longer than %d bytes in ASCII form", maxDNSLabelLen)
	}
	return nil
}

// domainToASCII converts a normalised domainpart to A-labels.
func domainToASCII(d string) (string, error) {
	var b strings.Builder
	b.Grow(len(d) + 8)
	for label := range strings.SplitSeq(d, ".") {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if isASCII(label) {
			b.WriteString(label)
			continue
		}
		enc, err := punyEncode(label)
		if err != nil {
			return "", err
		}
		b.WriteString("xn--")
		b.WriteString(enc)
	}
	return b.String(), nil
}

// Nickname enforces the PRECIS Nickname profile (RFC 8266), which is how
// multi-user chat rooms normalise occupant names (XEP-0045). It maps
// non-ASCII spaces, trims and collapses spaces and applies NFKC, but keeps
// case, so the result is what other occupants should see. The result is
// always a valid resourcepart, since occupant JIDs carry the nickname there.
//
// Nicknames that differ only in case are different strings here; rooms that
// must prevent such look-alikes should compare with the profile's
// case-insensitive comparison (precis.Nickname.Compare).
func Nickname(s string) (string, error) {
	const part = "nickname"
	if s == "" {
		return "", malformed(part, s, "empty")
	}
	if len(s) > maxRawPartLen {
		return "", malformed(part, s, "too long")
	}
	if !utf8.ValidString(s) {
		// PRECIS would silently turn this into U+FFFD.
		return "", malformed(part, s, "invalid UTF-8")
	}
	out, err := enforce(precis.Nickname, s)
	if err != nil {
		return "", malformed(part, s, err.Error())
	}
	if len(out) > MaxPartLen {
		return "", malformed(part, s, fmt.Sprintf("longer than %d bytes", MaxPartLen))
	}
	if r, err := normResource(out); err != nil || r != out {
		return "", malformed(part, s, "not usable as a resourcepart")
	}
	return out, nil
}
