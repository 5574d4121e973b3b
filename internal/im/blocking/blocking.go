// Package blocking implements the Blocking Command (XEP-0191): each user's
// list of blocked JIDs, the iqs that read and change it, pushes of changes
// to the user's interested resources, and the lookup the router uses to
// enforce the list on every stanza.
package blocking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/parley-im/parley/internal/memo"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NS is the blocking namespace, also the disco feature.
const NS = "urn:xmpp:blocking"

// Defaults for Config.
const (
	DefaultMaxItems  = 1000
	DefaultCacheSize = 100_000
)

// Store is what the module needs of the store.
type Store interface {
	store.Blocklist
	GetRosterItem(ctx context.Context, user, contact string) (store.RosterItem, error)
}

// PresenceSender sends the current presence of every available resource of
// from's account to to, or unavailable from each when gone is set; the
// roster module provides it. Blocking hides a user's presence from a
// contact and unblocking shows it again (XEP-0191 §3.3, §3.4).
type PresenceSender func(ctx context.Context, from, to jid.JID, gone bool)

// Config configures the module.
type Config struct {
	Store    Store
	Router   *router.Router
	Presence PresenceSender // optional
	Logger   *slog.Logger
	// MaxItems bounds one user's blocklist.
	MaxItems int
	// CacheSize bounds the number of users whose list is cached in memory.
	CacheSize int
}

// Module is the blocking service. Create it with New.
type Module struct {
	cfg Config
	log *slog.Logger

	cache *memo.Cache[[]jid.JID] // user → parsed blocklist
	// interested holds the full JIDs that asked for the blocklist: XEP-0191
	// §3.3 pushes changes only to those resources.
	interested sync.Map // string → struct{}
}

