// Package disco answers service discovery (XEP-0030) for the server and for
// user accounts: identities and the features the other modules announce.
package disco

import (
	"context"
	"slices"
	"sync"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Identity is a disco identity.
type Identity struct{ Category, Type, Name string }

// Item is a disco item (a service under the domain).
type Item struct{ JID, Name string }

// Module holds what the server announces.
type Module struct {
	mu             sync.RWMutex
	serverIdentity []Identity
	serverFeatures []string
	accountFeats   []string
	accountIDs     []Identity
	items          []Item
}

// New creates the module and registers its handlers.
func New(r *router.Router, name string) *Module {
	m := &Module{
		serverIdentity: []Identity{{Category: "server", Type: "im", Name: name}},
		serverFeatures: []string{NSInfo, NSItems},
		accountFeats:   []string{NSInfo, NSItems},
	}
	r.HandleServerIQ(NSInfo, m.info)
	r.HandleServerIQ(NSItems, m.itemsIQ)
	r.HandleUserIQ(NSInfo, m.info)
	r.HandleUserIQ(NSItems, m.itemsIQ)
	return m
}

// AddServerFeature announces a feature of the server; modules call it at start.
func (m *Module) AddServerFeature(ns ...string) {
	m.mu.Lock()
	m.serverFeatures = appendNew(m.serverFeatures, ns...)
	m.mu.Unlock()
}

// AddAccountFeature announces a feature of every account's bare JID.
func (m *Module) AddAccountFeature(ns ...string) {
	m.mu.Lock()
	m.accountFeats = appendNew(m.accountFeats, ns...)
	m.mu.Unlock()
}

// AddAccountIdentity announces an identity of every account's bare JID
// besides account/registered (e.g. pubsub/pep, XEP-0163 §6.1).
func (m *Module) AddAccountIdentity(id Identity) {
	m.mu.Lock()
	m.accountIDs = append(m.accountIDs, id)
	m.mu.Unlock()
}

// AddItem lists a service under the domain (e.g. conference.<domain>).
func (m *Module) AddItem(it Item) {
	m.mu.Lock()
	m.items = append(m.items, it)
	m.mu.Unlock()
}

func appendNew(dst []string, ns ...string) []string {
	for _, n := range ns {
		if !slices.Contains(dst, n) {
			dst = append(dst, n)
		}
	}
	return dst
}

func (m *Module) info(_ context.Context, _ jid.JID, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if iq.Type() != "get" {
		return nil, stanza.ErrBadRequest
	}
	q := iq.Child("query", NSInfo)
	if q == nil {
		return nil, stanza.ErrBadRequest
	}
	if node := q.Attr("node"); node != "" {
		return nil, stanza.ErrItemNotFound
	}
	out := stanza.New("query", NSInfo)
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids, feats := m.serverIdentity, m.serverFeatures
	if to.Local() != "" {
		ids = append([]Identity{{Category: "account", Type: "registered"}}, m.accountIDs...)
		feats = m.accountFeats
	}
	for _, id := range ids {
		el := stanza.New("identity", NSInfo).SetAttr("category", id.Category).SetAttr("type", id.Type)
		if id.Name != "" {
			el.SetAttr("name", id.Name)
		}
		out.Append(el)
	}
	sorted := slices.Clone(feats)
	slices.Sort(sorted)
	for _, f := range sorted {
		out.Append(stanza.New("feature", NSInfo).SetAttr("var", f))
	}
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(out), nil
}

func (m *Module) itemsIQ(_ context.Context, _ jid.JID, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if iq.Type() != "get" {
		return nil, stanza.ErrBadRequest
	}
	q := iq.Child("query", NSItems)
	if q == nil {
		return nil, stanza.ErrBadRequest
	}
	out := stanza.New("query", NSItems)
	if q.Attr("node") != "" {
		return nil, stanza.ErrItemNotFound
	}
	if to.Local() == "" {
		m.mu.RLock()
		for _, it := range m.items {
			el := stanza.New("item", NSItems).SetAttr("jid", it.JID)
			if it.Name != "" {
				el.SetAttr("name", it.Name)
			}
			out.Append(el)
		}
		m.mu.RUnlock()
	}
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(out), nil
}
