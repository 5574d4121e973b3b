package sasl

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/internal/store"
)

// ServerMech is the server side of one SASL exchange. It is used by one
// session goroutine and is not safe for concurrent use.
type ServerMech interface {
	// Name is the mechanism name, e.g. "SCRAM-SHA-256-PLUS".
	Name() string
	// Next consumes the client's (decoded) initial response or response and
	// returns the next challenge. When done is true the exchange succeeded
	// and challenge is the additional data for <success/> (nil if none).
	// Every error is a *Failure; after an error or success the exchange is
	// over and further calls fail.
	Next(response []byte) (challenge []byte, done bool, err error)
	// Username is the normalised authenticated username once Next has
	// returned done; it is "" before that, so a half-finished exchange can
	// never be mistaken for an authenticated one.
	Username() string
}

// ServerConfig is what the server mechanisms need from their environment.
// The same value should drive both the advertisement (Mechanisms,
// ChannelBindingTypes) and NewServer, so that what is checked matches what
// was offered.
type ServerConfig struct {
	// Lookup returns the stored credentials of username (already
	// normalised) for hash h: Account.SHA1 or Account.SHA256. It takes the
	// hash because the two records have separate salts and keys, and PLAIN
	// verifies against SHA-256. An unknown user must be reported
	// with an error wrapping store.ErrNotFound: the mechanisms then carry
	// on with fake credentials and fail only at the end. A *Failure is
	// passed to the client as is (e.g. account-disabled; note that it
	// reveals the account's state before the password is checked); any
	// other error becomes temporary-auth-failure. Required.
	Lookup func(h Hash, username string) (store.SCRAM, error)
	// Normalize maps a username as received to the form accounts are
	// stored under (PRECIS UsernameCaseMapped localpart normalisation);
	// an error fails the exchange with not-authorized. Required: without it
	// "User" and "user" would silently be different accounts.
	Normalize func(username string) (string, error)
	// Domain is the served domain (normalised). An authzid may be the
	// username itself or the bare JID username@Domain; with Domain empty only
	// the former is accepted. Proxy authorisation is not supported.
	Domain string
	// ChannelBindings maps a channel-binding type (CBTLSExporter,
	// CBTLSServerEndPoint) to this connection's binding data; see
	// ServerChannelBindings. Empty on a connection without TLS.
	ChannelBindings map[string][]byte
	// AdvertisePLUS says the -PLUS mechanisms are offered on this connection
	// (they are iff this is true and ChannelBindings is not empty). It
	// matters beyond NewServer: a client that sends the gs2 flag 'y'
	// (supports binding, believes the server does not) must be refused when
	// they were offered, because that is what a downgrade looks like.
	AdvertisePLUS bool
	// AllowPLAIN enables PLAIN. Only set it on encrypted connections: the
	// password travels in the clear inside the stream.
	AllowPLAIN bool
	// FakeSaltSecret keys the HMAC that derives the salt shown for an
	// unknown user, so that the salt is stable across attempts and restarts
	// (a random one would reveal the user does not exist) yet unpredictable.
	// At least 16 bytes; keep it constant and secret across restarts.
	// Required.
	FakeSaltSecret []byte
	// FakeIterations is the iteration count shown for unknown users; 0 means
	// DefaultIterations. Set it to what real accounts use if that differs.
	FakeIterations int

	// nonce, if set, replaces the random server nonce part (tests only:
	// the RFC test vectors fix it).
	nonce func() (string, error)
}

func (c *ServerConfig) plusOffered() bool {
	return c.AdvertisePLUS && len(c.ChannelBindings) > 0
}

// Mechanisms lists the mechanisms to advertise for c, strongest first.
func (c ServerConfig) Mechanisms() []string {
	var m []string
	if c.plusOffered() {
		m = append(m, MechSCRAMSHA256Plus, MechSCRAMSHA1Plus)
	}
	m = append(m, MechSCRAMSHA256, MechSCRAMSHA1)
	if c.AllowPLAIN {
		m = append(m, MechPLAIN)
	}
	return m
}

