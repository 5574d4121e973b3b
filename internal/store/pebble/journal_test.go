package pebble

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// TestJournalCrashReplay: a child process enqueues, acknowledges, runs a
// checkpoint, deletes and recreates an account, and exits without closing
// the store, as a crash would (the journal's bytes are written; nothing
// moved them into Pebble). Reopened, the store must hold exactly the
// unacknowledged items, with the seqs they had, and issue no seq again.
func TestJournalCrashReplay(t *testing.T) {
	if dir := os.Getenv("PARLEY_JOURNAL_CHILD"); dir != "" {
		journalCrashChild(t, dir)
		os.Exit(0) // no Close: the crash under test
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalCrashReplay$")
	cmd.Env = append(os.Environ(), "PARLEY_JOURNAL_CHILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	segs, err := listSegments(filepath.Join(dir, journalDirName))
	if err != nil || len(segs) == 0 {
		t.Fatalf("child left segments %v, %v; want some to replay", segs, err)
	}

	s := openDir(t, dir, Options{Durability: DurabilityFsync})
	defer s.Close()
	ctx := t.Context()
	want := map[string][]string{
		"alice": {"2:a2", "3:a3", "5:a5"},
		"bob":   {"1:b1", "2:b2"},
		"carol": {"1:c-new"},
	}
	total := 0
	for user, w := range want {
		items, err := s.Pending(ctx, user, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, fmt.Sprintf("%d:%s", it.Seq, it.Stanza))
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s after replay: %q, want %q", user, got, w)
		}
		total += len(w)
	}
	if got := s.QueueTotal(); got != int64(total) {
		t.Errorf("QueueTotal = %d, want %d", got, total)
	}
	for user, last := range map[string]uint64{"alice": 5, "bob": 3, "carol": 1} {
		seq, err := s.Enqueue(ctx, user, []byte("next"), time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last {
			t.Errorf("%s: seq %d issued again after replay (child issued up to %d)", user, seq, last)
		}
	}
	left, err := listSegments(filepath.Join(dir, journalDirName))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] <= slices.Max(segs) {
		t.Errorf("segments after replay %v; want one new segment above %v", left, segs)
	}
}

func journalCrashChild(t *testing.T, dir string) {
	s := openDir(t, dir, Options{Durability: DurabilityFsync})
	ctx := t.Context()
	enqueue := func(user, body string) uint64 {
		seq, err := s.Enqueue(ctx, user, []byte(body), time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	ack := func(user string, seqs ...uint64) {
		if err := s.Ack(ctx, user, seqs...); err != nil {
			t.Fatal(err)
		}
	}
	a1 := enqueue("alice", "a1")
	enqueue("alice", "a2")
	enqueue("alice", "a3")
	checkpointNow(t, s) // a1..a3 in Pebble, their segment gone
	a4 := enqueue("alice", "a4")
	enqueue("alice", "a5")
	ack("alice", a1, a4) // one from Pebble, one hot
	enqueue("bob", "b1")
	enqueue("bob", "b2")
	ack("bob", enqueue("bob", "b3")) // bob's highest seq only in the journal
	if err := s.CreateAccount(ctx, store.Account{Username: "carol", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	enqueue("carol", "c-old1")
	enqueue("carol", "c-old2")
	if err := s.DeleteAccount(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	enqueue("carol", "c-new")
}

// TestJournalMarkSkipsMovedSegment: a crash after a checkpoint committed
// but before it deleted its segment leaves a segment whose items are
// already in Pebble. Replaying it would bring back an item acknowledged
// since; the mark written with the checkpoint must make replay skip it.
func TestJournalMarkSkipsMovedSegment(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, Options{Durability: DurabilityOS})
	ctx := t.Context()
	seq, err := s.Enqueue(ctx, "alice", []byte("m"), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	jdir := filepath.Join(dir, journalDirName)
	segs, err := listSegments(jdir)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	name := filepath.Join(jdir, segmentName(segs[0]))
	saved, err := os.ReadFile(name)
	if err != nil || len(saved) == 0 {
		t.Fatalf("segment %s: %d bytes, %v", name, len(saved), err)
	}
	checkpointNow(t, s)
	if err := s.Ack(ctx, "alice", seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, saved, 0o600); err != nil { // the unlink that was lost
		t.Fatal(err)
	}
	s = openDir(t, dir, Options{Durability: DurabilityOS})
	defer s.Close()
	if items, err := s.Pending(ctx, "alice", 0, 0); err != nil || len(items) != 0 {
		t.Fatalf("Pending after replaying a moved segment: %d items, %v; want none", len(items), err)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("moved segment still there after Open: %v", err)
	}
}

// TestJournalCloseLeavesNothing: Close moves hot items into Pebble and
// removes the journal, so a store closed cleanly needs no replay and the
// items are still there.
func TestJournalCloseLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, Options{Durability: DurabilityOS})
	ctx := t.Context()
	for i := range 3 {
		if _, err := s.Enqueue(ctx, "alice", []byte{'m', byte('0' + i)}, time.Time{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, err := listSegments(filepath.Join(dir, journalDirName)); err != nil || len(segs) != 0 {
		t.Fatalf("segments after Close: %v, %v", segs, err)
	}
	s = openDir(t, dir, Options{Durability: DurabilityOS, DisableQueueJournal: true})
	defer s.Close()
	items, err := s.Pending(ctx, "alice", 0, 0)
	if err != nil || len(items) != 3 || string(items[2].Stanza) != "m2" {
		t.Fatalf("Pending after reopen: %v, %v", items, err)
	}
}

// TestJournalHotItemsLeaveMemory: an offline user's items move into Pebble
// at the next checkpoint, so the journal holds memory only for items
// younger than a segment.
func TestJournalHotItemsLeaveMemory(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS, JournalSegmentSize: 4096})
	defer s.Close()
	ctx := t.Context()
	body := bytes.Repeat([]byte("x"), 200)
	for range 200 { // ~50 KB: a dozen segments
		if _, err := s.Enqueue(ctx, "offline", body, time.Time{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	checkpointNow(t, s) // the loop runs asynchronously; this one is certain
	q := &s.queues[s.stripe("offline")]
	q.mu.Lock()
	hot := len(q.users["offline"].hot)
	q.mu.Unlock()
	if hot != 0 {
		t.Errorf("%d items still hot after a checkpoint", hot)
	}
	if n, err := s.Depth(ctx, "offline"); err != nil || n != 200 {
		t.Errorf("Depth = %d, %v; want 200", n, err)
	}
	items, err := s.Pending(ctx, "offline", 0, 0)
	if err != nil || len(items) != 200 {
		t.Fatalf("Pending: %d items, %v", len(items), err)
	}
	for i, it := range items {
		if it.Seq != uint64(i+1) || !bytes.Equal(it.Stanza, body) {
			t.Fatalf("item %d: seq %d, %d bytes", i, it.Seq, len(it.Stanza))
		}
	}
}

// TestScanSegmentTornTail: every prefix of a segment yields exactly the
// records that are whole in it, and a flipped byte ends the scan at the
// record it hits.
func TestScanSegmentTornTail(t *testing.T) {
	var seg []byte
	var ends []int
	add := func(payload []byte) {
		j := &journal{buf: seg, limit: 1 << 30, kick: make(chan struct{}, 1)}
		start := j.begin()
		j.buf = append(j.buf, payload...)
		j.end(start)
		seg = j.buf
		ends = append(ends, len(seg))
	}
	now := time.Unix(1700000000, 5).UTC()
	add(appendPut(nil, "alice", 1, now, time.Time{}, []byte("<message/>")))
	add(appendAck(nil, "alice", []uint64{1, 7, 1 << 40}))
	add(appendDrop(nil, "bob"))
	add(appendPut(nil, "bob", 9, now, now.Add(time.Hour), nil))

	var all []journalRecord
	if n := scanSegment(seg, func(r journalRecord) { all = append(all, r) }); n != len(seg) || len(all) != 4 {
		t.Fatalf("whole segment: %d of %d bytes, %d records", n, len(seg), len(all))
	}
	if r := all[0]; r.typ != recPut || r.user != "alice" || r.seq != 1 || !r.stored.Equal(now) || !r.expires.IsZero() || string(r.stanza) != "<message/>" {
		t.Errorf("put decoded as %+v", r)
	}
	if r := all[1]; r.typ != recAck || !slices.Equal(r.seqs, []uint64{1, 7, 1 << 40}) {
		t.Errorf("ack decoded as %+v", r)
	}
	if r := all[2]; r.typ != recDrop || r.user != "bob" {
		t.Errorf("drop decoded as %+v", r)
	}
	if r := all[3]; r.seq != 9 || !r.expires.Equal(now.Add(time.Hour)) || len(r.stanza) != 0 {
		t.Errorf("second put decoded as %+v", r)
	}

	for cut := range len(seg) {
		whole := 0
		for _, e := range ends {
			if e <= cut {
				whole++
			}
		}
		got := 0
		n := scanSegment(seg[:cut], func(journalRecord) { got++ })
		if got != whole || (whole > 0 && n != ends[whole-1]) || (whole == 0 && n != 0) {
			t.Fatalf("prefix of %d bytes: %d records, %d bytes; want %d records", cut, got, n, whole)
		}
	}
	for i := range seg {
		bad := slices.Clone(seg)
		bad[i] ^= 0x40
		got := 0
		scanSegment(bad, func(journalRecord) { got++ })
		hit := 0 // the record holding byte i
		for hit < len(ends) && ends[hit] <= i {
			hit++
		}
		if got > hit {
			t.Fatalf("byte %d flipped: %d records read, the damaged record is #%d", i, got, hit)
		}
	}
}

// FuzzScanSegment: any bytes scan (and decode as one payload) without
// panicking, and what decodes re-encodes to records that decode the same.
func FuzzScanSegment(f *testing.F) {
	j := &journal{limit: 1 << 30, kick: make(chan struct{}, 1)}
	j.put("alice", 3, time.Unix(1, 2), time.Time{}, []byte("<m/>"))
	j.ack("alice", []uint64{3})
	j.drop("alice")
	f.Add(j.buf)
	f.Add(j.buf[recHeader:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []journalRecord
		n := scanSegment(data, func(r journalRecord) { recs = append(recs, r) })
		if n > len(data) {
			t.Fatalf("scanned %d of %d bytes", n, len(data))
		}
		if r, ok := decodeRecord(data); ok {
			recs = append(recs, r)
		}
		re := &journal{limit: 1 << 30, kick: make(chan struct{}, 1)}
		for _, r := range recs {
			switch r.typ {
			case recPut:
				re.put(r.user, r.seq, r.stored, r.expires, r.stanza)
			case recAck:
				re.ack(r.user, r.seqs)
			case recDrop:
				re.drop(r.user)
			}
		}
		var again []journalRecord
		if m := scanSegment(re.buf, func(r journalRecord) { again = append(again, r) }); m != len(re.buf) {
			t.Fatalf("re-encoded records scan %d of %d bytes", m, len(re.buf))
		}
		if len(again) != len(recs) {
			t.Fatalf("%d records re-encoded, %d read back", len(recs), len(again))
		}
		for i, a := range again {
			r := recs[i]
			if a.typ != r.typ || a.user != r.user || a.seq != r.seq || !a.stored.Equal(r.stored) ||
				!a.expires.Equal(r.expires) || !bytes.Equal(a.stanza, r.stanza) || !slices.Equal(a.seqs, r.seqs) {
				t.Fatalf("record %d: %+v read back as %+v", i, r, a)
			}
		}
	})
}

// TestJournalWriteFailure: once a journal write fails, every Enqueue fails
// (nothing unwritten is acknowledged), the buffer does not pile up, the
// failed items are not counted or served, and what was acknowledged before
// is still there after reopening.
func TestJournalWriteFailure(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, Options{Durability: DurabilityFsync})
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, "alice", []byte("kept"), time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	_ = s.journal.f.Close() // the disk goes away under the journal
	for i := range 100 {
		if _, err := s.Enqueue(ctx, "alice", []byte("lost"), time.Time{}, 0); err == nil {
			t.Fatalf("Enqueue %d succeeded after the journal's file failed", i)
		}
	}
	s.journal.mu.Lock()
	buffered := len(s.journal.buf)
	s.journal.mu.Unlock()
	if buffered > 1024 {
		t.Errorf("%d bytes buffered after failed writes", buffered)
	}
	if n, err := s.Depth(ctx, "alice"); err != nil || n != 1 {
		t.Errorf("Depth = %d, %v; want 1", n, err)
	}
	if items, err := s.Pending(ctx, "alice", 0, 0); err != nil || len(items) != 1 {
		t.Errorf("Pending: %d items, %v; want 1", len(items), err)
	}
	if err := s.Close(); err == nil {
		t.Error("Close reported no error with a failed journal")
	}
	s = openDir(t, dir, Options{Durability: DurabilityFsync})
	defer s.Close()
	items, err := s.Pending(ctx, "alice", 0, 0)
	if err != nil || len(items) != 1 || string(items[0].Stanza) != "kept" {
		t.Fatalf("after reopen: %v, %v; want only the acknowledged item", items, err)
	}
}

// TestCheckpointKeepsNewestSegment: the checkpoint loop's checkpoints leave
// the items of the segment they just ended hot (they are mostly in flight,
// about to be acknowledged) and move them at the next one.
func TestCheckpointKeepsNewestSegment(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	hot := func() []uint64 {
		q := &s.queues[s.stripe("alice")]
		q.mu.Lock()
		defer q.mu.Unlock()
		var seqs []uint64
		for _, h := range q.users["alice"].hot {
			seqs = append(seqs, h.seq)
		}
		return seqs
	}
	loopCheckpoint := func() {
		t.Helper()
		db, err := s.enter()
		if err != nil {
			t.Fatal(err)
		}
		defer s.mu.RUnlock()
		if err := s.checkpoint(db, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, body := range []string{"a", "b"} {
		if _, err := s.Enqueue(ctx, "alice", []byte(body), time.Time{}, 0); err != nil {
			t.Fatal(err)
		}
		loopCheckpoint()
	}
	if got := hot(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("hot after two checkpoints: %v, want [2] (1 moved, 2 kept for one more)", got)
	}
	items, err := s.Pending(ctx, "alice", 0, 0)
	if err != nil || len(items) != 2 || string(items[0].Stanza) != "a" || string(items[1].Stanza) != "b" {
		t.Fatalf("Pending: %v, %v", items, err)
	}
	loopCheckpoint()
	if got := hot(); len(got) != 0 {
		t.Fatalf("hot after a third checkpoint: %v", got)
	}
}

// TestVisibleBeforeDurable: EnqueueVisible hands the item over while its
// record is still unsynced, so that a recipient does not wait for the fsync,
// and returns only once it is synced.
func TestVisibleBeforeDurable(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityFsync})
	defer s.Close()
	j := s.journal
	var unsynced bool
	_, err := s.EnqueueVisible(t.Context(), "alice", []byte("m"), time.Time{}, 0, func(uint64) {
		j.mu.Lock()
		unsynced = j.synced < j.appended
		j.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if !unsynced {
		t.Error("visible ran after the record was synced")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.synced != j.appended {
		t.Errorf("EnqueueVisible returned with %d of %d bytes synced", j.synced, j.appended)
	}
}

// TestCloseDuringVisible: the router archives (a store call) from visible.
// A Close waiting for the store meanwhile must neither deadlock with it nor
// lose the item, which its checkpoint makes durable.
func TestCloseDuringVisible(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, Options{Durability: DurabilityFsync})
	ctx := t.Context()
	closed := make(chan error, 1)
	_, err := s.EnqueueVisible(ctx, "alice", []byte("kept"), time.Time{}, 0, func(uint64) {
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			closed <- err
		case <-time.After(10 * time.Second):
			t.Error("Close waited for a caller inside visible")
		}
		if _, err := s.Depth(ctx, "alice"); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Depth after Close: %v, want ErrClosed", err)
		}
	})
	if err != nil {
		t.Fatalf("EnqueueVisible across Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir, Options{Durability: DurabilityFsync})
	defer s.Close()
	items, err := s.Pending(ctx, "alice", 0, 0)
	if err != nil || len(items) != 1 || string(items[0].Stanza) != "kept" {
		t.Fatalf("after reopen: %v, %v; want the item", items, err)
	}
}

// TestFailAfterVisibleAck: an item acknowledged inside visible whose fsync
// then fails is reported failed and counted out once, not twice.
func TestFailAfterVisibleAck(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityFsync})
	defer s.Close()
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, "alice", []byte("kept"), time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.EnqueueVisible(ctx, "alice", []byte("acked"), time.Time{}, 0, func(seq uint64) {
		if err := s.Ack(ctx, "alice", seq); err != nil {
			t.Errorf("Ack: %v", err)
		}
		_ = s.journal.f.Close() // the fsync this Enqueue waits for fails
	})
	if err == nil {
		t.Fatal("EnqueueVisible succeeded although its fsync failed")
	}
	if n, err := s.Depth(ctx, "alice"); err != nil || n != 1 {
		t.Errorf("Depth = %d, %v; want 1", n, err)
	}
	if got := s.QueueTotal(); got != 1 {
		t.Errorf("QueueTotal = %d, want 1", got)
	}
}

// TestJournalSyncGap: after an fsync that carried syncGapMinBatch records,
// the next one starts no sooner than the gap after it; a lone sender's
// fsyncs, one record each, are not paced.
func TestJournalSyncGap(t *testing.T) {
	const gap = 50 * time.Millisecond
	j, err := openJournal(t.TempDir(), 1, true, DefaultJournalSegment)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	j.syncGap = gap
	put := func() int64 {
		pos, _ := j.put("alice", 1, time.Now(), time.Time{}, []byte("m"))
		return pos
	}
	var pos int64
	for range syncGapMinBatch {
		pos = put()
	}
	if err := j.commit(pos, true); err != nil {
		t.Fatal(err)
	}
	first := j.lastSync
	if err := j.commit(put(), true); err != nil {
		t.Fatal(err)
	}
	if d := j.lastSync.Sub(first); d < gap {
		t.Errorf("fsync %v after one that carried %d records, want at least %v", d, syncGapMinBatch, gap)
	}
	if j.syncs != 2 {
		t.Errorf("%d fsyncs, want 2", j.syncs)
	}
}

func TestJournalSyncGapLoneSender(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityFsync, JournalSyncGap: time.Minute})
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		for range 20 {
			if _, err := s.Enqueue(t.Context(), "alice", []byte("m"), time.Time{}, 0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a lone sender's enqueues were paced (one per minute)")
	}
}

// holdJournal makes the journal look busy with a write, as while another
// leader's fsync runs: commits wait. The returned func ends it.
func holdJournal(j *journal) func() {
	j.mu.Lock()
	for j.busy {
		j.cond.Wait()
	}
	j.busy = true
	j.mu.Unlock()
	return func() {
		j.mu.Lock()
		j.busy = false
		j.cond.Broadcast()
		j.mu.Unlock()
	}
}

// TestEnqueueAsyncDoesNotWait: EnqueueAsync returns while its record is
// unwritten (another write in progress), and done runs once the record is
// synced, on the completer.
func TestEnqueueAsyncDoesNotWait(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityFsync})
	defer s.Close()
	j := s.journal
	release := holdJournal(j)
	var pos int64
	done := make(chan bool, 1)
	_, err := s.EnqueueAsync(t.Context(), "alice", []byte("m"), time.Time{}, 0, func(uint64) {
		j.mu.Lock()
		pos = j.appended
		j.mu.Unlock()
	}, func(err error) {
		if err != nil {
			t.Errorf("done: %v", err)
		}
		j.mu.Lock()
		done <- j.synced >= pos
		j.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("done ran while the journal could not write")
	default:
	}
	release()
	if synced := <-done; !synced {
		t.Fatal("done ran before the record was synced")
	}
	if n, err := s.Depth(t.Context(), "alice"); err != nil || n != 1 {
		t.Fatalf("Depth = %d, %v; want 1", n, err)
	}
}

// TestEnqueueAsyncFailure: a record whose write fails reports the error to
// done, and the item leaves the queue and the count.
func TestEnqueueAsyncFailure(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityFsync})
	defer s.Close()
	j := s.journal
	release := holdJournal(j)
	done := make(chan error, 1)
	if _, err := s.EnqueueAsync(t.Context(), "alice", []byte("m"), time.Time{}, 0, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	_ = j.f.Close() // the write the completer leads fails
	release()
	if err := <-done; err == nil {
		t.Fatal("done reported success for a failed write")
	}
	if n, err := s.Depth(t.Context(), "alice"); err != nil || n != 0 {
		t.Errorf("Depth = %d, %v; want 0", n, err)
	}
	if got := s.QueueTotal(); got != 0 {
		t.Errorf("QueueTotal = %d, want 0", got)
	}
}

// TestCloseCompletesAsync: Close right after asynchronous appends calls
// every done once, with success, and the items survive reopening.
func TestCloseCompletesAsync(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, Options{Durability: DurabilityFsync})
	const n = 50
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Add(1)
		_, err := s.EnqueueAsync(t.Context(), "alice", []byte(strconv.Itoa(i)), time.Time{}, 0, nil, func(err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d appends failed across Close", f, n)
	}
	s = openDir(t, dir, Options{Durability: DurabilityFsync})
	defer s.Close()
	items, err := s.Pending(t.Context(), "alice", 0, 0)
	if err != nil || len(items) != n {
		t.Fatalf("after reopen: %d items, %v; want %d", len(items), err, n)
	}
}

// TestCompleterSurvivesPanic: a callback that panics is contained; the
// completer goes on serving the next appends.
func TestCompleterSurvivesPanic(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityFsync})
	defer s.Close()
	release := holdJournal(s.journal) // so that the completer, not the caller, runs it
	if _, err := s.EnqueueAsync(t.Context(), "alice", []byte("m1"), time.Time{}, 0, nil, func(error) { panic("session bug") }); err != nil {
		t.Fatal(err)
	}
	release()
	done := make(chan error, 1)
	if _, err := s.EnqueueAsync(t.Context(), "alice", []byte("m2"), time.Time{}, 0, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no completion after a callback panicked")
	}
}
