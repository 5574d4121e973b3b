package roster

import (
	"context"
	"errors"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Subscription handles a subscription presence sent by a local user
// (RFC 6121 §3): the user's side of the state machine, then the contact's.
func (m *Module) Subscription(ctx context.Context, from jid.JID, p *stanza.Element) {
	to, err := jid.Parse(p.To())
	if err != nil {
		return
	}
	to = to.Bare()
	user := from.Bare()
	typ := p.Type()
	if !m.router.IsLocal(to) || to.Local() == "" {
		p = p.ShallowCopy()
		p.SetAttr("from", user.String())
		m.router.Route(ctx, p)
		return
	}
	if to == user {
		return // subscribing to oneself is implicit (RFC 6121 §3.1.1)
	}
	route, approved := m.outbound(ctx, user, to, typ)
	if !route {
		return
	}
	// The contact's side. Subscription presence carries bare JIDs
	// (RFC 6121 §3.1.2).
	exists, err := m.router.UserExists(ctx, to.Local())
	if err != nil {
		m.log.Error("roster: account lookup", "user", to.Local(), "err", err)
		return
	}
	if !exists {
		if typ == "subscribe" {
			// RFC 6121 §3.1.3: no such contact: tell the user.
			m.inbound(ctx, to, user, presenceTo("unsubscribed", to, user))
		}
		return
	}
	m.inbound(ctx, user, to, presenceTo(typ, user, to))
	if approved {
		// RFC 6121 §3.1.5: after the subscribed, the new subscriber gets
		// the user's current presence.
		m.sendOwnPresence(ctx, user, to, false)
	}
}

// outbound applies the user's side of an outbound subscription presence and
// reports whether it is to be routed to the contact, and whether it
// approved a pending request.
func (m *Module) outbound(ctx context.Context, user, contact jid.JID, typ string) (route, approved bool) {
	unlock := m.lock(user.Local())
	defer unlock()
	it, err := m.store.GetRosterItem(ctx, user.Local(), contact.String())
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.Error("roster: get item", "user", user.Local(), "err", err)
		return false, false
	}
	if !found {
		it = store.RosterItem{JID: contact.String(), Subscription: store.SubNone}
	}
	before := it
	route = true
	switch typ {
	case "subscribe":
		if !hasTo(it.Subscription) {
			it.AskOut = true
		}
		it.InRoster = true
	case "subscribed":
		if it.PendingIn {
			it.Subscription = addFrom(it.Subscription)
			it.PendingIn = false
			it.InRoster = true
		} else if !hasFrom(it.Subscription) {
			// RFC 6121 §3.4: pre-approval; nothing to route.
			it.Approved = true
			it.InRoster = true
			route = false
		} else {
			route = false
		}
	case "unsubscribe":
		it.Subscription = removeTo(it.Subscription)
		it.AskOut = false
	case "unsubscribed":
		it.Subscription = removeFrom(it.Subscription)
		it.PendingIn = false
		it.Approved = false
	default:
		return false, false
	}
	if !found && !it.InRoster {
		return route, false
	}
	if equalItems(before, it) && found {
		return route, false
	}
	m.saveLocked(ctx, user.Local(), it)
	if typ == "unsubscribed" {
		// RFC 6121 §3.2.2: the former subscriber learns we are gone.
		m.sendOwnPresence(ctx, user, contact, true)
	}
	return route, typ == "subscribed" && route
}