// ChannelBindingTypes lists the channel-binding types of c, sorted, for the
// XEP-0440 <sasl-channel-binding/> feature; nil if -PLUS is not offered.
func (c ServerConfig) ChannelBindingTypes() []string {
	if !c.plusOffered() {
		return nil
	}
	t := make([]string, 0, len(c.ChannelBindings))
	for k, v := range c.ChannelBindings {
		if len(v) > 0 {
			t = append(t, k)
		}
	}
	sort.Strings(t)
	return t
}

func (c *ServerConfig) check() error {
	switch {
	case c.Lookup == nil:
		return errors.New("sasl: ServerConfig.Lookup is nil")
	case c.Normalize == nil:
		return errors.New("sasl: ServerConfig.Normalize is nil")
	case len(c.FakeSaltSecret) < 16:
		return errors.New("sasl: ServerConfig.FakeSaltSecret shorter than 16 bytes")
	case c.FakeIterations < 0 || c.FakeIterations > MaxIterations:
		return errors.New("sasl: ServerConfig.FakeIterations out of range")
	}
	return nil
}

// NewServer starts the server side of mechanism mech. An unknown, disabled
// or not-offered mechanism yields a *Failure with invalid-mechanism, an
// incomplete cfg one with temporary-auth-failure (the cause says what is
// missing).
func NewServer(mech string, cfg ServerConfig) (ServerMech, error) {
	if err := cfg.check(); err != nil {
		return nil, failureCause(TemporaryAuthFailure, "", err)
	}
	switch mech {
	case MechSCRAMSHA1:
		return &scramServer{cfg: cfg, h: SHA1, name: mech}, nil
	case MechSCRAMSHA256:
		return &scramServer{cfg: cfg, h: SHA256, name: mech}, nil
	case MechSCRAMSHA1Plus, MechSCRAMSHA256Plus:
		if !cfg.plusOffered() {
			return nil, failure(InvalidMechanism, "")
		}
		h := SHA1
		if mech == MechSCRAMSHA256Plus {
			h = SHA256
		}
		return &scramServer{cfg: cfg, h: h, plus: true, name: mech}, nil
	case MechPLAIN:
		if !cfg.AllowPLAIN {
			return nil, failure(InvalidMechanism, "")
		}
		return &plainServer{cfg: cfg}, nil
	}
	return nil, failure(InvalidMechanism, "")
}

// exchange state shared by the server mechanisms.
type serverState uint8

const (
	stateStart  serverState = iota
	stateFinal              // SCRAM: waiting for client-final-message
	stateDone               // succeeded
	stateFailed             // failed; nothing more is accepted
)

// lookup fetches credentials, substituting fake ones for an unknown user.
// known reports whether they are real.
func (c *ServerConfig) lookup(h Hash, username string) (creds store.SCRAM, known bool, err error) {
	creds, err = c.Lookup(h, username)
	switch {
	case err == nil:
		if !validCredentials(h, creds) {
			return store.SCRAM{}, false, failureCause(TemporaryAuthFailure, "", errors.New("sasl: stored credentials are invalid for "+h.String()))
		}
		return creds, true, nil
	case errors.Is(err, store.ErrNotFound):
		return c.fakeCredentials(h, username), false, nil
	}
	var f *Failure
	if errors.As(err, &f) {
		return store.SCRAM{}, false, f
	}
	return store.SCRAM{}, false, failureCause(TemporaryAuthFailure, "", err)
}

// fakeCredentials makes credentials for an unknown user that look like a
// real account's on the wire: a salt of the usual length, stable per user
// (HMAC of the name under the server secret), and the usual iteration
// count. The keys are zero; the caller fails the exchange regardless.
func (c *ServerConfig) fakeCredentials(h Hash, username string) store.SCRAM {
	m := hmac.New(sha256.New, c.FakeSaltSecret)
	m.Write([]byte("parley sasl fake salt\x00"))
	m.Write([]byte(h.String()))
	m.Write([]byte{0})
	m.Write([]byte(username))
	iter := c.FakeIterations
	if iter == 0 {
		iter = DefaultIterations
	}
	return store.SCRAM{
		Salt:       m.Sum(nil)[:SaltLength],
		Iterations: iter,
		StoredKey:  make([]byte, h.Size()),
		ServerKey:  make([]byte, h.Size()),
	}
}

