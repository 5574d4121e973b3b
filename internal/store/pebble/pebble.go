// Package pebble is Parley's embedded default store backend, built on
// CockroachDB's Pebble LSM key-value store. One directory holds one
// database; one process at a time may open it (see ErrLocked).
//
// # Durability
//
// With Durability "fsync" (the default) every write that a client or the
// router relies on — Enqueue and all account, roster and vCard writes —
// returns only after the write-ahead log has been fsynced. That is cheap
// under load because Pebble's commit pipeline group-commits concurrent
// synchronous writers into one fsync, so throughput comes from many senders
// committing at once rather than from batching in Parley. Queue deletions
// (Ack, expiry) do not wait for an fsync: losing one in a crash only
// resurrects a message that was already delivered, and clients de-duplicate
// redeliveries by stanza id.
//
// With Durability "os" nothing waits for an fsync: writes reach the OS page
// cache and survive a crash of Parley but not a crash of the machine or a
// power loss, where the last moments of acknowledged messages and account
// changes can be lost. It trades that for several times the single-writer
// throughput; choose it for tests, throwaway deployments, or storage that
// is itself battery-backed. Close syncs in both modes.
//
// Queue items go through the queue journal (journal.go) unless
// Options.DisableQueueJournal: same durability, but an item acknowledged
// before the next checkpoint never touches Pebble.
//
// See keys.go for the key layout and codec.go for the value encoding.
package pebble

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-im/parley/internal/store"
)

// Durability modes for Options.Durability.
const (
	// DurabilityFsync waits for the write-ahead log to reach stable storage
	// before a write returns (except queue deletions, see the package doc).
	DurabilityFsync = "fsync"
	// DurabilityOS leaves flushing to the operating system: a machine crash
	// or power loss can lose recent writes.
	DurabilityOS = "os"
)

// Defaults for the zero Options.
const (
	DefaultCacheSize      = 64 << 20
	DefaultMemTableSize   = 32 << 20
	DefaultMaxQueueStates = 1 << 16
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Durability is DurabilityFsync ("fsync", the default when empty) or
	// DurabilityOS ("os"). See the package doc for the tradeoff.
	Durability string
	// Logger receives Pebble's own messages and background errors; nil
	// means slog.Default().
	Logger *slog.Logger
	// CacheSize is the block cache size in bytes; 0 means DefaultCacheSize.
	CacheSize int64
	// MemTableSize is the size in bytes of one memtable; 0 means
	// DefaultMemTableSize. Bigger memtables flush less often under a
	// sustained queue write rate.
	MemTableSize uint64
	// MaxQueueStates bounds the per-user queue bookkeeping kept in memory
	// (next seq, count: roughly 100 bytes a user); 0 means
	// DefaultMaxQueueStates. Beyond the bound, idle users are dropped and
	// reloaded from disk (a scan of their queue) on their next queue
	// operation.
	MaxQueueStates int
	// DisableQueueJournal writes every queue item to Pebble directly
	// instead of through the queue journal (journal.go). A journal left by
	// an earlier run is replayed all the same.
	DisableQueueJournal bool
	// JournalSegmentSize is the journal size in bytes after which a
	// checkpoint moves unacknowledged items into Pebble; 0 means
	// DefaultJournalSegment.
	JournalSegmentSize int64
	// JournalSyncGap is the least time between two fsyncs of the queue
	// journal; 0 means DefaultJournalSyncGap, negative no pacing.
	JournalSyncGap time.Duration
	// ObserveJournalSync, if set, is told how long each write and fsync
	// of the queue journal's group commit took (a metric: a slow disk
	// shows here first, as the senders' acknowledgements wait for it).
	ObserveJournalSync func(time.Duration)
}

// ErrLocked is returned (wrapped) by Open when another process, or another
// Store in this process, already has the directory open.
var ErrLocked = errors.New("pebble store: data directory is in use by another process")

// ErrInvalidName is returned (wrapped) for a username or contact JID that
// cannot be a key: empty, or containing a NUL byte.
var ErrInvalidName = errors.New("pebble store: invalid name")

// formatMajorVersion is pinned rather than pebble.FormatNewest: Pebble
// ratchets a database up to the configured version on Open and never back,
// so a dependency bump must not silently make the data directory unreadable
// by the previous Parley release.
const formatMajorVersion = pebble.FormatValueSeparation

// numStripes is the number of lock stripes: enough that unrelated users
// rarely share one, small enough to be a fixed array.
const numStripes = 256

