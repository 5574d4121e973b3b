package muc

import (
	"slices"
	"strconv"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Status codes of XEP-0045 §15.6 that the service sends.
const (
	statusNonAnonymous = 100
	statusConfigChange = 104
	statusSelf         = 110
	statusLogging      = 170
	statusCreated      = 201
	statusNickRewrite  = 210
	statusBanned       = 301
	statusNickChange   = 303
	statusKicked       = 307
	statusAffRemoved   = 321
	statusMembersOnly  = 322
	statusShutdown     = 332
)

// maxPresenceChildren bounds what an occupant's presence carries to every
// other occupant (show, status, priority, caps, avatar hash, …).
const maxPresenceChildren = 16

// presenceSpec describes one presence of an occupant to the room.
type presenceSpec struct {
	typ      string // "" (available) or "unavailable"
	nick     string // from this nick instead of the occupant's own (303)
	newNick  string // item nick attribute (303)
	actor    string // item <actor nick/> (kick, ban)
	reason   string // item <reason/>
	codes    []int  // status codes for every recipient
	self     []int  // extra status codes for the occupant's own sessions
	destroy  *stanza.Element
	status   []*stanza.Element // payload of an unavailable presence (its <status/>)
	selfOnly bool              // tell the occupant only (multi-session leave)
}

func (r *room) handlePresence(from, to jid.JID, p *stanza.Element) {
	o := r.bySession[from]
	switch p.Type() {
	case "unavailable":
		if o != nil {
			r.leave(o, from, p)
		}
		return
	case "error":
		// The occupant's client rejects the room's traffic: it is gone.
		if o != nil {
			r.leave(o, from, nil)
		}
		return
	case "":
	default:
		return // subscriptions and probes mean nothing to a room
	}
	if to.Resource() == "" {
		if o == nil {
			// §7.2.1: joining needs a nickname.
			r.replyError(p, stanza.ErrJIDMalformed.WithText("a nickname is required"))
		}
		return
	}
	nick, err := jid.Nickname(to.Resource())
	if err != nil {
		r.replyError(p, stanza.ErrJIDMalformed.WithText("invalid nickname"))
		return
	}
	rewritten := nick != to.Resource()
	if o != nil {
		// Every presence change is copied to every occupant: it draws on
		// the same budget as messages.
		if !r.allow(o) {
			r.replyError(p, stanza.ErrResourceConstraint.WithText("you are changing presence too fast"))
			return
		}
		if nickKey(nick) == o.key {
			if x := p.Child("x", NS); x != nil {
				// A join from a session the room thinks is inside: the
				// client lost its state (a reconnect the room did not
				// see). Give it the whole join again.
				o.pres = presencePayload(p)
				r.sendOccupantsTo(from, o)
				r.broadcastPresence(o, presenceSpec{self: r.selfCodes(false, rewritten)})
				r.sendHistory(from, x)
				r.sendSubject(from)
				return
			}
			r.updatePresence(o, p)
		} else {
			r.changeNick(o, from, nick, rewritten, p)
		}
		return
	}
	r.join(from, nick, rewritten, p)
}

// join admits a new session to the room, or refuses it with the error
// §7.2 prescribes, checked in its order.
func (r *room) join(from jid.JID, nick string, rewritten bool, p *stanza.Element) {
	x := p.Child("x", NS)
	created := false
	if !r.exists {
		if r.s.Stats.Rooms.Load() >= int64(r.s.cfg.MaxRooms) {
			r.replyError(p, stanza.ErrNotAllowed.WithText("too many rooms"))
			return
		}
		r.create(from.Bare())
		created = true
	}
	aff := r.affOf(from.Bare())
	key := nickKey(nick)
	existing := r.occupants[key]
	switch {
	case r.locked && aff != AffOwner:
		// §10.1.1: a room awaiting configuration does not exist for others.
		r.replyError(p, stanza.ErrItemNotFound.WithText("the room is locked until its owner configures it"))
		return
	case aff == AffOutcast:
		r.replyError(p, stanza.ErrForbidden.WithText("you are banned from this room"))
		return
	case r.cfg.MembersOnly && aff < AffMember:
		r.replyError(p, stanza.ErrRegistrationRequired.WithText("this room is members-only"))
		return
	case existing != nil && existing.bare != from.Bare():
		r.replyError(p, stanza.ErrConflict.WithText("that nickname is in use"))
		return
	case existing == nil && len(r.occupants) >= r.s.cfg.MaxOccupantsPerRoom,
		existing == nil && len(r.occupants) >= r.occupantLimit() && aff < AffAdmin:
		r.replyError(p, stanza.ErrServiceUnavailable.WithText("the room is full"))
		return
	case r.cfg.Password != "" && aff != AffOwner && (x == nil || x.ChildText("password", NS) != r.cfg.Password):
		r.replyError(p, stanza.ErrNotAuthorized.WithText("a password is required"))
		return
	}
	if existing != nil {
		// Another session of the same person joins under its nick (§7.2.7):
		// one occupant to everyone else.
		existing.sessions = append(existing.sessions, from)
		r.bySession[from] = existing
		r.s.trackJoin(from, r.name)
		r.sendOccupantsTo(from, existing)
		r.sendSelf(existing, from, r.selfCodes(false, rewritten))
		r.sendHistory(from, x)
		r.sendSubject(from)
		return
	}
	now := r.s.cfg.Now()
	o := &occupant{
		nick:     nick,
		key:      key,
		bare:     from.Bare(),
		sessions: []jid.JID{from},
		role:     r.defaultRole(aff),
		id:       r.occupantID(from.Bare()),
		pres:     presencePayload(p),
		tokens:   float64(r.s.cfg.MessageBurst),
		last:     now,
	}
	r.occupants[key] = o
	r.bySession[from] = o
	r.s.trackJoin(from, r.name)
	// §7.2.3: the others' presence first, then the new occupant's own
	// (to everyone, with 110 to itself), then history, then the subject.
	r.sendOccupantsTo(from, o)
	r.broadcastPresence(o, presenceSpec{self: r.selfCodes(created, rewritten)})
	if !created {
		r.sendHistory(from, x)
	}
	r.sendSubject(from)
}

// selfCodes are the status codes of a joining occupant's own presence.
func (r *room) selfCodes(created, rewritten bool) []int {
	codes := []int{statusSelf}
	if r.cfg.WhoIs == WhoIsAnyone {
		codes = append(codes, statusNonAnonymous)
	}
	if r.cfg.Logging {
		codes = append(codes, statusLogging)
	}
	if created {
		codes = append(codes, statusCreated)
	}
	if rewritten {
		codes = append(codes, statusNickRewrite)
	}
	return codes
}

// presencePayload keeps what an occupant's presence shows the room, without
// the MUC elements the room writes itself, and bounded.
func presencePayload(p *stanza.Element) []*stanza.Element {
	var out []*stanza.Element
	for _, c := range p.Children {
		if c.Name == "" || c.NS == NS || c.NS == NSUser || c.NS == NSOccupantID || c.Name == "error" {
			continue
		}
		if len(out) == maxPresenceChildren {
			break
		}
		out = append(out, c)
	}
	return out
}

// updatePresence broadcasts an occupant's changed presence (show, status).
func (r *room) updatePresence(o *occupant, p *stanza.Element) {
	o.pres = presencePayload(p)
	r.broadcastPresence(o, presenceSpec{})
}

// changeNick renames an occupant (§7.6): unavailable from the old nick
// with 303 and the new nick, then available from the new one.
func (r *room) changeNick(o *occupant, from jid.JID, nick string, rewritten bool, p *stanza.Element) {
	key := nickKey(nick)
	if other := r.occupants[key]; other != nil && other != o {
		r.replyError(p, stanza.ErrConflict.WithText("that nickname is in use"))
		return
	}
	old := o.nick
	r.broadcastPresence(o, presenceSpec{typ: "unavailable", nick: old, newNick: nick, codes: []int{statusNickChange}})
	delete(r.occupants, o.key)
	o.nick, o.key = nick, key
	r.occupants[key] = o
	o.pres = presencePayload(p)
	var self []int
	if rewritten {
		self = []int{statusNickRewrite}
	}
	r.broadcastPresence(o, presenceSpec{self: self})
}

// leave removes one session; the occupant leaves with its last session.
func (r *room) leave(o *occupant, from jid.JID, p *stanza.Element) {
	var status []*stanza.Element
	if p != nil {
		if st := p.Child("status", ""); st != nil {
			status = []*stanza.Element{st}
		}
	}
	if len(o.sessions) > 1 {
		r.dropSession(o, from)
		sp := presenceSpec{typ: "unavailable", status: status}
		el := r.presenceEl(o, sp, true, true)
		r.s.send(from, withTo(el, from.String()))
		return
	}
	r.removeOccupant(o, presenceSpec{typ: "unavailable", status: status})
	r.afterLeave()
}

func (r *room) dropSession(o *occupant, full jid.JID) {
	o.sessions = slices.DeleteFunc(o.sessions, func(j jid.JID) bool { return j == full })
	delete(r.bySession, full)
	r.s.trackLeave(full, r.name)
}

// removeOccupant takes an occupant out of the room and tells everyone,
// the occupant included, with sp (kick, ban, leave, destroy, shutdown).
func (r *room) removeOccupant(o *occupant, sp presenceSpec) {
	delete(r.occupants, o.key)
	for _, s := range o.sessions {
		delete(r.bySession, s)
		r.s.trackLeave(s, r.name)
	}
	o.role = RoleNone
	r.broadcastPresence(o, sp)
}

// broadcastPresence sends o's presence to every occupant and to o's own
// sessions (which may already be out of r.occupants). At most three
// variants are built — with real JID, without, and o's own — and every
// recipient gets a top-level copy sharing the variant's children.
func (r *room) broadcastPresence(o *occupant, sp presenceSpec) {
	var withJID, withoutJID *stanza.Element
	if !sp.selfOnly {
		for _, other := range r.occupants {
			if other == o {
				continue
			}
			var el *stanza.Element
			if r.canSeeJIDs(other) {
				if withJID == nil {
					withJID = r.presenceEl(o, sp, true, false)
				}
				el = withJID
			} else {
				if withoutJID == nil {
					withoutJID = r.presenceEl(o, sp, false, false)
				}
				el = withoutJID
			}
			r.sendTo(other, el)
		}
	}
	self := r.presenceEl(o, sp, true, true)
	r.sendTo(o, self)
}

// presenceEl builds o's presence for a class of recipients.
func (r *room) presenceEl(o *occupant, sp presenceSpec, showJID, self bool) *stanza.Element {
	nick := o.nick
	if sp.nick != "" {
		nick = sp.nick
	}
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", r.occupantJID(nick).String())
	if sp.typ != "" {
		p.SetAttr("type", sp.typ)
		p.Children = append(p.Children, sp.status...)
	} else {
		p.Children = append(p.Children, o.pres...)
	}
	it := stanza.New("item", NSUser).
		SetAttr("affiliation", r.affOf(o.bare).String()).
		SetAttr("role", o.role.String())
	if showJID && len(o.sessions) > 0 {
		it.SetAttr("jid", o.sessions[0].String())
	} else if showJID {
		it.SetAttr("jid", o.bare.String())
	}
	if sp.newNick != "" {
		it.SetAttr("nick", sp.newNick)
	}
	if sp.actor != "" {
		it.Append(stanza.New("actor", NSUser).SetAttr("nick", sp.actor))
	}
	if sp.reason != "" {
		it.Append(stanza.New("reason", NSUser).AppendText(sp.reason))
	}
	x := stanza.New("x", NSUser).Append(it)
	if sp.destroy != nil {
		x.Append(sp.destroy)
	}
	codes := sp.codes
	if self {
		codes = append(slices.Clip(sp.self), sp.codes...)
		if !slices.Contains(codes, statusSelf) {
			codes = append([]int{statusSelf}, codes...)
		}
	}
	for _, c := range codes {
		x.Append(stanza.New("status", NSUser).SetAttr("code", strconv.Itoa(c)))
	}
	p.Append(x, stanza.New("occupant-id", NSOccupantID).SetAttr("id", o.id))
	p.Children = slices.Clip(p.Children)
	return p
}

// sendOccupantsTo sends the presence of every other occupant to a session
// that has just joined as o.
func (r *room) sendOccupantsTo(to jid.JID, o *occupant) {
	see := r.canSeeJIDs(o)
	for _, other := range r.sortedOccupants() {
		if other == o {
			continue
		}
		el := r.presenceEl(other, presenceSpec{}, see, false)
		r.s.send(to, withTo(el, to.String()))
	}
}

// sendSelf sends o's own presence to one of its sessions.
func (r *room) sendSelf(o *occupant, to jid.JID, codes []int) {
	el := r.presenceEl(o, presenceSpec{self: codes}, true, true)
	r.s.send(to, withTo(el, to.String()))
}