// inbound handles presence from a local entity to a local user that concerns
// subscriptions or probes; it is the router's presence handler. It returns
// false for ordinary presence, which the router delivers itself.
func (m *Module) inbound(ctx context.Context, from, to jid.JID, p *stanza.Element) bool {
	typ := p.Type()
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
	case "probe":
		m.answerProbe(ctx, from, to.Bare())
		return true
	default:
		return false
	}
	user, contact := to.Bare(), from.Bare()
	unlock := m.lock(user.Local())
	it, err := m.store.GetRosterItem(ctx, user.Local(), contact.String())
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		unlock()
		m.log.Error("roster: get item", "user", user.Local(), "err", err)
		return true
	}
	if !found {
		it = store.RosterItem{JID: contact.String(), Subscription: store.SubNone}
	}
	before := it
	deliver := true
	autoReply := false
	switch typ {
	case "subscribe":
		switch {
		case hasFrom(it.Subscription):
			// Already subscribed: answer for the user (RFC 6121 §3.1.3).
			deliver, autoReply = false, true
		case it.Approved:
			it.Subscription = addFrom(it.Subscription)
			it.Approved = false
			deliver, autoReply = false, true
		default:
			it.PendingIn = true
		}
	case "subscribed":
		if !it.AskOut {
			deliver = false // unsolicited: ignore (RFC 6121 §3.1.6)
			break
		}
		it.Subscription = addTo(it.Subscription)
		it.AskOut = false
	case "unsubscribe":
		if !hasFrom(it.Subscription) && !it.PendingIn {
			deliver = false
		}
		it.Subscription = removeFrom(it.Subscription)
		it.PendingIn = false
	case "unsubscribed":
		if !hasTo(it.Subscription) && !it.AskOut {
			deliver = false
		}
		it.Subscription = removeTo(it.Subscription)
		it.AskOut = false
	}
	changed := !found || !equalItems(before, it)
	if changed && (found || it.PendingIn) {
		m.saveLocked(ctx, user.Local(), it)
	}
	unlock()
	if autoReply {
		m.inbound(ctx, user, contact, presenceTo("subscribed", user, contact))
		if it.Subscription != before.Subscription {
			m.sendOwnPresence(ctx, user, contact, false)
		}
		return true
	}
	if typ == "unsubscribe" && changed {
		m.sendOwnPresence(ctx, user, contact, true)
	}
	if deliver {
		out := presenceTo(typ, contact, user)
		for _, s := range m.router.Sessions(user.Local()) {
			if s.Available() {
				s.Deliver(out, nil)
			}
		}
	}
	return true
}

// saveLocked writes an item under the user's lock and pushes it; items that
// only remembered a request disappear once empty.
func (m *Module) saveLocked(ctx context.Context, user string, it store.RosterItem) {
	if !it.InRoster && !it.PendingIn && it.Subscription == store.SubNone && !it.Approved {
		if _, err := m.store.DeleteRosterItem(ctx, user, it.JID); err != nil && !errors.Is(err, store.ErrNotFound) {
			m.log.Error("roster: delete item", "user", user, "err", err)
		}
		return
	}
	ver, err := m.store.PutRosterItem(ctx, user, it)
	if err != nil {
		m.log.Error("roster: put item", "user", user, "err", err)
		return
	}
	m.push(ctx, user, it, ver, false)
}

// answerProbe sends the probed user's current presence (each available
// resource's last presence) to the prober, if the prober is subscribed.
func (m *Module) answerProbe(ctx context.Context, prober, user jid.JID) {
	if m.hidden(ctx, user, prober) {
		return
	}
	it, err := m.store.GetRosterItem(ctx, user.Local(), prober.Bare().String())
	if err != nil || !hasFrom(it.Subscription) {
		return
	}
	m.presenceOf(ctx, user, prober, false)
}

// sendOwnPresence sends the user's presence to contact: each available
// resource's last presence, or unavailable from each when gone is true.
func (m *Module) sendOwnPresence(ctx context.Context, user, contact jid.JID, gone bool) {
	m.presenceOf(ctx, user, contact, gone)
}

// SendPresence sends the presence of every available resource of user to
// to (unavailable from each when gone is set), without the blocking check:
// the blocking module calls it around a block or unblock.
func (m *Module) SendPresence(ctx context.Context, user, to jid.JID, gone bool) {
	m.presenceOf(ctx, user, to, gone)
}

func (m *Module) presenceOf(ctx context.Context, user, to jid.JID, gone bool) {
	for _, s := range m.router.Sessions(user.Local()) {
		rs, ok := s.(rosterSession)
		if !ok || !s.Available() {
			continue
		}
		var p *stanza.Element
		if gone {
			p = presenceTo("unavailable", s.JID(), to)
		} else if last := rs.LastPresence(); last != nil {
			p = last.ShallowCopy()
			p.SetAttr("to", to.String())
			p.SetAttr("from", s.JID().String())
		} else {
			continue
		}
		m.router.DeliverTo(ctx, to, p)
	}
}

