package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// Blocklist keys (XEP-0191):
//
//	b/<user>\x00<jid>    one blocked JID (value: empty)
//
// One key per entry keeps Block and Unblock blind writes: no read-modify-
// write of a list, so concurrent changes from two resources never lose one.
const tagBlock = "b/"

func blockKey(user, j string) []byte {
	k := make([]byte, 0, len(tagBlock)+len(user)+1+len(j))
	k = append(k, tagBlock...)
	k = append(k, user...)
	k = append(k, sep)
	return append(k, j...)
}

// BlockedJIDs implements store.Blocklist.
func (s *Store) BlockedJIDs(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validName("username", user); err != nil {
		return nil, err
	}
	db, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := userPrefix(tagBlock, user)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("pebble store: blocklist of %q: %w", user, err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[len(lo):]))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("pebble store: blocklist of %q: %w", user, err)
	}
	return out, nil
}

// Block implements store.Blocklist.
func (s *Store) Block(ctx context.Context, user string, jids ...string) error {
	return s.writeBlocks(ctx, "block", user, jids, func(b *pebble.Batch, k []byte) error { return b.Set(k, nil, nil) })
}

// Unblock implements store.Blocklist.
func (s *Store) Unblock(ctx context.Context, user string, jids ...string) error {
	if len(jids) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := validName("username", user); err != nil {
			return err
		}
		db, err := s.enter()
		if err != nil {
			return err
		}
		defer s.mu.RUnlock()
		lo, hi := userPrefix(tagBlock, user)
		if err := db.DeleteRange(lo, hi, s.syncWrites); err != nil {
			return fmt.Errorf("pebble store: unblock all of %q: %w", user, err)
		}
		return nil
	}
	return s.writeBlocks(ctx, "unblock", user, jids, func(b *pebble.Batch, k []byte) error { return b.Delete(k, nil) })
}

func (s *Store) writeBlocks(ctx context.Context, op, user string, jids []string, f func(*pebble.Batch, []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("username", user); err != nil {
		return err
	}
	for _, j := range jids {
		if err := validName("jid", j); err != nil {
			return err
		}
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	b := db.NewBatch()
	defer b.Close()
	for _, j := range jids {
		if err := f(b, blockKey(user, j)); err != nil {
			return fmt.Errorf("pebble store: %s for %q: %w", op, user, err)
		}
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: %s for %q: %w", op, user, err)
	}
	return nil
}

// deleteBlocklistBatch adds the removal of a user's blocklist to b.
func deleteBlocklistBatch(b *pebble.Batch, user string) error {
	lo, hi := userPrefix(tagBlock, user)
	return b.DeleteRange(lo, hi, nil)
}

var _ store.Blocklist = (*Store)(nil)
