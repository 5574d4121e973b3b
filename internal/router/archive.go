package router

import (
	"context"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Archiver keeps a copy of routed messages in their owners' archives for
// history sync (XEP-0313). The router calls it on the routing path, after
// the message is in the recipient's queue (possibly before the queue has
// made it durable) and before any device gets it, so a device that
// receives a message finds it in the archive.
type Archiver interface {
	// ArchiveMessage offers el to the archives of copies (both sides of a
	// conversation, as one write). raw is el as the router's storage codec
	// serialised it for the queue, so that the archiver need not serialise
	// it again; the archiver must use the same codec, or ignore raw. nil
	// raw makes the archiver serialise el. The archiver applies each
	// owner's preferences and never fails the delivery.
	ArchiveMessage(ctx context.Context, el *stanza.Element, raw []byte, copies ...ArchiveCopy)
}

// ArchiveCopy names one archive a routed message goes to.
type ArchiveCopy struct {
	Owner string  // a localpart
	Peer  jid.JID // the other party
	ID    string  // the archive id
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
// sender is a local user) under the same id: ids are unique per archive,
// and two copies with one id, time and stanza cost the store one stanza
// and one index key instead of two of each (store.Archive.AppendArchives).
func (r *Router) archive(ctx context.Context, to jid.JID, id string, el *stanza.Element, raw []byte) {
	a := r.getArchiver()
	if a == nil {
		return
	}
	from, err := jid.Parse(el.From())
	if err != nil {
		return
	}
	if r.IsLocal(from) && from.Local() != "" && from.Local() != to.Local() {
		a.ArchiveMessage(ctx, el, raw,
			ArchiveCopy{Owner: to.Local(), Peer: from, ID: id},
			ArchiveCopy{Owner: from.Local(), Peer: to, ID: id})
		return
	}
	a.ArchiveMessage(ctx, el, raw, ArchiveCopy{Owner: to.Local(), Peer: from, ID: id})
}
