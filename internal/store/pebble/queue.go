package pebble

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// Queue bookkeeping.
//
// Pebble has no transactions, so "give this item the next seq" and "refuse
// the 101st item" need an owner. The owner of a user's queue counters is the
// mutex of the user's stripe (one of numStripes, chosen by hash of the
// username): under it Enqueue reserves a seq and a slot in the count, then
// it releases the mutex and commits. Holding no lock across the commit is
// what lets many senders reach Pebble's commit pipeline together and share
// one fsync (group commit); with the lock held, every sender on a stripe
// would pay a full fsync in turn. A failed commit gives the slot back; its
// seq is simply never used.
//
// Because seqs are reserved before they are committed, a higher seq can
// become visible before a lower one. Pending therefore returns nothing at or
// above the lowest seq still being committed, so a reader paging with
// "after" never skips an item that shows up late. Journal items are the
// exception: each is appended to the journal and to st.hot under the
// stripe lock that issues its seq, so they are visible in seq order from
// that moment, before the group commit makes them durable
// (EnqueueVisible).
//
// The state is loaded lazily on a user's first queue operation: count by
// scanning the user's queue prefix (so the first touch of a user with a very
// long queue costs one scan), next seq from the last key or the qh/
// high-water mark, whichever is higher. Every batch that deletes queue items
// (Ack, expiry) raises qh/ to the highest seq it deletes, in the same batch.
// So on disk every seq ever committed is either still a key or at most qh/,
// atomically and whatever the crash: seqs are never issued twice, even after
// the queue drained or its tail was acked, across restarts and crashes. (A
// seq whose commit failed may be issued again; nobody ever saw it.) The
// mark costs one extra key in a batch that is written anyway, and it lets
// the in-memory state be dropped at any time without writing anything.
//
// Memory stays bounded: reads of an empty queue (Depth at login) do not
// cache a state, and each stripe holds at most MaxQueueStates/numStripes
// users, dropping a random idle one to admit another. Empty states are kept
// otherwise, because the common case, an online user whose queue drains
// after every message, would reload its state on every message.

type queueStripe struct {
	mu sync.Mutex
	// cond (L = &mu) wakes goroutines waiting for a user's in-flight
	// enqueues to finish (DeleteAccount) and enqueuers waiting for such a
	// delete to finish.
	cond    sync.Cond
	waiters int
	users   map[string]*queueState
	_       [64]byte // keep stripes on separate cache lines
}

type queueState struct {
	next     uint64   // next seq to issue; every lower seq has been issued
	high     uint64   // value of qh/ on disk
	count    int      // items committed plus items reserved and being committed
	inflight []uint64 // reserved seqs whose commit has not returned, ascending
	// live holds up to maxLive seqs this process committed and has not
	// deleted since: an Ack of one of them deletes it without reading it
	// first (see deleteQueueItems). An item that is not here may still
	// exist; it is then looked up.
	live     []uint64
	draining bool // DeleteAccount is waiting for inflight to drain
	// hot holds the items that are in the queue journal and not (yet) in
	// Pebble, ascending by seq (see journal.go).
	hot []hotItem
	// jhigh is the highest seq the journal issued; a checkpoint raises qh/
	// to it, and until then the state is not evicted.
	jhigh uint64
}

// hotItem is a queue item that lives in the journal and in memory.
type hotItem struct {
	seq     uint64
	seg     uint64 // journal segment holding its put record
	stored  time.Time
	expires time.Time
	stanza  []byte
}

// findHot returns the index of seq in st.hot.
func (st *queueState) findHot(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(st.hot, seq, func(h hotItem, seq uint64) int { return cmp.Compare(h.seq, seq) })
}

// removeHot deletes st.hot[i]; a user who is idle again keeps no array.
func (st *queueState) removeHot(i int) {
	st.hot = slices.Delete(st.hot, i, i+1)
	if len(st.hot) == 0 {
		st.hot = nil
	}
}

// evictable reports whether dropping st from memory loses nothing: no
// reservations, no hot items, and qh/ on disk covers every seq issued.
func (st *queueState) evictable() bool {
	return len(st.inflight) == 0 && !st.draining && len(st.hot) == 0 && st.jhigh <= st.high
}

// normTime is t as the codec returns it after a round trip (UTC, no
// monotonic reading), so hot and stored items look the same to callers.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(t.Unix(), int64(t.Nanosecond())).UTC()
}