// normalize turns a received authentication identity into the stored form.
func (c *ServerConfig) normalize(name string) (string, error) {
	n, err := c.Normalize(name)
	if err != nil || n == "" {
		// The name cannot exist, so saying so reveals nothing about
		// accounts; the cause is kept for logs.
		return "", failureCause(NotAuthorized, "", err)
	}
	return n, nil
}

// checkAuthzid accepts an empty authzid, the username itself or the bare
// JID username@Domain, and nothing else: Parley has no proxy authorisation,
// so any other identity is refused with invalid-authzid (RFC 6120 §6.4.6).
func (c *ServerConfig) checkAuthzid(authzid, username string) error {
	if authzid == "" {
		return nil
	}
	if strings.IndexByte(authzid, '/') >= 0 {
		// RFC 6120 §6.3.8: the authzid is a bare JID.
		return failure(InvalidAuthzid, "")
	}
	local, domain, hasDomain := strings.Cut(authzid, "@")
	if hasDomain && (c.Domain == "" || !domainEqual(domain, c.Domain)) {
		return failure(InvalidAuthzid, "")
	}
	n, err := c.Normalize(local)
	if err != nil || n != username {
		return failure(InvalidAuthzid, "")
	}
	return nil
}

// domainEqual compares domainparts as RFC 7622 §3.2 does for ASCII labels:
// case-insensitively, ignoring one trailing dot. Internationalised domains
// must arrive in the same form as Domain (U-labels).
func domainEqual(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// scramServer is the server side of SCRAM-SHA-1(-PLUS) and
// SCRAM-SHA-256(-PLUS).
type scramServer struct {
	cfg       ServerConfig
	h         Hash
	plus      bool
	name      string
	state     serverState
	sentEmpty bool

	gs2Header       string // as received, repeated in c=
	cbData          []byte // binding data the client must prove, nil without 'p'
	clientFirstBare string
	serverFirst     string
	nonce           string // c-nonce + s-nonce
	username        string // normalised, from n=
	creds           store.SCRAM
	known           bool
	authenticated   string
}

func (s *scramServer) Name() string     { return s.name }
func (s *scramServer) Username() string { return s.authenticated }

func (s *scramServer) Next(in []byte) ([]byte, bool, error) {
	if len(in) > MaxMessageSize {
		s.state = stateFailed
		return nil, false, failure(MalformedRequest, "message too long")
	}
	switch s.state {
	case stateStart:
		if len(in) == 0 && !s.sentEmpty {
			// No initial response: RFC 6120 §6.4.2 has the server send an
			// empty challenge to ask for it. Only once, so an empty
			// response loop cannot keep the exchange alive.
			s.sentEmpty = true
			return nil, false, nil
		}
		out, err := s.clientFirst(string(in))
		if err != nil {
			s.state = stateFailed
			return nil, false, err
		}
		s.state = stateFinal
		return out, false, nil
	case stateFinal:
		out, err := s.clientFinal(string(in))
		if err != nil {
			s.state = stateFailed
			return nil, false, err
		}
		s.state = stateDone
		s.authenticated = s.username
		return out, true, nil
	}
	s.state = stateFailed
	return nil, false, failure(MalformedRequest, "exchange is over")
}

// checkMessage applies the checks common to every SCRAM message.
func checkMessage(msg string) error {
	if msg == "" {
		return failure(MalformedRequest, "empty message")
	}
	if !utf8.ValidString(msg) || strings.IndexByte(msg, 0) >= 0 {
		return failure(MalformedRequest, "invalid UTF-8 or NUL")
	}
	return nil
}

// clientFirst handles client-first-message (RFC 5802 §7):
//
//	gs2-cbind-flag "," [ "a=" saslname ] "," [reserved-mext ","] "n=" saslname "," "r=" nonce ["," extensions]
func (s *scramServer) clientFirst(msg string) ([]byte, error) {
	if err := checkMessage(msg); err != nil {
		return nil, err
	}
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, failure(MalformedRequest, "missing gs2 header")
	}
	authzField, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, failure(MalformedRequest, "missing gs2 header")
	}
	s.gs2Header = msg[:len(flag)+len(authzField)+2]
	s.clientFirstBare = bare

	// Channel-binding flag, RFC 5802 §6. The check for 'y' against what
	// was offered is what detects a stripped -PLUS advertisement.
	switch {
	case flag == "n":
		if s.plus {
			return nil, failure(MalformedRequest, "channel binding required by "+s.name)
		}
	case flag == "y":
		if s.plus {
			return nil, failure(MalformedRequest, "channel binding required by "+s.name)
		}
		if s.cfg.plusOffered() {
			return nil, failure(NotAuthorized, "channel binding was offered")
		}
	case strings.HasPrefix(flag, "p="):
		if !s.plus {
			return nil, failure(MalformedRequest, "channel binding requires a -PLUS mechanism")
		}
		typ := flag[2:]
		if !validCBName(typ) {
			return nil, failure(MalformedRequest, "invalid channel binding type")
		}
		data := s.cfg.ChannelBindings[typ]
		if len(data) == 0 {
			return nil, failure(NotAuthorized, "unsupported channel binding type")
		}
		s.cbData = data
	default:
		return nil, failure(MalformedRequest, "invalid gs2 flag")
	}

	var authzid string
	if authzField != "" {
		if !strings.HasPrefix(authzField, "a=") {
			return nil, failure(MalformedRequest, "invalid authzid")
		}
		var err error
		if authzid, err = decodeSaslname(authzField[2:]); err != nil {
			return nil, failure(MalformedRequest, "invalid authzid encoding")
		}
	}

	fields := strings.Split(bare, ",")
	if strings.HasPrefix(fields[0], "m=") {
		// RFC 5802 §5.1: an unknown mandatory extension must fail.
		return nil, failure(MalformedRequest, "unsupported mandatory extension")
	}
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "n=") || !strings.HasPrefix(fields[1], "r=") {
		return nil, failure(MalformedRequest, "expected n= and r=")
	}
	for _, f := range fields[2:] {
		if !validExtension(f) {
			return nil, failure(MalformedRequest, "invalid extension")
		}
	}
	rawName, err := decodeSaslname(fields[0][2:])
	if err != nil {
		return nil, failure(MalformedRequest, "invalid username encoding")
	}
	cnonce := fields[1][2:]
	if len(cnonce) > MaxNonceLength || !validNonce(cnonce) {
		return nil, failure(MalformedRequest, "invalid nonce")
	}

	if s.username, err = s.cfg.normalize(rawName); err != nil {
		return nil, err
	}
	if err := s.cfg.checkAuthzid(authzid, s.username); err != nil {
		return nil, err
	}
	if s.creds, s.known, err = s.cfg.lookup(s.h, s.username); err != nil {
		return nil, err
	}

	gen := s.cfg.nonce
	if gen == nil {
		gen = randomNonce
	}
	snonce, err := gen()
	if err != nil {
		return nil, failureCause(TemporaryAuthFailure, "", err)
	}
	s.nonce = cnonce + snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + EncodeData(s.creds.Salt) + ",i=" + strconv.Itoa(s.creds.Iterations)
	return []byte(s.serverFirst), nil
}