// New creates the module, registers its iq handlers and installs it as the
// router's blocker.
func New(cfg Config) (*Module, error) {
	if cfg.Store == nil || cfg.Router == nil {
		return nil, errors.New("blocking: Store and Router are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItems
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	m := &Module{cfg: cfg, log: cfg.Logger, cache: memo.New[[]jid.JID](cfg.CacheSize)}
	cfg.Router.HandleUserIQ(NS, m.handleIQ)
	cfg.Router.HandleServerIQ(NS, m.handleIQ)
	cfg.Router.SetBlocker(m)
	return m, nil
}

// Blocks implements router.Blocker with the JID matching rules of XEP-0016
// §2.1: an item matches a full JID exactly, a bare JID any resource of it,
// domain/resource that resource of any user of the domain, a domain every
// JID of it. A store error fails open (logged): blocking is a courtesy
// filter, and refusing all traffic of a user on a read error is worse.
func (m *Module) Blocks(ctx context.Context, user string, other jid.JID) bool {
	list, err := m.list(ctx, user)
	if err != nil {
		m.log.Error("blocking: load list", "user", user, "err", err)
		return false
	}
	for _, it := range list {
		if matches(it, other) {
			return true
		}
	}
	return false
}

func matches(item, j jid.JID) bool {
	if item.Domain() != j.Domain() {
		return false
	}
	switch {
	case item.Local() != "" && item.Resource() != "":
		return item == j
	case item.Local() != "":
		return item.Local() == j.Local()
	case item.Resource() != "":
		return item.Resource() == j.Resource()
	default:
		return true
	}
}

// list returns the user's parsed blocklist, from the cache when loaded.
func (m *Module) list(ctx context.Context, user string) ([]jid.JID, error) {
	return m.cache.Get(user, func() ([]jid.JID, error) {
		raw, err := m.cfg.Store.BlockedJIDs(ctx, user)
		if err != nil {
			return nil, err
		}
		l := make([]jid.JID, 0, len(raw))
		for _, s := range raw {
			if j, err := jid.Parse(s); err == nil {
				l = append(l, j)
			}
		}
		return l, nil
	})
}

// Forget drops the cached list of user (e.g. when the account is deleted).
func (m *Module) Forget(user string) { m.cache.Forget(user) }

func (m *Module) handleIQ(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if to.Local() != "" && to.Local() != from.Local() {
		return nil, stanza.ErrForbidden
	}
	user := from.Local()
	res := stanza.New("iq", stanza.NSClient).SetAttr("type", "result")
	switch iq.Type() {
	case "get":
		if iq.Child("blocklist", NS) == nil {
			return nil, stanza.ErrBadRequest
		}
		raw, err := m.cfg.Store.BlockedJIDs(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("blocking: list of %s: %w", user, err)
		}
		m.interested.Store(from.String(), struct{}{})
		return res.Append(itemsElement("blocklist", raw)), nil
	case "set":
		if el := iq.Child("block", NS); el != nil {
			return res, m.block(ctx, from, el)
		}
		if el := iq.Child("unblock", NS); el != nil {
			return res, m.unblock(ctx, from, el)
		}
	}
	return nil, stanza.ErrBadRequest
}

// items parses the <item jid=…/> children into normalised JIDs.
func items(el *stanza.Element, max int) ([]jid.JID, error) {
	var out []jid.JID
	for _, c := range el.Children {
		if c.Name != "item" || c.NS != NS {
			continue
		}
		j, err := jid.Parse(c.Attr("jid"))
		if err != nil || j.Domain() == "" {
			return nil, stanza.ErrJIDMalformed
		}
		if len(out) >= max {
			return nil, stanza.ErrNotAcceptable.WithText("too many items")
		}
		out = append(out, j)
	}
	return out, nil
}

func (m *Module) block(ctx context.Context, from jid.JID, el *stanza.Element) error {
	user := from.Local()
	add, err := items(el, m.cfg.MaxItems)
	if err != nil {
		return err
	}
	if len(add) == 0 {
		return stanza.ErrBadRequest.WithText("block needs at least one item") // XEP-0191 §3.3
	}
	cur, err := m.cfg.Store.BlockedJIDs(ctx, user)
	if err != nil {
		return fmt.Errorf("blocking: list of %s: %w", user, err)
	}
	have := make(map[string]bool, len(cur))
	for _, s := range cur {
		have[s] = true
	}
	var strs []string
	for _, j := range add {
		if s := j.String(); !have[s] {
			have[s] = true
			strs = append(strs, s)
		}
	}
	if len(have) > m.cfg.MaxItems {
		return stanza.ErrNotAcceptable.WithText("blocklist is full")
	}
	// The user goes offline for the contacts first, while presence may
	// still flow to them.
	m.presence(ctx, from, add, true)
	if err := m.cfg.Store.Block(ctx, user, strs...); err != nil {
		return fmt.Errorf("blocking: block for %s: %w", user, err)
	}
	m.Forget(user)
	m.push(ctx, from.Bare(), "block", add)
	return nil
}

func (m *Module) unblock(ctx context.Context, from jid.JID, el *stanza.Element) error {
	user := from.Local()
	del, err := items(el, m.cfg.MaxItems)
	if err != nil {
		return err
	}
	if len(del) == 0 {
		// Unblock all (XEP-0191 §3.4): presence goes to every former entry.
		raw, err := m.cfg.Store.BlockedJIDs(ctx, user)
		if err != nil {
			return fmt.Errorf("blocking: list of %s: %w", user, err)
		}
		for _, s := range raw {
			if j, err := jid.Parse(s); err == nil {
				del = append(del, j)
			}
		}
		if err := m.cfg.Store.Unblock(ctx, user); err != nil {
			return fmt.Errorf("blocking: unblock all for %s: %w", user, err)
		}
		m.Forget(user)
		m.push(ctx, from.Bare(), "unblock", nil)
		m.presence(ctx, from, del, false)
		return nil
	}
	strs := make([]string, len(del))
	for i, j := range del {
		strs[i] = j.String()
	}
	if err := m.cfg.Store.Unblock(ctx, user, strs...); err != nil {
		return fmt.Errorf("blocking: unblock for %s: %w", user, err)
	}
	m.Forget(user)
	m.push(ctx, from.Bare(), "unblock", del)
	m.presence(ctx, from, del, false)
	return nil
}

// presence hides (gone) or shows the user's presence to blocked entries
// that are local contacts with a presence subscription, and theirs to the
// user, so both sides see each other offline while the block lasts.
func (m *Module) presence(ctx context.Context, from jid.JID, list []jid.JID, gone bool) {
	if m.cfg.Presence == nil {
		return
	}
	for _, j := range list {
		if j.Local() == "" || !m.cfg.Router.IsLocal(j) {
			continue
		}
		it, err := m.cfg.Store.GetRosterItem(ctx, from.Local(), j.Bare().String())
		if err != nil {
			continue
		}
		if it.Subscription == store.SubFrom || it.Subscription == store.SubBoth {
			m.cfg.Presence(ctx, from.Bare(), j, gone)
		}
		if it.Subscription == store.SubTo || it.Subscription == store.SubBoth {
			m.cfg.Presence(ctx, j.Bare(), from.Bare(), gone)
		}
	}
}

// push sends the change to every resource of the user that has fetched the
// blocklist and is still bound.
func (m *Module) push(ctx context.Context, bare jid.JID, op string, list []jid.JID) {
	strs := make([]string, len(list))
	for i, j := range list {
		strs[i] = j.String()
	}
	for _, s := range m.cfg.Router.Sessions(bare.Local()) {
		key := s.JID().String()
		if _, ok := m.interested.Load(key); !ok {
			continue
		}
		iq := stanza.New("iq", stanza.NSClient).
			SetAttr("type", "set").
			SetAttr("id", "block-push-"+op).
			SetAttr("to", key).
			Append(itemsElement(op, strs))
		s.Deliver(iq, nil)
	}
}

// SessionEnded forgets that a resource asked for pushes.
func (m *Module) SessionEnded(full jid.JID) { m.interested.Delete(full.String()) }

func itemsElement(name string, jids []string) *stanza.Element {
	el := stanza.New(name, NS)
	for _, s := range jids {
		el.Append(stanza.New("item", NS).SetAttr("jid", s))
	}
	return el
}
