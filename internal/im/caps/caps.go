// Package caps is the server's entity capabilities (XEP-0115) cache: which
// features each available resource of a local user has, learnt from the
// <c/> element of its presence. PEP uses it to find the resources that want
// notifications of a node ("<node>+notify", XEP-0163 §4).
//
// A caps <c/> announces a ver: a hash of the entity's disco#info. When the
// ver is unknown, the cache asks the announcing resource for disco#info
// (node#ver) through Router.SendIQ, recomputes the hash and, if it matches,
// caches ver → features for every entity announcing the same ver. An
// answer whose hash does not match (or uses a hash the cache cannot
// compute, or legacy caps without one) is believed only for the resource
// that gave it: one client must never decide what others are known to
// support.
package caps

import (
	"container/list"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces.
const (
	NS          = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsData      = "jabber:x:data"
)

// Defaults for the zero Config fields.
const (
	DefaultMaxVers      = 4096
	DefaultMaxQueries   = 256
	DefaultQueryTimeout = 30 * time.Second
	DefaultMaxAttempts  = 3
	maxNodeLen          = 1024
	maxVerLen           = 256
	maxHashLen          = 32
)

// IQSender sends an iq from the server to a local full JID and waits for
// the answer; *router.Router implements it.
type IQSender interface {
	SendIQ(ctx context.Context, to jid.JID, iq *stanza.Element) (*stanza.Element, error)
}

// Config configures a Cache.
type Config struct {
	// Sender asks resources for their disco#info. Required.
	Sender IQSender
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxVers bounds the verified vers kept (least recently used go
	// first); 0 means DefaultMaxVers.
	MaxVers int
	// MaxQueries bounds the disco#info queries in flight; an announcement
	// past it stays unknown until the resource announces again. 0 means
	// DefaultMaxQueries.
	MaxQueries int
	// QueryTimeout bounds the wait for one disco#info answer; 0 means
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	// MaxAttempts bounds how many of the resources announcing one unknown
	// ver are asked before giving up, when earlier ones fail to answer or
	// answer with a mismatching hash; 0 means DefaultMaxAttempts.
	MaxAttempts int
}

// Features is an immutable set of disco features. The zero value is empty.
type Features struct{ set map[string]struct{} }

func newFeatures(list []string) Features {
	f := Features{set: make(map[string]struct{}, len(list))}
	for _, v := range list {
		f.set[v] = struct{}{}
	}
	return f
}

// Has reports whether ns is in the set.
func (f Features) Has(ns string) bool {
	_, ok := f.set[ns]
	return ok
}

// Len returns the number of features.
func (f Features) Len() int { return len(f.set) }

// List returns the features, sorted.
func (f Features) List() []string {
	out := make([]string, 0, len(f.set))
	for v := range f.set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// verKey names a verified ver. Unverifiable announcements get a key of
// their own resource (jid set), so they never share a query or an answer.
type verKey struct {
	hash, ver string
	jid       jid.JID
}

// entry is what one available resource announced.
type entry struct {
	node, ver, hash string
	features        *Features // nil until known
	then            func(Features)
	deferred        bool // waits for a query to the same resource to end
}

type waiter struct {
	full jid.JID
	e    *entry // the announcement waited for: stale once jids[full] != e
}

type query struct {
	key     verKey
	waiters []waiter // not asked yet
	failed  []waiter // asked, without an answer; served if another verifies
}

type lruEntry struct {
	key verKey
	f   *Features
}

// Cache is the caps cache. It is safe for concurrent use.
type Cache struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // ended by Close: queries in flight give up
	cancel context.CancelFunc

	mu      sync.Mutex
	jids    map[jid.JID]*entry // by full JID: one per available resource
	vers    map[verKey]*list.Element
	lru     *list.List // of *lruEntry, most recently used first
	queries map[verKey]*query
	asking  map[jid.JID]struct{} // resources a query is waiting on
}

// New returns a cache.
func New(cfg Config) *Cache {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxVers <= 0 {
		cfg.MaxVers = DefaultMaxVers
	}
	if cfg.MaxQueries <= 0 {
		cfg.MaxQueries = DefaultMaxQueries
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		log:     cfg.Logger.With("component", "caps"),
		jids:    map[jid.JID]*entry{},
		vers:    map[verKey]*list.Element{},
		lru:     list.New(),
		queries: map[verKey]*query{},
		asking:  map[jid.JID]struct{}{},
	}
}

// Record notes the caps element c that the available resource full put in
// its presence (nil or invalid: the resource's caps are forgotten). If the
// features are known it returns them and true. Otherwise it starts (or
// joins) the disco#info query and returns false; when the features become
// known, and full still announces the same caps, then (if not nil) is
// called once with them from the cache's own goroutine. A later Record for
// the same announcement replaces then.
func (c *Cache) Record(full jid.JID, capsEl *stanza.Element, then func(Features)) (Features, bool) {
	if capsEl == nil || full.Resource() == "" {
		c.Forget(full)
		return Features{}, false
	}
	node, ver, hashName := capsEl.Attr("node"), capsEl.Attr("ver"), capsEl.Attr("hash")
	if node == "" || ver == "" || len(node) > maxNodeLen || len(ver) > maxVerLen || len(hashName) > maxHashLen {
		c.Forget(full)
		return Features{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.jids[full]; e != nil && e.node == node && e.ver == ver && e.hash == hashName {
		if e.features != nil {
			return *e.features, true
		}
		e.then = then
		return Features{}, false
	}
	e := &entry{node: node, ver: ver, hash: hashName}
	c.jids[full] = e
	if f, ok := c.cached(full, e); ok {
		return f, true
	}
	e.then = then
	c.startLocked(full, e)
	return Features{}, false
}

// key returns the verKey of an announcement: shared for a verifiable hash,
// the resource's own otherwise.
func key(full jid.JID, e *entry) verKey {
	k := verKey{hash: e.hash, ver: e.ver}
	if !Verifiable(e.hash) {
		k.jid = full
	}
	return k
}

// cached gives e the features of its ver if that is verified and cached.
func (c *Cache) cached(full jid.JID, e *entry) (Features, bool) {
	k := key(full, e)
	if !k.jid.IsZero() {
		return Features{}, false
	}
	el, ok := c.vers[k]
	if !ok {
		return Features{}, false
	}
	c.lru.MoveToFront(el)
	e.features = el.Value.(*lruEntry).f
	return *e.features, true
}

// startLocked joins or starts the query for e's ver. A resource is asked
// one thing at a time: while a query to it is in flight, its newer
// announcement waits (deferred) and is started when that query ends, so
// one client cycling through vers holds at most one query slot.
func (c *Cache) startLocked(full jid.JID, e *entry) {
	k := key(full, e)
	w := waiter{full: full, e: e}
	if q := c.queries[k]; q != nil {
		q.waiters = append(q.waiters, w)
		return
	}
	if _, busy := c.asking[full]; busy {
		e.deferred = true
		return
	}
	if c.ctx.Err() != nil {
		return // closed
	}
	if len(c.queries) >= c.cfg.MaxQueries {
		c.log.Warn("caps: too many queries in flight; features stay unknown", "jid", full.String())
		return
	}
	q := &query{key: k, waiters: []waiter{w}}
	c.queries[k] = q
	go c.discover(q)
}

// Close ends the queries in flight (their resources stay unknown) and
// stops new ones; call it when the server stops. Known features stay
// readable.
func (c *Cache) Close() { c.cancel() }

// Forget drops what full announced (its session ended or it went
// unavailable). Verified vers stay cached for others.
func (c *Cache) Forget(full jid.JID) {
	c.mu.Lock()
	delete(c.jids, full)
	c.mu.Unlock()
}

// Features returns the known features of the full JID.
func (c *Cache) Features(full jid.JID) (Features, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.jids[full]; e != nil && e.features != nil {
		return *e.features, true
	}
	return Features{}, false
}

// HasFeature reports whether the full JID is known to support ns.
func (c *Cache) HasFeature(full jid.JID, ns string) bool {
	f, ok := c.Features(full)
	return ok && f.Has(ns)
}

// Len returns the number of resources with a recorded announcement and the
// number of verified vers cached.
func (c *Cache) Len() (resources, vers int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.jids), len(c.vers)
}

// current reports whether w is still what its resource announces and is
// still unknown.
func (c *Cache) current(w waiter) bool {
	e := c.jids[w.full]
	return e == w.e && e.features == nil
}

// discover asks the resources waiting on q, one after the other, until one
// answers with features whose hash verifies (then all waiters get them) or
// MaxAttempts have been asked; waiters left then stay unknown until they
// announce again. A resource whose answer does not verify still gets its
// own answer. The query leaves c.queries in the same critical section that
// settles its waiters, so a resource joining it is never left behind.
func (c *Cache) discover(q *query) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		var target waiter
		found := false
		for attempt < c.cfg.MaxAttempts && len(q.waiters) > 0 {
			w := q.waiters[0]
			q.waiters = q.waiters[1:]
			if c.current(w) {
				target, found = w, true
				break
			}
		}
		if !found {
			delete(c.queries, q.key)
			c.mu.Unlock()
			return
		}
		c.asking[target.full] = struct{}{}
		c.mu.Unlock()

		f, verified, err := c.ask(target.full, target.e.node, q.key.ver, q.key.hash)

		var calls []func()
		c.mu.Lock()
		delete(c.asking, target.full)
		switch {
		case err != nil:
			c.log.Debug("caps: disco#info failed", "jid", target.full.String(), "ver", q.key.ver, "err", err)
			q.failed = append(q.failed, target)
		case verified:
			c.put(q.key, &f)
			for _, w := range slices.Concat([]waiter{target}, q.waiters, q.failed) {
				calls = c.settle(w, &f, calls)
			}
			q.waiters, q.failed = nil, nil
			delete(c.queries, q.key)
		default:
			if q.key.jid.IsZero() {
				c.log.Info("caps: ver does not match disco#info; trusted for this resource only",
					"jid", target.full.String(), "ver", q.key.ver, "hash", q.key.hash)
			}
			calls = c.settle(target, &f, calls)
		}
		// A newer announcement of the target waited for this query to end.
		if e := c.jids[target.full]; e != nil && e.deferred && e.features == nil {
			e.deferred = false
			if _, ok := c.cached(target.full, e); ok {
				calls = c.settle(waiter{target.full, e}, e.features, calls)
			} else {
				c.startLocked(target.full, e)
			}
		}
		c.mu.Unlock()
		for _, call := range calls {
			call()
		}
		if err == nil && verified {
			return
		}
	}
}

// settle gives w's announcement its features if it is still current and
// appends the call of its callback to calls; the caller holds c.mu and
// makes the calls after releasing it.
func (c *Cache) settle(w waiter, f *Features, calls []func()) []func() {
	if e := c.jids[w.full]; e != w.e || (e.features != nil && e.features != f) {
		return calls
	}
	w.e.features = f
	if then := w.e.then; then != nil {
		w.e.then = nil
		calls = append(calls, func() { then(*f) })
	}
	return calls
}

// put adds a verified ver, evicting the least recently used past MaxVers.
// Resources already holding an evicted ver keep their features: only new
// announcements of it are asked again.
func (c *Cache) put(key verKey, f *Features) {
	if el, ok := c.vers[key]; ok {
		el.Value.(*lruEntry).f = f
		c.lru.MoveToFront(el)
		return
	}
	c.vers[key] = c.lru.PushFront(&lruEntry{key: key, f: f})
	for c.lru.Len() > c.cfg.MaxVers {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.vers, old.Value.(*lruEntry).key)
	}
}

// ask sends disco#info (node#ver) to full and reports the features and
// whether they verify against ver with hashName.
func (c *Cache) ask(full jid.JID, node, ver, hashName string) (Features, bool, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.QueryTimeout)
	defer cancel()
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").
		Append(stanza.New("query", nsDiscoInfo).SetAttr("node", node+"#"+ver))
	resp, err := c.cfg.Sender.SendIQ(ctx, full, iq)
	if err != nil {
		return Features{}, false, err
	}
	q := resp.Child("query", nsDiscoInfo)
	if q == nil {
		return Features{}, false, ErrIllFormed
	}
	in, err := parseInfo(q)
	if err != nil {
		return Features{}, false, err
	}
	f := newFeatures(in.features)
	if !Verifiable(hashName) {
		return f, false, nil
	}
	got, err := in.ver(hashName)
	if err != nil {
		return Features{}, false, err
	}
	return f, got == ver, nil
}
