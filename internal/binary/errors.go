package binary

import "github.com/parley-im/parley/stanza"

// Decode errors. Every one is a *stanza.StreamError whose text starts with
// the binary condition name of docs §9, so logs show both forms; the texts
// are fixed strings and never echo the peer's bytes.

func errFormat(text string) error {
	return stanza.NewStreamError(stanza.StreamBadFormat, text)
}

func errTruncated() error  { return errFormat("bad-frame: node runs past the end of its frame") }
func errBadNumber() error  { return errFormat("bad-frame: malformed or non-minimal varint") }
func errReserved() error   { return errFormat("bad-frame: reserved code or bits") }
func errTrailing() error   { return errFormat("bad-frame: bytes after the node") }
func errBadToken() error   { return errFormat("bad-token: index not in the negotiated dictionary") }
func errBadAlias() error   { return errFormat("bad-alias: undefined alias or alias outside from/to") }
func errBadBackref() error { return errFormat("bad-backref: undefined back-reference or not an id") }
func errBadJID() error     { return errFormat("bad-value: malformed JID value") }
func errBadTime() error    { return errFormat("bad-value: date-time out of range") }
func errEmpty() error      { return errFormat("bad-frame: empty child list or text") }
func errUnexpected(text string) error {
	return errFormat("unexpected-frame: " + text)
}

// Content that XML itself could not carry is what XML calls not
// well-formed: the same condition an XML client gets for it.
func errXML(text string) error {
	return stanza.NewStreamError(stanza.StreamNotWellFormed, "bad-value: "+text)
}

func errLimit(text string) error {
	return stanza.NewStreamError(stanza.StreamPolicyViolation, "limit: "+text)
}

func errDictionary(text string) error {
	return stanza.NewStreamError(stanza.StreamUnsupportedEncoding, "dictionary-mismatch: "+text)
}
