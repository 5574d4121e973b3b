package router

import (
	"context"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Archiver keeps a copy of routed messages in their owners' archives for
// history sync (XEP-0313). The router calls it on the routing path, after
// the message is in the recipient's durable queue and before any device
// gets it, so a device that receives a message finds it in the archive.
type Archiver interface {
	// ArchiveMessage offers el to owner's archive (owner is a localpart;
	// peer the other party; id the archive id). The archiver applies the
	// owner's preferences and never fails the delivery.
	ArchiveMessage(ctx context.Context, owner string, peer jid.JID, id string, el *stanza.Element)
}

// SetArchiver installs the archive; nil turns archiving off.
func (r *Router) SetArchiver(a Archiver) {
	r.mu.Lock()
	r.archiver = a
	r.mu.Unlock()
}

func (r *Router) getArchiver() Archiver {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.archiver
}

// archive stores a routed message in the recipient's archive under the
// stanza id the recipient sees, and in the sender's archive (when the
// sender is a local user) under an id of its own.
func (r *Router) archive(ctx context.Context, to jid.JID, id string, el *stanza.Element) {
	a := r.getArchiver()
	if a == nil {
		return
	}
	from, err := jid.Parse(el.From())
	if err != nil {
		return
	}
	a.ArchiveMessage(ctx, to.Local(), from, id, el)
	if r.IsLocal(from) && from.Local() != "" && from.Local() != to.Local() {
		a.ArchiveMessage(ctx, from.Local(), to, r.newID(), el)
	}
}
