package store

import "context"

// Room is a persistent multi-user chat room (XEP-0045). Its configuration,
// affiliations and subject are owned and encoded by the MUC module; the
// store keeps them as one opaque record keyed by the room's bare JID.
type Room struct {
	JID  string // bare room JID, normalised (room@conference.example.org)
	Data []byte
}

// Rooms is the persistent room aggregate.
type Rooms interface {
	// PutRoom creates or replaces a room.
	PutRoom(ctx context.Context, r Room) error
	// GetRoom returns the room or ErrNotFound.
	GetRoom(ctx context.Context, jid string) (Room, error)
	// ListRooms returns up to limit rooms whose JID is greater than after,
	// in byte order; limit <= 0 means no limit.
	ListRooms(ctx context.Context, after string, limit int) ([]Room, error)
	// DeleteRoom removes the room; ErrNotFound if absent. Its archive is
	// removed separately (Archive.DeleteArchive).
	DeleteRoom(ctx context.Context, jid string) error
}