// Store is the Pebble backend; it implements store.Store and is safe for
// concurrent use.
type Store struct {
	// mu guards db against Close: every operation holds it for reading, so
	// Close (the only writer) waits for operations in progress and later
	// operations see db == nil and fail with store.ErrClosed instead of
	// touching a closed Pebble, which would panic.
	mu   sync.RWMutex
	db   *pebble.DB
	lock *pebble.Lock

	log         *slog.Logger
	dir         string
	syncWrites  *pebble.WriteOptions // account/roster/vcard writes and Enqueue
	maxPerStrip int
	seed        maphash.Seed

	// users serialises read-modify-write of one user's account and roster
	// (create-if-absent, version bumps, DeleteAccount): the
	// stripe's mutex is the owner of those keys. These are held across the
	// commit because such writes are rare and must not interleave.
	users [numStripes]paddedMutex
	// queues holds the in-memory queue bookkeeping, striped the same way;
	// see queue.go.
	queues [numStripes]queueStripe
	// writers is held shared by the queue writers (Enqueue's append,
	// deleteQueueItems) around their stripe sections and exclusively by a
	// checkpoint while it takes every stripe: one wait for the writers
	// in flight instead of 256 contended locks in a row, each a trip
	// through a busy scheduler (50-200 ms at max rate with the archive).
	writers sync.RWMutex
	// journal keeps short-lived queue items out of Pebble (journal.go); nil
	// when Options.DisableQueueJournal.
	journal *journal
	// ckpt serialises checkpoints with each other and with DeleteAccount,
	// whose range delete must not be overtaken by a checkpoint moving the
	// user's items into Pebble.
	ckpt sync.Mutex
	// archive, striped by owner, is held shared by an append that stores
	// a stanza another owner's copy refers to, and exclusively by the
	// deletion of that owner's whole archive (DeleteArchive,
	// DeleteAccount) from its last step before the range deletion: such
	// an append after that step would leave a copy whose stanza is gone
	// (archive.go).
	archive [numStripes]sync.RWMutex
	// archiveDel serialises deletions of whole archives: each rewrites
	// copies in other archives (read, then write back), and a deletion of
	// such an archive in between would be undone by the write.
	archiveDel sync.Mutex
	// deleting holds, for an archive whose deletion walks it while
	// appends go on (beginArchiveDeletion), the positions of the holders
	// appended to it meanwhile; deletingN counts its entries, so that
	// appends look at it only while a deletion runs.
	deletingMu sync.Mutex
	deleting   map[string][][]byte
	deletingN  atomic.Int32
	stopCkpt   chan struct{}
	stopOnce   sync.Once
	ckptDone   chan struct{}
	// queued is the number of queue items in the store: counted once at
	// Open, then kept by Enqueue and the deletions, for the depth metric.
	queued atomic.Int64
}

// QueueTotal returns the number of messages waiting in all users' queues.
func (s *Store) QueueTotal() int64 { return s.queued.Load() }

// countQueued counts every queue item; run once at Open (a scan of the
// queue keys, proportional to what is waiting).
func countQueued(db *pebble.DB) (int64, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(tagQueue), UpperBound: []byte("q0")})
	if err != nil {
		return 0, err
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		if _, _, ok := parseQueueKey(it.Key()); ok {
			n++
		}
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return n, nil
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte // one cache line per stripe: no false sharing between stripes
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{log: opts.Logger, dir: dir, seed: maphash.MakeSeed()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "store", "dir", dir)
	switch opts.Durability {
	case "", DurabilityFsync:
		s.syncWrites = pebble.Sync
	case DurabilityOS:
		s.syncWrites = pebble.NoSync
	default:
		return nil, fmt.Errorf("pebble store: unknown durability %q (want %q or %q)", opts.Durability, DurabilityFsync, DurabilityOS)
	}
	maxStates := opts.MaxQueueStates
	if maxStates <= 0 {
		maxStates = DefaultMaxQueueStates
	}
	s.maxPerStrip = max(1, maxStates/numStripes)
	for i := range s.queues {
		q := &s.queues[i]
		q.cond.L = &q.mu
		q.users = make(map[string]*queueState)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pebble store: create data directory: %w", err)
	}
	// Take the directory lock ourselves rather than inside pebble.Open so
	// that "somebody else has it" can be told apart from other failures.
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		if isLockConflict(err) {
			return nil, fmt.Errorf("open %s: %w (%v)", dir, ErrLocked, err)
		}
		return nil, fmt.Errorf("pebble store: lock %s: %w", dir, err)
	}
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	memTable := opts.MemTableSize
	if memTable == 0 {
		memTable = DefaultMemTableSize
	}
	// Pebble reserves memtable memory from the block cache; leave room for
	// two (active + flushing) so blocks actually get cacheSize. Without it
	// the default sizes left the block cache empty (found by the archive
	// benchmark: every page read went to disk blocks).
	cache := pebble.NewCache(cacheSize + 2*int64(memTable))
	logger := pebbleLogger{s.log}
	po := &pebble.Options{
		Cache:              cache,
		MemTableSize:       memTable,
		FormatMajorVersion: formatMajorVersion,
		Lock:               lock,
		Logger:             logger,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { s.log.Error("pebble background error", "err", err) },
			DiskSlow: func(info pebble.DiskSlowInfo) {
				s.log.Warn("pebble: disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				s.log.Warn("pebble: write stall begins", "reason", info.Reason)
			},
			WriteStallEnd: func() { s.log.Info("pebble: write stall ends") },
		},
	}
	db, err := pebble.Open(dir, po)
	cache.Unref() // the DB holds its own reference from here on
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("pebble store: open %s: %w", dir, err)
	}
	s.db, s.lock = db, lock
	if err := s.checkLayout(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, err
	}
	// A journal left by a run that did not close the store (a crash) goes
	// into Pebble before anything reads the queue.
	next, err := s.replayJournal(db)
	if err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, err
	}
	n, err := countQueued(db)
	if err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("pebble store: count queue items: %w", err)
	}
	s.queued.Store(n)
	if !opts.DisableQueueJournal {
		limit := opts.JournalSegmentSize
		if limit <= 0 {
			limit = DefaultJournalSegment
		}
		j, err := openJournal(filepath.Join(dir, journalDirName), next, s.syncWrites == pebble.Sync, limit)
		if err != nil {
			_ = db.Close()
			_ = lock.Close()
			return nil, err
		}
		j.observeSync = opts.ObserveJournalSync
		j.log = s.log
		switch j.syncGap = opts.JournalSyncGap; {
		case j.syncGap == 0:
			j.syncGap = DefaultJournalSyncGap
		case j.syncGap < 0:
			j.syncGap = 0
		}
		s.journal = j
		s.stopCkpt, s.ckptDone = make(chan struct{}), make(chan struct{})
		go s.checkpointLoop()
	}
	return s, nil
}

