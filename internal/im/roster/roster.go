// Package roster is RFC 6121 for local users: the roster (jabber:iq:roster
// with pushes and XEP-0237 versioning), the presence subscription state
// machine, presence broadcast and probes, and the hand-over of pending
// subscription requests and queued messages at initial presence.
package roster

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Limits on roster input; a roster is read on every login so it is bounded.
const (
	MaxItems     = 5000
	maxNameLen   = 1024
	maxGroups    = 64
	maxGroupLen  = 1024
	lockStripes  = 256
	versionAttrs = "ver"
)

// Store is what the module needs of the store.
type Store interface {
	store.Roster
}

// Module implements the roster and presence logic.
type Module struct {
	store  Store
	router *router.Router
	log    *slog.Logger
	seed   maphash.Seed
	locks  [lockStripes]sync.Mutex
	nextID func() string
	// blocker hides presence between a user and the JIDs they block, or
	// that block them (XEP-0191); nil when blocking is off.
	blocker router.Blocker
}

// SetBlocker makes presence broadcasts and probes skip blocked pairs.
// Call it before the server starts.
func (m *Module) SetBlocker(b router.Blocker) { m.blocker = b }

// hidden reports whether presence must not flow between a and b because
// one of them blocks the other.
func (m *Module) hidden(ctx context.Context, a, b jid.JID) bool {
	if m.blocker == nil {
		return false
	}
	if m.router.IsLocal(a) && a.Local() != "" && m.blocker.Blocks(ctx, a.Local(), b) {
		return true
	}
	return m.router.IsLocal(b) && b.Local() != "" && m.blocker.Blocks(ctx, b.Local(), a)
}

// New creates the module and registers it with the router.
func New(st Store, r *router.Router, log *slog.Logger) *Module {
	if log == nil {
		log = slog.Default()
	}
	m := &Module{store: st, router: r, log: log, seed: maphash.MakeSeed()}
	var n uint64
	var mu sync.Mutex
	m.nextID = func() string {
		mu.Lock()
		n++
		v := n
		mu.Unlock()
		return "push" + strconv.FormatUint(v, 36)
	}
	r.HandleUserIQ(stanza.NSRoster, m.handleIQ)
	r.SetPresenceHandler(m.inbound)
	return m
}

// lock serialises roster changes of one user: the stripe is the owner of
// that user's roster state, so read-modify-write never races.
func (m *Module) lock(user string) func() {
	mu := &m.locks[maphash.String(m.seed, user)%lockStripes]
	mu.Lock()
	return mu.Unlock
}

// rosterSession is what the module needs of a session beyond the router's view.
type rosterSession interface {
	router.Session
	LastPresence() *stanza.Element
	RosterWanted() bool
	SetRosterWanted()
}

func (m *Module) handleIQ(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if to.Local() != from.Local() {
		// RFC 6121 §2.1.5: only the user may touch its roster.
		return nil, stanza.ErrForbidden
	}
	q := iq.Child("query", stanza.NSRoster)
	if q == nil {
		return nil, stanza.ErrBadRequest
	}
	if iq.Type() == "get" {
		if s, ok := m.router.Session(from).(rosterSession); ok {
			s.SetRosterWanted()
		}
		return m.get(ctx, from.Local(), q)
	}
	return m.set(ctx, from, q, iq)
}

func (m *Module) get(ctx context.Context, user string, q *stanza.Element) (*stanza.Element, error) {
	items, ver, err := m.store.RosterItems(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("roster get %s: %w", user, err)
	}
	res := stanza.New("iq", stanza.NSClient).SetAttr("type", "result")
	verS := strconv.FormatUint(ver, 10)
	// XEP-0237: an up-to-date client gets an empty result and pushes.
	if q.HasAttr(versionAttrs) && q.Attr(versionAttrs) == verS {
		return res, nil
	}
	out := stanza.New("query", stanza.NSRoster).SetAttr(versionAttrs, verS)
	for _, it := range items {
		if it.InRoster {
			out.Append(itemElement(it))
		}
	}
	return res.Append(out), nil
}

func itemElement(it store.RosterItem) *stanza.Element {
	el := stanza.New("item", stanza.NSRoster).SetAttr("jid", it.JID)
	if it.Name != "" {
		el.SetAttr("name", it.Name)
	}
	sub := it.Subscription
	if sub == "" {
		sub = store.SubNone
	}
	el.SetAttr("subscription", sub)
	if it.AskOut {
		el.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.Append(stanza.New("group", stanza.NSRoster).AppendText(g))
	}
	return el
}

