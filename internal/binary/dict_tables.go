package binary

// The token tables of dictionary version 1. They were compiled for Parley
// from the XMPP RFCs and XEPs and from what current mobile and desktop
// clients put on the wire (message ids, receipts, markers, caps, OMEMO,
// stream management, MAM, MUC, PEP); the most frequent entries come first
// because the first page of each table costs one byte. Never reorder, edit
// or remove an entry: add new ones at the end with the next version number
// (docs §8). `go generate` renders these tables into docs/binary-protocol.md.

const (
	nsClient   = "jabber:client"
	nsStream   = "http://etherx.jabber.org/streams"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSM       = "urn:xmpp:sm:3"
	nsReceipts = "urn:xmpp:receipts"
	nsMarkers  = "urn:xmpp:chat-markers:0"
	nsSID      = "urn:xmpp:sid:0"
	nsChat     = "http://jabber.org/protocol/chatstates"
	nsHints    = "urn:xmpp:hints"
	nsCaps     = "http://jabber.org/protocol/caps"
	nsDelay    = "urn:xmpp:delay"
	nsCarbons  = "urn:xmpp:carbons:2"
	nsForward  = "urn:xmpp:forward:0"
	nsMAM      = "urn:xmpp:mam:2"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsAxolotl  = "eu.siacs.conversations.axolotl"
	nsOMEMO    = "urn:xmpp:omemo:2"
	nsEME      = "urn:xmpp:eme:0"
	nsPing     = "urn:xmpp:ping"
	nsCSI      = "urn:xmpp:csi:0"
	nsDiscoI   = "http://jabber.org/protocol/disco#info"
	nsDiscoT   = "http://jabber.org/protocol/disco#items"
	nsData     = "jabber:x:data"
	nsRoster   = "jabber:iq:roster"
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin = "http://jabber.org/protocol/muc#admin"
	nsMUCOwner = "http://jabber.org/protocol/muc#owner"
	nsPubSub   = "http://jabber.org/protocol/pubsub"
	nsPSEvent  = "http://jabber.org/protocol/pubsub#event"
	nsPSOwner  = "http://jabber.org/protocol/pubsub#owner"
	nsReact    = "urn:xmpp:reactions:0"
	nsReply    = "urn:xmpp:reply:0"
	nsFallback = "urn:xmpp:fallback:0"
	nsCorrect  = "urn:xmpp:message-correct:0"
	nsOccupant = "urn:xmpp:occupant-id:0"
	nsOOB      = "jabber:x:oob"
	nsIdle     = "urn:xmpp:idle:1"
	nsVUpdate  = "vcard-temp:x:update"
	nsNick     = "http://jabber.org/protocol/nick"
	nsRetract  = "urn:xmpp:message-retract:1"
	nsSASL2    = "urn:xmpp:sasl:2"
	nsBind2    = "urn:xmpp:bind:0"
	nsFAST     = "urn:xmpp:fast:0"
	nsVCard    = "vcard-temp"
	nsAvMeta   = "urn:xmpp:avatar:metadata"
	nsAvData   = "urn:xmpp:avatar:data"
	nsBook2    = "urn:xmpp:bookmarks:1"
	nsBook1    = "storage:bookmarks"
	nsVersion  = "jabber:iq:version"
	nsLast     = "jabber:iq:last"
	nsTime     = "urn:xmpp:time"
	nsPrivate  = "jabber:iq:private"
	nsRegister = "jabber:iq:register"
	nsBlocking = "urn:xmpp:blocking"
	nsUpload   = "urn:xmpp:http:upload:0"
	nsPush     = "urn:xmpp:push:0"
	nsJMI      = "urn:xmpp:jingle-message:0"
	nsJingle   = "urn:xmpp:jingle:1"
	nsHashes   = "urn:xmpp:hashes:2"
	nsFileMeta = "urn:xmpp:file:metadata:0"
	nsSFS      = "urn:xmpp:sfs:0"
	nsURLData  = "http://jabber.org/protocol/url-data"
	nsXHTMLIM  = "http://jabber.org/protocol/xhtml-im"
	nsXHTML    = "http://www.w3.org/1999/xhtml"
	nsBoB      = "urn:xmpp:bob"
	nsIBB      = "http://jabber.org/protocol/ibb"
	nsConf     = "jabber:x:conference"
	nsStyling  = "urn:xmpp:styling:0"
	nsModerate = "urn:xmpp:message-moderate:1"
	nsSpoiler  = "urn:xmpp:spoiler:0"
	nsAttent   = "urn:xmpp:attention:0"
	nsRosterV  = "urn:xmpp:features:rosterver"
	nsPreAppr  = "urn:xmpp:features:pre-approval"
	nsRegFeat  = "http://jabber.org/features/iq-register"
	nsBlockErr = "urn:xmpp:blocking:errors"
	nsECaps    = "urn:xmpp:caps"
	nsMUCUniq  = "http://jabber.org/protocol/muc#unique"
)

