package muc

import (
	"github.com/parley-im/parley/internal/im/mam"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// defaultMAM is the mam package's query engine: the room's archive is an
// ordinary archive, queried the same way as a user's.
var defaultMAM MAMAnswerer = mam.Answer

// mamIQ answers a XEP-0313 query on the room's archive (owner: the room's
// bare JID). Who may read it follows who may read the room: anyone for a
// public open room, members and occupants otherwise, never outcasts.
//
// This is also how members of a members-only room catch up on what was
// said while they were offline: the room keeps no per-member queue, the
// archive is the one copy, and a client rejoining queries it from the last
// stanza id it saw (XEP-0313 §6.1.2, after-id).
func (r *room) mamIQ(o *occupant, from jid.JID, iq *stanza.Element) error {
	aff := r.affOf(from)
	switch {
	case aff == AffOutcast:
		return stanza.ErrForbidden
	case r.cfg.MembersOnly && aff < AffMember && o == nil:
		return stanza.ErrForbidden.WithText("the archive of a members-only room is for members")
	case !r.cfg.Public && aff < AffMember && o == nil:
		return stanza.ErrForbidden.WithText("the archive of a hidden room is for occupants")
	}
	deliver := func(el *stanza.Element) {
		if el.From() == "" {
			el.SetAttr("from", r.jid.String())
		}
		if el.To() == "" {
			el.SetAttr("to", from.String())
		}
		r.s.send(from, el)
	}
	reply, err := r.s.cfg.MAM(r.s.ops, r.s.cfg.Store, r.s.cfg.Codec, r.jid.String(), r.jid, from, iq, r.s.cfg.MAMPage, deliver)
	if err != nil {
		return err
	}
	if reply == nil {
		reply = stanza.New("iq", stanza.NSClient).SetAttr("type", "result")
	}
	r.replyIQ(iq, reply)
	return nil
}
