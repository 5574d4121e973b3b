package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// RosterItems implements store.Roster. Items come in byte order of their
// JIDs; items and version are read from one snapshot, so the version is
// exactly the one of the items returned.
func (s *Store) RosterItems(ctx context.Context, user string) ([]store.RosterItem, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := validName("username", user); err != nil {
		return nil, 0, err
	}
	db, err := s.enter()
	if err != nil {
		return nil, 0, err
	}
	defer s.mu.RUnlock()
	snap := db.NewSnapshot()
	defer snap.Close()
	ver, err := rosterVersion(snap, user)
	if err != nil {
		return nil, 0, err
	}
	lo, hi := userPrefix(tagRoster, user)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
	}
	var items []store.RosterItem
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
		}
		item, err := decodeRosterItem(string(it.Key()[len(lo):]), v)
		if err != nil {
			_ = it.Close()
			return nil, 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
		}
		items = append(items, item)
	}
	if err := it.Close(); err != nil {
		return nil, 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
	}
	return items, ver, nil
}

// GetRosterItem implements store.Roster.
func (s *Store) GetRosterItem(ctx context.Context, user, contact string) (store.RosterItem, error) {
	if err := ctx.Err(); err != nil {
		return store.RosterItem{}, err
	}
	if err := validName("username", user); err != nil {
		return store.RosterItem{}, err
	}
	if err := validName("contact", contact); err != nil {
		return store.RosterItem{}, err
	}
	db, err := s.enter()
	if err != nil {
		return store.RosterItem{}, err
	}
	defer s.mu.RUnlock()
	v, ok, err := get(db, rosterKey(user, contact))
	if err != nil {
		return store.RosterItem{}, fmt.Errorf("pebble store: roster item %q of %q: %w", contact, user, err)
	}
	if !ok {
		return store.RosterItem{}, fmt.Errorf("roster item %q of %q: %w", contact, user, store.ErrNotFound)
	}
	item, err := decodeRosterItem(contact, v)
	if err != nil {
		return store.RosterItem{}, fmt.Errorf("pebble store: roster of %q: %w", user, err)
	}
	return item, nil
}

// PutRosterItem implements store.Roster. The item and the bumped version
// are one batch, so a crash never leaves a changed roster with an old
// version (which would hide the change from XEP-0237 clients).
func (s *Store) PutRosterItem(ctx context.Context, user string, item store.RosterItem) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validName("username", user); err != nil {
		return 0, err
	}
	if err := validName("contact", item.JID); err != nil {
		return 0, err
	}
	v, err := encodeRosterItem(item)
	if err != nil {
		return 0, fmt.Errorf("pebble store: put roster item of %q: %w", user, err)
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(user)()
	return s.writeRoster(db, user, func(b *pebble.Batch) error {
		return b.Set(rosterKey(user, item.JID), v, nil)
	})
}

// DeleteRosterItem implements store.Roster; the version is not bumped when
// the item was absent.
func (s *Store) DeleteRosterItem(ctx context.Context, user, contact string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validName("username", user); err != nil {
		return 0, err
	}
	if err := validName("contact", contact); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(user)()
	key := rosterKey(user, contact)
	if _, ok, err := get(db, key); err != nil {
		return 0, fmt.Errorf("pebble store: delete roster item %q of %q: %w", contact, user, err)
	} else if !ok {
		return 0, fmt.Errorf("delete roster item %q of %q: %w", contact, user, store.ErrNotFound)
	}
	return s.writeRoster(db, user, func(b *pebble.Batch) error {
		return b.Delete(key, nil)
	})
}

// writeRoster commits change together with version+1 and returns the new
// version. The caller holds the user's lock, which makes read-increment-write
// of the version atomic.
func (s *Store) writeRoster(db *pebble.DB, user string, change func(*pebble.Batch) error) (uint64, error) {
	ver, err := rosterVersion(db, user)
	if err != nil {
		return 0, err
	}
	ver++
	b := db.NewBatch()
	defer b.Close()
	if err := change(b); err != nil {
		return 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
	}
	if err := b.Set(pointKey(tagRosterVer, user), encodeUint(ver), nil); err != nil {
		return 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return 0, fmt.Errorf("pebble store: roster of %q: %w", user, err)
	}
	return ver, nil
}

// RosterVersion implements store.Roster.
func (s *Store) RosterVersion(ctx context.Context, user string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validName("username", user); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return rosterVersion(db, user)
}

func rosterVersion(r pebble.Reader, user string) (uint64, error) {
	v, ok, err := get(r, pointKey(tagRosterVer, user))
	if err != nil {
		return 0, fmt.Errorf("pebble store: roster version of %q: %w", user, err)
	}
	if !ok {
		return 0, nil
	}
	ver, err := decodeUint("roster version", v)
	if err != nil {
		return 0, fmt.Errorf("pebble store: roster version of %q: %w", user, err)
	}
	return ver, nil
}
