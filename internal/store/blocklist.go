package store

import "context"

// Blocklist is the XEP-0191 blocking aggregate: per user, a set of blocked
// JIDs (bare, full or domain JIDs, normalised).
type Blocklist interface {
	// BlockedJIDs returns the user's blocklist in byte order.
	BlockedJIDs(ctx context.Context, user string) ([]string, error)
	// Block adds JIDs to the list (already present ones are kept).
	Block(ctx context.Context, user string, jids ...string) error
	// Unblock removes JIDs from the list; with none given it empties it.
	Unblock(ctx context.Context, user string, jids ...string) error
}
