// Package mam is Message Archive Management (XEP-0313, urn:xmpp:mam:2) for
// local users: it keeps a copy of each user's chat and normal messages in
// the user's archive (store.Archive), answers archive queries with Result
// Set Management paging (XEP-0059), the archiving preferences and the
// archive metadata query, and expires archived messages after the
// configured retention. Answer is the query engine on its own, for other
// archives (MUC rooms) to reuse.
//
// See docs/archive.md for behaviour, limits and costs.
package mam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/parley-im/parley/internal/memo"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces.
const (
	NS        = "urn:xmpp:mam:2"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
	nsData    = "jabber:x:data"
	nsHints   = "urn:xmpp:hints"
)

// Disco features (XEP-0030) the server advertises on a user's account while
// archiving is on: FeatureMAM for queries and preferences, FeatureExtended
// for the before-id, after-id and ids fields and the metadata query.
const (
	FeatureMAM      = NS
	FeatureExtended = NS + "#extended"
)

// Defaults and bounds.
const (
	// DefaultMaxPage bounds an RSM <max/> when Config.MaxPage is 0.
	DefaultMaxPage = 250
	// DefaultPage is the page size of a query without <max/>.
	DefaultPage = 50
	// MaxPrefsJIDs bounds the always and never lists together; prefs are
	// read on every archived message.
	MaxPrefsJIDs = 1000
)

// Preference values (XEP-0313 §6).
const (
	PrefAlways = "always"
	PrefNever  = "never"
	PrefRoster = "roster"
)

// RosterLookup is what the module needs of the roster: whether a peer is
// in a user's roster (for the "roster" preference).
type RosterLookup interface {
	GetRosterItem(ctx context.Context, user, contact string) (store.RosterItem, error)
}

// Config configures a Module.
type Config struct {
	Archive store.Archive
	Roster  RosterLookup
	Router  *router.Router
	// Codec serialises archived stanzas (xmlstream.Storage, as the queue).
	Codec  router.StanzaCodec
	Logger *slog.Logger
	// Retention is how long archived messages are kept. 0 turns archiving
	// off: nothing is archived, and queries, preferences and metadata are
	// answered feature-not-implemented (Features is then empty, so the
	// server does not advertise what it refuses).
	Retention time.Duration
	// DefaultPref applies to owners who never set preferences: "always"
	// (the default when empty), "roster" or "never".
	DefaultPref string
	// MaxPage bounds a page (RSM <max/> is clamped to it); 0 means
	// DefaultMaxPage.
	MaxPage int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PrefsCacheSize bounds the number of owners whose preferences are
	// cached in memory; 0 means DefaultPrefsCacheSize.
	PrefsCacheSize int
}

// DefaultPrefsCacheSize is the default bound of the preferences cache
// (a few hundred bytes per owner).
const DefaultPrefsCacheSize = 100_000

// Module archives messages of local users and answers their queries.
type Module struct {
	cfg Config
	log *slog.Logger

	// prefs caches owners' preferences: every routed message consults
	// them twice (recipient and sender), and a store read per lookup was a
	// tenth of the server's CPU at 2,000 chatting users. Owners without
	// stored preferences are cached with the server default.
	prefs *memo.Cache[store.ArchivePrefs]
}

