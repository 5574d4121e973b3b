package pebble

import (
	"context"
	"fmt"

	"github.com/parley-im/parley/internal/store"
)

// GetVCard implements store.VCards.
func (s *Store) GetVCard(ctx context.Context, user string) ([]byte, error) {
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
	v, ok, err := get(db, pointKey(tagVCard, user))
	if err != nil {
		return nil, fmt.Errorf("pebble store: vcard of %q: %w", user, err)
	}
	if !ok {
		return nil, fmt.Errorf("vcard of %q: %w", user, store.ErrNotFound)
	}
	card, err := decodeVCard(v)
	if err != nil {
		return nil, fmt.Errorf("pebble store: vcard of %q: %w", user, err)
	}
	return card, nil
}

// PutVCard implements store.VCards. A blind write needs no user lock: it
// is atomic on its own, and against a concurrent DeleteAccount either order
// is a valid outcome.
func (s *Store) PutVCard(ctx context.Context, user string, vcard []byte) error {
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
	if err := db.Set(pointKey(tagVCard, user), encodeVCard(vcard), s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: put vcard of %q: %w", user, err)
	}
	return nil
}

var _ store.Store = (*Store)(nil)