// stanzaBufs recycles the key+value buffer of Enqueue; Pebble copies both
// into its batch, so the buffer is free again once Set returns.
var stanzaBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledBuf = 64 << 10

// maxLive bounds queueState.live. An online user's items are acknowledged
// within a round trip, so a few suffice; a user who is offline piles up
// items that are then looked up on Ack like those of an earlier process.
const maxLive = 16

// dropLive removes seq from st.live and reports whether it was there.
func (st *queueState) dropLive(seq uint64) bool {
	i := slices.Index(st.live, seq)
	if i < 0 {
		return false
	}
	st.live = slices.Delete(st.live, i, i+1)
	if len(st.live) == 0 {
		st.live = nil // idle users keep no array
	}
	return true
}

// Enqueue implements store.Queue. A zero expires means the item never
// expires. The write is fsynced in DurabilityFsync mode.
func (s *Store) Enqueue(ctx context.Context, user string, stanza []byte, expires time.Time, max int) (uint64, error) {
	return s.EnqueueVisible(ctx, user, stanza, expires, max, nil)
}

// EnqueueVisible implements store.Queue. With the journal, an item is
// visible once it is appended to the journal's buffer and st.hot, before
// the group commit writes and fsyncs it; without, once Pebble's commit
// (fsynced per the durability mode) has returned.
func (s *Store) EnqueueVisible(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(seq uint64)) (uint64, error) {
	return s.enqueue(ctx, user, stanza, expires, max, visible, nil)
}

// EnqueueAsync implements store.Queue. With the journal, it returns once
// the item is visible, and done runs on the journal's completer goroutine
// once the group commit has made it durable; without, Pebble's commit is
// waited for and done runs before EnqueueAsync returns.
func (s *Store) EnqueueAsync(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(seq uint64), done func(error)) (uint64, error) {
	if done == nil {
		return 0, errors.New("pebble store: EnqueueAsync without done")
	}
	return s.enqueue(ctx, user, stanza, expires, max, visible, done)
}

// enqueue is EnqueueVisible, or EnqueueAsync when done is set.
func (s *Store) enqueue(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(seq uint64), done func(error)) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validName("username", user); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	// s.mu is released before visible runs: the router archives from it,
	// and a second read lock would deadlock against a waiting Close.

	q := &s.queues[s.stripe(user)]
	s.writers.RLock()
	q.mu.Lock()
	st, err := s.queueStateForWrite(db, q, user)
	if err != nil {
		q.mu.Unlock()
		s.writers.RUnlock()
		s.mu.RUnlock()
		return 0, err
	}
	if max > 0 && st.count >= max {
		n := st.count
		q.mu.Unlock()
		s.writers.RUnlock()
		s.mu.RUnlock()
		return 0, fmt.Errorf("enqueue for %q: %w (%d items, max %d)", user, store.ErrQueueFull, n, max)
	}
	seq := st.next
	st.next++
	st.count++
	st.inflight = append(st.inflight, seq)
	j := s.journal
	var pos int64
	if j != nil {
		// Appending under the stripe lock makes "in the journal" and "in
		// st.hot" one step for a checkpoint, which scans under the same lock.
		now, exp := normTime(time.Now()), normTime(expires)
		var seg uint64
		pos, seg = j.put(user, seq, now, exp, stanza)
		st.hot = append(st.hot, hotItem{seq: seq, seg: seg, stored: now, expires: exp, stanza: slices.Clone(stanza)})
		if seq > st.jhigh {
			st.jhigh = seq
		}
		// Counted now: an Ack may delete the item before commit returns.
		s.queued.Add(1)
	}
	q.mu.Unlock()
	s.writers.RUnlock()

	if j != nil {
		// A Close from here on finds the record in the journal's buffer
		// and makes it durable (its checkpoint), so commit succeeds.
		s.mu.RUnlock()
		if visible != nil {
			visible(seq)
		}
		if done != nil {
			j.commitAsync(pos, func(err error) { done(s.enqueued(q, st, user, seq, true, err)) })
			return seq, nil
		}
		if err := s.enqueued(q, st, user, seq, true, j.commit(pos, j.fsync)); err != nil {
			return 0, err
		}
		return seq, nil
	}
	bp := stanzaBufs.Get().(*[]byte)
	b := appendQueueKey((*bp)[:0], user, seq)
	klen := len(b)
	b = appendQueueItem(b, time.Now(), expires, stanza)
	err = db.Set(b[:klen], b[klen:], s.syncWrites)
	s.mu.RUnlock()
	if cap(b) <= maxPooledBuf {
		*bp = b
		stanzaBufs.Put(bp)
	}
	if err := s.enqueued(q, st, user, seq, false, err); err != nil {
		return 0, err
	}
	s.queued.Add(1)
	if visible != nil {
		visible(seq)
	}
	if done != nil {
		done(nil)
	}
	return seq, nil
}

