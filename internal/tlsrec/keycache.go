package tlsrec

import (
	"sync"
	"sync/atomic"
	"time"
)

// The record keys of busy connections are cached across batches.
//
// Deriving key and IV and building the AEAD for each batch is what keeps
// an idle Conn at 192 bytes, but a busy server pays it twice per delivered
// message (open on the sender's Conn, seal on the recipient's). So a
// direction that has moved batches in keyCacheAdmit consecutive sweep
// periods keeps its recordKeys in a package-level cache, and loses them
// once it moves nothing for a whole period. The cache is keyed by the
// halfConn's address, so Conn needs no pointer to it: an idle Conn stays
// 192 bytes and references no key material. Its activity bytes fill the
// word freed by keeping the suite as a byte.
//
// Requiring activity over several periods, not one batch, keeps a login
// (a burst of batches, then idleness) from caching keys it will not reuse:
// the entry, about 1.3 KB with AES-GCM, would outlive the burst by one or
// two periods for nothing.

const (
	// keyCachePeriod is the sweeper's period: keys unused for a whole
	// period are dropped, so an idle direction holds them for at most
	// two periods after its last batch.
	keyCachePeriod = 2 * time.Second
	// keyCacheAdmit is how many consecutive periods a direction must move
	// batches in before its keys are cached: more than a login takes.
	keyCacheAdmit = 3
	// DefaultKeyCacheLimit is the default bound on cached entries (one
	// per direction of a connection): with AES-GCM about 11 MB in all.
	DefaultKeyCacheLimit = 8192
)

// keyCache maps a *halfConn to its *cachedKeys. Only a direction's owner
// (the reader for Conn.in, the holder of wmu for Conn.out) stores its
// entry; anyone may delete one, which at worst costs a derivation.
var keyCache struct {
	m     sync.Map
	n     atomic.Int64 // entries in m
	limit atomic.Int64 // see SetKeyCacheLimit
	// epoch counts sweeps; activity compares its low byte.
	epoch atomic.Uint32
	// sweeping is set while the sweeper goroutine runs.
	sweeping atomic.Bool
	// period overrides keyCachePeriod for tests: negative means no
	// sweeper (tests call sweepKeys themselves).
	period atomic.Int64
}

// derivations counts key derivations, for tests. Every cache miss writes
// it, so it is padded to a cache line of its own: keyCache.epoch, which
// every batch reads, must not share it.
var derivations struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

func init() { keyCache.limit.Store(DefaultKeyCacheLimit) }

// SetKeyCacheLimit bounds how many connection directions may have cached
// record keys at once; beyond it, batches derive their keys as idle ones
// do. n <= 0 turns the cache off. Lowering the limit evicts nothing: the
// sweep drops entries as they go idle.
func SetKeyCacheLimit(n int) { keyCache.limit.Store(int64(n)) }

// cachedKeys is a direction's record keys and whether a batch used them
// since the last sweep.
type cachedKeys struct {
	keys recordKeys
	used atomic.Bool
}

// activity is how recently a direction moved batches: the low byte of
// the sweep epoch of its last batch, and how many consecutive epochs up
// to that one had batches (saturating). Wrapping makes a direction idle
// for a multiple of 256 periods look recently active: it then caches keys
// that the next sweeps drop, no worse than a burst that was active.
type activity struct {
	epoch  uint8
	streak uint8
}

// batch records a batch in epoch e and reports whether the direction has
// been active long enough to cache its keys.
func (a *activity) batch(e uint8) bool {
	switch {
	case a.streak > 0 && a.epoch == e:
	case a.streak > 0 && a.epoch == e-1:
		a.streak = min(a.streak+1, keyCacheAdmit)
	default:
		a.streak = 1
	}
	a.epoch = e
	return a.streak >= keyCacheAdmit
}

// keysFor returns the keys of direction h for a batch: cached ones if h
// has them, else derived, and then cached if h has been active (a). The
// caller owns h and a (see keyCache). The returned AEAD stays valid for
// the batch even if the sweeper drops the entry meanwhile.
func (c *Conn) keysFor(h *halfConn, a *activity) (recordKeys, error) {
	admit := a.batch(uint8(keyCache.epoch.Load()))
	if v, ok := keyCache.m.Load(h); ok {
		e := v.(*cachedKeys)
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e.keys, nil
	}
	k, err := h.keys(c.suite())
	if err != nil || !admit {
		return k, err
	}
	if keyCache.n.Load() >= keyCache.limit.Load() {
		return k, nil
	}
	if keyCache.n.Add(1) > keyCache.limit.Load() {
		keyCache.n.Add(-1)
		return k, nil
	}
	e := &cachedKeys{keys: k}
	e.used.Store(true)
	if _, loaded := keyCache.m.Swap(h, e); loaded {
		// Replaced, not added: the owner stores only after a miss, so
		// this does not happen, but the count must stay exact.
		keyCache.n.Add(-1)
	}
	return k, nil
}

// forgetKeys drops the cached keys of h, if any: h's secret changed or
// its connection ended.
func forgetKeys(h *halfConn) {
	if _, ok := keyCache.m.LoadAndDelete(h); ok {
		keyCache.n.Add(-1)
	}
}

// sweepKeys drops the entries no batch used since the previous sweep and
// starts a new epoch.
func sweepKeys() {
	keyCache.m.Range(func(k, v any) bool {
		if e := v.(*cachedKeys); !e.used.Swap(false) && keyCache.m.CompareAndDelete(k, e) {
			keyCache.n.Add(-1)
		}
		return true
	})
	keyCache.epoch.Add(1)
}

func sweepPeriod() time.Duration {
	if d := keyCache.period.Load(); d != 0 {
		return time.Duration(d)
	}
	return keyCachePeriod
}

// startSweeper starts the package's one sweeper goroutine unless it runs.
// It runs from the first Conn on, even while nothing is cached: its epochs
// are what tells an active direction from a burst.
func startSweeper() {
	if keyCache.sweeping.Load() || sweepPeriod() < 0 || !keyCache.sweeping.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for d := sweepPeriod(); d > 0; d = sweepPeriod() {
			time.Sleep(d)
			sweepKeys()
		}
		keyCache.sweeping.Store(false)
	}()
}
