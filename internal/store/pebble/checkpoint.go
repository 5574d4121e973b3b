package pebble

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// checkpointTick is how often the checkpoint loop looks at the journal.
const checkpointTick = time.Second

// slowCheckpoint is how long a checkpoint may hold every queue stripe (one
// Pebble fsync, normally) before it is logged: queue operations wait
// meanwhile.
const slowCheckpoint = 50 * time.Millisecond

// replayJournal moves what the journal's segments above the mark hold into
// Pebble and deletes every segment file (see journal.go). It returns the id
// the next segment must have: above every id used so far, so that the mark
// stays meaningful.
func (s *Store) replayJournal(db *pebble.DB) (uint64, error) {
	dir := filepath.Join(s.dir, journalDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("queue journal: %w", err)
	}
	ids, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	mark := uint64(0)
	if v, ok, err := get(db, []byte(keyJournalMark)); err != nil {
		return 0, fmt.Errorf("queue journal: read mark: %w", err)
	} else if ok {
		if mark, err = decodeUint("queue journal mark", v); err != nil {
			return 0, err
		}
	}
	if len(ids) == 0 {
		return mark + 1, nil
	}

	type replayed struct {
		items map[uint64]journalRecord
		high  uint64 // highest seq put since the last drop
	}
	users := map[string]*replayed{}
	user := func(name string) *replayed {
		u := users[name]
		if u == nil {
			u = &replayed{items: map[uint64]journalRecord{}}
			users[name] = u
		}
		return u
	}
	last := mark
	for _, id := range ids {
		last = max(last, id)
		if id <= mark {
			continue // moved by a checkpoint that committed; only the unlink was lost
		}
		data, err := os.ReadFile(filepath.Join(dir, segmentName(id)))
		if err != nil {
			return 0, fmt.Errorf("queue journal: %w", err)
		}
		n := scanSegment(data, func(r journalRecord) {
			switch r.typ {
			case recPut:
				u := user(r.user)
				u.items[r.seq] = r
				u.high = max(u.high, r.seq)
			case recAck:
				u := user(r.user)
				for _, seq := range r.seqs {
					delete(u.items, seq)
				}
			case recDrop:
				users[r.user] = &replayed{items: map[uint64]journalRecord{}}
			}
		})
		if n < len(data) {
			s.log.Warn("queue journal: ignoring a torn or corrupt tail", "segment", segmentName(id), "bytes", len(data)-n)
		}
	}

	b := db.NewBatch()
	defer b.Close()
	moved := 0
	var key, val []byte
	for name, u := range users {
		for seq, r := range u.items {
			key = appendQueueKey(key[:0], name, seq)
			val = appendQueueItem(val[:0], r.stored, r.expires, r.stanza)
			if err := b.Set(key, val, nil); err != nil {
				return 0, fmt.Errorf("queue journal: replay: %w", err)
			}
			moved++
		}
		if u.high == 0 {
			continue
		}
		high, err := queueHigh(db, name)
		if err != nil {
			return 0, fmt.Errorf("queue journal: replay: %w", err)
		}
		if u.high > high {
			if err := b.Set(pointKey(tagQueueHigh, name), encodeUint(u.high), nil); err != nil {
				return 0, fmt.Errorf("queue journal: replay: %w", err)
			}
		}
	}
	if err := b.Set([]byte(keyJournalMark), encodeUint(last), nil); err != nil {
		return 0, fmt.Errorf("queue journal: replay: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("queue journal: replay: %w", err)
	}
	if err := removeSegments(dir, last); err != nil { // last is the highest id
		return 0, err
	}
	if err := syncDir(dir); err != nil {
		return 0, fmt.Errorf("queue journal: %w", err)
	}
	s.log.Info("queue journal replayed", "segments", len(ids), "items", moved)
	return last + 1, nil
}

// checkpoint ends the current segment and moves the hot items of the
// segments before it into Pebble (with all, of the one it ended too),
// raises the qh/ marks the journal got ahead of, and deletes those
// segments. The segment just ended keeps its items hot until the next
// checkpoint: under load a checkpoint otherwise met every message still in
// flight (about 1,000-2,500 at 13,000 msgs/s) and moved it into Pebble a
// few milliseconds before its acknowledgement deleted it there. It holds every queue stripe from the scan to the end of
// the commit: no Enqueue, Ack or DeleteAccount can interleave, so an item
// is either hot or in Pebble and a qh/ write never races another. The
// commit does not wait for the disk (see below), so the pause is the scan
// and a memtable apply, every few seconds.
//
// Until the log is synced, a crash may lose the batch; the segments are
// still there then and replay moves the items again. Later writes that
// reached the disk (an ack's SingleDelete of a moved item) imply the batch
// did too: Pebble's log is written in order.
func (s *Store) checkpoint(db *pebble.DB, all bool) error {
	s.ckpt.Lock()
	defer s.ckpt.Unlock()
	j := s.journal
	old, err := j.rotate()
	if err != nil {
		return err
	}
	if !all {
		old-- // ids start at 1: 0 moves nothing, and the mark stays below every segment
	}
	start := time.Now()
	s.writers.Lock()
	for i := range s.queues {
		s.queues[i].mu.Lock()
	}
	n, err := s.moveHotLocked(db, old)
	for i := range s.queues {
		s.queues[i].mu.Unlock()
	}
	s.writers.Unlock()
	if held := time.Since(start); held > slowCheckpoint {
		s.log.Warn("queue journal: slow checkpoint held the queues", "held", held, "moved", n)
	}
	if err != nil {
		return fmt.Errorf("queue journal: checkpoint: %w", err)
	}
	// The batch was committed without waiting for the disk, so that the
	// queues were held for the memtable apply only, not for an fsync. The
	// segments go once the log, with the batch and its mark, is synced.
	if err := db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("queue journal: checkpoint: sync: %w", err)
	}
	if err := j.removeThrough(old); err != nil {
		return err
	}
	if n > 0 {
		s.log.Debug("queue journal checkpoint", "segment", old, "moved", n)
	}
	return nil
}