// enqueued ends an append whose durable write has returned err: the item
// is no longer in flight, and if the write failed it is uncounted and,
// with the journal, taken out of st.hot. It returns err with context.
func (s *Store) enqueued(q *queueStripe, st *queueState, user string, seq uint64, journaled bool, err error) error {
	// st is still the user's state: a state with reservations is neither
	// evicted nor removed by DeleteAccount.
	q.mu.Lock()
	if i := slices.Index(st.inflight, seq); i >= 0 {
		st.inflight = slices.Delete(st.inflight, i, i+1)
	}
	switch {
	case err != nil && !journaled:
		st.count--
	case err != nil:
		// Unless an Ack has already deleted it (and uncounted it).
		if i, ok := st.findHot(seq); ok {
			st.removeHot(i)
			st.count--
			s.queued.Add(-1)
		}
	case !journaled && len(st.live) < maxLive:
		st.live = append(st.live, seq)
	}
	if len(st.inflight) == 0 && q.waiters > 0 {
		q.cond.Broadcast()
	}
	q.mu.Unlock()
	if err != nil {
		return fmt.Errorf("pebble store: enqueue for %q: %w", user, err)
	}
	return nil
}

// queueStateForWrite returns the user's cached state, loading and caching
// it if needed. It waits while a DeleteAccount of the user is draining
// reservations. q.mu must be held.
func (s *Store) queueStateForWrite(db *pebble.DB, q *queueStripe, user string) (*queueState, error) {
	for {
		st := q.users[user]
		if st == nil {
			break
		}
		if !st.draining {
			return st, nil
		}
		q.waiters++
		q.cond.Wait()
		q.waiters--
	}
	st, err := loadQueueState(db, user)
	if err != nil {
		return nil, err
	}
	s.cacheQueueState(q, user, st)
	return st, nil
}

// queueStateForRead returns the user's state, loading it if needed but
// caching it only if the queue is not empty (reads of empty queues, e.g. at
// every login, must not fill memory). q.mu must be held.
func (s *Store) queueStateForRead(db *pebble.DB, q *queueStripe, user string) (*queueState, error) {
	if st := q.users[user]; st != nil {
		return st, nil
	}
	st, err := loadQueueState(db, user)
	if err != nil {
		return nil, err
	}
	if st.count > 0 {
		s.cacheQueueState(q, user, st)
	}
	return st, nil
}

// cacheQueueState adds st, first dropping one idle user if the stripe is at
// its bound. Dropping needs no write: see qh/ above. q.mu must be held.
func (s *Store) cacheQueueState(q *queueStripe, user string, st *queueState) {
	if len(q.users) >= s.maxPerStrip {
		for u, old := range q.users { // map order: a cheap random victim
			if old.evictable() {
				delete(q.users, u)
				break
			}
		}
	}
	q.users[user] = st
}

// loadQueueState counts the user's queue items and finds the next seq.
func loadQueueState(r pebble.Reader, user string) (*queueState, error) {
	lo, hi := userPrefix(tagQueue, user)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("pebble store: load queue of %q: %w", user, err)
	}
	st := &queueState{}
	var last uint64
	for ok := it.First(); ok; ok = it.Next() {
		st.count++
		last = binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:])
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebble store: load queue of %q: %w", user, err)
	}
	if st.high, err = queueHigh(r, user); err != nil {
		return nil, fmt.Errorf("pebble store: load queue of %q: %w", user, err)
	}
	st.next = max(last, st.high) + 1
	return st, nil
}

