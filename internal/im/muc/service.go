// Package muc is Parley's multi-user chat service (XEP-0045) at a
// subdomain such as conference.example.org: rooms with owners, admins,
// members and outcasts; moderators, participants and visitors; persistent
// rooms that survive a restart with their configuration, affiliations,
// subject and archive (XEP-0313 on the room); stable stanza ids assigned by
// the room (XEP-0359), occupant ids (XEP-0421) and self-ping (XEP-0410).
//
// Each active room is owned by one goroutine: the goroutine is the lock.
// The router hands every stanza for the service to Handle, which posts it
// to the room's bounded mailbox and returns at once; a full mailbox answers
// the sender with resource-constraint instead of growing. A room whose last
// occupant leaves stops its goroutine (a temporary room is destroyed), so
// idle rooms cost only their store record; the next stanza for it loads it
// again (lazy activation).
//
// Fan-out shares the payload: every recipient gets its own top-level
// element (for its own to attribute) whose children are the one shared
// payload. Delivery uses the router's sessions directly; a session whose
// outbound buffer is full refuses the stanza and the room counts the drop
// and moves on, so a slow occupant never slows the room.
package muc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces of XEP-0045 and the extensions the service speaks.
const (
	NS            = "http://jabber.org/protocol/muc"
	NSUser        = "http://jabber.org/protocol/muc#user"
	NSAdmin       = "http://jabber.org/protocol/muc#admin"
	NSOwner       = "http://jabber.org/protocol/muc#owner"
	NSRoomConfig  = "http://jabber.org/protocol/muc#roomconfig"
	NSRoomInfo    = "http://jabber.org/protocol/muc#roominfo"
	NSSelfPing    = "http://jabber.org/protocol/muc#self-ping-optimization"
	NSOccupantID  = "urn:xmpp:occupant-id:0"
	NSMAM         = "urn:xmpp:mam:2"
	NSDiscoInfo   = "http://jabber.org/protocol/disco#info"
	NSDiscoItems  = "http://jabber.org/protocol/disco#items"
	NSData        = "jabber:x:data"
	NSPing        = "urn:xmpp:ping"
	NSConference  = "jabber:x:conference" // XEP-0249 direct invitations
	NSModeration  = "urn:xmpp:message-moderate:1"
	NSRetract     = "urn:xmpp:message-retract:1"
	NSFasten      = "urn:xmpp:fasten:0"
	featureStable = "http://jabber.org/protocol/muc#stable_id"
)

// Defaults for the zero Config limits.
const (
	DefaultMaxRooms            = 100_000
	DefaultMaxOccupantsPerRoom = 10_000
	DefaultMaxHistory          = 50
	DefaultMessageRate         = 5 // messages per second per occupant
	DefaultMessageBurst        = 20
	DefaultMailbox             = 4096
	DefaultMaxAffiliations     = 10_000
	DefaultMaxSubjectBytes     = 1024
	DefaultMaxFieldBytes       = 1024
	DefaultMAMPage             = 100
)

// Store is what the service needs of the durable store: room records and
// the rooms' archives.
type Store interface {
	store.Rooms
	store.Archive
}

// MAMAnswerer answers a XEP-0313 query on a room's archive; it has the
// signature of the mam package's Answer (see mam.go).
type MAMAnswerer func(ctx context.Context, a store.Archive, codec router.StanzaCodec, owner string,
	archiveJID, requester jid.JID, iq *stanza.Element, maxPage int, deliver func(*stanza.Element)) (*stanza.Element, error)

