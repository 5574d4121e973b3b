// Package router delivers stanzas between the entities of one Parley node:
// it owns the registry of bound sessions, applies the RFC 6121 delivery rules
// for bare and full JIDs, answers iqs addressed to the server (or to a user's
// bare JID) through registered handlers, and puts every storable message
// through the store's durable queue before it is delivered, so a message
// survives until a device of its recipient has taken it.
package router

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Session is the router's view of a bound client session. Implementations
// must make Deliver safe to call from any goroutine and never block on the
// client's socket: the router calls it with no lock held, from the sender's
// goroutine.
type Session interface {
	// JID is the session's full JID.
	JID() jid.JID
	// Available reports whether the session has sent initial presence and
	// not since gone unavailable; Priority is that presence's priority.
	Available() bool
	Priority() int
	// Deliver hands a stanza to the session's outbound path. When ack is not
	// nil, the session calls ack.Done once the stanza has been delivered
	// (written to the client; acknowledged by it with stream management), so
	// the durable queue entry can be deleted. It returns false if the session
	// is closing or its outbound buffer is full; the stanza then stays queued.
	Deliver(el *stanza.Element, ack *Ack) bool
	// Kick ends the session with a stream error (e.g. conflict on a resource
	// taken over by a new login).
	Kick(err *stanza.StreamError)
}

// Ack names a durable queue entry that sessions acknowledge once the stanza
// carrying it has been delivered. A live delivery hands one Ack to every
// target device; the entry is deleted when all of them have acknowledged
// it (see docs/durability.md, "Several devices").
type Ack struct {
	r       *Router
	user    string
	seq     uint64
	pending atomic.Int32 // target devices that have not acknowledged yet
}

// NewAck returns the acknowledgement of user's queue item seq that the
// router expects from devices sessions. The router makes one for every
// durable delivery; tests of Session implementations make their own.
func (r *Router) NewAck(user string, seq uint64, devices int) *Ack {
	a := &Ack{r: r, user: user, seq: seq}
	a.pending.Store(int32(devices))
	return a
}

// Seq is the queue sequence number of the acknowledged item: a user's
// items are numbered from 1 up in the order they were queued.
func (a *Ack) Seq() uint64 {
	if a == nil {
		return 0
	}
	return a.seq
}

// Done records one device's acknowledgement; the last one deletes the
// queue entry. Each session that was handed the Ack calls Done at most once.
func (a *Ack) Done() {
	if a == nil || a.pending.Add(-1) != 0 {
		return
	}
	a.r.Stats.Acked.Add(1)
	a.r.acks.add(a.user, a.seq)
}

// IQHandler answers an iq addressed to the server or, on behalf of a user, to
// the user's bare JID. It returns the reply (to and from are set by the
// router) or an error that becomes a stanza error (a *stanza.Error, else
// internal-server-error).
type IQHandler func(ctx context.Context, from jid.JID, to jid.JID, iq *stanza.Element) (*stanza.Element, error)

// StanzaCodec serialises stanzas for the durable queue. It is a storage
// format, unrelated to what any client speaks.
type StanzaCodec interface {
	Marshal(el *stanza.Element) []byte
	Unmarshal(b []byte) (*stanza.Element, error)
}

// Store is what the router needs of the durable store.
type Store interface {
	store.Queue
	GetAccount(ctx context.Context, username string) (store.Account, error)
}

