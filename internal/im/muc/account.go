package muc

import (
	"context"
	"fmt"

	"github.com/parley-im/parley/jid"
)

// ForgetUser removes every affiliation of a deleted account (a bare JID of
// the served domain) from every room, so that a later account of the same
// name does not inherit its ownerships, memberships or bans. A room left
// without an owner has its admins promoted to owners; one without admins
// either stays ownerless (its configuration frozen until an operator
// steps in). Each room applies the change in its own goroutine. It scans
// every persistent room record: account deletion is rare.
func (s *Service) ForgetUser(ctx context.Context, bare jid.JID) error {
	bare = bare.Bare()
	var names []string
	after := ""
	for {
		page, err := s.cfg.Store.ListRooms(ctx, after, 256)
		if err != nil {
			return fmt.Errorf("muc: forget %s: %w", bare, err)
		}
		for _, rec := range page {
			after = rec.JID
			j, err := jid.Parse(rec.JID)
			if err != nil || j.Domain() != s.domain.Domain() {
				continue
			}
			tmp := &room{jid: j}
			if tmp.decode(rec.Data) != nil {
				continue
			}
			if _, ok := tmp.affs[bare]; ok {
				names = append(names, j.Local())
			}
		}
		if len(page) < 256 {
			break
		}
	}
	// Temporary rooms live only in memory.
	s.mu.RLock()
	for name := range s.rooms {
		names = append(names, name)
	}
	s.mu.RUnlock()
	for _, n := range names {
		done := make(chan struct{})
		if !s.post(ctx, n, item{forget: bare, barrier: done}, true) {
			return fmt.Errorf("muc: forget %s in %s: service closed", bare, n)
		}
		// Wait: the caller deletes the account next and must not race a
		// room that has yet to apply this.
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("muc: forget %s in %s: %w", bare, n, ctx.Err())
		}
	}
	return nil
}

// forget applies ForgetUser to this room.
func (r *room) forget(bare jid.JID) {
	if _, ok := r.affs[bare]; !ok {
		return
	}
	delete(r.affs, bare)
	owners := 0
	for _, e := range r.affs {
		if e.Aff == AffOwner {
			owners++
		}
	}
	if owners == 0 {
		for j, e := range r.affs {
			if e.Aff == AffAdmin {
				r.affs[j] = affEntry{Aff: AffOwner, Reason: e.Reason}
			}
		}
	}
	for _, o := range r.sortedOccupants() {
		if o.bare == bare {
			r.removeOccupant(o, presenceSpec{typ: "unavailable", codes: []int{statusAffRemoved}})
		}
	}
	if err := r.save(); err != nil {
		r.s.log.Error("muc: forget user", "room", r.jid.String(), "err", err)
	}
	r.afterLeave()
}
