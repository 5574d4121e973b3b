// Package store declares Parley's durable state as one interface per
// aggregate (accounts, roster, queue, vcard, …). Backends implement them all;
// storetest holds the conformance suite every backend runs. A user's durable
// state is touched only through these interfaces.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns (wrapped with context where useful); test with errors.Is.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrExists    = errors.New("store: already exists")
	ErrQueueFull = errors.New("store: queue full")
	ErrClosed    = errors.New("store: closed")
)

// SCRAM holds the salted credentials of one SCRAM hash (RFC 5802). The
// password itself is never stored.
type SCRAM struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is a user of the served domain. Username is the normalised
// localpart (PRECIS UsernameCaseMapped), never a full JID.
type Account struct {
	Username string
	Created  time.Time
	SHA1     SCRAM
	SHA256   SCRAM
}

// Accounts is the account aggregate.
type Accounts interface {
	// CreateAccount stores a new account; ErrExists if the username is taken.
	CreateAccount(ctx context.Context, a Account) error
	// GetAccount returns the account or ErrNotFound.
	GetAccount(ctx context.Context, username string) (Account, error)
	// SetCredentials replaces the salted credentials (password change).
	SetCredentials(ctx context.Context, username string, sha1, sha256 SCRAM) error
	// DeleteAccount removes the account and every other aggregate's data of
	// that user (roster, queue, vcard); ErrNotFound if there is none.
	DeleteAccount(ctx context.Context, username string) error
	// ListAccounts returns up to limit usernames greater than after, in order.
	ListAccounts(ctx context.Context, after string, limit int) ([]string, error)
	// CountAccounts returns the number of accounts.
	CountAccounts(ctx context.Context) (int, error)
}

// Subscription states of a roster item (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// RosterItem is one contact in a user's roster, with the subscription state
// machine's full state (RFC 6121 Appendix A).
type RosterItem struct {
	JID          string // bare JID of the contact, normalised
	Name         string
	Subscription string // none, to, from, both
	AskOut       bool   // we asked the contact for a subscription (pending out)
	PendingIn    bool   // the contact asked us and we have not answered (pending in)
	Approved     bool   // pre-approved subscription (RFC 6121 §3.4)
	Groups       []string
	// InRoster is false for an entry that exists only to remember a pending
	// inbound request: such entries are not sent to clients in roster results.
	InRoster bool
}

// Roster is the roster aggregate. Every write bumps the user's roster
// version (XEP-0237) and returns it.
type Roster interface {
	// RosterItems returns every item of the user and the current version.
	RosterItems(ctx context.Context, user string) ([]RosterItem, uint64, error)
	// GetRosterItem returns one item or ErrNotFound.
	GetRosterItem(ctx context.Context, user, contact string) (RosterItem, error)
	// PutRosterItem creates or replaces an item.
	PutRosterItem(ctx context.Context, user string, item RosterItem) (uint64, error)
	// DeleteRosterItem removes an item; ErrNotFound if it was absent.
	DeleteRosterItem(ctx context.Context, user, contact string) (uint64, error)
	// RosterVersion returns the user's current roster version (0 if none).
	RosterVersion(ctx context.Context, user string) (uint64, error)
}

// QueueItem is one stanza waiting in a user's durable queue.
type QueueItem struct {
	Seq     uint64 // increasing per user; the queue's order
	Stanza  []byte // the serialised stanza, opaque to the store
	Stored  time.Time
	Expires time.Time
}

// QueueRef names one queued item: the user's queue and the item's Seq.
type QueueRef struct {
	User string
	Seq  uint64
}

// Queue is the per-user durable message queue: store-and-forward. A routed
// message is appended before it is acknowledged to its sender and deleted
// once a device of the recipient has acknowledged it.
type Queue interface {
	// Enqueue appends a stanza durably (per the backend's durability mode)
	// and returns its sequence number. ErrQueueFull when the user already
	// holds max items (max <= 0 means no limit).
	Enqueue(ctx context.Context, user string, stanza []byte, expires time.Time, max int) (uint64, error)
	// EnqueueVisible is Enqueue that calls visible with the item's seq as
	// soon as Pending and Ack see the item, which may be before it is
	// durable, and then returns once it is durable, as Enqueue does. The
	// router delivers from visible, so that a recipient does not wait for
	// the sender's fsync; the sender's acknowledgement still does.
	//
	// visible runs on the caller's goroutine, at most once, before
	// EnqueueVisible returns; a backend that cannot tell the two moments
	// apart calls it once the item is durable. If the item became visible
	// and the durable write then fails, the error is returned and the item
	// is gone from the queue (unless it was acknowledged meanwhile): it may
	// have been delivered although its sender is told it failed.
	EnqueueVisible(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(seq uint64)) (uint64, error)
	// EnqueueAsync is EnqueueVisible that does not wait for the item to be
	// durable: it returns once visible has run, and done reports the
	// outcome of the durable write later, exactly once: nil once the item
	// is durable, or the error after which it is gone from the queue
	// (unless acknowledged meanwhile), as EnqueueVisible would have
	// returned it. If EnqueueAsync itself returns an error nothing was
	// appended and neither visible nor done runs. done may run on another
	// goroutine, or on the caller's before EnqueueAsync returns; it must
	// not block, since the store's later completions wait for it. The
	// router uses it so that a sender's session reads its next stanza
	// while the last one is made durable.
	EnqueueAsync(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(seq uint64), done func(error)) (uint64, error)
	// Pending returns up to limit unexpired items with Seq > after, in
	// order: a gap-free prefix, never an item above one that is not yet
	// visible (see EnqueueVisible).
	Pending(ctx context.Context, user string, after uint64, limit int) ([]QueueItem, error)
	// Ack deletes the items; unknown sequence numbers are ignored.
	Ack(ctx context.Context, user string, seqs ...uint64) error
	// AckBatch deletes the referenced items of any number of users in one
	// write; unknown references are ignored. The router's acknowledgement
	// batcher uses it so that a burst of acknowledgements from many
	// recipients costs one write.
	AckBatch(ctx context.Context, refs []QueueRef) error
	// Depth returns the number of items queued for the user.
	Depth(ctx context.Context, user string) (int, error)
	// Expire deletes every item whose Expires is before now and returns the count.
	Expire(ctx context.Context, now time.Time) (int, error)
}

// VCards is the vcard-temp (XEP-0054) aggregate: one opaque serialised
// vCard element per user.
type VCards interface {
	// GetVCard returns the stored vCard or ErrNotFound.
	GetVCard(ctx context.Context, user string) ([]byte, error)
	// PutVCard replaces the user's vCard.
	PutVCard(ctx context.Context, user string, vcard []byte) error
}

// Store is every aggregate of one backend.
type Store interface {
	Accounts
	Roster
	Queue
	VCards
	// Close flushes and releases the backend.
	Close() error
}
