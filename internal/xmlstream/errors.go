package xmlstream

import "github.com/parley-im/parley/stanza"

// Error constructors. The texts are fixed strings and never echo the peer's
// input: they are sent back in <text/> and must stay small and harmless.

func errNotWellFormed(text string) error {
	return stanza.NewStreamError(stanza.StreamNotWellFormed, text)
}

func errRestricted(text string) error {
	return stanza.NewStreamError(stanza.StreamRestrictedXML, text)
}

func errPolicy(text string) error {
	return stanza.NewStreamError(stanza.StreamPolicyViolation, text)
}

func errBadPrefix() error {
	return stanza.NewStreamError(stanza.StreamBadNamespacePrefix, "unbound namespace prefix")
}