// q is shorthand for a version-1 qname entry, qb for one whose text content
// is base64.
func q(ns, local string) qnameEntry  { return qnameEntry{ns: ns, local: local, since: 1} }
func qb(ns, local string) qnameEntry { return qnameEntry{ns: ns, local: local, since: 1, b64: true} }

// qn is a version-1 qname entry whose name attribute is an identifier, not
// human text.
func qn(ns, local string) qnameEntry {
	return qnameEntry{ns: ns, local: local, since: 1, nameIsValue: true}
}

var stdQNames = []qnameEntry{
	// Page 0: one byte (tokens 0..111).
	q(nsClient, "message"), q(nsClient, "presence"), q(nsClient, "iq"), q(nsClient, "body"),
	q(nsClient, "thread"), q(nsClient, "subject"), q(nsClient, "show"), q(nsClient, "status"),
	q(nsClient, "priority"), q(nsClient, "error"),
	q(nsSM, "r"), q(nsSM, "a"), q(nsSM, "enable"), q(nsSM, "enabled"), q(nsSM, "resume"),
	q(nsSM, "resumed"), q(nsSM, "failed"),
	q(nsReceipts, "request"), q(nsReceipts, "received"),
	q(nsMarkers, "markable"), q(nsMarkers, "displayed"), q(nsMarkers, "received"), q(nsMarkers, "acknowledged"),
	q(nsSID, "origin-id"), q(nsSID, "stanza-id"),
	q(nsChat, "active"), q(nsChat, "composing"), q(nsChat, "paused"), q(nsChat, "inactive"), q(nsChat, "gone"),
	q(nsHints, "store"), q(nsHints, "no-store"), q(nsHints, "no-copy"), q(nsHints, "no-permanent-store"),
	q(nsCaps, "c"), q(nsDelay, "delay"),
	q(nsCarbons, "received"), q(nsCarbons, "sent"), q(nsCarbons, "private"),
	q(nsForward, "forwarded"),
	q(nsMAM, "result"), q(nsMAM, "fin"), q(nsMAM, "query"),
	q(nsRSM, "set"), q(nsRSM, "first"), q(nsRSM, "last"), q(nsRSM, "count"), q(nsRSM, "max"),
	q(nsRSM, "before"), q(nsRSM, "after"),
	q(nsAxolotl, "encrypted"), q(nsAxolotl, "header"), qb(nsAxolotl, "key"), qb(nsAxolotl, "iv"), qb(nsAxolotl, "payload"),
	q(nsOMEMO, "encrypted"), q(nsOMEMO, "header"), q(nsOMEMO, "keys"), qb(nsOMEMO, "key"), qb(nsOMEMO, "payload"),
	qn(nsEME, "encryption"), q(nsPing, "ping"), q(nsCSI, "active"), q(nsCSI, "inactive"),
	q(nsStanzas, "bad-request"), q(nsStanzas, "item-not-found"), q(nsStanzas, "service-unavailable"),
	q(nsStanzas, "feature-not-implemented"), q(nsStanzas, "not-allowed"), q(nsStanzas, "forbidden"),
	q(nsStanzas, "recipient-unavailable"), q(nsStanzas, "remote-server-not-found"), q(nsStanzas, "text"),
	q(nsDiscoI, "query"), q(nsDiscoI, "identity"), q(nsDiscoI, "feature"), q(nsDiscoT, "query"), q(nsDiscoT, "item"),
	q(nsData, "x"), q(nsData, "field"), q(nsData, "value"),
	q(nsRoster, "query"), q(nsRoster, "item"), q(nsRoster, "group"),
	q(nsMUC, "x"), q(nsMUCUser, "x"), q(nsMUCUser, "item"), q(nsMUCUser, "status"),
	q(nsPubSub, "pubsub"), q(nsPubSub, "items"), q(nsPubSub, "item"), q(nsPubSub, "publish"),
	q(nsPSEvent, "event"), q(nsPSEvent, "items"), q(nsPSEvent, "item"),
	q(nsReact, "reactions"), q(nsReact, "reaction"), q(nsReply, "reply"), q(nsFallback, "fallback"),
	q(nsCorrect, "replace"), q(nsOccupant, "occupant-id"), q(nsOOB, "x"), q(nsOOB, "url"),
	q(nsIdle, "idle"), q(nsVUpdate, "x"), q(nsVUpdate, "photo"), q(nsNick, "nick"),
	q(nsStream, "features"), q(nsStream, "error"), q(nsRetract, "retract"),
	q(nsAxolotl, "list"), q(nsAxolotl, "device"),

	// Page 1 and on: two bytes or more.
	// Stream negotiation.
	q(nsSASL, "mechanisms"), q(nsSASL, "mechanism"), qb(nsSASL, "auth"), qb(nsSASL, "challenge"),
	qb(nsSASL, "response"), qb(nsSASL, "success"), q(nsSASL, "failure"), q(nsSASL, "abort"),
	q(nsSASL, "not-authorized"), q(nsSASL, "aborted"), q(nsSASL, "account-disabled"),
	q(nsSASL, "credentials-expired"), q(nsSASL, "encryption-required"), q(nsSASL, "incorrect-encoding"),
	q(nsSASL, "invalid-authzid"), q(nsSASL, "invalid-mechanism"), q(nsSASL, "malformed-request"),
	q(nsSASL, "mechanism-too-weak"), q(nsSASL, "temporary-auth-failure"), q(nsSASL, "text"),
	q(nsBind, "bind"), q(nsBind, "resource"), q(nsBind, "jid"),
	q(nsSession, "session"), q(nsSession, "optional"),
	q(nsTLS, "starttls"), q(nsTLS, "required"), q(nsTLS, "proceed"), q(nsTLS, "failure"),
	q(nsSM, "sm"), q(nsSM, "required"), q(nsSM, "optional"), q(nsCSI, "csi"),
	q(nsCarbons, "enable"), q(nsCarbons, "disable"),
	q(nsRosterV, "ver"), q(nsPreAppr, "sub"), q(nsRegFeat, "register"),
	q(nsSASL2, "authentication"), q(nsSASL2, "mechanism"), q(nsSASL2, "authenticate"),
	qb(nsSASL2, "initial-response"), q(nsSASL2, "user-agent"), q(nsSASL2, "software"), q(nsSASL2, "device"),
	qb(nsSASL2, "challenge"), qb(nsSASL2, "response"), q(nsSASL2, "success"), qb(nsSASL2, "additional-data"),
	q(nsSASL2, "authorization-identifier"), q(nsSASL2, "failure"), q(nsSASL2, "continue"),
	q(nsSASL2, "inline"), q(nsSASL2, "text"),
	q(nsBind2, "bind"), q(nsBind2, "inline"), q(nsBind2, "feature"), q(nsBind2, "tag"), q(nsBind2, "bound"),
	q(nsFAST, "fast"), q(nsFAST, "request-token"), q(nsFAST, "token"),
	// Stream errors.
	q(nsStreams, "bad-format"), q(nsStreams, "bad-namespace-prefix"), q(nsStreams, "conflict"),
	q(nsStreams, "connection-timeout"), q(nsStreams, "host-gone"), q(nsStreams, "host-unknown"),
	q(nsStreams, "improper-addressing"), q(nsStreams, "internal-server-error"), q(nsStreams, "invalid-from"),
	q(nsStreams, "invalid-namespace"), q(nsStreams, "invalid-xml"), q(nsStreams, "not-authorized"),
	q(nsStreams, "not-well-formed"), q(nsStreams, "policy-violation"), q(nsStreams, "remote-connection-failed"),
	q(nsStreams, "reset"), q(nsStreams, "resource-constraint"), q(nsStreams, "restricted-xml"),
	q(nsStreams, "see-other-host"), q(nsStreams, "system-shutdown"), q(nsStreams, "undefined-condition"),
	q(nsStreams, "unsupported-encoding"), q(nsStreams, "unsupported-feature"),
	q(nsStreams, "unsupported-stanza-type"), q(nsStreams, "unsupported-version"), q(nsStreams, "text"),
	// Stanza errors.
	q(nsStanzas, "conflict"), q(nsStanzas, "gone"), q(nsStanzas, "internal-server-error"),
	q(nsStanzas, "jid-malformed"), q(nsStanzas, "not-acceptable"), q(nsStanzas, "not-authorized"),
	q(nsStanzas, "policy-violation"), q(nsStanzas, "redirect"), q(nsStanzas, "registration-required"),
	q(nsStanzas, "resource-constraint"), q(nsStanzas, "subscription-required"),
	q(nsStanzas, "undefined-condition"), q(nsStanzas, "unexpected-request"),
	q(nsSM, "unexpected-request"),
	// Archives, forms, discovery.
	q(nsMAM, "prefs"), q(nsMAM, "always"), q(nsMAM, "never"), q(nsMAM, "metadata"), q(nsRSM, "index"),
	q(nsData, "option"), q(nsData, "title"), q(nsData, "instructions"), q(nsData, "reported"),
	q(nsData, "item"), q(nsData, "required"), q(nsData, "desc"),
	q(nsECaps, "c"), q(nsHashes, "hash"), q(nsHashes, "hash-used"),
	// Profiles and PEP.
	q(nsVCard, "vCard"), q(nsVCard, "FN"), q(nsVCard, "N"), q(nsVCard, "FAMILY"), q(nsVCard, "GIVEN"),
	q(nsVCard, "NICKNAME"), q(nsVCard, "PHOTO"), q(nsVCard, "TYPE"), qb(nsVCard, "BINVAL"),
	q(nsVCard, "EMAIL"), q(nsVCard, "USERID"), q(nsVCard, "URL"), q(nsVCard, "DESC"),
	q(nsAvMeta, "metadata"), q(nsAvMeta, "info"), qb(nsAvData, "data"),
	q(nsPubSub, "retract"), q(nsPubSub, "subscribe"), q(nsPubSub, "subscription"),
	q(nsPubSub, "subscriptions"), q(nsPubSub, "options"), q(nsPubSub, "configure"),
	q(nsPubSub, "publish-options"), q(nsPubSub, "affiliations"), q(nsPubSub, "create"),
	q(nsPSEvent, "retract"), q(nsPSEvent, "purge"), q(nsPSEvent, "delete"),
	q(nsPSOwner, "pubsub"), q(nsPSOwner, "configure"), q(nsPSOwner, "delete"), q(nsPSOwner, "affiliations"),
	// Group chat and bookmarks.
	q(nsMUC, "history"), q(nsMUC, "password"),
	q(nsMUCUser, "invite"), q(nsMUCUser, "decline"), q(nsMUCUser, "reason"), q(nsMUCUser, "continue"),
	q(nsMUCUser, "destroy"), q(nsMUCUser, "actor"), q(nsMUCUser, "password"),
	q(nsMUCAdmin, "query"), q(nsMUCAdmin, "item"), q(nsMUCAdmin, "reason"),
	q(nsMUCOwner, "query"), q(nsMUCOwner, "destroy"), q(nsMUCUniq, "unique"),
	q(nsBook2, "conference"), q(nsBook2, "nick"), q(nsBook2, "password"), q(nsBook2, "extensions"),
	q(nsBook1, "storage"), q(nsBook1, "conference"), q(nsBook1, "nick"), q(nsConf, "x"),
	// Account and server queries.
	q(nsVersion, "query"), q(nsVersion, "name"), q(nsVersion, "version"), q(nsVersion, "os"),
	q(nsLast, "query"), q(nsTime, "time"), q(nsTime, "tzo"), q(nsTime, "utc"), q(nsPrivate, "query"),
	q(nsRegister, "query"), q(nsRegister, "username"), q(nsRegister, "password"), q(nsRegister, "email"),
	q(nsRegister, "remove"), q(nsRegister, "registered"), q(nsRegister, "instructions"),
	q(nsBlocking, "blocklist"), q(nsBlocking, "block"), q(nsBlocking, "unblock"), q(nsBlocking, "item"),
	q(nsBlockErr, "blocked"),
	q(nsUpload, "request"), q(nsUpload, "slot"), q(nsUpload, "put"), q(nsUpload, "get"), q(nsUpload, "header"),
	q(nsPush, "enable"), q(nsPush, "disable"),
	// Calls.
	q(nsJMI, "propose"), q(nsJMI, "retract"), q(nsJMI, "accept"), q(nsJMI, "proceed"), q(nsJMI, "reject"),
	q(nsJMI, "finish"), q(nsJingle, "jingle"), q(nsJingle, "content"), q(nsJingle, "reason"),
	q(nsJingle, "success"), q(nsJingle, "decline"), q(nsJingle, "busy"),
	q("urn:xmpp:jingle:apps:rtp:1", "description"), q("urn:xmpp:jingle:apps:rtp:1", "payload-type"),
	q("urn:xmpp:jingle:transports:ice-udp:1", "transport"), q("urn:xmpp:jingle:transports:ice-udp:1", "candidate"),
	// Encryption key material.
	q(nsAxolotl, "bundle"), qb(nsAxolotl, "signedPreKeyPublic"), qb(nsAxolotl, "signedPreKeySignature"),
	qb(nsAxolotl, "identityKey"), q(nsAxolotl, "prekeys"), qb(nsAxolotl, "preKeyPublic"),
	q(nsOMEMO, "devices"), q(nsOMEMO, "device"), q(nsOMEMO, "bundle"), qb(nsOMEMO, "spk"), qb(nsOMEMO, "spks"),
	qb(nsOMEMO, "ik"), q(nsOMEMO, "prekeys"), qb(nsOMEMO, "pk"),
	// Files and rich content.
	q(nsFileMeta, "file"), q(nsFileMeta, "media-type"), q(nsFileMeta, "name"), q(nsFileMeta, "size"),
	q(nsFileMeta, "desc"), q(nsFileMeta, "date"), q(nsFileMeta, "width"), q(nsFileMeta, "height"),
	q(nsSFS, "file-sharing"), q(nsSFS, "sources"), q(nsURLData, "url-data"),
	q(nsXHTMLIM, "html"), q(nsXHTML, "body"), q(nsXHTML, "p"), q(nsXHTML, "span"), q(nsXHTML, "a"),
	q(nsXHTML, "br"), q(nsXHTML, "em"), q(nsXHTML, "strong"),
	qb(nsBoB, "data"), q(nsIBB, "open"), qb(nsIBB, "data"), q(nsIBB, "close"),
	q(nsStyling, "unstyled"), q(nsModerate, "moderate"), q(nsModerate, "moderated"), q(nsRetract, "retracted"),
	q(nsSpoiler, "spoiler"), q(nsAttent, "attention"), q(nsFallback, "body"), q(nsFallback, "subject"),
}