// Config configures a Router.
type Config struct {
	Domain             string
	Store              Store
	Codec              StanzaCodec
	Logger             *slog.Logger
	MaxOfflineMessages int           // per user; 0 = unlimited
	OfflineExpiry      time.Duration // how long an undelivered message is kept; 0 = until delivered
	MaxSessionsPerUser int           // bound resources per account; 0 = unlimited
	// ObserveEnqueue, if set, is told how long each durable append took
	// (not counting the deliveries made while it was being made durable).
	ObserveEnqueue func(time.Duration)
	// IDGen makes XEP-0359 stanza ids, which are also the archive ids of
	// routed messages (Archiver); they must be unique. nil uses
	// store.NewArchiveID of the router's clock (Now): ids that carry
	// their archive position, so that the archive needs no id index for
	// them (docs/archive.md). Those ids reveal the time a message was
	// routed, to the nanosecond, as the archive ids of other servers do
	// (ejabberd's are timestamps); the archive gives that time anyway
	// (the <delay/> of a MAM result).
	IDGen func() string
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Errors returned by Bind.
var (
	ErrTooManySessions = errors.New("router: too many sessions for this account")
)

const shardCount = 64

type shard struct {
	mu    sync.RWMutex
	users map[string]*userEntry // by normalised localpart
}

type userEntry struct {
	sessions []Session // small: a user has a handful of devices
}

// Stats are the router's counters, read by the metrics endpoint.
type Stats struct {
	Enqueued    atomic.Int64 // messages appended to a durable queue
	QueueFull   atomic.Int64 // messages refused because the recipient's queue was full
	Delivered   atomic.Int64 // stanzas handed to a session
	Acked       atomic.Int64 // queue entries deleted after a device took them
	Redelivered atomic.Int64 // queued messages handed out at initial presence
	Bounced     atomic.Int64 // error replies generated for undeliverable stanzas
}

// Router is the node's stanza router. Create it with New.
type Router struct {
	// Stats counts routing events.
	Stats Stats

	cfg      Config
	domain   jid.JID
	log      *slog.Logger
	seed     maphash.Seed
	shards   [shardCount]shard
	count    atomic.Int64
	acks     *acker
	mu       sync.RWMutex
	serverIQ map[string]IQHandler
	userIQ   map[string]IQHandler
	presence PresenceHandler
	blocker  Blocker
	archiver Archiver
	unbound  []func(full jid.JID)     // observers of sessions leaving the registry
	domains  map[string]DomainHandler // served subdomains (components), by domain
	carbons  sync.Map                 // jid.JID (full) → the Session that enabled carbons (XEP-0280)
	now      func() time.Time
	newID    func() string
	iqs      iqClient // server-originated iqs awaiting a response (iqclient.go)
}

// PresenceHandler handles presence stanzas addressed to a local user's bare
// or full JID when they concern subscriptions or probes (RFC 6121 §3, §4.3);
// the roster module implements it. Returning false lets the router deliver
// the presence as ordinary directed presence.
type PresenceHandler func(ctx context.Context, from, to jid.JID, p *stanza.Element) bool

// New returns a router for the configured domain.
func New(cfg Config) (*Router, error) {
	d, err := jid.Parse(cfg.Domain)
	if err != nil || !d.IsBare() || d.Local() != "" {
		return nil, fmt.Errorf("router: invalid domain %q", cfg.Domain)
	}
	if cfg.Store == nil || cfg.Codec == nil {
		return nil, errors.New("router: Store and Codec are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Router{
		cfg:      cfg,
		domain:   d,
		log:      cfg.Logger,
		seed:     maphash.MakeSeed(),
		serverIQ: map[string]IQHandler{},
		userIQ:   map[string]IQHandler{},
		domains:  map[string]DomainHandler{},
		now:      cfg.Now,
		newID:    cfg.IDGen,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.newID == nil {
		r.newID = func() string { return store.NewArchiveID(r.now()) }
	}
	for i := range r.shards {
		r.shards[i].users = map[string]*userEntry{}
	}
	r.acks = newAcker(cfg.Store, r.log)
	return r, nil
}

// Domain returns the served domain.
func (r *Router) Domain() jid.JID { return r.domain }

// Codec returns the storage codec stanzas are queued in; sessions use it
// for what they keep serialised (their last presence).
func (r *Router) Codec() StanzaCodec { return r.cfg.Codec }

// Close flushes pending queue acknowledgements.
func (r *Router) Close() { r.acks.close() }

// HandleServerIQ registers h for iqs to the server whose payload is in ns.
func (r *Router) HandleServerIQ(ns string, h IQHandler) {
	r.mu.Lock()
	r.serverIQ[ns] = h
	r.mu.Unlock()
}

// HandleUserIQ registers h for iqs to a user's bare JID (answered by the
// server on the user's behalf, e.g. vcard-temp, roster) whose payload is in ns.
func (r *Router) HandleUserIQ(ns string, h IQHandler) {
	r.mu.Lock()
	r.userIQ[ns] = h
	r.mu.Unlock()
}

// DomainHandler takes every stanza addressed to a JID of a domain it serves
// (e.g. conference.example.org for group chat). from is already stamped by
// the sender's session; the handler owns el from then on and must not block
// the caller for long.
type DomainHandler func(ctx context.Context, from, to jid.JID, el *stanza.Element)

// HandleDomain makes h the handler of every stanza addressed to domain, a
// service hosted beside the served domain (a subdomain component).
func (r *Router) HandleDomain(domain string, h DomainHandler) {
	r.mu.Lock()
	r.domains[domain] = h
	r.mu.Unlock()
}

func (r *Router) domainHandler(domain string) DomainHandler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.domains[domain]
}

// SetPresenceHandler installs the subscription/probe handler.
func (r *Router) SetPresenceHandler(h PresenceHandler) {
	r.mu.Lock()
	r.presence = h
	r.mu.Unlock()
}

// ServerFeatures lists the namespaces with a server iq handler.
func (r *Router) ServerFeatures() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.serverIQ))
	for ns := range r.serverIQ {
		out = append(out, ns)
	}
	return out
}

