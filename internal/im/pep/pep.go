// Package pep is Personal Eventing via PubSub (XEP-0163): the publish-
// subscribe service at every local user's bare JID, with the subset of
// XEP-0060 that OMEMO (XEP-0384, both the legacy
// eu.siacs.conversations.axolotl and urn:xmpp:omemo:2 nodes), avatars
// (XEP-0084), bookmarks and the like rely on: publish with auto-create and
// publish-options, retract, items, node delete and configuration, and
// notifications to the resources that announce "<node>+notify" in their
// entity capabilities (XEP-0115, package caps). Subscriptions are implicit,
// through presence: there is no subscribe.
//
// See docs/pep.md for what is supported, access models, limits and caps
// behaviour.
package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/im/caps"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces of XEP-0060.
const (
	NS               = "http://jabber.org/protocol/pubsub"
	NSOwner          = NS + "#owner"
	NSEvent          = NS + "#event"
	NSErrors         = NS + "#errors"
	NSPublishOptions = NS + "#publish-options"
	NSNodeConfig     = NS + "#node_config"
	nsData           = "jabber:x:data"
)

// Access models (XEP-0060 §4.5). "presence" is the PEP default.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

// Defaults for the zero Config limits.
const (
	DefaultMaxItemBytes    = 64 << 10
	DefaultMaxNodesPerUser = 256
	DefaultMaxItemsPerNode = 256
	// defaultMaxItems is max_items of a node created without one: one
	// item, as XEP-0163 §4.4 recommends for PEP.
	defaultMaxItems = 1
	maxNodeLen      = 1024 // bytes of a node name
	maxItemIDLen    = 256  // bytes of an item id
	lockStripes     = 64
	opTimeout       = 30 * time.Second // store work done outside any iq's context
)

// Identity of the account's bare JID as a PEP service (XEP-0163 §6.1).
const (
	IdentityCategory = "pubsub"
	IdentityType     = "pep"
)

// AccountFeatures returns the disco features an account's bare JID
// announces for this service (XEP-0163 §6.1, XEP-0060 §10).
func AccountFeatures() []string {
	return []string{
		NS,
		NS + "#access-open",
		NS + "#access-presence",
		NS + "#access-whitelist",
		NS + "#auto-create",
		NS + "#auto-subscribe",
		NS + "#config-node",
		NS + "#create-and-configure",
		NS + "#create-nodes",
		NS + "#delete-items",
		NS + "#delete-nodes",
		NS + "#filtered-notifications",
		NS + "#item-ids",
		NS + "#last-published",
		NS + "#persistent-items",
		NS + "#presence-notifications",
		NS + "#publish",
		NS + "#publish-options",
		NS + "#retract-items",
		NS + "#retrieve-items",
	}
}

// Store is what the service needs of the store: the PubSub aggregate and
// the owner's roster for presence-based access and notifications.
type Store interface {
	store.PubSub
	GetRosterItem(ctx context.Context, user, contact string) (store.RosterItem, error)
	RosterItems(ctx context.Context, user string) ([]store.RosterItem, uint64, error)
}

