package store

import (
	"context"
	"time"
)

// PubSubNode is one node of a personal eventing (XEP-0163) service. Owner is
// the localpart of the account the node belongs to.
type PubSubNode struct {
	Owner       string
	Node        string
	AccessModel string // "presence" (the PEP default), "open", "roster" or "whitelist"
	MaxItems    int    // items kept; older ones are dropped on publish; <= 0 means 1
	Created     time.Time
}

// PubSubItem is one published item.
type PubSubItem struct {
	ID        string
	Publisher string // full JID of the publishing resource
	Published time.Time
	Payload   []byte // serialised payload element, opaque to the store
}

// PubSub is the personal eventing aggregate.
type PubSub interface {
	// PutNode creates the node or replaces its configuration.
	PutNode(ctx context.Context, n PubSubNode) error
	// GetNode returns the node or ErrNotFound.
	GetNode(ctx context.Context, owner, node string) (PubSubNode, error)
	// ListNodes returns every node of the owner, ordered by name.
	ListNodes(ctx context.Context, owner string) ([]PubSubNode, error)
	// DeleteNode removes the node and its items; ErrNotFound if absent.
	DeleteNode(ctx context.Context, owner, node string) error
	// PublishItem stores the item, replacing one with the same id, and then
	// drops the oldest items beyond the node's MaxItems. ErrNotFound if the
	// node does not exist.
	PublishItem(ctx context.Context, owner, node string, it PubSubItem) error
	// RetractItem deletes one item; ErrNotFound if the node or item is absent.
	RetractItem(ctx context.Context, owner, node, id string) error
	// Items returns the node's items newest first: those named by ids if
	// any are given (unknown ids are skipped), else up to max (<= 0: all).
	// ErrNotFound if the node does not exist.
	Items(ctx context.Context, owner, node string, max int, ids ...string) ([]PubSubItem, error)
}
