package pebble

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	return openDir(t, t.TempDir(), opts)
}

// openDir opens (or reopens) the store in dir, quiet unless opts has a
// logger, and fails the test if it cannot.
func openDir(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"fsync", Options{Durability: DurabilityFsync}},
		{"os", Options{Durability: DurabilityOS}},
		{"fsync-nojournal", Options{Durability: DurabilityFsync, DisableQueueJournal: true}},
		{"os-nojournal", Options{Durability: DurabilityOS, DisableQueueJournal: true}},
		// A checkpoint after nearly every record, concurrent with the
		// operations under test.
		{"os-tinyjournal", Options{Durability: DurabilityOS, JournalSegmentSize: 1}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			opts := mode.opts
			opts.Logger = quiet
			storetest.Run(t, func(t *testing.T) store.Store {
				s, err := Open(t.TempDir(), opts)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			})
			storetest.RunPersistent(t, func(dir string) (store.Store, error) {
				return Open(dir, opts)
			})
		})
	}
}

// TestConformanceTinyCache runs the suite with one cached queue state per
// stripe, so that eviction and reloading happen all the time (with the
// journal, at every checkpoint).
func TestConformanceTinyCache(t *testing.T) {
	forJournalModes(t, func(t *testing.T, noJournal bool) {
		opts := Options{Durability: DurabilityOS, Logger: quiet, MaxQueueStates: 1, DisableQueueJournal: noJournal, JournalSegmentSize: 1}
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := Open(t.TempDir(), opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		})
	})
}

// forJournalModes runs fn with the queue journal and without it.
func forJournalModes(t *testing.T, fn func(t *testing.T, noJournal bool)) {
	t.Run("journal", func(t *testing.T) { fn(t, false) })
	t.Run("nojournal", func(t *testing.T) { fn(t, true) })
}

func TestLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

const lockHelperEnv = "PARLEY_PEBBLE_LOCK_HELPER_DIR"

// TestLockedByOtherProcess holds the directory in a child process (this test
// binary, re-run with lockHelperEnv set) and checks that Open reports
// ErrLocked, and succeeds once the child has closed.
func TestLockedByOtherProcess(t *testing.T) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		s, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin) // hold the lock until the parent closes stdin
		if err := s.Close(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByOtherProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		_ = stdin.Close()
		_ = cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	_, err = Open(dir, Options{Logger: quiet})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("Open while another process holds the directory: %v, want ErrLocked", err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{Durability: "sometimes"}); err == nil {
		t.Error("Open accepted an unknown durability")
	}
	// A plain file where the directory should be: an error, but not ErrLocked.
	f := t.TempDir() + "/file"
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f, Options{Logger: quiet}); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("Open on a file: %v", err)
	}
}

func TestLayoutVersion(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{quiet}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte(keyLayout), []byte{layoutVersion + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Logger: quiet}); err == nil {
		t.Fatal("Open accepted a database with another key layout")
	}
	// The failed Open released the lock.
	db, err = pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{quiet}})
	if err != nil {
		t.Fatalf("reopen after failed Open: %v", err)
	}
	_ = db.Close()
}

