package muc

import (
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// ownerIQ handles muc#owner (§10): the configuration form, instant rooms,
// and destruction.
func (r *room) ownerIQ(o *occupant, from jid.JID, iq, q *stanza.Element) error {
	if r.affOf(from) != AffOwner {
		return stanza.ErrForbidden.WithText("only owners may configure the room")
	}
	if iq.Type() == "get" {
		r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result").
			Append(stanza.New("query", NSOwner).Append(r.configForm())))
		return nil
	}
	if d := q.Child("destroy", NSOwner); d != nil {
		return r.destroyRequest(iq, d)
	}
	x := q.Child("x", NSData)
	if x == nil {
		return stanza.ErrBadRequest
	}
	switch x.Attr("type") {
	case "cancel":
		// §10.1.3: cancelling the initial configuration destroys the room.
		if r.locked {
			r.destroyWith(nil)
		}
		r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
		return nil
	case "submit":
	default:
		return stanza.ErrBadRequest
	}
	// An empty submission accepts the defaults (an instant room, §10.1.2).
	cfg, err := r.applyConfig(x)
	if err != nil {
		return err
	}
	prev, wasLocked := r.cfg, r.locked
	r.cfg = cfg
	r.locked = false
	if err := r.persistConfig(prev, wasLocked); err != nil {
		r.cfg, r.locked = prev, wasLocked
		return stanza.ErrInternalServerError
	}
	r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
	if !wasLocked {
		r.announceConfigChange(prev)
	}
	return nil
}

// persistConfig writes or removes the room's record after a configuration
// change: a room that stops being persistent leaves the store (its state
// lives on in memory while it has occupants).
func (r *room) persistConfig(prev RoomConfig, wasLocked bool) error {
	if r.cfg.Persistent {
		return r.save()
	}
	if prev.Persistent && !wasLocked {
		data := r.jid.String()
		if err := r.s.cfg.Store.DeleteRoom(r.s.ops, data); err != nil {
			r.s.log.Warn("muc: unpersist room", "room", data, "err", err)
		}
	}
	return nil
}

// announceConfigChange tells occupants the configuration changed (104),
// re-derives roles where moderation changed, and removes non-members when
// the room became members-only (322).
func (r *room) announceConfigChange(prev RoomConfig) {
	if r.cfg.MembersOnly && !prev.MembersOnly {
		for _, o := range r.sortedOccupants() {
			if r.affOf(o.bare) < AffMember {
				r.removeOccupant(o, presenceSpec{typ: "unavailable", codes: []int{statusMembersOnly}})
			}
		}
	}
	if r.cfg.Moderated != prev.Moderated {
		for _, o := range r.sortedOccupants() {
			if r.affOf(o.bare) == AffNone && o.role != RoleModerator {
				if role := r.defaultRole(AffNone); role != o.role {
					o.role = role
					r.broadcastPresence(o, presenceSpec{})
				}
			}
		}
	}
	m := stanza.New("message", stanza.NSClient).SetAttr("from", r.jid.String()).SetAttr("type", "groupchat").
		SetAttr("id", r.s.cfg.IDGen()).
		Append(stanza.New("x", NSUser).Append(stanza.New("status", NSUser).SetAttr("code", "104")))
	r.fanOut(m)
	r.afterLeave()
}

// destroyRequest handles <destroy/> (§10.9).
func (r *room) destroyRequest(iq, d *stanza.Element) error {
	out := stanza.New("destroy", NSUser)
	if alt := d.Attr("jid"); alt != "" {
		j, err := jid.Parse(alt)
		if err != nil {
			return stanza.ErrJIDMalformed
		}
		out.SetAttr("jid", j.String())
	}
	if reason := d.ChildText("reason", NSOwner); reason != "" {
		if len(reason) > r.s.cfg.MaxFieldBytes {
			return stanza.ErrNotAcceptable.WithText("the reason is too long")
		}
		out.Append(stanza.New("reason", NSUser).AppendText(reason))
	}
	if pw := d.ChildText("password", NSOwner); pw != "" && len(pw) <= r.s.cfg.MaxFieldBytes {
		out.Append(stanza.New("password", NSUser).AppendText(pw))
	}
	r.destroyWith(out)
	r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
	return nil
}

// destroyWith removes every occupant (telling them of the destruction and
// the alternate venue) and deletes the room.
func (r *room) destroyWith(d *stanza.Element) {
	for _, o := range r.sortedOccupants() {
		// Each occupant hears only of its own removal (§10.9).
		r.removeOccupant(o, presenceSpec{typ: "unavailable", destroy: d, selfOnly: true})
	}
	r.destroy()
}
