package muc

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// maxListed bounds the rooms one disco#items answer lists.
const maxListed = 500

// listing is what the room directory shows of an active temporary room; its
// goroutine publishes it so the directory never reads room state.
type listing struct {
	name   string
	public bool
	listed bool // exists, configured and not persistent (persistent ones are read from the store)
}

// publish updates the room's directory entry.
func (r *room) publish() {
	l := &listing{name: r.cfg.Name, public: r.cfg.Public, listed: r.exists && !r.locked && !r.cfg.Persistent}
	r.listing.Store(l)
}

type listingPtr = atomic.Pointer[listing]

// handleService answers stanzas to the service's own JID: disco#info,
// disco#items (the public room directory) and ping.
func (s *Service) handleService(ctx context.Context, from, to jid.JID, el *stanza.Element) {
	if el.Name != "iq" {
		if el.Name == "message" {
			s.replyError(el, stanza.ErrServiceUnavailable)
		}
		return
	}
	if el.Type() != "get" && el.Type() != "set" {
		return
	}
	q := firstElement(el)
	if q == nil || el.Type() != "get" {
		s.replyError(el, stanza.ErrServiceUnavailable)
		return
	}
	var res *stanza.Element
	switch q.NS {
	case NSDiscoInfo:
		cat, typ, name := s.Identity()
		res = stanza.New("query", NSDiscoInfo).
			Append(stanza.New("identity", NSDiscoInfo).SetAttr("category", cat).SetAttr("type", typ).SetAttr("name", name))
		for _, f := range s.Features() {
			res.Append(stanza.New("feature", NSDiscoInfo).SetAttr("var", f))
		}
	case NSDiscoItems:
		var err error
		res, err = s.directory(ctx)
		if err != nil {
			s.log.Error("muc: room directory", "err", err)
			s.replyError(el, stanza.ErrInternalServerError)
			return
		}
	case NSPing:
	default:
		s.replyError(el, stanza.ErrServiceUnavailable)
		return
	}
	reply := stanza.New("iq", stanza.NSClient).SetAttr("type", "result").SetAttr("id", el.ID()).
		SetAttr("from", s.domain.String()).SetAttr("to", from.String())
	if res != nil {
		reply.Append(res)
	}
	s.r.DeliverTo(ctx, from, reply)
}

// directory lists public rooms (§6.3): persistent ones from the store,
// active temporary ones from their published entries; at most maxListed.
func (s *Service) directory(ctx context.Context) (*stanza.Element, error) {
	type entry struct{ jid, name string }
	var out []entry
	after := ""
	for len(out) < maxListed {
		page, err := s.cfg.Store.ListRooms(ctx, after, 256)
		if err != nil {
			return nil, err
		}
		for _, rec := range page {
			after = rec.JID
			j, err := jid.Parse(rec.JID)
			if err != nil || j.Domain() != s.domain.Domain() {
				continue
			}
			tmp := &room{jid: j}
			if tmp.decode(rec.Data) != nil || !tmp.cfg.Public {
				continue
			}
			out = append(out, entry{rec.JID, tmp.cfg.Name})
		}
		if len(page) < 256 {
			break
		}
	}
	s.mu.RLock()
	for _, r := range s.rooms {
		if l := r.listing.Load(); l != nil && l.listed && l.public {
			out = append(out, entry{r.jid.String(), l.name})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.jid, b.jid) })
	out = slices.CompactFunc(out, func(a, b entry) bool { return a.jid == b.jid })
	if len(out) > maxListed {
		out = out[:maxListed]
	}
	q := stanza.New("query", NSDiscoItems)
	for _, e := range out {
		it := stanza.New("item", NSDiscoItems).SetAttr("jid", e.jid)
		if e.name != "" {
			it.SetAttr("name", e.name)
		}
		q.Append(it)
	}
	return q, nil
}
