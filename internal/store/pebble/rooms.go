package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// Rooms (XEP-0045 persistent rooms) live under their own tag:
//
//	g/<room bare JID>               room record (value: encodeRoom)
//
// <room bare JID> is the normalised bare JID as raw bytes
// (room@conference.example.org). It is a point key with no terminator, so
// ListRooms is a plain forward scan of the g/ range in byte order, which is
// the order store.Rooms promises. The tag does not prefix any other tag at
// the slash. A room's archive is not here: it is an ordinary archive owned
// by the room's bare JID (see archive.go).
//
// The value is the format byte followed by the MUC module's opaque record
// (which carries its own version): the store never looks inside it.
const tagRoom = "g/"

func roomKey(room string) []byte { return pointKey(tagRoom, room) }

func encodeRoom(data []byte) []byte {
	b := make([]byte, 0, 1+len(data))
	b = append(b, formatV1)
	return append(b, data...)
}

func decodeRoom(v []byte) ([]byte, error) {
	d := decoder{b: v}
	d.version()
	if d.err != nil {
		return nil, d.err
	}
	return append([]byte(nil), d.b...), nil
}

// PutRoom implements store.Rooms. A blind write: the MUC module's room
// goroutine is the only writer of a room's record.
func (s *Store) PutRoom(ctx context.Context, r store.Room) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("room", r.JID); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := db.Set(roomKey(r.JID), encodeRoom(r.Data), s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: put room %q: %w", r.JID, err)
	}
	return nil
}

// GetRoom implements store.Rooms.
func (s *Store) GetRoom(ctx context.Context, room string) (store.Room, error) {
	if err := ctx.Err(); err != nil {
		return store.Room{}, err
	}
	if err := validName("room", room); err != nil {
		return store.Room{}, err
	}
	db, err := s.enter()
	if err != nil {
		return store.Room{}, err
	}
	defer s.mu.RUnlock()
	v, ok, err := get(db, roomKey(room))
	if err != nil {
		return store.Room{}, fmt.Errorf("pebble store: room %q: %w", room, err)
	}
	if !ok {
		return store.Room{}, fmt.Errorf("room %q: %w", room, store.ErrNotFound)
	}
	data, err := decodeRoom(v)
	if err != nil {
		return store.Room{}, fmt.Errorf("pebble store: room %q: %w", room, err)
	}
	return store.Room{JID: room, Data: data}, nil
}

// ListRooms implements store.Rooms.
func (s *Store) ListRooms(ctx context.Context, after string, limit int) ([]store.Room, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo := roomKey(after)
	if after != "" {
		lo = append(lo, 0) // the smallest key greater than after
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(tagRoom)})
	if err != nil {
		return nil, fmt.Errorf("pebble store: list rooms: %w", err)
	}
	var out []store.Room
	for ok := it.First(); ok && (limit <= 0 || len(out) < limit); ok = it.Next() {
		if err := ctx.Err(); err != nil {
			_ = it.Close()
			return nil, err
		}
		room := string(it.Key()[len(tagRoom):])
		data, err := decodeRoom(it.Value())
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("pebble store: room %q: %w", room, err)
		}
		out = append(out, store.Room{JID: room, Data: data})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebble store: list rooms: %w", err)
	}
	return out, nil
}

// DeleteRoom implements store.Rooms. The existence check and the delete are
// not one transaction: the room goroutine is the only writer of its record,
// so nothing recreates it in between.
func (s *Store) DeleteRoom(ctx context.Context, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("room", room); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if _, ok, err := get(db, roomKey(room)); err != nil {
		return fmt.Errorf("pebble store: delete room %q: %w", room, err)
	} else if !ok {
		return fmt.Errorf("delete room %q: %w", room, store.ErrNotFound)
	}
	if err := db.Delete(roomKey(room), s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: delete room %q: %w", room, err)
	}
	return nil
}

var _ store.Rooms = (*Store)(nil)