func a(name string) attrEntry     { return attrEntry{name: name, since: 1, class: classValue} }
func aj(name string) attrEntry    { return attrEntry{name: name, since: 1, class: classJID} }
func atext(name string) attrEntry { return attrEntry{name: name, since: 1, class: classText} }
func aid(name string) attrEntry   { return attrEntry{name: name, since: 1, class: classID} }
func s(str string) strEntry       { return strEntry{s: str, since: 1} }
func ss(strs ...string) (e []strEntry) {
	for _, x := range strs {
		e = append(e, s(x))
	}
	return e
}

var stdAttrs = []attrEntry{
	aid("id"), aj("to"), aj("from"), a("type"), a("xml:lang"), a("h"), a("version"), a("node"),
	a("hash"), a("ver"), atext("name"), a("var"), a("category"), aj("jid"), a("subscription"), a("ask"),
	a("approved"), a("code"), aj("by"), a("stamp"), a("sid"), a("rid"), a("prekey"), a("kex"),
	a("mechanism"), a("namespace"), a("role"), a("affiliation"), atext("nick"), a("queryid"), aj("with"), a("start"),
	a("end"), atext("label"), a("max"), a("resume"), a("location"), a("previd"), a("seconds"),
	a("since"), a("for"), a("url"), atext("filename"), a("size"), a("content-type"), a("autojoin"),
	a("notify"), a("subid"), aj("publisher"), a("action"), aj("initiator"), aj("responder"), a("media"),
	a("creator"), a("senders"), a("profile"), a("parent"), a("algo"), a("width"), a("height"),
	a("bytes"), a("expiry"), a("target"), a("component"), a("foundation"), a("generation"), a("ip"),
	a("network"), a("port"), a("priority"), a("protocol"), a("channels"), a("clockrate"),
}

