package store

import (
	"context"
	"time"
)

// ArchivedMessage is one message in an archive (XEP-0313). An archive
// belongs to an owner: a user's localpart, or a room's bare JID (which
// always contains '@' and so never collides with a localpart).
type ArchivedMessage struct {
	// ID is the archive id: the XEP-0359 stanza-id the owner's archive gave
	// the message. Unique within one archive. An id made by NewArchiveID
	// for the message's Time lets a backend find the message by its
	// position instead of through an id index; any other id works too.
	ID string
	// Time is when the message was archived. Archive order is by Time,
	// then by insertion for equal times.
	Time time.Time
	// With is the bare JID of the other party (for a room archive, the
	// occupant's real bare JID if known, else empty).
	With string
	// Stanza is the serialised message, opaque to the store.
	Stanza []byte
}

// ArchiveEntry is one message for one owner's archive (AppendArchives).
type ArchiveEntry struct {
	Owner   string
	Message ArchivedMessage
}

// ArchiveQuery selects a page of an archive. Zero fields do not filter.
type ArchiveQuery struct {
	With       string    // exact match on ArchivedMessage.With
	Start, End time.Time // inclusive bounds on Time
	// AfterID and BeforeID are exclusive bounds by archive id (RSM
	// <after/>, <before/>); ErrNotFound if the id is not in the archive.
	AfterID, BeforeID string
	// Max bounds the page; <= 0 means no limit.
	Max int
	// Last takes the last Max matching items instead of the first
	// (RSM <before/>, with or without an id). Items are still returned in
	// archive order, oldest first.
	Last bool
}

// ArchivePage is the result of an ArchiveQuery.
type ArchivePage struct {
	Items []ArchivedMessage
	// Complete is true when the page reaches the end of the matching range
	// in the direction of the query (no later items, or no earlier ones
	// with Last). The id bounds are part of the range: a forward page that
	// reaches BeforeID is complete, and so is a Last page that reaches
	// AfterID.
	Complete bool
	// Count is the number of items matching the query's filters (with,
	// start, end) regardless of paging; -1 when the backend cannot tell cheaply.
	Count int
}

// ArchivePrefs are an owner's XEP-0313 preferences.
type ArchivePrefs struct {
	Default string   // "always", "never" or "roster"
	Always  []string // bare JIDs always archived
	Never   []string // bare JIDs never archived
}

// Archive is the message archive aggregate.
type Archive interface {
	// AppendArchive adds a message. The caller guarantees that m.ID is new
	// in the owner's archive (ids are server-generated stanza-ids): the
	// store does not look it up, because that lookup would be on the path
	// of every routed message. Appending an id twice is the caller's
	// error: it may leave two messages or replace the first, and lookups
	// by id (AfterID, BeforeID) find one of them.
	//
	// It need not be durable on its own: a backend may leave it to the next
	// durable write (the message itself is durable in the recipient's
	// queue).
	AppendArchive(ctx context.Context, owner string, m ArchivedMessage) error
	// AppendArchives adds several messages, to one archive or several, as
	// AppendArchive does for each, all or none: a routed message's copies
	// for its sender and its recipient cost one write instead of two.
	// Copies for different owners with the same id, time and stanza (the
	// router makes them so) may share one stored stanza; each archive
	// still reads, deletes and expires its copy as its own.
	AppendArchives(ctx context.Context, entries ...ArchiveEntry) error
	// QueryArchive returns one page of the owner's archive.
	QueryArchive(ctx context.Context, owner string, q ArchiveQuery) (ArchivePage, error)
	// GetArchivePrefs returns the owner's preferences; ErrNotFound if none were set.
	GetArchivePrefs(ctx context.Context, owner string) (ArchivePrefs, error)
	// SetArchivePrefs replaces the owner's preferences.
	SetArchivePrefs(ctx context.Context, owner string, p ArchivePrefs) error
	// DeleteArchive removes the owner's whole archive and preferences.
	DeleteArchive(ctx context.Context, owner string) error
	// ExpireArchive deletes every archived message older than before, in
	// every archive, and returns the count.
	ExpireArchive(ctx context.Context, before time.Time) (int, error)
}
