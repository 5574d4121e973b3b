package router

import (
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces of Message Carbons (XEP-0280) and Stanza Forwarding (XEP-0297).
const (
	NSCarbons = "urn:xmpp:carbons:2"
	NSForward = "urn:xmpp:forward:0"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
)

// SetCarbons enables or disables Message Carbons for the session bound to
// the full JID. The state belongs to that session: it ends when the session
// unbinds, and a later session on the same resource starts without it. It
// reports false if no session is bound to full.
func (r *Router) SetCarbons(full jid.JID, on bool) bool {
	s := r.Session(full)
	if s == nil {
		return false
	}
	if !on {
		r.carbons.CompareAndDelete(full, s)
		return true
	}
	r.carbons.Store(full, s)
	if r.Session(full) != s {
		// Unbound meanwhile: Unbind may already have run, so undo.
		r.carbons.CompareAndDelete(full, s)
		return false
	}
	return true
}

// CarbonsEnabled reports whether the session bound to full has carbons on.
func (r *Router) CarbonsEnabled(full jid.JID) bool {
	s := r.Session(full)
	return s != nil && r.carbonsOn(s)
}

func (r *Router) carbonsOn(s Session) bool {
	v, ok := r.carbons.Load(s.JID())
	return ok && v == s
}

// dropCarbons forgets the carbons state of an unbinding session.
func (r *Router) dropCarbons(s Session) { r.carbons.CompareAndDelete(s.JID(), s) }

// carbonEligible applies XEP-0280 §6 and §7: chat messages, and normal
// messages with a body, unless marked <private/> or <no-copy/> (XEP-0334),
// come from a MUC (§6, including private messages through a room), or are
// themselves carbons.
func carbonEligible(el *stanza.Element) bool {
	switch el.Type() {
	case "chat":
	case "", "normal":
		if !hasBody(el) {
			return false
		}
	default: // error, groupchat, headline
		return false
	}
	for _, c := range el.Children {
		switch {
		case c.NS == NSCarbons && (c.Name == "private" || c.Name == "received" || c.Name == "sent"):
			return false
		case c.NS == nsHints && c.Name == "no-copy":
			return false
		case c.NS == nsMUCUser:
			return false
		}
	}
	return true
}

// isPrivate reports whether c is the XEP-0280 <private/> marker, which the
// receiving server removes before delivering (§7).
func isPrivate(c *stanza.Element) bool { return c.Name == "private" && c.NS == NSCarbons }

// carbon wraps el for the carbons-enabled resource to, in a <sent/> or
// <received/> envelope from the user's bare JID (XEP-0280 §8, §9).
func carbon(kind string, to jid.JID, el *stanza.Element) *stanza.Element {
	m := stanza.New("message", stanza.NSClient).
		SetAttr("from", to.Bare().String()).
		SetAttr("to", to.String())
	if t := el.Type(); t != "" {
		m.SetAttr("type", t)
	}
	return m.Append(stanza.New(kind, NSCarbons).Append(stanza.New("forwarded", NSForward).Append(el)))
}

// copySent sends <sent/> carbons of a message a local user sent from the
// full JID from to the user's other carbons-enabled available resources.
// Messages to the user's own account are left to the received side. Carbons
// go only to online sessions, never through the durable queue.
func (r *Router) copySent(from, to jid.JID, el *stanza.Element) {
	if from.Local() == "" || from.Resource() == "" || !r.IsLocal(from) || to.Local() == from.Local() || !carbonEligible(el) {
		return
	}
	for _, s := range r.Sessions(from.Local()) {
		j := s.JID()
		if j == from || !s.Available() || !r.carbonsOn(s) {
			continue
		}
		if s.Deliver(carbon("sent", j, el), nil) {
			r.Stats.Delivered.Add(1)
		}
	}
}

// copyReceived sends <received/> carbons of a message delivered to the
// local user to's targets to the user's other carbons-enabled available
// resources; those that got the original, and the sender itself when it
// writes to its own account, get none.
func (r *Router) copyReceived(to jid.JID, el *stanza.Element, targets []Session) {
	from, _ := jid.Parse(el.From())
	for _, s := range r.Sessions(to.Local()) {
		j := s.JID()
		if j == from || !s.Available() || !r.carbonsOn(s) || containsSession(targets, s) {
			continue
		}
		if s.Deliver(carbon("received", j, el), nil) {
			r.Stats.Delivered.Add(1)
		}
	}
}

func hasBody(el *stanza.Element) bool {
	for _, c := range el.Children {
		if c.Name == "body" {
			return true
		}
	}
	return false
}

func containsSession(list []Session, s Session) bool {
	for _, t := range list {
		if t == s {
			return true
		}
	}
	return false
}
