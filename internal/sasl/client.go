package sasl

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ChannelBinding is the client's view of the TLS channel binding: the type
// to use and this connection's data for it (see ClientChannelBinding). The
// zero value means the client has no channel binding (plain TCP, or a TLS
// stack that cannot provide it).
type ChannelBinding struct {
	Type string // CBTLSExporter or CBTLSServerEndPoint
	Data []byte
}

func (cb ChannelBinding) available() bool { return cb.Type != "" && len(cb.Data) > 0 }

// ClientMech is the client side of one SASL exchange; not safe for
// concurrent use.
type ClientMech interface {
	// Name is the mechanism name to put in <auth mechanism=.../>.
	Name() string
	// Start returns the initial response for <auth/>.
	Start() (initialResponse []byte, err error)
	// Next answers a (decoded) <challenge/>. A SCRAM server that sends its
	// final message as a challenge gets an empty response, and the
	// signature is checked here already.
	Next(challenge []byte) (response []byte, err error)
	// Verify must be called with the (decoded) additional data of
	// <success/>; for SCRAM it checks the server signature (v=), which
	// proves the server knew the credentials. Treat the login as failed
	// unless it returns nil: a server that cannot prove itself may be an
	// impostor that simply claims success.
	Verify(successData []byte) error
}

// Errors of the client side. Malformed server messages give other errors.
var (
	// ErrServerSignature means the server's v= did not match: it does not
	// hold this account's credentials, or the exchange was tampered with.
	ErrServerSignature = errors.New("sasl: server signature mismatch")
	// ErrServerFailure wraps an e= server-error received instead of v=.
	ErrServerFailure = errors.New("sasl: server reported an error")
	// ErrSequence means a method was called out of order.
	ErrSequence = errors.New("sasl: method called out of sequence")
)

// ChooseMechanism picks the strongest mechanism in offered this client can
// use: -PLUS when cb is available, then SCRAM-SHA-256, SCRAM-SHA-1, and
// PLAIN only if allowPLAIN (only allow it over TLS). It returns "" if none
// fits. Choosing through it keeps the gs2 flag honest: a client with channel
// binding ends on a non-PLUS mechanism (and sends 'y') only when the server
// offered no -PLUS one.
func ChooseMechanism(offered []string, cb ChannelBinding, allowPLAIN bool) string {
	has := make(map[string]bool, len(offered))
	for _, m := range offered {
		has[m] = true
	}
	prefs := []string{MechSCRAMSHA256, MechSCRAMSHA1}
	if cb.available() {
		prefs = append([]string{MechSCRAMSHA256Plus, MechSCRAMSHA1Plus}, prefs...)
	}
	if allowPLAIN {
		prefs = append(prefs, MechPLAIN)
	}
	for _, m := range prefs {
		if has[m] {
			return m
		}
	}
	return ""
}

// NewClient prepares the client side of mech for username (the localpart,
// sent as is) and password (prepared with PRECIS OpaqueString). With a
// -PLUS mechanism cb must be available; with a plain SCRAM mechanism an
// available cb makes the client send 'y' ("I could bind, but you do not
// offer it"), which a server that did offer -PLUS refuses, so pick the
// mechanism with ChooseMechanism.
func NewClient(mech, username, password string, cb ChannelBinding) (ClientMech, error) {
	if username == "" || !utf8.ValidString(username) || strings.IndexByte(username, 0) >= 0 {
		return nil, errors.New("sasl: invalid username")
	}
	pw, err := preparePassword(password)
	if err != nil {
		return nil, err
	}
	switch mech {
	case MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA1Plus, MechSCRAMSHA256Plus:
		c := &scramClient{name: mech, h: SHA1, username: username, password: pw}
		if mech == MechSCRAMSHA256 || mech == MechSCRAMSHA256Plus {
			c.h = SHA256
		}
		plus := mech == MechSCRAMSHA1Plus || mech == MechSCRAMSHA256Plus
		switch {
		case plus:
			if !cb.available() || !validCBName(cb.Type) {
				return nil, fmt.Errorf("sasl: %s needs channel-binding data", mech)
			}
			c.gs2Header = "p=" + cb.Type + ",,"
			c.cbData = append([]byte(nil), cb.Data...)
		case cb.available():
			c.gs2Header = "y,,"
		default:
			c.gs2Header = "n,,"
		}
		return c, nil
	case MechPLAIN:
		if strings.IndexByte(pw, 0) >= 0 {
			return nil, errors.New("sasl: NUL in password")
		}
		return &plainClient{username: username, password: pw}, nil
	}
	return nil, fmt.Errorf("sasl: unsupported mechanism %q", mech)
}