// Broadcast implements c2s.Presence for presence a client sends without a
// to: RFC 6121 §4.2 (initial), §4.4 (updates) and §4.5 (unavailable).
func (m *Module) Broadcast(ctx context.Context, s router.Session, p *stanza.Element, initial bool) {
	full := s.JID()
	user := full.Local()
	items, _, err := m.store.RosterItems(ctx, user)
	if err != nil {
		m.log.Error("roster: items for broadcast", "user", user, "err", err)
	}
	for _, it := range items {
		if !hasFrom(it.Subscription) {
			continue
		}
		cj, err := jid.Parse(it.JID)
		if err != nil || m.hidden(ctx, full, cj) {
			continue
		}
		out := p.ShallowCopy()
		out.SetAttr("to", cj.String())
		m.router.DeliverTo(ctx, cj, out)
	}
	// The user's other resources see it too.
	for _, o := range m.router.Sessions(user) {
		if o == s || !o.Available() {
			continue
		}
		out := p.ShallowCopy()
		out.SetAttr("to", o.JID().String())
		o.Deliver(out, nil)
	}
	if !initial {
		return
	}
	// Probes, answered locally: contacts we are subscribed to, and our own
	// other resources.
	for _, it := range items {
		if !hasTo(it.Subscription) {
			continue
		}
		cj, err := jid.Parse(it.JID)
		if err != nil || !m.router.IsLocal(cj) || m.hidden(ctx, full, cj) {
			continue
		}
		for _, o := range m.router.Sessions(cj.Local()) {
			rs, ok := o.(rosterSession)
			if !ok || !o.Available() {
				continue
			}
			if last := rs.LastPresence(); last != nil {
				out := last.ShallowCopy()
				out.SetAttr("to", full.String())
				s.Deliver(out, nil)
			}
		}
	}
	for _, o := range m.router.Sessions(user) {
		rs, ok := o.(rosterSession)
		if o == s || !ok || !o.Available() {
			continue
		}
		if last := rs.LastPresence(); last != nil {
			out := last.ShallowCopy()
			out.SetAttr("to", full.String())
			s.Deliver(out, nil)
		}
	}
	// Pending inbound subscription requests (RFC 6121 §3.1.3) and queued
	// messages (XEP-0160) wait for initial presence.
	for _, it := range items {
		if it.PendingIn {
			cj, err := jid.Parse(it.JID)
			if err != nil {
				continue
			}
			s.Deliver(presenceTo("subscribe", cj, full.Bare()), nil)
		}
	}
	if err := m.router.FlushQueue(ctx, s); err != nil {
		m.log.Error("roster: offline delivery", "user", user, "err", err)
	}
}

// Ended implements c2s.Presence: the session went away while available.
func (m *Module) Ended(ctx context.Context, s router.Session, directed []jid.JID) {
	full := s.JID()
	p := stanza.New("presence", stanza.NSClient).SetAttr("type", "unavailable").SetAttr("from", full.String())
	m.Broadcast(ctx, s, p, false)
	for _, d := range directed {
		out := p.ShallowCopy()
		out.SetAttr("to", d.String())
		m.router.Route(ctx, out)
	}
}

func hasFrom(sub string) bool { return sub == store.SubFrom || sub == store.SubBoth }
func hasTo(sub string) bool   { return sub == store.SubTo || sub == store.SubBoth }

func addFrom(sub string) string {
	if hasTo(sub) {
		return store.SubBoth
	}
	return store.SubFrom
}

func addTo(sub string) string {
	if hasFrom(sub) {
		return store.SubBoth
	}
	return store.SubTo
}

func removeFrom(sub string) string {
	if hasTo(sub) {
		return store.SubTo
	}
	return store.SubNone
}

func removeTo(sub string) string {
	if hasFrom(sub) {
		return store.SubFrom
	}
	return store.SubNone
}

func equalItems(a, b store.RosterItem) bool {
	if a.JID != b.JID || a.Name != b.Name || a.Subscription != b.Subscription || a.AskOut != b.AskOut ||
		a.PendingIn != b.PendingIn || a.Approved != b.Approved || a.InRoster != b.InRoster || len(a.Groups) != len(b.Groups) {
		return false
	}
	for i := range a.Groups {
		if a.Groups[i] != b.Groups[i] {
			return false
		}
	}
	return true
}