// moveHotLocked writes the hot items of segments up to old and the qh/
// marks into Pebble, then forgets the items. Every stripe must be held.
func (s *Store) moveHotLocked(db *pebble.DB, old uint64) (int, error) {
	b := db.NewBatch()
	defer b.Close()
	var key, val []byte
	n := 0
	for i := range s.queues {
		for user, st := range s.queues[i].users {
			for _, h := range st.hot {
				if h.seg > old {
					break // ascending seq is ascending segment
				}
				key = appendQueueKey(key[:0], user, h.seq)
				val = appendQueueItem(val[:0], h.stored, h.expires, h.stanza)
				if err := b.Set(key, val, nil); err != nil {
					return 0, err
				}
				n++
			}
			if st.jhigh > st.high {
				if err := b.Set(pointKey(tagQueueHigh, user), encodeUint(st.jhigh), nil); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := b.Set([]byte(keyJournalMark), encodeUint(old), nil); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, err
	}
	for i := range s.queues {
		for _, st := range s.queues[i].users {
			k := 0
			for k < len(st.hot) && st.hot[k].seg <= old {
				if len(st.live) < maxLive {
					st.live = append(st.live, st.hot[k].seq) // in Pebble now: Ack needs no read
				}
				k++
			}
			if k > 0 {
				st.hot = append(st.hot[:0:0], st.hot[k:]...)
				if len(st.hot) == 0 {
					st.hot = nil
				}
			}
			st.high = max(st.high, st.jhigh)
		}
		s.trimStates(&s.queues[i])
	}
	return n, nil
}

// trimStates evicts idle states from a stripe that outgrew its bound while
// its states held hot items (such states cannot be evicted).
func (s *Store) trimStates(q *queueStripe) {
	for user, st := range q.users {
		if len(q.users) <= s.maxPerStrip {
			return
		}
		if st.evictable() {
			delete(q.users, user)
		}
	}
}

// checkpointLoop runs checkpoints when the journal asks (segment over its
// size) or its segment has been open too long, until Close.
func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointTick)
	defer t.Stop()
	failed := false // after a failure, retry on ticks only, not on every append's kick
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-s.journal.kick:
			if failed {
				continue
			}
		case now := <-t.C:
			if !s.journal.due(now) {
				continue
			}
		}
		db, err := s.enter()
		if err != nil {
			return
		}
		err = s.checkpoint(db, false)
		s.mu.RUnlock()
		if failed = err != nil; failed {
			s.log.Error("queue journal checkpoint failed", "err", err)
		}
	}
}

// closeJournal stops the checkpoint loop, moves every hot item into Pebble
// and deletes the journal, so the next Open has nothing to replay. s.mu
// must be held for writing.
func (s *Store) closeJournal(db *pebble.DB) error {
	if s.journal == nil {
		return nil
	}
	err := s.checkpoint(db, true)
	if cerr := s.journal.close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.journal.removeThrough(^uint64(0))
	}
	return err
}

// expiredHot returns the hot items expired at now, for Expire to delete
// through deleteQueueItems like any other (which checks expiry again
// under the stripe locks).
func (s *Store) expiredHot(now time.Time) []store.QueueRef {
	var refs []store.QueueRef
	for i := range s.queues {
		q := &s.queues[i]
		q.mu.Lock()
		for user, st := range q.users {
			for _, h := range st.hot {
				if isExpired(h.expires, now) {
					refs = append(refs, store.QueueRef{User: user, Seq: h.seq})
				}
			}
		}
		q.mu.Unlock()
	}
	return refs
}