// Config configures a Service. Domain, ServerDomain, Router, Store and
// Codec are required; zero limits take the defaults above.
type Config struct {
	// Domain is the service's domain, e.g. "conference.example.org".
	Domain string
	// ServerDomain is the served user domain, e.g. "example.org".
	ServerDomain string
	Router       *router.Router
	Store        Store
	// Codec serialises archived messages (the server's storage format).
	Codec  router.StanzaCodec
	Logger *slog.Logger

	// MaxRooms bounds the rooms that exist (persistent and temporary).
	MaxRooms int
	// MaxOccupantsPerRoom is the hard ceiling; a room's own maxusers can
	// only lower it.
	MaxOccupantsPerRoom int
	// MaxHistory is the number of messages a room keeps in memory for
	// history on join (loaded from the archive at activation).
	MaxHistory int
	// MessageRate (per second) and MessageBurst bound the groupchat and
	// private messages of one occupant (a token bucket).
	MessageRate  float64
	MessageBurst int
	// Mailbox bounds the stanzas waiting for one room's goroutine.
	Mailbox int
	// MaxAffiliations bounds the affiliation list of one room.
	MaxAffiliations int
	// MaxSubjectBytes and MaxFieldBytes bound the subject and each
	// configuration field (name, description, password).
	MaxSubjectBytes int
	MaxFieldBytes   int
	// MAMPage bounds one page of a MAM query on a room.
	MAMPage int
	// Defaults is the configuration of a new room; nil means XEP-0045's
	// defaults (temporary, public, open, unmoderated, semi-anonymous,
	// archived).
	Defaults *RoomConfig
	// MAM answers archive queries on rooms; nil means the mam package's
	// Answer (wired in mam.go).
	MAM MAMAnswerer

	// Now is the clock; nil uses time.Now. IDGen makes stanza ids, which
	// are also the room archive's ids; nil uses store.NewArchiveID of Now.
	Now   func() time.Time
	IDGen func() string
}

// activeSlack is how many active rooms beyond MaxRooms may run briefly to
// answer stanzas for rooms that do not exist.
const activeSlack = 1024

// Stats are the service's counters.
type Stats struct {
	Rooms     atomic.Int64 // rooms that exist (persistent and temporary)
	Active    atomic.Int64 // rooms with a running goroutine
	Messages  atomic.Int64 // groupchat messages accepted
	Delivered atomic.Int64 // stanzas handed to occupants' sessions
	Dropped   atomic.Int64 // stanzas an occupant's full session refused
	Refused   atomic.Int64 // stanzas refused because a room's mailbox was full
}

