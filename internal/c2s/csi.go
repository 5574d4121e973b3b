package c2s

import (
	"github.com/parley-im/parley/stanza"
)

// Client State Indication (XEP-0352).
//
// A client that says <inactive/> (a phone with its screen off) gets only
// what it needs at once. Policy, applied in sendLocked to stanzas that have
// no durable queue ack:
//
//   - held, latest per sender full JID: presence of type available or
//     unavailable, and messages whose only payload is a XEP-0085 chat state
//     (plus <thread/>, XEP-0334 hints and XEP-0359 ids), with no body;
//   - at once: everything else: messages with a body or an encrypted
//     payload, receipts (XEP-0184) and markers (XEP-0333) — each refers to
//     one message, so keeping "the latest" would lose the others —,
//     subscription presence, errors, and every iq;
//   - a stanza with a durable ack (a stored message) is never held.
//
// A message with a body (or its own chat state) delivered at once drops the
// chat state held from its sender: the message is newer, and the held state
// would otherwise arrive after it. A receipt or marker does not.
// On <active/> the held stanzas are written before anything newer: the
// latest presence per contact, then the chat states. They are counted by
// stream management only then, when they are encoded. If the connection is
// lost while some are held, a resumable session owes them (they join the
// unacknowledged stanzas and are resent on resumption); otherwise they are
// dropped, which loses nothing durable. The inactive state itself is not
// carried over a resumption: the client sends <inactive/> again.
//
// Bound: at most csiMaxHeld stanzas are held per session (each bounded by
// the XML reader's stanza size limit); a new sender past the bound makes the
// session write everything held, then the stanza, as if it were active.

// NSCSI is the XEP-0352 namespace.
const NSCSI = "urn:xmpp:csi:0"

const nsChatStates = "http://jabber.org/protocol/chatstates"

// csiMaxHeld bounds the stanzas an inactive session holds back.
const csiMaxHeld = 1000

// csiState is guarded by the session's output lock; only the reader
// changes inactive.
type csiState struct {
	inactive bool
	presence heldSet
	chat     heldSet
}

// heldSet keeps the latest stanza per key, in the order keys first came.
type heldSet struct {
	idx map[string]int
	els []*stanza.Element // nil: dropped
}

func (h *heldSet) put(key string, el *stanza.Element) {
	if i, ok := h.idx[key]; ok {
		h.els[i] = el
		return
	}
	if h.idx == nil {
		h.idx = map[string]int{}
	}
	h.idx[key] = len(h.els)
	h.els = append(h.els, el)
}

func (h *heldSet) has(key string) bool {
	_, ok := h.idx[key]
	return ok
}

func (h *heldSet) drop(key string) {
	if i, ok := h.idx[key]; ok {
		h.els[i] = nil
		delete(h.idx, key)
	}
}

// held returns the number of slots in use (dropped ones included).
func (c *csiState) held() int { return len(c.presence.els) + len(c.chat.els) }

// take returns the held stanzas in delivery order and empties the set.
func (c *csiState) take() []*stanza.Element {
	var out []*stanza.Element
	for _, el := range c.presence.els {
		if el != nil {
			out = append(out, el)
		}
	}
	for _, el := range c.chat.els {
		if el != nil {
			out = append(out, el)
		}
	}
	c.presence, c.chat = heldSet{}, heldSet{}
	return out
}

// csiKind says which held set a stanza belongs to: nil if it goes at once.
func (c *csiState) setFor(el *stanza.Element) *heldSet {
	switch el.Name {
	case "presence":
		if t := el.Type(); t == "" || t == "unavailable" {
			return &c.presence
		}
	case "message":
		if chatStateOnly(el) {
			return &c.chat
		}
	}
	return nil
}

// chatStateOnly reports whether a message carries a chat state and nothing
// else worth waking the client for.
func chatStateOnly(el *stanza.Element) bool {
	if el.Type() == "error" {
		return false
	}
	state := false
	for _, c := range el.Children {
		switch {
		case c.Name == "":
			// text between elements
		case c.NS == nsChatStates:
			state = true
		case c.Name == "thread" && c.NS == stanza.NSClient, c.NS == "urn:xmpp:hints",
			c.NS == stanza.NSStanzaID: // the router stamps every message with a stanza id
		default:
			return false
		}
	}
	return state
}

// csiHoldLocked holds el back if the session is inactive and the policy
// says so (never with a durable ack); overflow is true when el should be held but the set is full
// (the caller then writes everything held first). outMu must be held.
func (s *Session) csiHoldLocked(el *stanza.Element, durable bool) (held, overflow bool) {
	c := s.csi
	if c == nil || !c.inactive || el == nil {
		return false, false
	}
	from := el.From()
	var set *heldSet
	if !durable && from != "" {
		set = c.setFor(el)
	}
	if set == nil {
		if el.Name == "message" && (el.Child("body", "") != nil || el.ChildNS(nsChatStates) != nil) {
			c.chat.drop(from)
		}
		return false, false
	}
	if !set.has(from) && c.held() >= csiMaxHeld {
		return false, true
	}
	set.put(from, el)
	return true, false
}

// csiReleaseLocked writes the held stanzas into the output (counted by
// stream management now), owes them to a resumable session that lost its
// connection, or drops them if the session takes no more output. It
// returns false if one could not be encoded: the caller then ends the
// session as sendLocked does. outMu must be held.
func (s *Session) csiReleaseLocked() bool {
	if s.csi == nil || s.csi.held() == 0 {
		return true
	}
	els := s.csi.take()
	switch {
	case s.sm.detached || s.broken:
		if s.sm.enabled {
			for _, el := range els {
				s.sm.keep(el, nil, s.maxUnacked())
			}
		}
		return true
	case s.closing:
		return true
	}
	if s.out == nil {
		s.out = getBuf()
	}
	for _, el := range els {
		if !s.encode(func(dst []byte) []byte { return s.codec.AppendElement(dst, el) }) {
			s.closing = true
			return false
		}
		if s.sm.enabled {
			s.sm.keep(el, nil, 0)
		}
	}
	return true
}

// handleCSI handles <active/> and <inactive/>; ok is false if el is not a
// CSI nonza. They are not stanzas: stream management does not count them.
func (s *Session) handleCSI(el *stanza.Element) (bool, error) {
	if el.NS != NSCSI {
		return false, nil
	}
	var inactive bool
	switch el.Name {
	case "inactive":
		inactive = true
	case "active":
	default:
		return true, stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "")
	}
	s.take() // a nonza costs a token like a stanza: no free flood
	s.outMu.Lock()
	if s.csi == nil && inactive {
		s.csi = &csiState{}
	}
	ok := true
	if s.csi != nil {
		s.csi.inactive = inactive
		ok = inactive || s.csiReleaseLocked()
		if !inactive && s.csi.held() == 0 {
			s.csi = nil // active again with nothing held: keep idle sessions small
		}
	}
	// The reader is inside Feed: its flushInline writes the output.
	s.outMu.Unlock()
	if !ok {
		_ = s.tr.Close()
	}
	return true, nil
}
