package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/text/secure/precis"

	"github.com/parley-im/parley/internal/store"
)

// Hash selects the hash function of a SCRAM mechanism.
type Hash uint8

// The SCRAM hashes. The zero Hash is invalid so that a forgotten field is an
// error rather than silently one of the two.
const (
	SHA1   Hash = 1 // SCRAM-SHA-1 (RFC 5802)
	SHA256 Hash = 2 // SCRAM-SHA-256 (RFC 7677)
)

// New returns a new hash.Hash of h; it panics for an invalid Hash.
func (h Hash) New() hash.Hash {
	switch h {
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	}
	panic("sasl: invalid Hash")
}

// Size is the output size of h in bytes, and so the length of StoredKey and
// ServerKey; 0 for an invalid Hash.
func (h Hash) Size() int {
	switch h {
	case SHA1:
		return sha1.Size
	case SHA256:
		return sha256.Size
	}
	return 0
}

// String returns "SHA-1" or "SHA-256", as in the mechanism names.
func (h Hash) String() string {
	switch h {
	case SHA1:
		return "SHA-1"
	case SHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("Hash(%d)", uint8(h))
}

func (h Hash) valid() bool { return h == SHA1 || h == SHA256 }

var (
	errBase64Whitespace = errors.New("whitespace in base64 data")
	errInvalidHash      = errors.New("sasl: invalid hash")
)

// DeriveSCRAM computes the stored SCRAM credentials for password (RFC 5802
// §3). The password is prepared with the PRECIS OpaqueString profile (RFC
// 8265, which supersedes SASLprep for XMPP) so that the same password typed
// in different Unicode forms authenticates. iterations must lie in
// [MinIterations, MaxIterations]: lower is too cheap to attack offline,
// higher would be refused by clients (ours included).
func DeriveSCRAM(h Hash, password string, salt []byte, iterations int) (store.SCRAM, error) {
	if !h.valid() {
		return store.SCRAM{}, errInvalidHash
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return store.SCRAM{}, fmt.Errorf("sasl: iteration count %d outside [%d, %d]", iterations, MinIterations, MaxIterations)
	}
	if len(salt) == 0 {
		return store.SCRAM{}, errors.New("sasl: empty salt")
	}
	pw, err := preparePassword(password)
	if err != nil {
		return store.SCRAM{}, err
	}
	salted, err := saltedPassword(h, pw, salt, iterations)
	if err != nil {
		return store.SCRAM{}, err
	}
	_, storedKey, serverKey := scramKeys(h, salted)
	return store.SCRAM{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  storedKey,
		ServerKey:  serverKey,
	}, nil
}

// NewCredentials derives both stored credentials of an account from
// password, each with its own random salt of SaltLength bytes and
// DefaultIterations. Separate salts keep the two records from sharing a
// PBKDF2 input.
func NewCredentials(password string) (sha1Creds, sha256Creds store.SCRAM, err error) {
	salt := make([]byte, 2*SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return store.SCRAM{}, store.SCRAM{}, err
	}
	sha1Creds, err = DeriveSCRAM(SHA1, password, salt[:SaltLength], DefaultIterations)
	if err != nil {
		return store.SCRAM{}, store.SCRAM{}, err
	}
	sha256Creds, err = DeriveSCRAM(SHA256, password, salt[SaltLength:], DefaultIterations)
	if err != nil {
		return store.SCRAM{}, store.SCRAM{}, err
	}
	return sha1Creds, sha256Creds, nil
}

func preparePassword(password string) (string, error) {
	pw, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("sasl: password not allowed by PRECIS OpaqueString: %w", err)
	}
	return pw, nil
}

// saltedPassword is Hi() of RFC 5802 §2.2. The password must already be
// prepared; iterations are not range-checked here because the server
// recomputes with whatever the store holds.
func saltedPassword(h Hash, pw string, salt []byte, iterations int) ([]byte, error) {
	return pbkdf2.Key(h.New, pw, salt, iterations, h.Size())
}

// scramKeys derives ClientKey, StoredKey and ServerKey from SaltedPassword.
func scramKeys(h Hash, salted []byte) (clientKey, storedKey, serverKey []byte) {
	clientKey = hmacSum(h, salted, []byte("Client Key"))
	sum := h.New()
	sum.Write(clientKey)
	storedKey = sum.Sum(nil)
	serverKey = hmacSum(h, salted, []byte("Server Key"))
	return clientKey, storedKey, serverKey
}

func hmacSum(h Hash, key, msg []byte) []byte {
	m := hmac.New(h.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func xorBytes(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// validCredentials rejects stored records that could not have come from
// DeriveSCRAM for h, so that corrupt data fails as a server problem instead
// of as a wrong password (or a panic).
func validCredentials(h Hash, c store.SCRAM) bool {
	return len(c.Salt) > 0 && c.Iterations >= 1 && c.Iterations <= MaxIterations &&
		len(c.StoredKey) == h.Size() && len(c.ServerKey) == h.Size()
}

// randomNonce returns 24 random bytes in base64: printable, comma-free and
// well above the 128 bits of entropy SCRAM nonces need to be unpredictable.
func randomNonce() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// validNonce checks RFC 5802's "printable": %x21-2B / %x2D-7E, i.e. visible
// ASCII except ','.
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

var saslnameEncoder = strings.NewReplacer("=", "=3D", ",", "=2C")

// encodeSaslname escapes a user name for the n= and a= attributes.
func encodeSaslname(s string) string { return saslnameEncoder.Replace(s) }

var errSaslname = errors.New("invalid saslname")

// decodeSaslname undoes encodeSaslname. RFC 5802 §5.1 requires the server to
// fail on any '=' not followed by "2C" or "3D", so that a name has exactly
// one encoding. The caller has already ruled out ',' and NUL and checked
// UTF-8 validity of the whole message.
func decodeSaslname(s string) (string, error) {
	if s == "" {
		return "", errSaslname
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i+1:], "2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i+1:], "3D"):
			b.WriteByte('=')
		default:
			return "", errSaslname
		}
		i += 2
	}
	return b.String(), nil
}

// validExtension checks the attr-val syntax of RFC 5802 §7 for an optional
// extension we ignore: one letter, '=', a non-empty value. Checking it keeps
// garbage from being accepted merely because it sits in an ignorable slot.
func validExtension(f string) bool {
	if len(f) < 3 || f[1] != '=' {
		return false
	}
	c := f[0]
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// validCBName checks RFC 5056's cb-name: 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