// isLockConflict reports whether a LockDirectory error means the lock is
// held: fcntl reports EAGAIN or EACCES for another process, and Pebble
// refuses a second lock from this process with a plain message.
func isLockConflict(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) { // creating the LOCK file failed: not a conflict
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// checkLayout stamps a new database with the key layout version and refuses
// a database written with a different one.
func (s *Store) checkLayout() error {
	v, closer, err := s.db.Get([]byte(keyLayout))
	if errors.Is(err, pebble.ErrNotFound) {
		if err := s.db.Set([]byte(keyLayout), []byte{layoutVersion}, pebble.Sync); err != nil {
			return fmt.Errorf("pebble store: write layout version: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("pebble store: read layout version: %w", err)
	}
	defer closer.Close()
	if len(v) != 1 || v[0] < minLayoutVersion || v[0] > layoutVersion {
		return fmt.Errorf("pebble store: %s has key layout %v, this build reads %d to %d", s.dir, v, minLayoutVersion, layoutVersion)
	}
	if v[0] < layoutVersion {
		// Layout 1 is a subset of layout 2 (archive values of format 1
		// only); the marker goes up before anything writes the newer
		// formats, so that an older build refuses the database instead
		// of misreading a shared archive stanza.
		if err := s.db.Set([]byte(keyLayout), []byte{layoutVersion}, pebble.Sync); err != nil {
			return fmt.Errorf("pebble store: upgrade layout version: %w", err)
		}
		s.log.Info("pebble store: key layout upgraded", "dir", s.dir, "from", v[0], "to", layoutVersion)
	}
	return nil
}

// Close syncs the log, flushes the memtable and releases the directory
// lock. Operations after Close fail with store.ErrClosed.
func (s *Store) Close() error {
	// The checkpoint loop takes s.mu for reading: stop it before waiting
	// for the write lock.
	if s.stopCkpt != nil {
		s.stopOnce.Do(func() { close(s.stopCkpt) })
		<-s.ckptDone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return store.ErrClosed
	}
	db := s.db
	s.db = nil
	var errs []error
	if err := s.closeJournal(db); err != nil {
		errs = append(errs, err)
	}
	// The explicit sync covers every earlier NoSync write (acks, or
	// everything in DurabilityOS mode); the flush then lets the next Open
	// start without replaying the log.
	if err := db.LogData(nil, pebble.Sync); err != nil {
		errs = append(errs, fmt.Errorf("pebble store: sync: %w", err))
	}
	if err := db.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("pebble store: flush: %w", err))
	}
	if err := db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pebble store: close: %w", err))
	}
	if err := s.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pebble store: unlock: %w", err))
	}
	return errors.Join(errs...)
}

// enter starts an operation: it holds off Close until the matching s.mu.RUnlock
// and fails if the store is closed.
func (s *Store) enter() (*pebble.DB, error) {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return nil, store.ErrClosed
	}
	return s.db, nil
}

func (s *Store) stripe(user string) int {
	return int(maphash.String(s.seed, user) % numStripes)
}

// get returns a copy of the value of key, or nil and false if absent.
func get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v = append([]byte(nil), v...)
	return v, true, closer.Close()
}

// pebbleLogger routes Pebble's log calls to slog.
type pebbleLogger struct{ l *slog.Logger }

// Infof logs at debug level: Pebble reports routine recovery steps (WALs
// found and replayed) on every Open.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble on invariant violations after which it must
// not continue; like Pebble's default logger it does not return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}