var stdStrings = ss(
	// Page 0: one byte (tokens 0..127).
	"chat", "groupchat", "normal", "headline", "error", "get", "set", "result",
	"unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe",
	"true", "false", "1.0", "sha-1", "sha-256", "away", "dnd", "xa",
	"none", "both", "from", "to", "remove", "cancel", "modify", "auth", "wait", "continue",
	"submit", "form", "hidden", "text-single", "text-private", "text-multi", "boolean",
	"list-single", "list-multi", "jid-single", "jid-multi", "fixed", "FORM_TYPE",
	"member", "participant", "moderator", "visitor", "owner", "admin", "outcast",
	"OMEMO", "client", "phone", "pc", "web", "bot", "console", "handheld", "im", "pep",
	"server", "conference", "text", "registered", "current",
	"en", "de", "fr", "es", "it", "ru", "pt", "nl", "pl",
	nsClient, nsReceipts, nsMarkers, nsCaps, nsDiscoI, nsDiscoT, nsChat, nsPing,
	nsVersion, nsTime, nsMUC, nsMUCUser, nsConf, nsOOB, nsCorrect, nsAxolotl, nsOMEMO,
	nsIdle, nsJingle, nsJMI, nsMAM, nsCarbons, nsSID, nsReact, nsReply, nsRetract,
	nsUpload, nsBlocking, nsSM, nsHints, nsPubSub, nsPSEvent, nsData, nsEME, nsDelay,
	nsForward, nsNick, nsAvMeta, nsAvData,
	"urn:xmpp:avatar:metadata+notify", "http://jabber.org/protocol/nick+notify",
	"eu.siacs.conversations.axolotl.devicelist", "eu.siacs.conversations.axolotl.devicelist+notify",
	"urn:xmpp:omemo:2:devices", "urn:xmpp:omemo:2:devices+notify",
	"http://conversations.im", "https://gajim.org", "https://dino.im",
	// Page 1 and on.
	"urn:xmpp:omemo:2:bundles", nsBook2, "urn:xmpp:bookmarks:1+notify", nsBook1, "storage:bookmarks+notify",
	nsVCard, nsVUpdate, nsRoster, nsLast, nsPrivate, nsRegister, nsCSI, nsFallback, nsOccupant,
	nsStyling, nsModerate, nsSpoiler, nsAttent, nsPush, nsFileMeta, nsSFS, nsHashes, nsXHTMLIM,
	nsXHTML, nsBoB, nsIBB, nsRSM, nsMUCAdmin, nsMUCOwner, nsPSOwner, nsMUCUniq,
	"http://jabber.org/protocol/muc#roominfo", "http://jabber.org/protocol/muc#roomconfig",
	"http://jabber.org/protocol/muc#register", "http://jabber.org/protocol/muc#request",
	"http://jabber.org/protocol/muc#stable_id", "http://jabber.org/protocol/muc#self-ping-optimization",
	"http://jabber.org/protocol/pubsub#publish-options", "http://jabber.org/protocol/pubsub#node_config",
	"http://jabber.org/protocol/pubsub#publish", "http://jabber.org/protocol/pubsub#auto-create",
	"http://jabber.org/protocol/pubsub#persistent-items", "http://jabber.org/protocol/pubsub#config-node-max",
	"pubsub#persist_items", "pubsub#access_model", "pubsub#max_items", "pubsub#send_last_published_item",
	"pubsub#notify_delete", "pubsub#notify_retract", "open", "presence", "whitelist", "roster", "authorize",
	"max", "never", "on_sub", "on_sub_and_presence",
	"muc_passwordprotected", "muc_hidden", "muc_temporary", "muc_open", "muc_unmoderated",
	"muc_nonanonymous", "muc_semianonymous", "muc_persistent", "muc_membersonly", "muc_moderated",
	"muc_public", "muc_unsecured",
	"urn:xmpp:dataforms:softwareinfo", "os", "os_version", "software", "software_version",
	"urn:xmpp:mam:2#extended", "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:apps:rtp:audio",
	"urn:xmpp:jingle:apps:rtp:video", "urn:xmpp:jingle:apps:dtls:0", "urn:xmpp:jingle:transports:ice-udp:1",
	"urn:xmpp:jingle:transports:s5b:1", "urn:xmpp:jingle:transports:ibb:1",
	"urn:xmpp:jingle:apps:file-transfer:3", "urn:xmpp:jingle:apps:file-transfer:4",
	"urn:xmpp:jingle:apps:file-transfer:5", "urn:xmpp:jingle:jet:0", "urn:xmpp:jingle:jet-omemo:0",
	"urn:xmpp:bookmarks:1#compat", "urn:xmpp:bookmarks:1#compat-pep", "urn:xmpp:carbons:rules:0",
	"urn:xmpp:sasl:2", "urn:xmpp:bind:0", "urn:xmpp:fast:0",
	"urn:xmpp:features:rosterver", "urn:xmpp:features:pre-approval", "msgoffline",
	"http://jabber.org/protocol/commands", "http://jabber.org/protocol/address",
	"urn:xmpp:extdisco:2", "urn:xmpp:vcard4", "urn:ietf:params:xml:ns:vcard-4.0", "urn:xmpp:invite",
	"urn:xmpp:reporting:1", "urn:xmpp:reporting:spam", "urn:xmpp:reporting:abuse",
	// Client software (XEP-0115 caps nodes) and SASL mechanisms.
	"https://siskin.im", "https://beagle.im", "https://monal-im.org/", "http://monal.im/",
	"https://conversejs.org", "http://psi-im.org", "https://psi-plus.com", "http://pidgin.im/",
	"https://kaidan.im", "https://cheogram.com", "https://blabber.im", "http://profanity-im.github.io",
	"https://movim.eu/", "http://moxxy.im", "https://poez.io", "http://gajim.org", "https://www.igniterealtime.org/projects/smack",
	"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
	"SCRAM-SHA-512", "SCRAM-SHA-512-PLUS", "EXTERNAL", "ANONYMOUS",
	"HT-SHA-256-NONE", "HT-SHA-256-UNIQ", "HT-SHA-256-EXPR", "HT-SHA-256-ENDP",
	"tls-unique", "tls-exporter", "tls-server-end-point",
	// Media and calls.
	"image/png", "image/jpeg", "image/webp", "image/gif", "video/mp4", "audio/ogg", "audio/mp4",
	"audio/mpeg", "application/pdf", "application/octet-stream", "text/plain",
	"audio", "video", "initiator", "responder", "session-initiate", "session-accept",
	"session-terminate", "transport-info", "content-add", "content-accept", "success", "decline",
	"busy", "actpass", "active", "passive", "host", "srflx", "relay", "udp", "tcp",
	"opus", "VP8", "H264", "sha-512", "blake2b-256", "sha3-256",
	// Presence, forms, misc values.
	"composing", "available",
	"ja", "zh", "sv", "cs", "uk", "tr", "fi", "da", "nb", "hu", "el", "ar", "he", "fa", "ko",
	"list", "item", "node", "nick", "url", "upload", "put",
)