// clientFinal handles client-final-message (RFC 5802 §7):
//
//	"c=" base64(gs2-header [cbind-data]) "," "r=" nonce ["," extensions] "," "p=" base64(proof)
func (s *scramServer) clientFinal(msg string) ([]byte, error) {
	if err := checkMessage(msg); err != nil {
		return nil, err
	}
	// Attribute values cannot contain ',' so splitting is exact, and the
	// message without its proof is a prefix of msg.
	fields := strings.Split(msg, ",")
	if len(fields) < 3 || !strings.HasPrefix(fields[0], "c=") || !strings.HasPrefix(fields[1], "r=") {
		return nil, failure(MalformedRequest, "expected c=, r= and p=")
	}
	last := fields[len(fields)-1]
	if !strings.HasPrefix(last, "p=") {
		return nil, failure(MalformedRequest, "proof must come last")
	}
	for _, f := range fields[2 : len(fields)-1] {
		if !validExtension(f) {
			return nil, failure(MalformedRequest, "invalid extension")
		}
	}
	cbind, err := decodeBase64(fields[0][2:])
	if err != nil {
		return nil, failureCause(IncorrectEncoding, "", err)
	}
	proof, err := decodeBase64(last[2:])
	if err != nil {
		return nil, failureCause(IncorrectEncoding, "", err)
	}
	if len(proof) != s.h.Size() {
		return nil, failure(MalformedRequest, "invalid proof length")
	}

	// c= must repeat the gs2 header byte for byte and, with 'p', carry
	// the binding data of this connection: a mismatch means the client's
	// TLS session is not ours (a man in the middle) or the header was
	// tampered with.
	want := make([]byte, 0, len(s.gs2Header)+len(s.cbData))
	want = append(append(want, s.gs2Header...), s.cbData...)
	if subtle.ConstantTimeCompare(cbind, want) != 1 {
		return nil, failure(NotAuthorized, "channel binding mismatch")
	}
	if subtle.ConstantTimeCompare([]byte(fields[1][2:]), []byte(s.nonce)) != 1 {
		return nil, failure(MalformedRequest, "nonce mismatch")
	}

	withoutProof := msg[:len(msg)-len(last)-1]
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	clientSig := hmacSum(s.h, s.creds.StoredKey, authMessage)
	clientKey := xorBytes(proof, clientSig)
	sum := s.h.New()
	sum.Write(clientKey)
	match := subtle.ConstantTimeCompare(sum.Sum(nil), s.creds.StoredKey) == 1
	if !match || !s.known {
		// Same failure, same work, for an unknown user and a wrong
		// password.
		return nil, failure(NotAuthorized, "")
	}
	return []byte("v=" + EncodeData(hmacSum(s.h, s.creds.ServerKey, authMessage))), nil
}