// Service is the MUC service. Create it with New, register Handle with the
// router (HandleDomain), call Start, and Close at shutdown.
type Service struct {
	// Stats counts service events.
	Stats Stats

	cfg    Config
	domain jid.JID
	log    *slog.Logger
	r      *router.Router

	mu     sync.RWMutex
	rooms  map[string]*room // active rooms by localpart
	closed bool

	// joined maps a real full JID to the rooms it is in, for SessionEnded.
	joinedMu sync.Mutex
	joined   map[jid.JID]map[string]struct{}

	// ctx ends when the service closes: it stops the room goroutines.
	// ops is the context of store writes and deliveries, which must not
	// fail because shutdown has begun (a room finishing its last work).
	ctx    context.Context
	ops    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg and returns a service; it does not touch the store
// until Start.
func New(cfg Config) (*Service, error) {
	d, err := jid.Parse(cfg.Domain)
	if err != nil || !d.IsBare() || d.Local() != "" {
		return nil, fmt.Errorf("muc: invalid domain %q", cfg.Domain)
	}
	if cfg.Router == nil || cfg.Store == nil || cfg.Codec == nil {
		return nil, errors.New("muc: Router, Store and Codec are required")
	}
	if cfg.ServerDomain == "" {
		cfg.ServerDomain = cfg.Router.Domain().String()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setDefault(&cfg.MaxRooms, DefaultMaxRooms)
	setDefault(&cfg.MaxOccupantsPerRoom, DefaultMaxOccupantsPerRoom)
	setDefault(&cfg.MaxHistory, DefaultMaxHistory)
	setDefault(&cfg.MessageBurst, DefaultMessageBurst)
	setDefault(&cfg.Mailbox, DefaultMailbox)
	setDefault(&cfg.MaxAffiliations, DefaultMaxAffiliations)
	setDefault(&cfg.MaxSubjectBytes, DefaultMaxSubjectBytes)
	setDefault(&cfg.MaxFieldBytes, DefaultMaxFieldBytes)
	setDefault(&cfg.MAMPage, DefaultMAMPage)
	if cfg.MessageRate <= 0 {
		cfg.MessageRate = DefaultMessageRate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IDGen == nil {
		// Ids that carry their archive position: a logged room's
		// archive then keeps no id index entry per message (see
		// store.NewArchiveID and docs/archive.md).
		now := cfg.Now
		cfg.IDGen = func() string { return store.NewArchiveID(now()) }
	}
	if cfg.Defaults == nil {
		def := DefaultRoomConfig()
		cfg.Defaults = &def
	}
	if cfg.MAM == nil {
		cfg.MAM = defaultMAM
	}
	s := &Service{
		cfg:    cfg,
		domain: d,
		log:    cfg.Logger.With("component", "muc", "domain", d.String()),
		r:      cfg.Router,
		rooms:  map[string]*room{},
		joined: map[jid.JID]map[string]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ops = context.WithoutCancel(s.ctx)
	return s, nil
}

func setDefault(v *int, d int) {
	if *v <= 0 {
		*v = d
	}
}

// Domain returns the service's domain.
func (s *Service) Domain() jid.JID { return s.domain }

// Identity is the service's disco identity (category, type, name) for the
// server's disco#items entry and the service's own disco#info.
func (s *Service) Identity() (category, typ, name string) {
	return "conference", "text", "Chatrooms"
}

// Features are the namespaces the service advertises in its disco#info.
func (s *Service) Features() []string {
	return []string{NS, NSDiscoInfo, NSDiscoItems, NSOccupantID, stanza.NSStanzaID, NSMAM, NSSelfPing, featureStable}
}

// Start counts the persisted rooms (for MaxRooms); rooms themselves are
// loaded lazily, on the first stanza addressed to them.
func (s *Service) Start(ctx context.Context) error {
	n := 0
	after := ""
	for {
		page, err := s.cfg.Store.ListRooms(ctx, after, 1024)
		if err != nil {
			return fmt.Errorf("muc: count rooms: %w", err)
		}
		for _, r := range page {
			after = r.JID
			if j, err := jid.Parse(r.JID); err == nil && j.Domain() == s.domain.Domain() {
				n++
			}
		}
		if len(page) < 1024 {
			break
		}
	}
	s.Stats.Rooms.Store(int64(n))
	return nil
}

// Close stops every room goroutine; occupants get an unavailable presence
// with status 332 (system shutdown). Persistent state is already in the
// store: every change is written when it happens.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Handle is the router's DomainHandler for the service's domain. It never
// blocks on a room for stanzas a client sends; see post.
func (s *Service) Handle(ctx context.Context, from, to jid.JID, el *stanza.Element) {
	if to.Domain() != s.domain.Domain() || from.IsZero() {
		return
	}
	if to.Local() == "" {
		s.handleService(ctx, from, to, el)
		return
	}
	it := item{from: from, to: to, el: el}
	if el.Name == "presence" && el.Type() == "unavailable" {
		s.postLeave(to.Local(), it)
		return
	}
	if !s.post(ctx, to.Local(), it, false) {
		s.Stats.Refused.Add(1)
		s.replyError(el, stanza.ErrResourceConstraint.WithText("the room is busy"))
	}
}

// SessionEnded removes the full JID from every room it is in: the safety
// net for a session that ended without sending unavailable presence. It
// never blocks, so it can be registered with router.OnUnbind.
func (s *Service) SessionEnded(ctx context.Context, full jid.JID) {
	s.joinedMu.Lock()
	names := make([]string, 0, len(s.joined[full]))
	for n := range s.joined[full] {
		names = append(names, n)
	}
	s.joinedMu.Unlock()
	for _, n := range names {
		s.postLeave(n, item{from: full, ended: true})
	}
}

// postLeave posts a leave (unavailable presence, a session's end) without
// blocking the caller. A leave must not be lost to a full mailbox — a ghost
// occupant would keep receiving the room's traffic — so when the mailbox
// is full a goroutine waits for room in it; there is at most one such
// goroutine per leaving session and room.
func (s *Service) postLeave(name string, it item) {
	if s.post(s.ops, name, it, false) {
		return
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return
	}
	s.wg.Add(1)
	s.mu.RUnlock()
	go func() {
		defer s.wg.Done()
		s.post(s.ctx, name, it, true)
	}()
}

// Sync waits until the room has handled every stanza posted to it before
// the call (or ctx ends). Rooms work asynchronously; this is for tests and
// tools that need to observe the result of what they sent.
func (s *Service) Sync(ctx context.Context, room string) error {
	b := make(chan struct{})
	if !s.post(ctx, room, item{barrier: b}, true) {
		return fmt.Errorf("muc: sync %s: service closed or busy", room)
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) trackJoin(full jid.JID, room string) {
	s.joinedMu.Lock()
	m := s.joined[full]
	if m == nil {
		m = map[string]struct{}{}
		s.joined[full] = m
	}
	m[room] = struct{}{}
	s.joinedMu.Unlock()
}

func (s *Service) trackLeave(full jid.JID, room string) {
	s.joinedMu.Lock()
	if m := s.joined[full]; m != nil {
		delete(m, room)
		if len(m) == 0 {
			delete(s.joined, full)
		}
	}
	s.joinedMu.Unlock()
}

// post hands it to the room's goroutine, activating the room if needed.
// Without block it never waits: a full mailbox returns false. With block it
// waits for room in the mailbox until ctx or the service ends.
//
// A sender holds the room's life lock (shared) while it sends, and a room
// retires only under that lock (exclusive) with an empty mailbox: so an
// item is either in the mailbox of a room that will handle it, or the
// sender sees the room dead and posts to its successor. Nothing holds the
// service's lock while waiting.
func (s *Service) post(ctx context.Context, name string, it item, block bool) bool {
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return false
		}
		r := s.rooms[name]
		s.mu.RUnlock()
		if r == nil {
			if it.ended || it.el != nil && it.el.Name == "presence" && it.el.Type() == "unavailable" {
				return true // the room is not active: nobody is in it
			}
			if r = s.activate(name); r == nil {
				return false
			}
		}
		r.life.RLock()
		if r.dead {
			r.life.RUnlock()
			continue // retired meanwhile: post to its successor
		}
		ok := false
		if block {
			select {
			case r.mbox <- it:
				ok = true
			case <-ctx.Done():
			case <-s.ctx.Done():
			}
		} else {
			select {
			case r.mbox <- it:
				ok = true
			default:
			}
		}
		r.life.RUnlock()
		return ok
	}
}

// activate returns the active room called name, starting its goroutine
// (which loads it from the store) if there is none.
func (s *Service) activate(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if r := s.rooms[name]; r != nil {
		return r
	}
	// Active goroutines are bounded like rooms: a flood of stanzas to
	// invented room names must not start unbounded goroutines. The slack
	// lets stanzas to rooms that do not exist still get their answer
	// (item-not-found, not-allowed) when every room is active.
	if len(s.rooms) >= s.cfg.MaxRooms+activeSlack {
		return nil
	}
	bare, err := jid.New(name, s.domain.Domain(), "")
	if err != nil {
		return nil
	}
	r := newRoom(s, name, bare)
	s.rooms[name] = r
	s.Stats.Active.Add(1)
	s.wg.Add(1)
	go r.run()
	return r
}

// Outcomes of retire.
const (
	retired   = iota
	pending   // stanzas are waiting: handle them
	contended // a sender is mid-send: look again in a moment
)

// retire removes r from the active rooms if its mailbox is empty.
func (s *Service) retire(r *room) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.life.TryLock() {
		// Not Lock: a sender blocked on a full mailbox holds the shared
		// lock until the goroutine receives, which it could not while
		// waiting here.
		return contended
	}
	defer r.life.Unlock()
	if len(r.mbox) > 0 {
		return pending
	}
	r.dead = true
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		s.Stats.Active.Add(-1)
	}
	return retired
}

// replyError sends the error reply for el to its sender (nothing for an
// error stanza).
func (s *Service) replyError(el *stanza.Element, e *stanza.Error) {
	reply := stanza.ErrorReply(el, e)
	if reply == nil {
		return
	}
	to, err := jid.Parse(reply.To())
	if err != nil {
		return
	}
	s.r.DeliverTo(s.ops, to, reply)
}

// send delivers a stanza to one session (a full JID), counting a refusal
// as a drop. It reports whether the session took it.
func (s *Service) send(to jid.JID, el *stanza.Element) bool {
	sess := s.r.Session(to)
	if sess == nil {
		return false
	}
	if !sess.Deliver(el, nil) {
		s.Stats.Dropped.Add(1)
		return false
	}
	s.Stats.Delivered.Add(1)
	return true
}
