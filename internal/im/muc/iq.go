package muc

import (
	"strconv"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

func firstElement(el *stanza.Element) *stanza.Element {
	for _, c := range el.Children {
		if c.Name != "" {
			return c
		}
	}
	return nil
}

func (r *room) handleIQ(from, to jid.JID, iq *stanza.Element) {
	typ := iq.Type()
	if typ != "get" && typ != "set" {
		if to.Resource() != "" {
			r.relayIQResponse(from, to, iq)
		}
		return // results and errors to the room itself end here
	}
	q := firstElement(iq)
	if q == nil {
		r.replyError(iq, stanza.ErrBadRequest)
		return
	}
	o := r.bySession[from]
	if to.Resource() != "" {
		r.occupantIQ(o, to, iq, q)
		return
	}
	if !r.exists || (r.locked && r.affOf(from) != AffOwner) {
		r.replyError(iq, stanza.ErrItemNotFound)
		return
	}
	var err error
	switch {
	case q.NS == NSDiscoInfo && typ == "get":
		r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(r.discoInfo(q.Attr("node"))))
	case q.NS == NSDiscoItems && typ == "get":
		// Occupants are not listed: in a semi-anonymous room that would
		// tell strangers who is inside.
		r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(stanza.New("query", NSDiscoItems)))
	case q.NS == NSPing && typ == "get":
		r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
	case q.NS == NSAdmin:
		err = r.adminIQ(o, from, iq, q)
	case q.NS == NSOwner:
		err = r.ownerIQ(o, from, iq, q)
	case q.NS == NSMAM:
		err = r.mamIQ(o, from, iq)
	case q.NS == NSModeration && typ == "set" && q.Name == "moderate":
		err = r.moderate(o, iq, q)
	default:
		err = stanza.ErrServiceUnavailable
	}
	if err != nil {
		r.replyError(iq, stanza.AsError(err))
	}
}

// occupantIQ answers iqs to an occupant JID. The room answers XEP-0410
// self-pings itself; other requests from an occupant are relayed to the
// target occupant's session under the sender's occupant JID (§7.2: so
// clients can ask each other for vCards, versions, …), and the response
// is relayed back. Non-occupants cannot reach occupants through the room.
func (r *room) occupantIQ(o *occupant, to jid.JID, iq, q *stanza.Element) {
	target := r.occupants[nickKey(to.Resource())]
	if q.NS == NSPing && iq.Type() == "get" && (o == nil || target == o) {
		switch {
		case o == nil || !r.exists:
			// XEP-0410 §3: the sender is not joined.
			r.replyError(iq, stanza.ErrNotAcceptable.WithText("you are not in the room"))
		default:
			r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
		}
		return
	}
	switch {
	case o == nil:
		r.replyError(iq, stanza.ErrNotAcceptable.WithText("you are not in the room"))
		return
	case target == nil:
		r.replyError(iq, stanza.ErrItemNotFound.WithText("no such occupant"))
		return
	}
	from, err := jid.Parse(iq.From())
	if err != nil {
		return
	}
	r.relaySeq++
	id := "muc" + strconv.FormatUint(r.relaySeq, 36)
	dest := target.sessions[0]
	r.relays.add(relay{id: id, origID: iq.ID(), requester: from, target: dest, nick: target.nick})
	out := stanza.New("iq", iq.NS).SetAttr("type", iq.Type()).SetAttr("id", id).
		SetAttr("from", r.occupantJID(o.nick).String()).SetAttr("to", dest.String())
	out.Children = iq.Children
	r.s.send(dest, out)
}

// relayIQResponse sends a target's answer to a relayed iq back to the
// requester, from the target's occupant JID and with the original id.
func (r *room) relayIQResponse(from, to jid.JID, iq *stanza.Element) {
	rl, ok := r.relays.take(iq.ID(), from)
	if !ok {
		return
	}
	out := stanza.New("iq", iq.NS).SetAttr("type", iq.Type()).SetAttr("id", rl.origID).
		SetAttr("from", r.occupantJID(rl.nick).String()).SetAttr("to", rl.requester.String())
	out.Children = iq.Children
	r.s.send(rl.requester, out)
}

// maxRelays bounds the relayed iqs a room remembers; the oldest is
// forgotten first (its late answer is dropped).
const maxRelays = 256

type relay struct {
	id, origID string
	requester  jid.JID
	target     jid.JID
	nick       string
}

// relayTable is a small FIFO of relayed iqs awaiting their answer.
type relayTable struct{ items []relay }

func (t *relayTable) add(rl relay) {
	if len(t.items) == maxRelays {
		t.items = append(t.items[:0], t.items[1:]...)
	}
	t.items = append(t.items, rl)
}

// take removes and returns the relay with the id, if the answer comes
// from the session it was sent to.
func (t *relayTable) take(id string, from jid.JID) (relay, bool) {
	for i, rl := range t.items {
		if rl.id == id && rl.target == from {
			t.items = append(t.items[:i], t.items[i+1:]...)
			return rl, true
		}
	}
	return relay{}, false
}

// discoInfo is the room's disco#info with the muc#roominfo form (§6.4).
func (r *room) discoInfo(node string) *stanza.Element {
	q := stanza.New("query", NSDiscoInfo)
	if node != "" {
		q.SetAttr("node", node)
	}
	name := r.cfg.Name
	if name == "" {
		name = r.name
	}
	q.Append(stanza.New("identity", NSDiscoInfo).SetAttr("category", "conference").SetAttr("type", "text").SetAttr("name", name))
	feats := []string{NS, NSDiscoInfo, NSDiscoItems, NSSelfPing, NSOccupantID, stanza.NSStanzaID, featureStable, NSModeration}
	if r.cfg.Logging {
		feats = append(feats, NSMAM)
	}
	pick := func(b bool, yes, no string) string {
		if b {
			return yes
		}
		return no
	}
	feats = append(feats,
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.cfg.Password != "", "muc_passwordprotected", "muc_unsecured"),
		pick(r.cfg.WhoIs == WhoIsAnyone, "muc_nonanonymous", "muc_semianonymous"),
	)
	for _, f := range feats {
		q.Append(stanza.New("feature", NSDiscoInfo).SetAttr("var", f))
	}
	x := stanza.New("x", NSData).SetAttr("type", "result")
	x.Append(hiddenField("FORM_TYPE", NSRoomInfo))
	x.Append(field("muc#roominfo_description", "text-single", "Description", r.cfg.Description))
	x.Append(field("muc#roominfo_subject", "text-single", "Subject", r.subject.Text))
	x.Append(field("muc#roominfo_occupants", "text-single", "Number of occupants", strconv.Itoa(len(r.occupants))))
	x.Append(field("muc#roomconfig_roomname", "text-single", "Name", r.cfg.Name))
	x.Append(field("muc#roominfo_changesubject", "boolean", "Occupants may change the subject", boolStr(r.cfg.ChangeSubject)))
	x.Append(field("muc#maxhistoryfetch", "text-single", "Maximum history", strconv.Itoa(r.s.cfg.MaxHistory)))
	q.Append(x)
	return q
}
