package router

import (
	"context"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NSBlockingErrors qualifies the application condition of a stanza a user
// tried to send to a JID they block (XEP-0191 §3.5).
const NSBlockingErrors = "urn:xmpp:blocking:errors"

// Blocker answers XEP-0191 blocklist lookups for the router. It is consulted
// for every routed stanza, so implementations cache.
type Blocker interface {
	// Blocks reports whether the local user (a localpart) blocks other,
	// using the JID matching rules of XEP-0016 §2.1 (full, bare,
	// domain/resource, domain).
	Blocks(ctx context.Context, user string, other jid.JID) bool
}

// SetBlocker installs the blocklist lookup; nil turns enforcement off.
func (r *Router) SetBlocker(b Blocker) {
	r.mu.Lock()
	r.blocker = b
	r.mu.Unlock()
}

func (r *Router) getBlocker() Blocker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.blocker
}

// errBlocked is what a user gets for a stanza to a JID they block.
var errBlocked = &stanza.Error{
	Type:      stanza.ErrTypeCancel,
	Condition: stanza.ErrNotAcceptable.Condition,
	Extra:     stanza.New("blocked", NSBlockingErrors),
}

// blocked applies XEP-0191 §3.5 to a stanza from → to and reports whether it
// was stopped. Outbound: a user's stanza to a JID they block is refused
// with not-acceptable/<blocked/> (presence silently dropped). Inbound: a
// stanza from a JID the recipient blocks is dropped, messages and iq
// requests answered with service-unavailable so the blocker looks offline.
// Stanzas between resources of one account and to the user's own server are
// never blocked.
func (r *Router) blocked(ctx context.Context, from, to jid.JID, el *stanza.Element) bool {
	b := r.getBlocker()
	if b == nil || el.Type() == "error" {
		return false
	}
	if from.Local() == to.Local() && from.Domain() == to.Domain() {
		return false
	}
	toServer := r.IsLocal(to) && to.Local() == ""
	if r.IsLocal(from) && from.Local() != "" && !toServer {
		if b.Blocks(ctx, from.Local(), to) {
			switch el.Name {
			case "message":
				r.bounce(ctx, from, el, errBlocked)
			case "iq":
				if t := el.Type(); t == "get" || t == "set" {
					r.bounce(ctx, from, el, errBlocked)
				}
			}
			return true
		}
	}
	if r.IsLocal(to) && to.Local() != "" && b.Blocks(ctx, to.Local(), from) {
		switch el.Name {
		case "message":
			r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
		case "iq":
			if t := el.Type(); t == "get" || t == "set" {
				r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
			}
		}
		return true
	}
	return false
}
