package xmlstream

import "github.com/parley-im/parley/stanza"

// internTab maps the names, namespaces and attribute values that make up
// most of real traffic to one shared string each, so that decoding a typical
// stanza allocates only for what is actually new (ids, JIDs, text). Lookups
// index the map with string(b), which the compiler does without allocating.
// The table is read-only after init, so decoders share it without locking.
var internTab = func() map[string]string {
	words := []string{
		// Namespaces.
		stanza.NSClient, stanza.NSServer, stanza.NSStream, stanza.NSStreams,
		stanza.NSStanzas, stanza.NSTLS, stanza.NSSASL, stanza.NSBind,
		stanza.NSSession, stanza.NSRoster, stanza.NSXML, stanza.NSDelay,
		stanza.NSStanzaID, NSFraming,
		"jabber:server:dialback", "urn:xmpp:features:dialback",
		"http://jabber.org/protocol/caps", "http://jabber.org/protocol/chatstates",
		"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#user",
		"http://jabber.org/protocol/muc#admin", "http://jabber.org/protocol/muc#owner",
		"http://jabber.org/protocol/pubsub", "http://jabber.org/protocol/pubsub#event",
		"http://jabber.org/protocol/pubsub#owner", "http://jabber.org/protocol/nick",
		"http://jabber.org/protocol/xhtml-im", "http://www.w3.org/1999/xhtml",
		"http://jabber.org/protocol/rsm", "http://jabber.org/protocol/commands",
		"urn:xmpp:ping", "urn:xmpp:receipts", "urn:xmpp:chat-markers:0",
		"urn:xmpp:mam:2", "urn:xmpp:carbons:2", "urn:xmpp:forward:0",
		"urn:xmpp:sm:3", "urn:xmpp:hints", "urn:xmpp:csi:0", "urn:xmpp:time",
		"urn:xmpp:blocking", "urn:xmpp:http:upload:0", "urn:xmpp:eme:0",
		"urn:xmpp:omemo:2", "eu.siacs.conversations.axolotl", "urn:xmpp:reply:0",
		"urn:xmpp:message-correct:0", "urn:xmpp:fallback:0", "urn:xmpp:bookmarks:1",
		"urn:xmpp:avatar:metadata", "urn:xmpp:avatar:data", "urn:xmpp:idle:1",
		"urn:xmpp:sasl:2", "urn:xmpp:bind:0", "urn:xmpp:jingle:1",
		"urn:xmpp:jingle-message:0", "urn:xmpp:styling:0", "urn:xmpp:occupant-id:0",
		"jabber:x:data", "jabber:x:oob", "jabber:x:conference", "jabber:x:delay",
		"jabber:iq:version", "jabber:iq:private", "jabber:iq:register",
		"jabber:iq:last", "jabber:iq:privacy", "storage:bookmarks",
		"vcard-temp", "vcard-temp:x:update",
		// Prefixes.
		"stream", "db", "xml", "xmlns",
		// Element names.
		"message", "presence", "iq", "body", "subject", "thread", "query", "item",
		"error", "text", "show", "status", "priority", "x", "c", "delay",
		"active", "composing", "paused", "inactive", "gone", "request",
		"received", "markable", "displayed", "acknowledged", "stanza-id",
		"origin-id", "bind", "resource", "jid", "session", "starttls",
		"required", "proceed", "auth", "success", "failure", "challenge",
		"response", "mechanisms", "mechanism", "features", "enable", "enabled",
		"resume", "resumed", "r", "a", "ping", "pubsub", "items", "event",
		"publish", "retract", "group", "nick", "photo", "identity", "feature",
		"forwarded", "result", "fin", "set", "first", "last", "count",
		"store", "no-store", "no-copy", "private", "sent", "encrypted",
		"header", "key", "keys", "payload", "encryption", "reply", "fallback",
		"replace", "field", "value", "option", "instructions", "title",
		"open", "close", "stream", "sm", "ver", "dialback", "csi",
		"conference", "storage", "password", "blocklist", "block", "unblock",
		"vCard", "FN", "NICKNAME", "PHOTO", "TYPE", "BINVAL", "url", "desc",
		"bad-request", "feature-not-implemented", "service-unavailable",
		"item-not-found", "forbidden", "not-allowed", "not-authorized",
		"not-acceptable", "conflict", "internal-server-error",
		"remote-server-not-found", "recipient-unavailable",
		"not-well-formed", "policy-violation",
		// Attribute names.
		"id", "to", "from", "type", "xml:lang", "version", "node", "hash",
		"name", "subscription", "ask", "by", "stamp", "h", "code", "var",
		"category", "label", "xmlns", "sid", "rid", "max", "location",
		"previd", "reason", "approved", "jid", "role", "affiliation",
		"autojoin", "notify", "rpad", "mimetype", "size", "with", "start",
		"end", "queryid", "before", "after", "xmlns:stream",
		// Attribute values.
		"chat", "groupchat", "normal", "headline", "get", "result",
		"unavailable", "subscribe", "subscribed", "unsubscribe",
		"unsubscribed", "probe", "both", "none", "remove", "en", "de", "fr",
		"1.0", "sha-1", "sha-256", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256",
		"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "EXTERNAL", "ANONYMOUS",
		"away", "dnd", "xa", "true", "false", "0", "1", "cancel", "modify",
		"wait", "continue", "submit", "form", "hidden", "text-single",
		"boolean", "list-single", "jid-single", "member", "participant",
		"moderator", "visitor", "owner", "admin", "outcast",
		// Whitespace between pretty-printed children.
		"\n", "\n ", "\n  ", "\n   ", "\n    ", "\n     ", "\n      ",
		"\n        ", "\r\n", " ", "  ", "\t", "\n\t", "\n\t\t", "\n\t\t\t",
	}
	m := make(map[string]string, len(words))
	for _, w := range words {
		m[w] = w
	}
	return m
}()

// maxInternLen bounds the values looked up at all: longer ones (ids, JIDs,
// base64) are never in the table, so hashing them would be wasted work.
const maxInternLen = 48

// intern returns b as a string, shared if it is a known word.
func intern(b []byte) string {
	if len(b) <= maxInternLen {
		if s, ok := internTab[string(b)]; ok {
			return s
		}
	}
	return string(b)
}
