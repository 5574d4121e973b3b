package muc

import (
	"slices"
	"strings"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// maxAdminItems bounds the items of one muc#admin request.
const maxAdminItems = 100

// adminIQ handles muc#admin (§8 moderator and §9 admin use cases): role
// and affiliation lists (get) and changes (set).
func (r *room) adminIQ(o *occupant, from jid.JID, iq, q *stanza.Element) error {
	var items []*stanza.Element
	for _, c := range q.Children {
		if c.Name == "item" && c.NS == NSAdmin {
			items = append(items, c)
		}
	}
	if len(items) == 0 || len(items) > maxAdminItems {
		return stanza.ErrBadRequest
	}
	actorAff := r.affOf(from)
	actorRole := RoleNone
	if o != nil {
		actorRole = o.role
	}
	if iq.Type() == "get" {
		return r.adminList(iq, items[0], actorAff, actorRole)
	}
	// Validate every item first: a request is applied whole or not at all.
	type change struct {
		target *occupant // role change
		role   Role
		who    jid.JID // affiliation change
		aff    Affiliation
		isRole bool
		reason string
	}
	var changes []change
	owners := 0
	for _, e := range r.affs {
		if e.Aff == AffOwner {
			owners++
		}
	}
	for _, it := range items {
		reason := it.ChildText("reason", NSAdmin)
		if len(reason) > r.s.cfg.MaxFieldBytes {
			return stanza.ErrNotAcceptable.WithText("the reason is too long")
		}
		if rs := it.Attr("role"); rs != "" {
			role, ok := parseRole(rs)
			if !ok {
				return stanza.ErrBadRequest.WithText("unknown role")
			}
			target := r.occupants[nickKey(it.Attr("nick"))]
			if target == nil {
				return stanza.ErrItemNotFound.WithText("no such occupant")
			}
			if err := r.checkRoleChange(o, actorAff, actorRole, target, role); err != nil {
				return err
			}
			changes = append(changes, change{target: target, role: role, isRole: true, reason: reason})
			continue
		}
		as := it.Attr("affiliation")
		aff, ok := parseAffiliation(as)
		if !ok {
			return stanza.ErrBadRequest.WithText("an item needs a role or an affiliation")
		}
		var who jid.JID
		if js := it.Attr("jid"); js != "" {
			j, err := jid.Parse(js)
			if err != nil {
				return stanza.ErrJIDMalformed
			}
			who = j.Bare()
		} else if t := r.occupants[nickKey(it.Attr("nick"))]; t != nil && it.Attr("nick") != "" {
			who = t.bare
		} else {
			return stanza.ErrBadRequest.WithText("an affiliation item needs a jid")
		}
		cur := r.affOf(who)
		switch {
		case actorAff < AffAdmin:
			return stanza.ErrForbidden
		case actorAff == AffAdmin && (cur >= AffAdmin || aff >= AffAdmin):
			// §9: admins manage members and outcasts; owners manage admins and owners.
			return stanza.ErrNotAllowed.WithText("only owners may change admins and owners")
		case cur == AffOwner && aff != AffOwner && owners <= 1:
			// §10.6: a room always keeps an owner.
			return stanza.ErrConflict.WithText("the room would have no owner")
		case aff != AffNone && cur == AffNone && len(r.affs) >= r.s.cfg.MaxAffiliations:
			return stanza.ErrResourceConstraint.WithText("too many affiliations")
		}
		if cur == AffOwner && aff != AffOwner {
			owners--
		}
		if aff == AffOwner && cur != AffOwner {
			owners++
		}
		changes = append(changes, change{who: who, aff: aff, reason: reason})
	}
	actor := ""
	if o != nil {
		actor = o.nick
	}
	affChanged := false
	for _, c := range changes {
		if c.isRole {
			r.setRole(c.target, c.role, actor, c.reason)
			continue
		}
		r.setAffiliation(c.who, c.aff, actor, c.reason)
		affChanged = true
	}
	if affChanged {
		if err := r.save(); err != nil {
			return stanza.ErrInternalServerError
		}
	}
	r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
	return nil
}

// checkRoleChange applies §8's rules on who may change whose role.
func (r *room) checkRoleChange(o *occupant, actorAff Affiliation, actorRole Role, target *occupant, role Role) error {
	if actorRole != RoleModerator {
		return stanza.ErrForbidden.WithText("only moderators may change roles")
	}
	targetAff := r.affOf(target.bare)
	switch {
	case role == RoleModerator || target.role == RoleModerator && role != RoleModerator:
		// Granting and revoking moderation is for admins and owners (§9.6).
		if actorAff < AffAdmin {
			return stanza.ErrNotAllowed.WithText("only admins may change moderators")
		}
	}
	// Nobody changes the role of someone at or above their own affiliation
	// among admins and owners (§8.2: an admin or owner cannot be kicked).
	if targetAff >= AffAdmin && target != o && targetAff >= actorAff {
		return stanza.ErrNotAllowed.WithText("you cannot change the role of that occupant")
	}
	if role == RoleNone && target == o {
		return stanza.ErrConflict.WithText("you cannot kick yourself")
	}
	return nil
}

// setRole changes an occupant's role; role none kicks (307).
func (r *room) setRole(o *occupant, role Role, actor, reason string) {
	if role == RoleNone {
		r.removeOccupant(o, presenceSpec{typ: "unavailable", actor: actor, reason: reason, codes: []int{statusKicked}})
		r.afterLeave()
		return
	}
	o.role = role
	r.broadcastPresence(o, presenceSpec{actor: actor, reason: reason})
}

// setAffiliation records an affiliation and applies it to the occupant
// holding it, if any: ban (301), removal from a members-only room (321),
// or a new role.
func (r *room) setAffiliation(who jid.JID, aff Affiliation, actor, reason string) {
	if aff == AffNone {
		delete(r.affs, who)
	} else {
		r.affs[who] = affEntry{Aff: aff, Reason: reason}
	}
	for _, o := range r.sortedOccupants() {
		if o.bare != who {
			continue
		}
		switch {
		case aff == AffOutcast:
			r.removeOccupant(o, presenceSpec{typ: "unavailable", actor: actor, reason: reason, codes: []int{statusBanned}})
		case aff == AffNone && r.cfg.MembersOnly:
			r.removeOccupant(o, presenceSpec{typ: "unavailable", actor: actor, reason: reason, codes: []int{statusAffRemoved}})
		default:
			o.role = r.defaultRole(aff)
			r.broadcastPresence(o, presenceSpec{actor: actor, reason: reason})
		}
	}
	r.afterLeave()
}

// adminList answers a request for the occupants with a role or the JIDs
// with an affiliation (§8.5, §9.5).
func (r *room) adminList(iq, item *stanza.Element, actorAff Affiliation, actorRole Role) error {
	q := stanza.New("query", NSAdmin)
	if rs := item.Attr("role"); rs != "" {
		role, ok := parseRole(rs)
		if !ok || role == RoleNone {
			return stanza.ErrBadRequest
		}
		if actorRole != RoleModerator {
			return stanza.ErrForbidden
		}
		for _, o := range r.sortedOccupants() {
			if o.role == role {
				q.Append(stanza.New("item", NSAdmin).SetAttr("nick", o.nick).SetAttr("role", o.role.String()).
					SetAttr("affiliation", r.affOf(o.bare).String()).SetAttr("jid", o.sessions[0].String()))
			}
		}
	} else {
		aff, ok := parseAffiliation(item.Attr("affiliation"))
		if !ok || aff == AffNone {
			return stanza.ErrBadRequest
		}
		// Members may see the member list of a members-only room (§9.5).
		if actorAff < AffAdmin && !(aff == AffMember && actorAff == AffMember && r.cfg.MembersOnly) {
			return stanza.ErrForbidden
		}
		var jids []jid.JID
		for j, e := range r.affs {
			if e.Aff == aff {
				jids = append(jids, j)
			}
		}
		slices.SortFunc(jids, func(a, b jid.JID) int { return strings.Compare(a.String(), b.String()) })
		for _, j := range jids {
			it := stanza.New("item", NSAdmin).SetAttr("jid", j.String()).SetAttr("affiliation", aff.String())
			if reason := r.affs[j].Reason; reason != "" {
				it.Append(stanza.New("reason", NSAdmin).AppendText(reason))
			}
			q.Append(it)
		}
	}
	r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(q))
	return nil
}