func (m *Module) set(ctx context.Context, from jid.JID, q *stanza.Element, iq *stanza.Element) (*stanza.Element, error) {
	items := q.Elements()
	if len(items) != 1 || items[0].Name != "item" {
		return nil, stanza.ErrBadRequest.WithText("a roster set carries exactly one item")
	}
	it := items[0]
	cj, err := jid.Parse(it.Attr("jid"))
	if err != nil {
		return nil, stanza.ErrBadRequest.WithText("invalid item jid")
	}
	contact := cj.String()
	user := from.Local()
	if it.Attr("subscription") == "remove" {
		return m.remove(ctx, from, contact)
	}
	name := it.Attr("name")
	if len(name) > maxNameLen || !utf8.ValidString(name) {
		return nil, stanza.ErrNotAcceptable.WithText("name too long")
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range it.Children {
		if g.Name != "group" {
			continue
		}
		t := g.TextContent()
		if t == "" || len(t) > maxGroupLen {
			return nil, stanza.ErrNotAcceptable.WithText("invalid group name")
		}
		if seen[t] {
			return nil, stanza.ErrBadRequest.WithText("duplicate group")
		}
		seen[t] = true
		groups = append(groups, t)
	}
	if len(groups) > maxGroups {
		return nil, stanza.ErrNotAcceptable.WithText("too many groups")
	}
	unlock := m.lock(user)
	cur, err := m.store.GetRosterItem(ctx, user, contact)
	switch {
	case errors.Is(err, store.ErrNotFound):
		all, _, err2 := m.store.RosterItems(ctx, user)
		if err2 != nil {
			unlock()
			return nil, fmt.Errorf("roster set %s: %w", user, err2)
		}
		if len(all) >= MaxItems {
			unlock()
			return nil, stanza.ErrResourceConstraint.WithText("roster is full")
		}
		cur = store.RosterItem{JID: contact, Subscription: store.SubNone}
	case err != nil:
		unlock()
		return nil, fmt.Errorf("roster set %s: %w", user, err)
	}
	cur.Name, cur.Groups, cur.InRoster = name, groups, true
	ver, err := m.store.PutRosterItem(ctx, user, cur)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("roster set %s: %w", user, err)
	}
	m.push(ctx, user, cur, ver, false)
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result"), nil
}

func (m *Module) remove(ctx context.Context, from jid.JID, contact string) (*stanza.Element, error) {
	user := from.Local()
	unlock := m.lock(user)
	cur, err := m.store.GetRosterItem(ctx, user, contact)
	if errors.Is(err, store.ErrNotFound) || err == nil && !cur.InRoster {
		unlock()
		return nil, stanza.ErrItemNotFound
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("roster remove %s: %w", user, err)
	}
	ver, err := m.store.DeleteRosterItem(ctx, user, contact)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("roster remove %s: %w", user, err)
	}
	m.push(ctx, user, cur, ver, true)
	// RFC 6121 §2.5.2: cancel both directions with the contact.
	bare := from.Bare()
	cj, _ := jid.Parse(contact)
	if cur.Subscription == store.SubFrom || cur.Subscription == store.SubBoth || cur.PendingIn {
		if hasFrom(cur.Subscription) {
			// The item is gone, so outbound cannot see the subscription:
			// tell the contact we are unavailable here (RFC 6121 §3.2.2).
			m.sendOwnPresence(ctx, bare, cj, true)
		}
		m.Subscription(ctx, bare, presenceTo("unsubscribed", bare, cj))
	}
	if cur.Subscription == store.SubTo || cur.Subscription == store.SubBoth || cur.AskOut {
		m.Subscription(ctx, bare, presenceTo("unsubscribe", bare, cj))
	}
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result"), nil
}

// push sends a roster push for item to every resource of user that has
// requested its roster (RFC 6121 §2.1.6).
func (m *Module) push(_ context.Context, user string, it store.RosterItem, ver uint64, removed bool) {
	if !it.InRoster && !removed {
		return
	}
	el := itemElement(it)
	if removed {
		el = stanza.New("item", stanza.NSRoster).SetAttr("jid", it.JID).SetAttr("subscription", "remove")
	}
	for _, s := range m.router.Sessions(user) {
		rs, ok := s.(rosterSession)
		if !ok || !rs.RosterWanted() {
			continue
		}
		iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "set").SetAttr("id", m.nextID()).
			SetAttr("to", s.JID().String()).
			Append(stanza.New("query", stanza.NSRoster).SetAttr(versionAttrs, strconv.FormatUint(ver, 10)).Append(el))
		s.Deliver(iq, nil)
	}
}

func presenceTo(typ string, from, to jid.JID) *stanza.Element {
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", from.String()).SetAttr("to", to.String())
	if typ != "" {
		p.SetAttr("type", typ)
	}
	return p
}