// New creates the module and registers its iq handlers for iqs to a user's
// own bare JID (or without a to). It panics on a Config that cannot work
// (a missing dependency, a negative retention, an unknown DefaultPref):
// those are wiring errors of the composition root, not input.
func New(cfg Config) *Module {
	if cfg.Archive == nil || cfg.Router == nil || cfg.Codec == nil || cfg.Roster == nil {
		panic("mam: Archive, Roster, Router and Codec are required")
	}
	if cfg.Retention < 0 {
		panic(fmt.Sprintf("mam: negative retention %v", cfg.Retention))
	}
	switch cfg.DefaultPref {
	case "":
		cfg.DefaultPref = PrefAlways
	case PrefAlways, PrefNever, PrefRoster:
	default:
		panic(fmt.Sprintf("mam: default preference %q is not always, never or roster", cfg.DefaultPref))
	}
	if cfg.MaxPage <= 0 {
		cfg.MaxPage = DefaultMaxPage
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PrefsCacheSize <= 0 {
		cfg.PrefsCacheSize = DefaultPrefsCacheSize
	}
	m := &Module{cfg: cfg, log: cfg.Logger.With("module", "mam"), prefs: memo.New[store.ArchivePrefs](cfg.PrefsCacheSize)}
	cfg.Router.HandleUserIQ(NS, m.handleIQ)
	return m
}

// Enabled reports whether archiving is on (Retention > 0).
func (m *Module) Enabled() bool { return m.cfg.Retention > 0 }

// Features returns the disco features to advertise: none while archiving
// is off.
func (m *Module) Features() []string {
	if !m.Enabled() {
		return nil
	}
	return []string{FeatureMAM, FeatureExtended}
}

// handleIQ dispatches queries, preferences and metadata requests on the
// user's own archive.
func (m *Module) handleIQ(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if !m.Enabled() {
		return nil, stanza.ErrFeatureNotImplemented.WithText("message archiving is off on this server")
	}
	if to.Local() != from.Local() || to.Domain() != from.Domain() || !to.IsBare() {
		return nil, stanza.ErrForbidden.WithText("only your own archive")
	}
	owner := from.Local()
	switch {
	case iq.Child("query", NS) != nil:
		return answer(ctx, m.log, m.cfg.Archive, m.cfg.Codec, owner, from.Bare(), from, iq, m.cfg.MaxPage,
			func(el *stanza.Element) { m.cfg.Router.DeliverTo(ctx, from, el) })
	case iq.Child("prefs", NS) != nil:
		if iq.Type() == "set" {
			return m.setPrefs(ctx, owner, iq.Child("prefs", NS))
		}
		return m.getPrefs(ctx, owner)
	case iq.Child("metadata", NS) != nil && iq.Type() == "get":
		return metadata(ctx, m.cfg.Archive, owner)
	}
	return nil, stanza.ErrBadRequest
}

// ArchiveMessage implements router.Archiver: it archives el under each
// copy's id in the copy owner's archive, with the peer's bare JID as With,
// for every owner whose preferences want it, all in one write. The time
// archived is the one the copy's id carries (store.ParseArchiveID), else
// the module's clock. The message's XEP-0334 hints decide for all copies;
// the stanza is stored as it is. Errors are logged: archiving never holds
// up delivery.
func (m *Module) ArchiveMessage(ctx context.Context, el *stanza.Element, raw []byte, copies ...router.ArchiveCopy) {
	if !m.Enabled() || el == nil || el.Name != "message" {
		return
	}
	switch el.Type() {
	case "", "chat", "normal":
	default:
		return
	}
	if el.Child("no-store", nsHints) != nil || el.Child("no-permanent-store", nsHints) != nil {
		return
	}
	var entries [2]store.ArchiveEntry // a routed message has at most two sides
	kept := entries[:0]
	now := m.cfg.Now()
	for _, c := range copies {
		if c.Owner == "" || c.ID == "" {
			continue
		}
		with := c.Peer.Bare()
		ok, err := m.wanted(ctx, c.Owner, with)
		if err != nil {
			m.log.Error("mam: archive preferences", "owner", c.Owner, "err", err)
			continue
		}
		if !ok {
			continue
		}
		if raw == nil {
			raw = m.cfg.Codec.Marshal(el)
		}
		// An id that carries an archive position (the router's default
		// ids, store.NewArchiveID) gives the time: stored time and
		// position then agree, and the store keys the message by that
		// position instead of indexing the id.
		kept = append(kept, store.ArchiveEntry{Owner: c.Owner, Message: store.ArchivedMessage{
			ID: c.ID, Time: store.ArchiveTime(c.ID, now), With: with.String(), Stanza: raw,
		}})
	}
	if len(kept) == 0 {
		return
	}
	if err := m.cfg.Archive.AppendArchives(ctx, kept...); err != nil {
		m.log.Error("mam: archive message", "owner", kept[0].Owner, "id", kept[0].Message.ID, "copies", len(kept), "err", err)
	}
}

// wanted applies owner's preferences to a message with peer: never list,
// then always list, then the default.
func (m *Module) wanted(ctx context.Context, owner string, peer jid.JID) (bool, error) {
	p, err := m.loadPrefs(ctx, owner)
	if err != nil {
		return false, err
	}
	if listed(p.Never, peer) {
		return false, nil
	}
	if listed(p.Always, peer) {
		return true, nil
	}
	switch p.Default {
	case PrefNever:
		return false, nil
	case PrefRoster:
		it, err := m.cfg.Roster.GetRosterItem(ctx, owner, peer.String())
		switch {
		case errors.Is(err, store.ErrNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("roster item %s of %s: %w", peer, owner, err)
		}
		return it.InRoster, nil
	}
	return true, nil
}

// loadPrefs returns owner's preferences: the stored ones, or the server
// default with empty lists when none were set; from the cache when it
// holds them.
func (m *Module) loadPrefs(ctx context.Context, owner string) (store.ArchivePrefs, error) {
	return m.prefs.Get(owner, func() (store.ArchivePrefs, error) {
		p, err := m.cfg.Archive.GetArchivePrefs(ctx, owner)
		if errors.Is(err, store.ErrNotFound) {
			return store.ArchivePrefs{Default: m.cfg.DefaultPref}, nil
		}
		return p, err
	})
}

// Forget drops the cached preferences of owner: call it when the account
// is deleted, so that a new account of the same name starts from the
// default.
func (m *Module) Forget(owner string) { m.prefs.Forget(owner) }

// listed reports whether the bare peer, or its whole domain, is in l.
func listed(l []string, peer jid.JID) bool {
	return slices.Contains(l, peer.String()) || slices.Contains(l, peer.Domain())
}

// Expire deletes archived messages older than now minus the retention, in
// every archive (the hourly job). With archiving off it deletes nothing:
// what was archived before stays until archiving is turned on again and
// expires it, or the account is deleted.
func (m *Module) Expire(ctx context.Context, now time.Time) (int, error) {
	if !m.Enabled() {
		return 0, nil
	}
	n, err := m.cfg.Archive.ExpireArchive(ctx, now.Add(-m.cfg.Retention))
	if err != nil {
		return n, fmt.Errorf("mam: expire archives: %w", err)
	}
	return n, nil
}