// queueHigh reads the user's qh/ mark (0 if none).
func queueHigh(r pebble.Reader, user string) (uint64, error) {
	v, ok, err := get(r, pointKey(tagQueueHigh, user))
	if err != nil || !ok {
		return 0, err
	}
	return decodeUint("queue high-water mark", v)
}

// Pending implements store.Queue. limit <= 0 means no limit. Expired items
// are skipped and deleted on the way (without fsync, like Ack).
func (s *Store) Pending(ctx context.Context, user string, after uint64, limit int) ([]store.QueueItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validName("username", user); err != nil {
		return nil, err
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	db, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()

	// Stop below the lowest seq still being committed (see the comment at
	// the top of this file); with the journal every item is visible from
	// its append, made in seq order under the stripe lock, so nothing is
	// (an item still committing may even be acknowledged already, and
	// must not hide the ones after it).
	q := &s.queues[s.stripe(user)]
	stop := uint64(math.MaxUint64)
	now := time.Now()
	var hot []store.QueueItem
	q.mu.Lock()
	if st := q.users[user]; st != nil {
		if s.journal == nil && len(st.inflight) > 0 {
			stop = st.inflight[0]
		}
		i, _ := st.findHot(after + 1)
		for ; i < len(st.hot) && st.hot[i].seq < stop && (limit <= 0 || len(hot) < limit); i++ {
			h := &st.hot[i]
			if isExpired(h.expires, now) {
				continue // Expire deletes expired hot items
			}
			hot = append(hot, store.QueueItem{Seq: h.seq, Stanza: slices.Clone(h.stanza), Stored: h.stored, Expires: h.expires})
		}
	}
	q.mu.Unlock()
	if stop <= after+1 {
		return nil, nil
	}
	lo := appendQueueKey(nil, user, after+1)
	_, hi := userPrefix(tagQueue, user)
	if stop != math.MaxUint64 {
		hi = appendQueueKey(nil, user, stop)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("pebble store: pending for %q: %w", user, err)
	}
	var items []store.QueueItem
	var expired []store.QueueRef
	for ok := it.First(); ok && (limit <= 0 || len(items) < limit); ok = it.Next() {
		k := it.Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("pebble store: pending for %q: %w", user, err)
		}
		item, err := decodeQueueItem(seq, v)
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("pebble store: pending for %q: %w", user, err)
		}
		if isExpired(item.Expires, now) {
			expired = append(expired, store.QueueRef{User: user, Seq: seq})
			continue
		}
		items = append(items, item)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebble store: pending for %q: %w", user, err)
	}
	if len(expired) > 0 {
		// Housekeeping only: the answer is already correct without it.
		if _, err := s.deleteQueueItems(db, expired, now); err != nil {
			s.log.Warn("pebble store: cannot delete expired queue items", "user", user, "err", err)
		}
	}
	return mergeItems(items, hot, limit), nil
}

// mergeItems merges two ascending lists, keeping one item per seq (an item
// that a checkpoint moved between our two reads is in both) and at most
// limit (if > 0).
func mergeItems(a, b []store.QueueItem, limit int) []store.QueueItem {
	if len(b) == 0 {
		return a
	}
	out := make([]store.QueueItem, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		var next store.QueueItem
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Seq < b[0].Seq):
			next, a = a[0], a[1:]
		case len(a) == 0 || b[0].Seq < a[0].Seq:
			next, b = b[0], b[1:]
		default:
			next, a, b = a[0], a[1:], b[1:]
		}
		out = append(out, next)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func isExpired(expires, now time.Time) bool {
	return !expires.IsZero() && expires.Before(now)
}

// Ack implements store.Queue. Deletions do not wait for an fsync even in
// DurabilityFsync mode: a delete lost in a crash means one redelivery, which
// clients de-duplicate by stanza id.
func (s *Store) Ack(ctx context.Context, user string, seqs ...uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("username", user); err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	refs := make([]store.QueueRef, len(seqs))
	for i, seq := range seqs {
		refs[i] = store.QueueRef{User: user, Seq: seq}
	}
	if _, err := s.deleteQueueItems(db, refs, time.Time{}); err != nil {
		return fmt.Errorf("pebble store: ack for %q: %w", user, err)
	}
	return nil
}