// TestLayoutUpgrade opens a layout-1 database (before shared archive
// stanzas): it opens, and its marker goes up so that an older build
// refuses it from then on.
func TestLayoutUpgrade(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{quiet}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte(keyLayout), []byte{1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openDir(t, dir, Options{})
	v, ok, err := get(s.db, []byte(keyLayout))
	if err != nil || !ok || !bytes.Equal(v, []byte{layoutVersion}) {
		t.Fatalf("layout after opening a layout-1 database: %v %v %v", v, ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidNames(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	for _, user := range []string{"", "a\x00b"} {
		errs := map[string]error{
			"CreateAccount": s.CreateAccount(ctx, store.Account{Username: user}),
			"Enqueue":       second(s.Enqueue(ctx, user, nil, time.Time{}, 0)),
			"PutRosterItem": second(s.PutRosterItem(ctx, user, store.RosterItem{JID: "x@y"})),
			"PutVCard":      s.PutVCard(ctx, user, nil),
			"Pending":       second(s.Pending(ctx, user, 0, 0)),
			"DeleteAccount": s.DeleteAccount(ctx, user),
		}
		for name, err := range errs {
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("%s(%q): %v, want ErrInvalidName", name, user, err)
			}
		}
	}
	for _, contact := range []string{"", "x\x00@y"} {
		if _, err := s.PutRosterItem(ctx, "alice", store.RosterItem{JID: contact}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("PutRosterItem(JID %q): %v, want ErrInvalidName", contact, err)
		}
	}
	if _, err := s.PutRosterItem(ctx, "alice", store.RosterItem{JID: "x@y", Subscription: "maybe"}); err == nil {
		t.Error("PutRosterItem accepted an unknown subscription")
	}
}

func second[T any](_ T, err error) error { return err }

func TestCanceledContext(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Enqueue(ctx, "alice", nil, time.Time{}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue: %v", err)
	}
	if _, err := s.Expire(ctx, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("Expire: %v", err)
	}
}

func TestCodec(t *testing.T) {
	it := store.RosterItem{JID: "c@x", Name: "C", Subscription: store.SubFrom,
		AskOut: true, PendingIn: true, Approved: true, InRoster: true, Groups: []string{"a", "", "b"}}
	v, err := encodeRosterItem(it)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRosterItem("c@x", v)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(it) {
		t.Fatalf("roster item round trip:\n got %+v\nwant %+v", got, it)
	}
	for i := range v {
		if _, err := decodeRosterItem("c@x", v[:i]); err == nil {
			t.Fatalf("truncated roster item (%d of %d bytes) decoded", i, len(v))
		}
	}
	v[0] = 99
	if _, err := decodeRosterItem("c@x", v); err == nil {
		t.Fatal("unknown format decoded")
	}

	a := store.Account{Username: "u", Created: time.Unix(1, 2).UTC(),
		SHA1: store.SCRAM{Salt: []byte("s"), Iterations: 1, StoredKey: []byte("k"), ServerKey: []byte("K")}}
	av := encodeAccount(a)
	ga, err := decodeAccount("u", av)
	if err != nil || !ga.Created.Equal(a.Created) || string(ga.SHA1.ServerKey) != "K" || ga.SHA1.Iterations != 1 {
		t.Fatalf("account round trip: %+v, %v", ga, err)
	}
	if _, err := decodeAccount("u", append(av, 0)); err == nil {
		t.Fatal("account with trailing bytes decoded")
	}

	qv := appendQueueItem(nil, time.Unix(5, 6), time.Time{}, []byte("stanza"))
	q, err := decodeQueueItem(7, qv)
	if err != nil || q.Seq != 7 || !q.Expires.IsZero() || !q.Stored.Equal(time.Unix(5, 6)) || string(q.Stanza) != "stanza" {
		t.Fatalf("queue item round trip: %+v, %v", q, err)
	}
	k := appendQueueKey(nil, "al/ice", 1<<40+3)
	if u, seq, ok := parseQueueKey(k); !ok || u != "al/ice" || seq != 1<<40+3 {
		t.Fatalf("parseQueueKey(%q) = %q, %d, %v", k, u, seq, ok)
	}
}

func cachedStates(s *Store) int {
	n := 0
	for i := range s.queues {
		s.queues[i].mu.Lock()
		n += len(s.queues[i].users)
		s.queues[i].mu.Unlock()
	}
	return n
}

func TestQueueStateBounded(t *testing.T) { forJournalModes(t, testQueueStateBounded) }

func testQueueStateBounded(t *testing.T, noJournal bool) {
	s := openTest(t, Options{Durability: DurabilityOS, MaxQueueStates: 1024, DisableQueueJournal: noJournal})
	defer s.Close()
	ctx := t.Context()

	// Reads of empty queues (Depth at every login) cache nothing.
	for i := range 100 {
		if _, err := s.Depth(ctx, fmt.Sprintf("idle%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := cachedStates(s); n != 0 {
		t.Fatalf("%d queue states cached after reading empty queues", n)
	}

	// bob's tail is acked, then his state is pushed out by many others:
	// his next seq must still be new, as after a crash (the state is lost
	// without anything being written).
	var bob []uint64
	var seq uint64
	var err error
	for range 3 {
		seq, err := s.Enqueue(ctx, "bob", []byte("m"), time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		bob = append(bob, seq)
	}
	if err := s.Ack(ctx, "bob", bob[2]); err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if _, err := s.Enqueue(ctx, fmt.Sprintf("user%d", i), []byte("m"), time.Time{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// 4 per stripe, and a stripe can only overflow by one. With the
	// journal, states holding hot items wait for a checkpoint to go.
	checkpointNow(t, s)
	if n := cachedStates(s); n > 1024+numStripes {
		t.Fatalf("%d queue states cached, bound is 1024", n)
	}
	seq, err = s.Enqueue(ctx, "bob", []byte("m"), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seq <= bob[2] {
		t.Fatalf("bob got seq %d again after eviction", seq)
	}
	if d, err := s.Depth(ctx, "bob"); err != nil || d != 3 {
		t.Fatalf("Depth(bob) = %d, %v", d, err)
	}
}

// TestDeleteAccountDuringEnqueue deletes an account while senders keep
// enqueueing to it; afterwards the in-memory count must match what is on
// disk (nothing orphaned behind the range delete, nothing counted twice).
func TestDeleteAccountDuringEnqueue(t *testing.T) { forJournalModes(t, testDeleteAccountDuringEnqueue) }

func testDeleteAccountDuringEnqueue(t *testing.T, noJournal bool) {
	s := openTest(t, Options{Durability: DurabilityFsync, DisableQueueJournal: noJournal})
	defer s.Close()
	ctx := t.Context()
	for range 20 {
		if err := s.CreateAccount(ctx, store.Account{Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 8 {
					if _, err := s.Enqueue(ctx, "alice", []byte("m"), time.Time{}, 0); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		if err := s.DeleteAccount(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		d, err := s.Depth(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		items, err := s.Pending(ctx, "alice", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d != len(items) {
			t.Fatalf("Depth %d but %d items stored", d, len(items))
		}
		for i := 1; i < len(items); i++ {
			if items[i].Seq <= items[i-1].Seq {
				t.Fatalf("seqs out of order: %d after %d", items[i].Seq, items[i-1].Seq)
			}
		}
		if err := s.Ack(ctx, "alice", seqsOf(items)...); err != nil {
			t.Fatal(err)
		}
	}
}

func seqsOf(items []store.QueueItem) []uint64 {
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	return seqs
}

// TestSeqsSurviveStateLoss drops all in-memory queue state, as a crash
// would, after a queue drained and after its tail was acked: seqs must not
// be issued again, because nothing but the qh/ marks written with the acks
// remembers them.
func TestSeqsSurviveStateLoss(t *testing.T) { forJournalModes(t, testSeqsSurviveStateLoss) }

func testSeqsSurviveStateLoss(t *testing.T, noJournal bool) {
	s := openTest(t, Options{Durability: DurabilityOS, DisableQueueJournal: noJournal})
	defer s.Close()
	ctx := t.Context()
	enqueue := func(user string) uint64 {
		t.Helper()
		seq, err := s.Enqueue(ctx, user, []byte("m"), time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	forget := func() { forgetQueueStates(t, s) }
	a1, a2 := enqueue("alice"), enqueue("alice")
	b1, b2, b3 := enqueue("bob"), enqueue("bob"), enqueue("bob")
	if err := s.Ack(ctx, "alice", a1, a2); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "bob", b3); err != nil {
		t.Fatal(err)
	}
	forget()
	if seq := enqueue("alice"); seq <= a2 {
		t.Errorf("alice: seq %d reissued after her queue drained", seq)
	}
	// bob's ack ran with his state not in memory.
	forget()
	if err := s.Ack(ctx, "bob", b1, b2); err != nil {
		t.Fatal(err)
	}
	forget()
	if seq := enqueue("bob"); seq <= b3 {
		t.Errorf("bob: seq %d reissued after his queue drained", seq)
	}
}

// TestSingleDeleteNoResurrection: queue items are deleted with
// SingleDelete, which is undefined if a key was set twice. A queue key is
// set twice only when DeleteAccount restarts a user's queue at seq 1; its
// range delete must keep the old items buried through flushes and
// compactions, and acked items must stay deleted whichever way the ack
// found them (remembered as just written, or looked up).
func TestSingleDeleteNoResurrection(t *testing.T) { forJournalModes(t, testSingleDeleteNoResurrection) }

func testSingleDeleteNoResurrection(t *testing.T, noJournal bool) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Durability: DurabilityOS, DisableQueueJournal: noJournal})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	enqueue := func(user, body string) uint64 {
		t.Helper()
		seq, err := s.Enqueue(ctx, user, []byte(body), time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	settle := func() {
		t.Helper()
		checkpointNow(t, s)
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(user string, want ...string) {
		t.Helper()
		items, err := s.Pending(ctx, user, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, string(it.Stanza))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s pending %q, want %q", user, got, want)
		}
	}
	if err := s.CreateAccount(ctx, store.Account{Username: "alice", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	old1, _ := enqueue("alice", "old1"), enqueue("alice", "old2")
	settle() // the old items in an sstable, below what follows
	if err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if seq := enqueue("alice", "new1"); seq != old1 {
		t.Fatalf("queue restarted at seq %d after DeleteAccount, want %d (the key reuse under test)", seq, old1)
	}
	enqueue("alice", "new2")
	b1 := enqueue("bob", "b1")
	enqueue("bob", "b2")
	if err := s.AckBatch(ctx, []store.QueueRef{{User: "alice", Seq: old1}, {User: "bob", Seq: b1}}); err != nil {
		t.Fatal(err)
	}
	pending("alice", "new2")
	settle()
	pending("alice", "new2")
	pending("bob", "b2")
	forgetQueueStates(t, s) // the next acks look their items up
	if err := s.AckBatch(ctx, []store.QueueRef{{User: "alice", Seq: old1 + 1}, {User: "bob", Seq: b1 + 1}}); err != nil {
		t.Fatal(err)
	}
	settle()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{Durability: DurabilityOS, DisableQueueJournal: noJournal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pending("alice")
	pending("bob")
	for _, u := range []string{"alice", "bob"} {
		if n, err := s.Depth(ctx, u); err != nil || n != 0 {
			t.Fatalf("Depth(%s) = %d, %v after reopen", u, n, err)
		}
	}
}

// forgetQueueStates drops every cached queue state, as eviction would.
// With the journal, states are evictable only after a checkpoint, so it
// runs one first.
func forgetQueueStates(t testing.TB, s *Store) {
	t.Helper()
	checkpointNow(t, s)
	for i := range s.queues {
		s.queues[i].mu.Lock()
		clear(s.queues[i].users)
		s.queues[i].mu.Unlock()
	}
}

// checkpointNow moves the journal's hot items into Pebble, as the
// checkpoint loop would; a no-op without the journal.
func checkpointNow(t testing.TB, s *Store) {
	t.Helper()
	if s.journal == nil {
		return
	}
	db, err := s.enter()
	if err != nil {
		t.Fatal(err)
	}
	defer s.mu.RUnlock()
	if err := s.checkpoint(db, true); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
}