// Config configures a Service.
type Config struct {
	Store  Store
	Router *router.Router
	// Codec serialises item payloads for the store (the server uses
	// xmlstream.NewStorage).
	Codec router.StanzaCodec
	Caps  *caps.Cache
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxItemBytes bounds one item's serialised payload; 0 means
	// DefaultMaxItemBytes.
	MaxItemBytes int
	// MaxNodesPerUser bounds the nodes of one account; 0 means
	// DefaultMaxNodesPerUser.
	MaxNodesPerUser int
	// MaxItemsPerNode bounds a node's max_items ("max" means this); 0
	// means DefaultMaxItemsPerNode.
	MaxItemsPerNode int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is the PEP service. Create it with New.
type Service struct {
	cfg    Config
	st     Store
	r      *router.Router
	caps   *caps.Cache
	log    *slog.Logger
	seed   maphash.Seed
	locks  [lockStripes]sync.Mutex
	prefix string
	nextID atomic.Uint64

	mu sync.Mutex
	// served holds, per available resource, the nodes whose last item it
	// has been sent (XEP-0163 §4.3.5): a caps change sends only what is
	// new. Entries go in SessionEnded, so this is bounded by the sessions.
	served map[jid.JID]map[string]struct{}
}

// New creates the service and registers its iq handlers with the router.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Router == nil || cfg.Codec == nil || cfg.Caps == nil {
		return nil, errors.New("pep: Store, Router, Codec and Caps are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxItemBytes <= 0 {
		cfg.MaxItemBytes = DefaultMaxItemBytes
	}
	if cfg.MaxNodesPerUser <= 0 {
		cfg.MaxNodesPerUser = DefaultMaxNodesPerUser
	}
	if cfg.MaxItemsPerNode <= 0 {
		cfg.MaxItemsPerNode = DefaultMaxItemsPerNode
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := &Service{
		cfg:    cfg,
		st:     cfg.Store,
		r:      cfg.Router,
		caps:   cfg.Caps,
		log:    cfg.Logger.With("component", "pep"),
		seed:   maphash.MakeSeed(),
		prefix: hex.EncodeToString(b[:]) + "-",
		served: map[jid.JID]map[string]struct{}{},
	}
	cfg.Router.HandleUserIQ(NS, s.handleIQ)
	cfg.Router.HandleUserIQ(NSOwner, s.handleOwnerIQ)
	return s, nil
}

// lock serialises the node changes of one owner (create-if-absent with the
// node count, precondition checks, reconfiguration): the stripe is the
// owner of that state.
func (s *Service) lock(owner string) func() {
	m := &s.locks[maphash.String(s.seed, owner)%lockStripes]
	m.Lock()
	return m.Unlock
}

// newID returns a unique id for a generated item or message.
func (s *Service) newID() string {
	return s.prefix + strconv.FormatUint(s.nextID.Add(1), 36)
}

// newItemID generates an item id for a publish without one: random, so
// ids never collide with those of earlier runs.
func newItemID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hasFrom(sub string) bool { return sub == store.SubFrom || sub == store.SubBoth }
func hasTo(sub string) bool   { return sub == store.SubTo || sub == store.SubBoth }

// ownerJID returns the bare JID of a local account.
func (s *Service) ownerJID(owner string) (jid.JID, error) {
	return jid.New(owner, s.r.Domain().Domain(), "")
}

// isOwner reports whether from is a resource (or the bare JID) of owner.
func (s *Service) isOwner(from jid.JID, owner string) bool {
	return s.r.IsLocal(from) && from.Local() == owner
}

// normMax is a node's effective max_items (store: <= 0 means 1).
func normMax(n int) int { return max(n, 1) }

// validAccess reports whether the service implements the access model.
func validAccess(a string) bool {
	return slices.Contains([]string{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist}, a)
}

// canAccess decides whether requester may read the owner's node
// (XEP-0060 §6.1.3, §6.5.9): the owner always; "open" anyone; "presence"
// those with a subscription to the owner's presence (the owner's roster
// item with subscription from or both); "roster" and "whitelist" nobody
// else, since roster groups and affiliations are not configurable here.
// The error is the one XEP-0060 prescribes for each denial.
func (s *Service) canAccess(ctx context.Context, requester jid.JID, n store.PubSubNode) error {
	if s.isOwner(requester, n.Owner) {
		return nil
	}
	switch n.AccessModel {
	case AccessOpen:
		return nil
	case AccessPresence, "":
		if requester.Local() == "" || !s.r.IsLocal(requester) {
			return psError(stanza.ErrNotAuthorized, "presence-subscription-required")
		}
		it, err := s.st.GetRosterItem(ctx, n.Owner, requester.Bare().String())
		if errors.Is(err, store.ErrNotFound) || (err == nil && !hasFrom(it.Subscription)) {
			return psError(stanza.ErrNotAuthorized, "presence-subscription-required")
		}
		return err
	case AccessRoster:
		return psError(stanza.ErrNotAuthorized, "not-in-roster-group")
	default: // whitelist with an empty whitelist
		return psError(stanza.ErrNotAllowed, "closed-node")
	}
}

// psError returns base with a pubsub-specific condition (XEP-0060 §7, §6).
func psError(base *stanza.Error, cond string) *stanza.Error {
	e := *base
	e.Extra = stanza.New(cond, NSErrors)
	return &e
}

// unsupported is feature-not-implemented with <unsupported feature=…/>.
func unsupported(feature string) *stanza.Error {
	e := psError(stanza.ErrFeatureNotImplemented, "unsupported")
	e.Extra.SetAttr("feature", feature)
	return e
}

func result() *stanza.Element {
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result")
}

// opContext bounds store work that runs outside an iq (presence, caps).
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}