// AckBatch implements store.Queue: every reference, of any user, in one
// batch. It sorts refs in place.
func (s *Store) AckBatch(ctx context.Context, refs []store.QueueRef) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, r := range refs {
		if err := validName("username", r.User); err != nil {
			return err
		}
	}
	if len(refs) == 0 {
		return nil
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if _, err := s.deleteQueueItems(db, refs, time.Time{}); err != nil {
		return fmt.Errorf("pebble store: ack batch: %w", err)
	}
	return nil
}

// Depth implements store.Queue. It counts every stored item, including
// expired ones that Pending or Expire have not deleted yet, and items whose
// Enqueue is still committing.
func (s *Store) Depth(ctx context.Context, user string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validName("username", user); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	q := &s.queues[s.stripe(user)]
	q.mu.Lock()
	defer q.mu.Unlock()
	st, err := s.queueStateForRead(db, q, user)
	if err != nil {
		return 0, err
	}
	return st.count, nil
}

// expireBatch is how many expired items Expire deletes per batch: big
// enough to amortise the commit, small enough not to hold stripe locks long.
const expireBatch = 1024

// Expire implements store.Queue. It scans every queue item, which is fine
// while queues are short-lived; a secondary index by expiry time would make
// it proportional to the number of expired items instead.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(tagQueue), UpperBound: prefixEnd(tagQueue)})
	if err != nil {
		return 0, fmt.Errorf("pebble store: expire: %w", err)
	}
	defer it.Close()
	total, scanned := 0, 0
	var refs []store.QueueRef
	flush := func() error {
		n, err := s.deleteQueueItems(db, refs, now)
		total += n
		refs = refs[:0]
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if scanned++; scanned%expireBatch == 0 {
			if err := ctx.Err(); err != nil {
				return total, err
			}
		}
		user, seq, ok := parseQueueKey(it.Key())
		if !ok {
			return total, fmt.Errorf("pebble store: expire: malformed queue key %q", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return total, fmt.Errorf("pebble store: expire: %w", err)
		}
		exp, err := decodeQueueExpires(v)
		if err != nil {
			return total, fmt.Errorf("pebble store: expire: item %d of %q: %w", seq, user, err)
		}
		if !isExpired(exp, now) {
			continue
		}
		if refs = append(refs, store.QueueRef{User: user, Seq: seq}); len(refs) == expireBatch {
			if err := flush(); err != nil {
				return total, fmt.Errorf("pebble store: expire: %w", err)
			}
		}
	}
	if err := it.Error(); err != nil {
		return total, fmt.Errorf("pebble store: expire: %w", err)
	}
	// Hot items (journal.go) are in no Pebble key: they come from memory.
	for _, r := range s.expiredHot(now) {
		if refs = append(refs, r); len(refs) == expireBatch {
			if err := flush(); err != nil {
				return total, fmt.Errorf("pebble store: expire: %w", err)
			}
		}
	}
	if len(refs) > 0 {
		if err := flush(); err != nil {
			return total, fmt.Errorf("pebble store: expire: %w", err)
		}
	}
	return total, nil
}

// deleteQueueItems deletes the referenced items that exist (and, if
// expiredAt is not zero, are expired at that time), raises the qh/ marks in
// the same batch and keeps the in-memory counts exact. It holds the stripes
// of all users involved, taken in ascending order, so that the existence
// check, the commit and the count update are one step as far as Enqueue,
// other deleters and lazy loads are concerned. It returns how many items it
// deleted. Deletions are not fsynced (see Ack).
func (s *Store) deleteQueueItems(db *pebble.DB, refs []store.QueueRef, expiredAt time.Time) (int, error) {
	slices.SortFunc(refs, func(a, b store.QueueRef) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Seq, b.Seq))
	})
	refs = slices.Compact(refs)

	var stripes []int
	for i, r := range refs {
		if i == 0 || r.User != refs[i-1].User {
			stripes = append(stripes, s.stripe(r.User))
		}
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	s.writers.RLock()
	for _, i := range stripes {
		s.queues[i].mu.Lock()
	}
	n, pos, err := s.deleteQueueItemsLocked(db, refs, expiredAt)
	for _, i := range stripes {
		s.queues[i].mu.Unlock()
	}
	s.writers.RUnlock()
	if pos > 0 {
		// Not fsynced, like Pebble deletions, but written: a crash of the
		// process alone must not resurrect acknowledged items.
		if jerr := s.journal.commit(pos, false); jerr != nil && err == nil {
			err = jerr
		}
	}
	return n, err
}

