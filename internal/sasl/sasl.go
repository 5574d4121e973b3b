// Package sasl implements the SASL mechanisms Parley offers for XMPP
// authentication (RFC 6120 §6): SCRAM-SHA-1, SCRAM-SHA-256 and their
// channel-binding -PLUS variants (RFC 5802, RFC 7677, RFC 9266) and PLAIN
// (RFC 4616), each as a server side (ServerMech) and a client side
// (ClientMech).
//
// The package knows nothing about XML or sockets: the session base64-decodes
// the character data of <auth/> and <response/> (DecodeData does that with
// the checks RFC 6120 asks for), hands the bytes to ServerMech.Next and
// sends what comes back as <challenge/> or, once done, as the additional
// data of <success/>. Every error returned to the session is a *Failure whose
// Condition is the RFC 6120 §6.5 element to put in <failure/>.
//
// All input is treated as hostile: messages are bounded (MaxMessageSize),
// parsed strictly, compared in constant time where secrets are involved,
// and an unknown user is indistinguishable on the wire from a wrong password
// (see ServerConfig.FakeSaltSecret). Throttling of attempts is the caller's
// job; a PLAIN attempt costs the server one PBKDF2 run.
package sasl

import (
	"encoding/base64"
	"strings"
)

// Mechanism names as advertised in <mechanisms/>.
const (
	MechSCRAMSHA1       = "SCRAM-SHA-1"
	MechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	MechPLAIN           = "PLAIN"
)

// Channel-binding types supported by the -PLUS mechanisms.
const (
	// CBTLSExporter is RFC 9266; the default for TLS 1.3.
	CBTLSExporter = "tls-exporter"
	// CBTLSServerEndPoint is RFC 5929 §4; works for any TLS version but
	// only binds to the server certificate, not to the connection.
	CBTLSServerEndPoint = "tls-server-end-point"
)

// Limits applied to untrusted input. They are exported so that the session
// and tests can reason about them; they are not configurable because nothing
// legitimate comes close.
const (
	// MaxMessageSize bounds every decoded SASL message in either direction.
	MaxMessageSize = 4096
	// MaxNonceLength bounds the client nonce a server accepts.
	MaxNonceLength = 256
	// DefaultIterations is the PBKDF2 iteration count NewCredentials uses.
	DefaultIterations = 4096
	// MinIterations is the lowest count DeriveSCRAM produces and a client
	// accepts: RFC 5802 §5.1 and RFC 7677 §4 ask for at least 4096, and a
	// client that accepted less would let an active attacker obtain a proof
	// that is cheap to brute-force.
	MinIterations = 4096
	// MaxIterations is the highest count a client accepts from a server (and
	// DeriveSCRAM produces): beyond it a malicious server could make the
	// client burn CPU.
	MaxIterations = 1_000_000
	// SaltLength is the length in bytes of salts made by NewCredentials and
	// of the fake salts shown for unknown users (they must look alike).
	SaltLength = 16
)

// SASL failure conditions of RFC 6120 §6.5, the names of the child element
// of <failure/>.
const (
	Aborted              = "aborted"
	AccountDisabled      = "account-disabled"
	CredentialsExpired   = "credentials-expired"
	EncryptionRequired   = "encryption-required"
	IncorrectEncoding    = "incorrect-encoding"
	InvalidAuthzid       = "invalid-authzid"
	InvalidMechanism     = "invalid-mechanism"
	MalformedRequest     = "malformed-request"
	MechanismTooWeak     = "mechanism-too-weak"
	NotAuthorized        = "not-authorized"
	TemporaryAuthFailure = "temporary-auth-failure"
)

// Failure is a failed SASL exchange as the peer is to see it: Condition is an
// RFC 6120 §6.5 condition and Text an optional human-readable explanation,
// both safe to send. The cause, if any (a store error, say), is kept apart so
// that it reaches logs through Error and errors.Unwrap but never the wire.
type Failure struct {
	Condition string
	Text      string
	cause     error
}

// Error implements error; it includes the internal cause and is meant for
// logs, not for the peer.
func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString("sasl: ")
	b.WriteString(f.Condition)
	if f.Text != "" {
		b.WriteString(": ")
		b.WriteString(f.Text)
	}
	if f.cause != nil {
		b.WriteString(": ")
		b.WriteString(f.cause.Error())
	}
	return b.String()
}

// Unwrap returns the internal cause, if any.
func (f *Failure) Unwrap() error { return f.cause }

func failure(cond, text string) *Failure { return &Failure{Condition: cond, Text: text} }

func failureCause(cond, text string, cause error) *Failure {
	return &Failure{Condition: cond, Text: text, cause: cause}
}

// DecodeData decodes the character data of <auth/>, <response/>,
// <challenge/> or <success/>. Both "" and "=" mean zero-length data (RFC 6120
// §6.4.2 uses "=" for an empty initial response). Anything that is not
// strict base64 without whitespace yields a *Failure with incorrect-encoding;
// data decoding to more than MaxMessageSize yields malformed-request (text
// that is obviously too long is refused before decoding).
func DecodeData(s string) ([]byte, error) {
	if s == "" || s == "=" {
		return nil, nil
	}
	if len(s) > base64.StdEncoding.EncodedLen(MaxMessageSize) {
		return nil, failure(MalformedRequest, "message too long")
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, failureCause(IncorrectEncoding, "", err)
	}
	if len(b) > MaxMessageSize {
		return nil, failure(MalformedRequest, "message too long")
	}
	return b, nil
}

// EncodeData is the inverse of DecodeData for data this package produces.
// Empty data encodes as "" (an empty element); only a zero-length initial
// response in <auth/> would need "=", and no mechanism here produces one.
func EncodeData(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decodeBase64 is strict: Go's decoder silently skips CR and LF, which RFC
// 6120 §6.4.2 (no line wrapping) and RFC 5802 do not allow, and Strict
// rejects non-zero padding bits so that each value has one encoding.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errBase64Whitespace
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}