type clientState uint8

const (
	clientInit     clientState = iota
	clientStarted              // client-first sent
	clientFinalOut             // client-final sent, v= pending
	clientVerified             // v= checked
	clientFailed
)

// scramClient is the client side of SCRAM and SCRAM-PLUS.
type scramClient struct {
	name      string
	h         Hash
	username  string
	password  string // prepared
	gs2Header string
	cbData    []byte
	state     clientState

	cnonce          string
	clientFirstBare string
	serverSig       []byte

	// nonce, if set, replaces the random client nonce (tests only).
	nonce func() (string, error)
}

func (c *scramClient) Name() string { return c.name }

func (c *scramClient) Start() ([]byte, error) {
	if c.state != clientInit {
		return nil, ErrSequence
	}
	gen := c.nonce
	if gen == nil {
		gen = randomNonce
	}
	n, err := gen()
	if err != nil {
		return nil, err
	}
	if !validNonce(n) {
		return nil, errors.New("sasl: invalid client nonce")
	}
	c.cnonce = n
	c.clientFirstBare = "n=" + encodeSaslname(c.username) + ",r=" + n
	c.state = clientStarted
	return []byte(c.gs2Header + c.clientFirstBare), nil
}

func (c *scramClient) Next(challenge []byte) ([]byte, error) {
	switch c.state {
	case clientStarted:
		out, err := c.serverFirst(challenge)
		if err != nil {
			c.state = clientFailed
			return nil, err
		}
		c.state = clientFinalOut
		return out, nil
	case clientFinalOut:
		// Some servers send server-final-message as a challenge and
		// <success/> without data.
		if err := c.serverFinal(challenge); err != nil {
			c.state = clientFailed
			return nil, err
		}
		c.state = clientVerified
		return nil, nil
	}
	c.state = clientFailed
	return nil, ErrSequence
}

func (c *scramClient) Verify(data []byte) error {
	switch c.state {
	case clientFinalOut:
		if len(data) == 0 {
			c.state = clientFailed
			return errors.New("sasl: success without server signature")
		}
		if err := c.serverFinal(data); err != nil {
			c.state = clientFailed
			return err
		}
		c.state = clientVerified
		return nil
	case clientVerified:
		if len(data) == 0 {
			return nil
		}
		return c.serverFinal(data)
	}
	return ErrSequence
}

func checkServerMessage(msg []byte) error {
	if len(msg) == 0 || len(msg) > MaxMessageSize {
		return errors.New("sasl: server message empty or too long")
	}
	if !utf8.Valid(msg) {
		return errors.New("sasl: server message not UTF-8")
	}
	return nil
}