// deleteQueueItemsLocked is deleteQueueItems with the stripes held. Hot
// items are deleted in memory and get an ack record in the journal; pos is
// the journal position to commit (0 if none).
func (s *Store) deleteQueueItemsLocked(db *pebble.DB, refs []store.QueueRef, expiredAt time.Time) (total int, pos int64, err error) {
	type userDelta struct {
		st      *queueState // nil if not in memory
		user    string
		n       int    // items deleted from Pebble
		maxSeq  uint64 // highest seq deleted from Pebble
		hotSeqs []uint64
	}
	var deltas []userDelta
	b := db.NewBatch()
	defer b.Close()
	var key []byte
	inPebble := 0
	for i, r := range refs {
		if i == 0 || r.User != refs[i-1].User {
			deltas = append(deltas, userDelta{st: s.queues[s.stripe(r.User)].users[r.User], user: r.User})
		}
		d := &deltas[len(deltas)-1]
		if r.Seq == 0 || (d.st != nil && r.Seq >= d.st.next) {
			continue // never issued
		}
		if d.st != nil {
			if i, ok := d.st.findHot(r.Seq); ok {
				if !expiredAt.IsZero() && !isExpired(d.st.hot[i].expires, expiredAt) {
					continue
				}
				d.st.removeHot(i)
				d.hotSeqs = append(d.hotSeqs, r.Seq)
				continue
			}
		}
		key = appendQueueKey(key[:0], r.User, r.Seq)
		// An item this process committed and has not deleted exists: an
		// Ack needs no read (a point lookup in a large memtable cost ~4 µs
		// per routed message). Expiry reads it anyway for its expiry time.
		known := d.st != nil && expiredAt.IsZero() && d.st.dropLive(r.Seq)
		if !known {
			v, ok, err := get(db, key)
			if err != nil {
				return 0, 0, err
			}
			if !ok {
				continue
			}
			if !expiredAt.IsZero() {
				// Re-check: the item may have been replaced since the caller
				// saw it (account deleted and queue restarted at seq 1).
				exp, err := decodeQueueExpires(v)
				if err != nil {
					return 0, 0, fmt.Errorf("item %d of %q: %w", r.Seq, r.User, err)
				}
				if !isExpired(exp, expiredAt) {
					continue
				}
			}
			if d.st != nil {
				d.st.dropLive(r.Seq)
			}
		}
		// A queue key is set once (seqs are never reissued while the key
		// can exist; DeleteAccount's range delete separates a restarted
		// queue's keys from the old ones) and deleted once (existence is
		// checked under the stripe lock), which is SingleDelete's contract.
		// Its reward: when the delete meets its set in a flush, both
		// vanish, so a message acknowledged before its memtable is flushed
		// never reaches an sstable or a compaction.
		if err := b.SingleDelete(key, nil); err != nil {
			return 0, 0, err
		}
		d.n++
		d.maxSeq = r.Seq // refs are sorted
		inPebble++
	}
	hot := 0
	for i := range deltas {
		if d := &deltas[i]; len(d.hotSeqs) > 0 {
			d.st.count -= len(d.hotSeqs)
			hot += len(d.hotSeqs)
			pos = s.journal.ack(d.user, d.hotSeqs)
		}
	}
	s.queued.Add(-int64(hot))
	total = hot
	if inPebble == 0 {
		return total, pos, nil
	}
	for i := range deltas {
		d := &deltas[i]
		if d.n == 0 {
			continue
		}
		var high uint64
		if d.st != nil {
			high = d.st.high
		} else if h, err := queueHigh(db, d.user); err != nil {
			return total, pos, fmt.Errorf("queue of %q: %w", d.user, err)
		} else {
			high = h
		}
		if d.maxSeq <= high {
			d.maxSeq = 0 // mark already high enough
			continue
		}
		if err := b.Set(pointKey(tagQueueHigh, d.user), encodeUint(d.maxSeq), nil); err != nil {
			return total, pos, err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return total, pos, err
	}
	s.queued.Add(-int64(inPebble))
	total += inPebble
	for _, d := range deltas {
		if d.st == nil || d.n == 0 {
			continue
		}
		d.st.count -= d.n
		if d.maxSeq > 0 {
			d.st.high = d.maxSeq
		}
	}
	return total, pos, nil
}