func (r *Router) shardOf(user string) *shard {
	return &r.shards[maphash.String(r.seed, user)%shardCount]
}

// Bind registers a session under its full JID. A session already bound to
// the same full JID is returned as replaced: the caller kicks it with a
// conflict stream error (RFC 6120 §7.7.2.2).
func (r *Router) Bind(s Session) (replaced Session, err error) {
	j := s.JID()
	sh := r.shardOf(j.Local())
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[j.Local()]
	if u == nil {
		u = &userEntry{}
		sh.users[j.Local()] = u
	}
	for i, old := range u.sessions {
		if old.JID().Resource() == j.Resource() {
			u.sessions[i] = s
			return old, nil
		}
	}
	if max := r.cfg.MaxSessionsPerUser; max > 0 && len(u.sessions) >= max {
		return nil, ErrTooManySessions
	}
	u.sessions = append(u.sessions, s)
	r.count.Add(1)
	return nil, nil
}

// OnUnbind registers f to be told the full JID of every session that leaves
// the registry (modules forget per-resource state: caps, pushes, rooms).
// Register before the server starts; f must not block.
func (r *Router) OnUnbind(f func(full jid.JID)) {
	r.mu.Lock()
	r.unbound = append(r.unbound, f)
	r.mu.Unlock()
}

// Unbind removes the session if it is still the one bound to its JID.
func (r *Router) Unbind(s Session) {
	r.dropCarbons(s)
	j := s.JID()
	if !r.unbind(s) {
		return
	}
	r.mu.RLock()
	obs := r.unbound
	r.mu.RUnlock()
	for _, f := range obs {
		f(j)
	}
}

func (r *Router) unbind(s Session) bool {
	j := s.JID()
	sh := r.shardOf(j.Local())
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[j.Local()]
	if u == nil {
		return false
	}
	found := false
	for i, cur := range u.sessions {
		if cur == s {
			last := len(u.sessions) - 1
			u.sessions[i] = u.sessions[last]
			u.sessions[last] = nil
			u.sessions = u.sessions[:last]
			r.count.Add(-1)
			found = true
			break
		}
	}
	if len(u.sessions) == 0 {
		delete(sh.users, j.Local())
	}
	return found
}

// SessionCount returns the number of bound sessions on this node.
func (r *Router) SessionCount() int { return int(r.count.Load()) }

// Sessions returns a snapshot of the user's bound sessions.
func (r *Router) Sessions(user string) []Session {
	sh := r.shardOf(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[user]
	if u == nil {
		return nil
	}
	return append([]Session(nil), u.sessions...)
}

// Session returns the session bound to the full JID, or nil.
func (r *Router) Session(full jid.JID) Session {
	sh := r.shardOf(full.Local())
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[full.Local()]
	if u == nil {
		return nil
	}
	for _, s := range u.sessions {
		if s.JID().Resource() == full.Resource() {
			return s
		}
	}
	return nil
}

// AllSessions calls f for every bound session (e.g. to drain on shutdown).
func (r *Router) AllSessions(f func(Session)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		var all []Session
		for _, u := range sh.users {
			all = append(all, u.sessions...)
		}
		sh.mu.RUnlock()
		for _, s := range all {
			f(s)
		}
	}
}

// IsLocal reports whether j's domain is the served domain.
func (r *Router) IsLocal(j jid.JID) bool { return j.Domain() == r.domain.Domain() }

