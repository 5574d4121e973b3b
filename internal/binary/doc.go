// Package binary is Parley's compact binary encoding of XMPP streams
// (parley-bin/1), specified in docs/binary-protocol.md.
//
// It writes the same codec-neutral trees as the XML codec (stanza.Element),
// so the server routes between XML and binary clients unchanged. A stanza
// is one length-prefixed frame; element and attribute names known to a
// static, versioned dictionary are one-byte tokens keyed on the qualified
// name (so xmlns disappears); values that are integers, UUIDs, hex,
// base32hex (the server's archive ids), base64, date-times or JIDs travel
// in binary form; and each direction keeps a small alias table for the
// JIDs of top-level from and to. Nothing else is remembered between
// stanzas, and text is never tokenised: the encoding has no compression
// oracle.
//
// A Codec serves one connection in one role (Server or Client). Its
// decoder half (Feed, Next, Reset) is push-fed and incremental, enforces
// Limits on the wire bytes before committing memory, returns
// *stanza.StreamError values, and holds no buffer once all fed bytes are
// consumed. Its encoder half (AppendOpen, AppendElement, AppendClose)
// appends to the caller's buffer without allocating and may be called from
// any goroutine, one at a time. Both halves have the methods of c2s.Codec
// with this package's Header and Event types, so a session adapter is a
// few lines of field copying.
package binary
