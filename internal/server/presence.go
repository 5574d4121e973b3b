package server

import (
	"context"

	"github.com/parley-im/parley/internal/im/pep"
	"github.com/parley-im/parley/internal/im/roster"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// presenceChain is the c2s presence logic: RFC 6121 (the roster module)
// first, then the modules that act on a resource's own broadcast presence
// (PEP: entity capabilities and last items on initial presence).
type presenceChain struct {
	*roster.Module
	pep *pep.Service
}

// Broadcast implements c2s.Presence.
func (p presenceChain) Broadcast(ctx context.Context, s router.Session, el *stanza.Element, initial bool) {
	p.Module.Broadcast(ctx, s, el, initial)
	if p.pep != nil {
		p.pep.PresenceBroadcast(ctx, s, el, initial)
	}
}

// Ended implements c2s.Presence.
func (p presenceChain) Ended(ctx context.Context, s router.Session, directed []jid.JID) {
	p.Module.Ended(ctx, s, directed)
	if p.pep != nil {
		p.pep.SessionEnded(s.JID())
	}
}
