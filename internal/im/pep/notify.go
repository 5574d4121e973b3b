package pep

import (
	"context"
	"errors"
	"strings"

	"github.com/parley-im/parley/internal/im/caps"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const notifySuffix = "+notify"

// eventMessage wraps one <event/> child (items or delete) in a headline
// message from the owner's bare JID.
func (s *Service) eventMessage(from, to jid.JID, child *stanza.Element) *stanza.Element {
	return stanza.New("message", stanza.NSClient).
		SetAttr("from", from.String()).SetAttr("to", to.String()).
		SetAttr("type", "headline").SetAttr("id", s.newID()).
		Append(stanza.New("event", NSEvent).Append(child))
}

// interested returns the available sessions of user that announce
// node+notify in their caps.
func (s *Service) interested(user, node string) []router.Session {
	var out []router.Session
	for _, sess := range s.r.Sessions(user) {
		if sess.Available() && s.caps.HasFeature(sess.JID(), node+notifySuffix) {
			out = append(out, sess)
		}
	}
	return out
}

// notify sends child (<items/> with items or retracts, or <delete/>) of
// node n to every resource that wants it (XEP-0163 §4.3): the owner's own,
// and, unless only the owner may read the node, those of every local
// contact with a subscription to the owner's presence. Delivery is live
// only: a resource that is not online gets the last item at its next
// initial presence instead.
func (s *Service) notify(ctx context.Context, n store.PubSubNode, child *stanza.Element) {
	from, err := s.ownerJID(n.Owner)
	if err != nil {
		s.log.Error("pep: owner JID", "owner", n.Owner, "err", err)
		return
	}
	targets := s.interested(n.Owner, n.Node)
	if a := accessOf(n); a == AccessOpen || a == AccessPresence {
		items, _, err := s.st.RosterItems(ctx, n.Owner)
		if err != nil {
			s.log.Error("pep: roster for notifications", "owner", n.Owner, "err", err)
		}
		for _, it := range items {
			if !hasFrom(it.Subscription) {
				continue
			}
			c, err := jid.Parse(it.JID)
			if err != nil || !s.r.IsLocal(c) || c.Local() == "" || c.Local() == n.Owner {
				continue
			}
			targets = append(targets, s.interested(c.Local(), n.Node)...)
		}
	}
	for _, t := range targets {
		t.Deliver(s.eventMessage(from, t.JID(), child), nil)
	}
}

// PresenceBroadcast is called for presence a resource sends without a to
// (the integrator calls it next to the roster module's Broadcast). Available
// presence records the resource's caps; once they are known (now, or when
// discovery completes) the resource is sent the last item of every node it
// newly wants notifications of (XEP-0163 §4.3.5): on initial presence all
// of them, on a later caps change only the new ones. Unavailable presence
// forgets the resource.
func (s *Service) PresenceBroadcast(ctx context.Context, sess router.Session, p *stanza.Element, initial bool) {
	full := sess.JID()
	switch p.Type() {
	case "":
	case "unavailable":
		s.SessionEnded(full)
		return
	default:
		return
	}
	if initial {
		s.mu.Lock()
		delete(s.served, full)
		s.mu.Unlock()
	}
	c := p.Child("c", caps.NS)
	if c == nil {
		// An update without caps keeps what the resource announced before.
		if f, ok := s.caps.Features(full); ok {
			s.capsKnown(ctx, sess, f)
		}
		return
	}
	f, ok := s.caps.Record(full, c, func(f caps.Features) {
		ctx, cancel := opContext()
		defer cancel()
		s.capsKnown(ctx, sess, f)
	})
	if ok {
		s.capsKnown(ctx, sess, f)
	}
}

// SessionEnded forgets a resource whose session ended (the integrator
// calls it when a session is unbound, with or without unavailable).
func (s *Service) SessionEnded(full jid.JID) {
	s.caps.Forget(full)
	s.mu.Lock()
	delete(s.served, full)
	s.mu.Unlock()
}

// capsKnown sends sess the last items of the nodes its features newly ask
// to be notified of.
func (s *Service) capsKnown(ctx context.Context, sess router.Session, f caps.Features) {
	full := sess.JID()
	if cur := s.r.Session(full); cur != sess || !sess.Available() {
		return // ended or replaced while caps were being discovered
	}
	want := map[string]struct{}{}
	for _, feat := range f.List() {
		if node, ok := strings.CutSuffix(feat, notifySuffix); ok && node != "" && len(node) <= maxNodeLen {
			want[node] = struct{}{}
		}
	}
	var fresh []string
	s.mu.Lock()
	prev := s.served[full]
	for node := range want {
		if _, done := prev[node]; !done {
			fresh = append(fresh, node)
		}
	}
	s.served[full] = want
	s.mu.Unlock()
	if s.r.Session(full) != sess {
		// Ended between the check above and now, after SessionEnded ran:
		// do not keep an entry nobody will remove.
		s.mu.Lock()
		delete(s.served, full)
		s.mu.Unlock()
		return
	}
	if len(fresh) > 0 {
		s.sendLastItems(ctx, sess, fresh)
	}
}

// sendLastItems sends sess the newest item of each of the nodes, from the
// user's own account and from each local contact the user is subscribed
// to (roster subscription to or both) whose node the user may read.
func (s *Service) sendLastItems(ctx context.Context, sess router.Session, nodes []string) {
	full := sess.JID()
	user := full.Local()
	owners := []string{user}
	items, _, err := s.st.RosterItems(ctx, user)
	if err != nil {
		s.log.Error("pep: roster for last items", "user", user, "err", err)
	}
	for _, it := range items {
		if !hasTo(it.Subscription) {
			continue
		}
		c, err := jid.Parse(it.JID)
		if err != nil || !s.r.IsLocal(c) || c.Local() == "" || c.Local() == user {
			continue
		}
		owners = append(owners, c.Local())
	}
	for _, owner := range owners {
		for _, node := range nodes {
			if ctx.Err() != nil {
				return
			}
			s.sendLastItem(ctx, sess, owner, node)
		}
	}
}

func (s *Service) sendLastItem(ctx context.Context, sess router.Session, owner, node string) {
	n, err := s.st.GetNode(ctx, owner, node)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		s.log.Error("pep: node for last item", "owner", owner, "node", node, "err", err)
		return
	}
	if s.canAccess(ctx, sess.JID(), n) != nil {
		return
	}
	items, err := s.st.Items(ctx, owner, node, 1)
	if err != nil || len(items) == 0 {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("pep: last item", "owner", owner, "node", node, "err", err)
		}
		return
	}
	payload, err := s.cfg.Codec.Unmarshal(items[0].Payload)
	if err != nil {
		s.log.Error("pep: decode last item", "owner", owner, "node", node, "err", err)
		return
	}
	from, err := s.ownerJID(owner)
	if err != nil {
		return
	}
	msg := s.eventMessage(from, sess.JID(), stanza.New("items", NSEvent).SetAttr("node", node).
		Append(itemElement(items[0].ID, payload)))
	// XEP-0203: the item is older than the message that carries it now.
	msg.Append(stanza.New("delay", stanza.NSDelay).SetAttr("from", from.String()).
		SetAttr("stamp", items[0].Published.UTC().Format("2006-01-02T15:04:05.000Z")))
	sess.Deliver(msg, nil)
}