// serverFirst handles server-first-message and returns client-final-message:
//
//	[reserved-mext ","] "r=" nonce "," "s=" base64(salt) "," "i=" count ["," extensions]
func (c *scramClient) serverFirst(in []byte) ([]byte, error) {
	if err := checkServerMessage(in); err != nil {
		return nil, err
	}
	msg := string(in)
	fields := strings.Split(msg, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return nil, errors.New("sasl: server requires an unsupported extension")
	}
	if len(fields) < 3 || !strings.HasPrefix(fields[0], "r=") || !strings.HasPrefix(fields[1], "s=") || !strings.HasPrefix(fields[2], "i=") {
		return nil, errors.New("sasl: malformed server-first-message")
	}
	for _, f := range fields[3:] {
		if !validExtension(f) {
			return nil, errors.New("sasl: malformed server-first-message")
		}
	}
	nonce := fields[0][2:]
	// The server's part must be present: the client's alone would allow
	// replay of an earlier exchange.
	if !validNonce(nonce) || len(nonce) <= len(c.cnonce) || !strings.HasPrefix(nonce, c.cnonce) {
		return nil, errors.New("sasl: server nonce does not extend the client nonce")
	}
	salt, err := decodeBase64(fields[1][2:])
	if err != nil || len(salt) == 0 {
		return nil, errors.New("sasl: invalid salt")
	}
	iter, err := parseIterations(fields[2][2:])
	if err != nil {
		return nil, err
	}

	salted, err := saltedPassword(c.h, c.password, salt, iter)
	if err != nil {
		return nil, err
	}
	clientKey, storedKey, serverKey := scramKeys(c.h, salted)
	cbind := make([]byte, 0, len(c.gs2Header)+len(c.cbData))
	cbind = append(append(cbind, c.gs2Header...), c.cbData...)
	withoutProof := "c=" + EncodeData(cbind) + ",r=" + nonce
	authMessage := []byte(c.clientFirstBare + "," + msg + "," + withoutProof)
	proof := xorBytes(clientKey, hmacSum(c.h, storedKey, authMessage))
	c.serverSig = hmacSum(c.h, serverKey, authMessage)
	return []byte(withoutProof + ",p=" + EncodeData(proof)), nil
}

// parseIterations accepts only plain decimal in [MinIterations,
// MaxIterations]; the cap is what keeps a hostile server from making the
// client spin on PBKDF2.
func parseIterations(s string) (int, error) {
	if s == "" || len(s) > 7 || s[0] == '0' {
		return 0, errors.New("sasl: invalid iteration count")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("sasl: invalid iteration count")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New("sasl: invalid iteration count")
	}
	if n < MinIterations || n > MaxIterations {
		return 0, fmt.Errorf("sasl: iteration count %d outside [%d, %d]", n, MinIterations, MaxIterations)
	}
	return n, nil
}

// serverFinal checks server-final-message: ("e=" error / "v=" base64) ["," extensions].
func (c *scramClient) serverFinal(in []byte) error {
	if err := checkServerMessage(in); err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(in), ",")
	if strings.HasPrefix(first, "e=") {
		// The value is server-controlled: quote it, bounded, for logs.
		v := first[2:]
		if len(v) > 64 {
			v = v[:64]
		}
		return fmt.Errorf("%w: %q", ErrServerFailure, v)
	}
	if !strings.HasPrefix(first, "v=") {
		return errors.New("sasl: malformed server-final-message")
	}
	sig, err := decodeBase64(first[2:])
	if err != nil {
		return errors.New("sasl: malformed server signature")
	}
	if subtle.ConstantTimeCompare(sig, c.serverSig) != 1 {
		return ErrServerSignature
	}
	return nil
}

// plainClient is the client side of PLAIN; it sends no authzid.
type plainClient struct {
	username, password string
	state              clientState
}

func (p *plainClient) Name() string { return MechPLAIN }

func (p *plainClient) Start() ([]byte, error) {
	if p.state != clientInit {
		return nil, ErrSequence
	}
	p.state = clientStarted
	return []byte("\x00" + p.username + "\x00" + p.password), nil
}

func (p *plainClient) Next([]byte) ([]byte, error) {
	// PLAIN has no challenges; the server sending one is a protocol error,
	// and answering it could leak the password a second time.
	p.state = clientFailed
	return nil, ErrSequence
}

func (p *plainClient) Verify(data []byte) error {
	if p.state != clientStarted {
		return ErrSequence
	}
	if len(data) != 0 {
		return errors.New("sasl: unexpected data with PLAIN success")
	}
	p.state = clientVerified
	return nil
}
