package muc

import (
	"slices"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// maxInvites bounds the invitations one message may carry.
const maxInvites = 10

func (r *room) handleMessage(from, to jid.JID, m *stanza.Element) {
	typ := m.Type()
	if typ == "error" {
		// An occupant's client bounced something the room sent; the room
		// does not answer errors with errors, and one bounce is no reason
		// to evict (it may be a transient full buffer).
		return
	}
	o := r.bySession[from]
	if !r.exists || (r.locked && (o == nil || r.affOf(o.bare) != AffOwner)) {
		r.replyError(m, stanza.ErrItemNotFound)
		return
	}
	if to.Resource() != "" {
		r.privateMessage(o, to, m)
		return
	}
	if x := m.Child("x", NSUser); x != nil && (x.Child("invite", NSUser) != nil || x.Child("decline", NSUser) != nil) {
		r.invite(o, from, x, m)
		return
	}
	if typ != "groupchat" {
		r.replyError(m, stanza.ErrBadRequest.WithText("messages to the room must be of type groupchat"))
		return
	}
	if o == nil {
		r.replyError(m, stanza.ErrNotAcceptable.WithText("you are not in the room"))
		return
	}
	if o.role < RoleParticipant {
		r.replyError(m, stanza.ErrForbidden.WithText("visitors may not speak in a moderated room"))
		return
	}
	if !r.allow(o) {
		r.replyError(m, stanza.ErrResourceConstraint.WithText("you are sending too fast"))
		return
	}
	if sub := m.Child("subject", ""); sub != nil && m.Child("body", "") == nil {
		r.setSubject(o, sub, m)
		return
	}
	r.broadcastMessage(o, m)
}

// allow takes one token from the occupant's bucket (MessageRate per second,
// MessageBurst deep).
func (r *room) allow(o *occupant) bool {
	now := r.s.cfg.Now()
	el := now.Sub(o.last).Seconds()
	o.last = now
	if el > 0 {
		o.tokens = min(o.tokens+el*r.s.cfg.MessageRate, float64(r.s.cfg.MessageBurst))
	}
	if o.tokens < 1 {
		return false
	}
	o.tokens--
	return true
}

// roomMessage builds the room's copy of an occupant's message: from the
// occupant JID, with the room's stanza id and the occupant id; ids and
// MUC payloads the sender could forge are removed.
func (r *room) roomMessage(o *occupant, m *stanza.Element, sid string) *stanza.Element {
	out := stanza.New("message", stanza.NSClient).
		SetAttr("from", r.occupantJID(o.nick).String()).
		SetAttr("type", "groupchat")
	if id := m.ID(); id != "" {
		out.SetAttr("id", id)
	}
	if lang := m.Attr("xml:lang"); lang != "" {
		out.SetAttr("xml:lang", lang)
	}
	room := r.jid.String()
	out.Children = make([]*stanza.Element, 0, len(m.Children)+2)
	for _, c := range m.Children {
		switch {
		case c.Name == "":
			continue // whitespace between children
		case c.Name == "stanza-id" && c.NS == stanza.NSStanzaID && c.Attr("by") == room,
			c.NS == NSOccupantID, c.NS == NSUser, c.Name == "delay" && c.NS == stanza.NSDelay:
			continue
		}
		out.Children = append(out.Children, c)
	}
	out.Children = append(out.Children,
		stanza.New("stanza-id", stanza.NSStanzaID).SetAttr("id", sid).SetAttr("by", room),
		stanza.New("occupant-id", NSOccupantID).SetAttr("id", o.id))
	out.Children = slices.Clip(out.Children)
	return out
}

// broadcastMessage archives a groupchat message (when the room logs) and
// sends it to every occupant, the sender included (§7.4).
func (r *room) broadcastMessage(o *occupant, m *stanza.Element) {
	sid := r.s.cfg.IDGen()
	out := r.roomMessage(o, m, sid)
	now := store.ArchiveTime(sid, r.s.cfg.Now())
	if archivable(out) {
		data := r.s.cfg.Codec.Marshal(out)
		if r.cfg.Logging {
			// The archive is written before anyone sees the message: what
			// an occupant saw, a member catching up later finds
			// (acknowledged means durable).
			err := r.s.cfg.Store.AppendArchive(r.s.ops, r.jid.String(), store.ArchivedMessage{
				ID: sid, Time: now, With: o.bare.String(), Stanza: data,
			})
			if err != nil {
				r.s.log.Error("muc: archive", "room", r.jid.String(), "err", err)
				r.replyError(m, stanza.ErrInternalServerError)
				return
			}
		}
		r.history.push(r.historyEntry(out, now, len(data)))
	}
	r.s.Stats.Messages.Add(1)
	r.fanOut(out)
}

// fanOut sends el to every session of every occupant.
func (r *room) fanOut(el *stanza.Element) {
	for _, occ := range r.occupants {
		r.sendTo(occ, el)
	}
}

// archivable reports whether a room message is worth keeping: one a person
// reads (a body), or one that changes what was read (moderation).
func archivable(m *stanza.Element) bool {
	return m.Child("body", "") != nil || m.Child("retract", NSRetract) != nil
}

// setSubject changes the room's subject (§8.1).
func (r *room) setSubject(o *occupant, sub, m *stanza.Element) {
	if !r.cfg.ChangeSubject && o.role != RoleModerator {
		r.replyError(m, stanza.ErrForbidden.WithText("only moderators may change the subject"))
		return
	}
	text := sub.TextContent()
	if len(text) > r.s.cfg.MaxSubjectBytes {
		r.replyError(m, stanza.ErrNotAcceptable.WithText("the subject is too long"))
		return
	}
	prev := r.subject
	r.subject = subject{Text: text, Nick: o.nick, Time: r.s.cfg.Now()}
	if err := r.save(); err != nil {
		r.subject = prev
		r.replyError(m, stanza.ErrInternalServerError)
		return
	}
	r.fanOut(r.subjectMessage(m.ID()))
}

// subjectMessage is the subject as the room announces it.
func (r *room) subjectMessage(id string) *stanza.Element {
	from := r.jid
	if r.subject.Nick != "" {
		from = r.occupantJID(r.subject.Nick)
	}
	el := stanza.New("message", stanza.NSClient).SetAttr("from", from.String()).SetAttr("type", "groupchat")
	if id != "" {
		el.SetAttr("id", id)
	}
	el.Append(stanza.New("subject", stanza.NSClient).AppendText(r.subject.Text))
	el.Children = slices.Clip(el.Children)
	return el
}

// sendSubject sends the subject to a joining session: always, even empty,
// because clients take it as the end of the join (§7.2.15).
func (r *room) sendSubject(to jid.JID) {
	el := r.subjectMessage(r.s.cfg.IDGen())
	r.s.send(to, withTo(el, to.String()))
}

// privateMessage relays a message between occupants (§7.5).
func (r *room) privateMessage(o *occupant, to jid.JID, m *stanza.Element) {
	if m.Type() == "groupchat" {
		r.replyError(m, stanza.ErrBadRequest.WithText("private messages are not of type groupchat"))
		return
	}
	if o == nil {
		r.replyError(m, stanza.ErrNotAcceptable.WithText("you are not in the room"))
		return
	}
	target := r.occupants[nickKey(to.Resource())]
	if target == nil {
		r.replyError(m, stanza.ErrItemNotFound.WithText("no such occupant"))
		return
	}
	switch r.cfg.AllowPM {
	case PMNone:
		r.replyError(m, stanza.ErrForbidden.WithText("private messages are disabled"))
		return
	case PMModerators:
		if o.role != RoleModerator {
			r.replyError(m, stanza.ErrForbidden.WithText("only moderators may send private messages"))
			return
		}
	case PMParticipants:
		if o.role < RoleParticipant {
			r.replyError(m, stanza.ErrForbidden.WithText("visitors may not send private messages"))
			return
		}
	}
	if !r.allow(o) {
		r.replyError(m, stanza.ErrResourceConstraint.WithText("you are sending too fast"))
		return
	}
	out := stanza.New("message", stanza.NSClient).SetAttr("from", r.occupantJID(o.nick).String())
	for _, a := range []string{"type", "id", "xml:lang"} {
		if v := m.Attr(a); v != "" {
			out.SetAttr(a, v)
		}
	}
	for _, c := range m.Children {
		if c.Name != "" && c.NS != NSUser && c.NS != NSOccupantID {
			out.Children = append(out.Children, c)
		}
	}
	// §7.5: the <x/> tells the recipient's client this is a MUC PM.
	out.Append(stanza.New("x", NSUser), stanza.New("occupant-id", NSOccupantID).SetAttr("id", o.id))
	out.Children = slices.Clip(out.Children)
	r.sendTo(target, out)
}

// invite relays mediated invitations and declines (§7.8.2, §7.8.3). An
// invitation to a members-only room by someone allowed to invite makes
// the invitee a member, so the invitation can be accepted.
func (r *room) invite(o *occupant, from jid.JID, x, m *stanza.Element) {
	if dec := x.Child("decline", NSUser); dec != nil {
		to, err := jid.Parse(dec.Attr("to"))
		if err != nil {
			r.replyError(m, stanza.ErrJIDMalformed)
			return
		}
		d := stanza.New("decline", NSUser).SetAttr("from", from.Bare().String())
		if reason := dec.ChildText("reason", NSUser); reason != "" && len(reason) <= r.s.cfg.MaxFieldBytes {
			d.Append(stanza.New("reason", NSUser).AppendText(reason))
		}
		out := stanza.New("message", stanza.NSClient).
			SetAttr("from", r.jid.String()).SetAttr("to", to.Bare().String()).SetAttr("id", m.ID()).
			Append(stanza.New("x", NSUser).Append(d))
		r.s.r.Route(r.s.ops, out)
		return
	}
	if o == nil {
		r.replyError(m, stanza.ErrNotAcceptable.WithText("you are not in the room"))
		return
	}
	aff := r.affOf(o.bare)
	if r.cfg.MembersOnly && !r.cfg.AllowInvites && aff < AffAdmin {
		r.replyError(m, stanza.ErrForbidden.WithText("only admins may invite to this room"))
		return
	}
	var invites []*stanza.Element
	for _, c := range x.Children {
		if c.Name == "invite" && c.NS == NSUser {
			invites = append(invites, c)
		}
	}
	if len(invites) > maxInvites {
		r.replyError(m, stanza.ErrPolicyViolation.WithText("too many invitations in one message"))
		return
	}
	if !r.allow(o) {
		r.replyError(m, stanza.ErrResourceConstraint.WithText("you are sending too fast"))
		return
	}
	changed := false
	for _, inv := range invites {
		to, err := jid.Parse(inv.Attr("to"))
		if err != nil {
			r.replyError(m, stanza.ErrJIDMalformed)
			return
		}
		to = to.Bare()
		if r.cfg.MembersOnly && r.affOf(to) == AffNone && len(r.affs) < r.s.cfg.MaxAffiliations {
			r.affs[to] = affEntry{Aff: AffMember}
			changed = true
		}
		reason := inv.ChildText("reason", NSUser)
		if len(reason) > r.s.cfg.MaxFieldBytes {
			reason = ""
		}
		i := stanza.New("invite", NSUser).SetAttr("from", from.Bare().String())
		if reason != "" {
			i.Append(stanza.New("reason", NSUser).AppendText(reason))
		}
		ux := stanza.New("x", NSUser).Append(i)
		if r.cfg.Password != "" {
			ux.Append(stanza.New("password", NSUser).AppendText(r.cfg.Password))
		}
		body := from.Bare().String() + " invites you to the room " + r.jid.String()
		if reason != "" {
			body += ": " + reason
		}
		// Through the router's normal path, so an offline invitee finds
		// it in the offline queue (it has a body: storable).
		out := stanza.New("message", stanza.NSClient).
			SetAttr("from", r.jid.String()).SetAttr("to", to.String()).SetAttr("id", r.s.cfg.IDGen()).
			Append(ux, stanza.New("body", stanza.NSClient).AppendText(body))
		r.s.r.Route(r.s.ops, out)
	}
	if changed {
		if err := r.save(); err != nil {
			r.replyError(m, stanza.ErrInternalServerError)
		}
	}
}
