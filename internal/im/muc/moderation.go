package muc

import (
	"slices"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/stanza"
)

// moderate retracts a message for everyone (XEP-0425): a moderator names
// the room's stanza id; the room broadcasts a retraction that clients
// apply, archives it (so MAM readers apply it too; the store has no way to
// rewrite an archived message) and drops the message from the history
// sent to new joiners.
func (r *room) moderate(o *occupant, iq, q *stanza.Element) error {
	if o == nil || o.role != RoleModerator {
		return stanza.ErrForbidden.WithText("only moderators may moderate messages")
	}
	id := q.Attr("id")
	if id == "" || q.Child("retract", NSRetract) == nil {
		return stanza.ErrBadRequest
	}
	reason := q.ChildText("reason", NSModeration)
	if len(reason) > r.s.cfg.MaxFieldBytes {
		return stanza.ErrNotAcceptable.WithText("the reason is too long")
	}
	moderated := stanza.New("moderated", NSModeration).SetAttr("by", r.occupantJID(o.nick).String()).
		Append(stanza.New("occupant-id", NSOccupantID).SetAttr("id", o.id))
	retract := stanza.New("retract", NSRetract).SetAttr("id", id).Append(moderated)
	if reason != "" {
		retract.Append(stanza.New("reason", NSModeration).AppendText(reason))
	}
	sid := r.s.cfg.IDGen()
	out := stanza.New("message", stanza.NSClient).SetAttr("from", r.jid.String()).SetAttr("type", "groupchat").
		SetAttr("id", sid).
		Append(retract, stanza.New("stanza-id", stanza.NSStanzaID).SetAttr("id", sid).SetAttr("by", r.jid.String()))
	out.Children = slices.Clip(out.Children)
	if r.cfg.Logging {
		err := r.s.cfg.Store.AppendArchive(r.s.ops, r.jid.String(), store.ArchivedMessage{
			ID: sid, Time: store.ArchiveTime(sid, r.s.cfg.Now()), With: o.bare.String(), Stanza: r.s.cfg.Codec.Marshal(out),
		})
		if err != nil {
			r.s.log.Error("muc: archive moderation", "room", r.jid.String(), "err", err)
			return stanza.ErrInternalServerError
		}
	}
	r.history.remove(func(e histEntry) bool {
		sidEl := e.el.Child("stanza-id", stanza.NSStanzaID)
		return sidEl != nil && sidEl.Attr("id") == id
	})
	r.fanOut(out)
	r.replyIQ(iq, stanza.New("iq", stanza.NSClient).SetAttr("type", "result"))
	return nil
}
