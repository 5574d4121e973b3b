// Package jid implements XMPP addresses (JIDs) as specified in RFC 7622.
//
// A JID is only ever constructed in normalised form, so two addresses that
// denote the same entity compare equal with ==, and a JID can be used
// directly as a map key for routing tables, rosters and session lists.
// Normalisation follows the PRECIS framework (RFC 8264): the localpart uses
// the UsernameCaseMapped profile (RFC 8265) plus the extra exclusions of
// RFC 7622 §3.3.1, the domainpart is lower-cased and mapped to U-labels, and
// the resourcepart uses the OpaqueString profile, which preserves case.
//
// Domainparts are validated as IDNA2008 host names without depending on
// golang.org/x/net/idna: labels are mapped as RFC 5895 recommends (lower
// case, width folding, NFC, ideographic full stops as dots), A-labels are
// decoded to U-labels as RFC 7622 §3.2 requires, and compatibility
// characters such as "①" are rejected rather than mapped the way UTS #46
// would. A numeric top-level label is only accepted as part of a dotted-quad
// IPv4 address, and IPv6 literals are put in RFC 5952 canonical form so that
// every address has exactly one spelling.
//
// Parsing is on the hot path of a server (every stanza carries addresses),
// so input that is already in normal form and pure ASCII is validated in a
// single pass without allocating, and the resulting JID shares memory with
// the input string.
package jid

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error this package returns for an input
// that is not a valid JID or JID part, so callers can map any such failure
// to the XMPP "jid-malformed" condition with errors.Is without depending on
// the exact reason.
var ErrMalformed = errors.New("jid: malformed address")

// MaxPartLen is the maximum length in bytes of each of the localpart,
// domainpart and resourcepart after normalisation (RFC 7622 §3.1). It is
// exported so that code storing JIDs, e.g. in fixed-width database columns,
// can size its storage.
const MaxPartLen = 1023

// JID is a normalised XMPP address.
//
// The zero JID has no parts and represents "no address", e.g. a stanza
// without a "to" attribute; test for it with IsZero. JIDs are small values
// meant to be passed and stored by value. Two JIDs are equal (==, Equal) if
// and only if they address the same entity, because all parts are kept in
// normal form.
type JID struct {
	// s is the canonical string form: [local "@"] domain ["/" resource].
	// Keeping one string rather than three makes String and BareString free
	// and lets the parser reuse an already-normal input unchanged. The
	// offsets are fully determined by s (the localpart and domainpart can
	// contain neither '@' nor '/'), so == on JID is equality of addresses.
	s string
	// localLen is the length of the localpart; 0 if there is none.
	localLen uint16
	// domainEnd is the index in s just past the domainpart.
	domainEnd uint16
}

// Parse parses and normalises s, which must have the form
// [localpart "@"] domainpart ["/" resourcepart].
//
// Following RFC 7622 §3.1 the resourcepart is everything after the first '/'
// (so it may itself contain '@' and '/'), and the localpart is everything
// before the first '@' that precedes it. A separator with nothing on one
// side of it, as in "@example.com" or "example.com/", is an error rather
// than being ignored, because silently dropping it would make two different
// strings parse to the same address.
//
// The returned JID may share memory with s.
func Parse(s string) (JID, error) {
	if j, ok := parseFast(s); ok {
		return j, nil
	}
	return parseSlow(s)
}

// MustParse is like Parse but panics if s is not a valid JID. It is meant
// for tests and for package-level variables initialised from constants,
// where a malformed address is a programming error.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return j
}

// New builds a JID from separate parts, normalising each of them. An empty
// local or resource means the JID has no such part; domain is required.
//
// Use New rather than concatenating strings for Parse when the parts come
// from different sources (for example a username from a login and a
// configured domain): a localpart containing '@' or a domain containing '/'
// would otherwise be split at the wrong place instead of being rejected.
func New(local, domain, resource string) (JID, error) {
	return build(local, local != "", domain, resource, resource != "", "")
}

// Local returns the localpart, or "" if the JID has none.
func (j JID) Local() string {
	return j.s[:j.localLen]
}

// Domain returns the domainpart. Internationalised domains are returned as
// U-labels (Unicode); use DomainASCII for DNS lookups.
func (j JID) Domain() string {
	return j.s[j.domainStart():j.domainEnd]
}

// Resource returns the resourcepart, or "" if the JID has none.
func (j JID) Resource() string {
	if int(j.domainEnd) == len(j.s) {
		return ""
	}
	return j.s[j.domainEnd+1:]
}

func (j JID) domainStart() int {
	if j.localLen == 0 {
		return 0
	}
	return int(j.localLen) + 1
}

// Bare returns j without its resourcepart. It never allocates.
func (j JID) Bare() JID {
	return JID{s: j.s[:j.domainEnd], localLen: j.localLen, domainEnd: j.domainEnd}
}

// WithResource returns j with its resourcepart replaced by the normalised
// form of r. An empty r yields the bare JID, which is the natural meaning of
// "no resource" and saves callers a special case.
func (j JID) WithResource(r string) (JID, error) {
	if j.IsZero() {
		return JID{}, fmt.Errorf("%w: cannot add a resource to the zero JID", ErrMalformed)
	}
	if r == "" {
		return j.Bare(), nil
	}
	res, err := normResource(r)
	if err != nil {
		return JID{}, err
	}
	bare := j.s[:j.domainEnd]
	return JID{s: bare + "/" + res, localLen: j.localLen, domainEnd: j.domainEnd}, nil
}

// IsBare reports whether j has no resourcepart. A server uses this to tell
// stanzas addressed to an account from those addressed to one session.
func (j JID) IsBare() bool {
	return int(j.domainEnd) == len(j.s)
}

// IsZero reports whether j is the zero JID, which no successful parse can
// produce because every valid JID has a domainpart.
func (j JID) IsZero() bool {
	return j.s == ""
}

// String returns the canonical string form of j, suitable for putting on
// the wire. It does not allocate. The zero JID yields "".
func (j JID) String() string {
	return j.s
}

// BareString returns the string form of j without the resourcepart. It does
// not allocate, which makes it cheap to use as a key for per-account state.
func (j JID) BareString() string {
	return j.s[:j.domainEnd]
}

// Equal reports whether j and o address the same entity. It is the same as
// j == o and exists for symmetry with other value types and for use as a
// method value.
func (j JID) Equal(o JID) bool {
	return j == o
}

// DomainASCII returns the domainpart with every U-label converted to its
// A-label ("xn--…") form, as needed for DNS SRV and address lookups. It does
// not allocate for domains that are already ASCII.
func (j JID) DomainASCII() string {
	d := j.Domain()
	if isASCII(d) {
		return d
	}
	a, err := domainToASCII(d)
	if err != nil {
		// Unreachable: every U-label in a JID was checked to be encodable
		// when the JID was built.
		panic("jid: cannot encode normalised domain " + d)
	}
	return a
}

// MarshalText implements encoding.TextMarshaler so JIDs can be used directly
// in JSON, YAML and similar encodings.
func (j JID) MarshalText() ([]byte, error) {
	return []byte(j.s), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. Empty text yields the
// zero JID so that optional address fields in configuration files decode
// without error.
func (j *JID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*j = JID{}
		return nil
	}
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*j = p
	return nil
}