// UserExists reports whether the localpart has an account.
func (r *Router) UserExists(ctx context.Context, user string) (bool, error) {
	_, err := r.cfg.Store.GetAccount(ctx, user)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Route delivers a stanza whose from has been stamped by the sender's
// session. Errors owed to the sender are routed back to it.
func (r *Router) Route(ctx context.Context, el *stanza.Element) {
	from, err := jid.Parse(el.From())
	if err != nil {
		r.log.Warn("router: stanza without valid from", "from", el.From())
		return
	}
	var to jid.JID
	if t := el.To(); t != "" {
		to, err = jid.Parse(t)
		if err != nil {
			r.bounce(ctx, from, el, stanza.ErrJIDMalformed)
			return
		}
	} else {
		// RFC 6120 §10.3: no to means the sender's own bare JID
		// (or, for presence, a broadcast handled by the roster module).
		to = from.Bare()
	}
	if r.blocked(ctx, from, to, el) {
		return
	}
	if !r.IsLocal(to) {
		if h := r.domainHandler(to.Domain()); h != nil {
			h(ctx, from, to, el)
			return
		}
		r.bounce(ctx, from, el, stanza.ErrRemoteServerNotFound)
		return
	}
	switch el.Name {
	case "message":
		r.routeMessage(ctx, from, to, el)
	case "presence":
		r.routePresence(ctx, from, to, el)
	case "iq":
		r.routeIQ(ctx, from, to, el)
	}
}

// RouteAsync is Route that does not wait for the durable appends it
// starts: it returns once every recipient can see the stanza (a message
// is in its recipient's queue and handed to the online resources), and
// reports whether an append is still being made durable. If so, done runs
// once all are, or have failed and been bounced to the sender; it runs on
// the store's completion goroutine and must not block. If not, done is
// never called: the stanza was fully handled before RouteAsync returned.
//
// A session uses it to read on while its messages are fsynced, counting
// each handled (XEP-0198) only once done has run.
func (r *Router) RouteAsync(ctx context.Context, el *stanza.Element, done func()) bool {
	c := &completion{done: done}
	c.n.Store(1) // RouteAsync's own hold, so that done cannot run before it returns true
	r.Route(context.WithValue(ctx, completionKey{}, c), el)
	return c.n.Add(-1) != 0
}

// completion counts the appends a RouteAsync call is waiting for, plus one
// while Route runs.
type completion struct {
	n    atomic.Int32
	done func()
}

type completionKey struct{}

func completionFrom(ctx context.Context) *completion {
	c, _ := ctx.Value(completionKey{}).(*completion)
	return c
}

// join adds an append to wait for; false once the count has reached zero
// (RouteAsync has returned false, and a goroutine Route started is
// appending after it): the caller then waits for its append itself.
func (c *completion) join() bool {
	for {
		n := c.n.Load()
		if n <= 0 {
			return false
		}
		if c.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// finish ends a joined append.
func (c *completion) finish() {
	if c.n.Add(-1) == 0 {
		c.done()
	}
}

// bounce sends the error reply for el back to its sender.
func (r *Router) bounce(ctx context.Context, from jid.JID, el *stanza.Element, e *stanza.Error) {
	reply := stanza.ErrorReply(el, e)
	if reply == nil {
		return
	}
	r.Stats.Bounced.Add(1)
	if from.Domain() == "" {
		return
	}
	r.deliverDirect(ctx, from, reply)
}

// deliverDirect sends a server-generated stanza to a local JID without the
// durable queue (errors, iq results, presence).
func (r *Router) deliverDirect(_ context.Context, to jid.JID, el *stanza.Element) {
	if !r.IsLocal(to) || to.Local() == "" {
		return
	}
	if to.Resource() != "" {
		if s := r.Session(to); s != nil {
			s.Deliver(el, nil)
		}
		return
	}
	for _, s := range r.Sessions(to.Local()) {
		if s.Available() {
			s.Deliver(el, nil)
		}
	}
}

// DeliverTo sends a server-generated stanza to a session or, for a bare JID,
// to every available session of the user; used by protocol modules.
func (r *Router) DeliverTo(ctx context.Context, to jid.JID, el *stanza.Element) {
	r.deliverDirect(ctx, to, el)
}