// plainServer is the server side of PLAIN (RFC 4616), checked against the
// stored SCRAM-SHA-256 credentials.
type plainServer struct {
	cfg           ServerConfig
	state         serverState
	sentEmpty     bool
	authenticated string
}

func (p *plainServer) Name() string     { return MechPLAIN }
func (p *plainServer) Username() string { return p.authenticated }

func (p *plainServer) Next(in []byte) ([]byte, bool, error) {
	if p.state != stateStart {
		p.state = stateFailed
		return nil, false, failure(MalformedRequest, "exchange is over")
	}
	if len(in) == 0 && !p.sentEmpty {
		p.sentEmpty = true
		return nil, false, nil
	}
	user, err := p.verify(in)
	if err != nil {
		p.state = stateFailed
		return nil, false, err
	}
	p.state = stateDone
	p.authenticated = user
	return nil, true, nil
}

// verify parses message = [authzid] NUL authcid NUL passwd and checks the
// password by recomputing StoredKey.
func (p *plainServer) verify(in []byte) (string, error) {
	if len(in) > MaxMessageSize {
		return "", failure(MalformedRequest, "message too long")
	}
	if !utf8.Valid(in) {
		return "", failure(MalformedRequest, "invalid UTF-8")
	}
	parts := strings.Split(string(in), "\x00")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", failure(MalformedRequest, "expected [authzid] NUL authcid NUL password")
	}
	authzid, authcid, password := parts[0], parts[1], parts[2]
	username, err := p.cfg.normalize(authcid)
	if err != nil {
		return "", err
	}
	if err := p.cfg.checkAuthzid(authzid, username); err != nil {
		return "", err
	}
	creds, known, err := p.cfg.lookup(SHA256, username)
	if err != nil {
		return "", err
	}
	// A password PRECIS refuses cannot be right, but the PBKDF2 run still
	// happens (on the raw string) so the time taken does not tell.
	pw, perr := preparePassword(password)
	if perr != nil {
		pw = password
	}
	salted, err := saltedPassword(SHA256, pw, creds.Salt, creds.Iterations)
	if err != nil {
		return "", failureCause(TemporaryAuthFailure, "", err)
	}
	_, storedKey, _ := scramKeys(SHA256, salted)
	match := subtle.ConstantTimeCompare(storedKey, creds.StoredKey) == 1
	if !match || !known || perr != nil {
		return "", failure(NotAuthorized, "")
	}
	return username, nil
}
