package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// far is an expiry no test run reaches; past one every run has passed.
var (
	far  = time.Now().Add(24 * time.Hour).Truncate(time.Second)
	past = time.Now().Add(-time.Hour).Truncate(time.Second)
)

func stanza(i int) []byte {
	return fmt.Appendf(nil, "<message id='m%d'><body>%d</body></message>", i, i)
}

// enqueueN enqueues stanza(0..n-1) for user and returns the seqs.
func enqueueN(t *testing.T, s store.Store, user string, n int) []uint64 {
	t.Helper()
	seqs := make([]uint64, n)
	for i := range n {
		seq, err := s.Enqueue(t.Context(), user, stanza(i), far, 0)
		check(t, "Enqueue", err)
		seqs[i] = seq
	}
	return seqs
}

func depth(t *testing.T, s store.Store, user string, want int) {
	t.Helper()
	d, err := s.Depth(t.Context(), user)
	check(t, "Depth", err)
	if d != want {
		t.Fatalf("Depth(%s) = %d, want %d", user, d, want)
	}
}

var queueTests = []test{
	{"Empty", func(t *testing.T, s store.Store) {
		items, err := s.Pending(t.Context(), "alice", 0, 10)
		check(t, "Pending", err)
		checkSeqs(t, items)
		depth(t, s, "alice", 0)
	}},
	{"EnqueueVisible", func(t *testing.T, s store.Store) {
		// The router delivers from visible: the item must be readable and
		// deletable there, once, with the seq EnqueueVisible then returns.
		ctx := t.Context()
		first := enqueueN(t, s, "alice", 1)
		calls := 0
		var got uint64
		seq, err := s.EnqueueVisible(ctx, "alice", stanza(1), far, 0, func(seq uint64) {
			calls++
			got = seq
			items, err := s.Pending(ctx, "alice", 0, 0)
			check(t, "Pending inside visible", err)
			checkSeqs(t, items, first[0], seq)
			depth(t, s, "alice", 2)
		})
		check(t, "EnqueueVisible", err)
		if calls != 1 || got != seq {
			t.Fatalf("visible called %d times with seq %d; EnqueueVisible returned %d", calls, got, seq)
		}
		// Acknowledged before it was durable: gone, counted once.
		seq2, err := s.EnqueueVisible(ctx, "alice", stanza(2), far, 0, func(seq uint64) {
			check(t, "Ack inside visible", s.Ack(ctx, "alice", seq))
		})
		check(t, "EnqueueVisible", err)
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, first[0], seq)
		depth(t, s, "alice", 2)
		if seq2 <= seq {
			t.Fatalf("seq %d after %d", seq2, seq)
		}
		// Acknowledged inside visible, its commit still pending: later
		// items must not hide behind it (a backlog flush reading then
		// would stop short of them).
		var later uint64
		_, err = s.EnqueueVisible(ctx, "alice", stanza(4), far, 0, func(seq uint64) {
			check(t, "Ack inside visible", s.Ack(ctx, "alice", seq))
			later, err = s.Enqueue(ctx, "alice", stanza(5), far, 0)
			check(t, "Enqueue inside visible", err)
			items, err := s.Pending(ctx, "alice", seq, 0)
			check(t, "Pending inside visible", err)
			checkSeqs(t, items, later)
		})
		check(t, "EnqueueVisible", err)
		check(t, "Ack", s.Ack(ctx, "alice", later))
		// A full queue calls nothing.
		_, err = s.EnqueueVisible(ctx, "alice", stanza(3), far, 2, func(uint64) { t.Error("visible called for a refused item") })
		if !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("EnqueueVisible over max: %v, want ErrQueueFull", err)
		}
		check(t, "Ack", s.Ack(ctx, "alice", first[0], seq))
		depth(t, s, "alice", 0)
	}},
	{"EnqueueAsync", func(t *testing.T, s store.Store) {
		// visible runs before EnqueueAsync returns, done exactly once with
		// nil; items are in order; a refused item calls neither.
		ctx := t.Context()
		const n = 20
		var mu sync.Mutex
		dones := map[uint64]int{}
		var all sync.WaitGroup
		var seqs []uint64
		for i := range n {
			var vis uint64
			all.Add(1)
			seq, err := s.EnqueueAsync(ctx, "alice", stanza(i), far, 0, func(seq uint64) { vis = seq }, func(err error) {
				check(t, "EnqueueAsync done", err)
				mu.Lock()
				dones[vis]++
				mu.Unlock()
				all.Done()
			})
			check(t, "EnqueueAsync", err)
			if vis != seq {
				t.Fatalf("visible saw seq %d before EnqueueAsync returned %d", vis, seq)
			}
			seqs = append(seqs, seq)
		}
		all.Wait()
		for _, seq := range seqs {
			if dones[seq] != 1 {
				t.Fatalf("done ran %d times for seq %d", dones[seq], seq)
			}
		}
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs...)
		for i, it := range items {
			if !bytes.Equal(it.Stanza, stanza(i)) {
				t.Fatalf("item %d: %q, want %q", i, it.Stanza, stanza(i))
			}
		}
		_, err = s.EnqueueAsync(ctx, "alice", stanza(n), far, n,
			func(uint64) { t.Error("visible called for a refused item") },
			func(error) { t.Error("done called for a refused item") })
		if !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("EnqueueAsync over max: %v, want ErrQueueFull", err)
		}
		check(t, "Ack", s.Ack(ctx, "alice", seqs...))
		depth(t, s, "alice", 0)
	}},
	{"Order", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		seqs := enqueueN(t, s, "alice", 10)
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("seqs not increasing: %v", seqs)
			}
		}
		if seqs[0] == 0 {
			t.Fatalf("seq 0 issued; Pending(after=0) could never return it")
		}
		items, err := s.Pending(ctx, "alice", 0, 100)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs...)
		for i, it := range items {
			if !bytes.Equal(it.Stanza, stanza(i)) {
				t.Fatalf("item %d stanza %q, want %q", i, it.Stanza, stanza(i))
			}
			if !it.Expires.Equal(far) {
				t.Fatalf("item %d expires %v, want %v", i, it.Expires, far)
			}
			if it.Stored.IsZero() {
				t.Fatalf("item %d has no Stored time", i)
			}
		}
		depth(t, s, "alice", 10)
	}},
	{"PendingPaging", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		seqs := enqueueN(t, s, "alice", 10)
		items, err := s.Pending(ctx, "alice", 0, 4)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs[:4]...)
		items, err = s.Pending(ctx, "alice", seqs[3], 4)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs[4:8]...)
		items, err = s.Pending(ctx, "alice", seqs[7], 4)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs[8:]...)
		items, err = s.Pending(ctx, "alice", seqs[9], 4)
		check(t, "Pending", err)
		checkSeqs(t, items)
		// after need not be a seq that exists.
		items, err = s.Pending(ctx, "alice", seqs[5]-1, 1)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs[5])
		// limit <= 0 means no limit (not spelled out in store.go).
		items, err = s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs...)
		// Pending only reads.
		depth(t, s, "alice", 10)
	}},
	{"Ack", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		seqs := enqueueN(t, s, "alice", 6)
		check(t, "Ack", s.Ack(ctx, "alice", seqs[0], seqs[2]))
		depth(t, s, "alice", 4)
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, seqs[1], seqs[3], seqs[4], seqs[5])
		// Unknown and already acked seqs are ignored, also mixed with real ones.
		check(t, "Ack unknown", s.Ack(ctx, "alice", seqs[0], seqs[5]+1000, 0))
		check(t, "Ack mixed", s.Ack(ctx, "alice", seqs[2], seqs[3], seqs[3]))
		depth(t, s, "alice", 3)
		check(t, "Ack nothing", s.Ack(ctx, "alice"))
		check(t, "Ack of another user", s.Ack(ctx, "bob", seqs[1]))
		depth(t, s, "alice", 3)
		check(t, "Ack rest", s.Ack(ctx, "alice", seqs[1], seqs[4], seqs[5]))
		depth(t, s, "alice", 0)
		items, err = s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items)
	}},
	{"AckBatch", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := enqueueN(t, s, "alice", 3)
		b := enqueueN(t, s, "bob", 3)
		refs := []store.QueueRef{
			{User: "bob", Seq: b[2]}, {User: "alice", Seq: a[0]}, {User: "bob", Seq: b[1]},
			{User: "alice", Seq: a[0]},        // twice in one batch
			{User: "carol", Seq: 1},           // a user with no queue
			{User: "alice", Seq: a[2] + 1000}, // never issued
		}
		check(t, "AckBatch", s.AckBatch(ctx, refs))
		depth(t, s, "alice", 2)
		depth(t, s, "bob", 1)
		items, err := s.Pending(ctx, "bob", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, b[0])
		// The same batch again deletes nothing more and counts nothing twice.
		check(t, "AckBatch again", s.AckBatch(ctx, []store.QueueRef{{User: "bob", Seq: b[2]}, {User: "alice", Seq: a[0]}}))
		depth(t, s, "alice", 2)
		depth(t, s, "bob", 1)
		check(t, "AckBatch empty", s.AckBatch(ctx, nil))
		if err := s.AckBatch(ctx, []store.QueueRef{{User: "alice", Seq: a[1]}, {User: "bad\x00user", Seq: 1}}); err == nil {
			t.Fatalf("AckBatch with an invalid username succeeded")
		}
		depth(t, s, "alice", 2) // the valid half of a refused batch stays too
		check(t, "AckBatch rest", s.AckBatch(ctx, []store.QueueRef{{User: "alice", Seq: a[1]}, {User: "alice", Seq: a[2]}, {User: "bob", Seq: b[0]}}))
		depth(t, s, "alice", 0)
		depth(t, s, "bob", 0)
		// A queue that drained through acknowledgements refills from
		// higher seqs.
		if seq := enqueueN(t, s, "alice", 1)[0]; seq <= a[2] {
			t.Fatalf("seq %d issued after acks up to %d", seq, a[2])
		}
	}},
	{"AckManyInFlight", func(t *testing.T, s store.Store) {
		// More items than a backend may remember as recently written: the
		// oldest are acknowledged after the newest, the way an offline
		// backlog is, and every count stays exact.
		ctx := t.Context()
		seqs := enqueueN(t, s, "alice", 100)
		for i := len(seqs) - 1; i >= 0; i -= 2 {
			check(t, "Ack", s.Ack(ctx, "alice", seqs[i]))
		}
		depth(t, s, "alice", 50)
		for i := range seqs {
			check(t, "Ack", s.Ack(ctx, "alice", seqs[i]))
		}
		depth(t, s, "alice", 0)
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items)
	}},
	{"SeqsNeverReused", func(t *testing.T, s store.Store) {
		// Seqs keep increasing after the queue drains (or its tail is
		// acked): a reader's "after" cursor must never skip a new item.
		ctx := t.Context()
		seqs := enqueueN(t, s, "alice", 3)
		check(t, "Ack tail", s.Ack(ctx, "alice", seqs[2]))
		next := enqueueN(t, s, "alice", 1)[0]
		if next <= seqs[2] {
			t.Fatalf("seq %d issued after %d", next, seqs[2])
		}
		check(t, "Ack all", s.Ack(ctx, "alice", seqs[0], seqs[1], next))
		depth(t, s, "alice", 0)
		again := enqueueN(t, s, "alice", 1)[0]
		if again <= next {
			t.Fatalf("seq %d issued after %d on a drained queue", again, next)
		}
	}},
	{"IndependentUsers", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := enqueueN(t, s, "alice", 3)
		b := enqueueN(t, s, "bob", 2)
		depth(t, s, "alice", 3)
		depth(t, s, "bob", 2)
		items, err := s.Pending(ctx, "bob", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, b...)
		check(t, "Ack", s.Ack(ctx, "bob", b...))
		depth(t, s, "alice", 3)
		items, err = s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, a...)
	}},
	{"PrefixUsers", func(t *testing.T, s store.Store) {
		// "al" is a prefix of "alice": their queues must not mix.
		ctx := t.Context()
		enqueueN(t, s, "alice", 2)
		al := enqueueN(t, s, "al", 1)
		items, err := s.Pending(ctx, "al", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, al...)
		depth(t, s, "al", 1)
		depth(t, s, "alice", 2)
	}},
	{"CopiesStanza", func(t *testing.T, s store.Store) {
		// The caller may reuse its buffer after Enqueue, and may modify
		// what Pending returned.
		ctx := t.Context()
		buf := []byte("<message id='x'/>")
		seq, err := s.Enqueue(ctx, "alice", buf, far, 0)
		check(t, "Enqueue", err)
		copy(buf, "XXXXXXXX")
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, seq)
		if string(items[0].Stanza) != "<message id='x'/>" {
			t.Fatalf("stored stanza changed with the caller's buffer: %q", items[0].Stanza)
		}
		copy(items[0].Stanza, "YYYYYYYY")
		items, err = s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		if string(items[0].Stanza) != "<message id='x'/>" {
			t.Fatalf("stored stanza changed with a returned slice: %q", items[0].Stanza)
		}
	}},
	{"Max", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var seqs []uint64
		for i := range 3 {
			seq, err := s.Enqueue(ctx, "alice", stanza(i), far, 3)
			check(t, "Enqueue", err)
			seqs = append(seqs, seq)
		}
		_, err := s.Enqueue(ctx, "alice", stanza(3), far, 3)
		wantErr(t, "Enqueue beyond max", err, store.ErrQueueFull)
		depth(t, s, "alice", 3)
		// A larger max, or none, still admits.
		_, err = s.Enqueue(ctx, "alice", stanza(4), far, 4)
		check(t, "Enqueue with max 4", err)
		_, err = s.Enqueue(ctx, "alice", stanza(5), far, 0)
		check(t, "Enqueue with max 0", err)
		_, err = s.Enqueue(ctx, "alice", stanza(6), far, -1)
		check(t, "Enqueue with max -1", err)
		_, err = s.Enqueue(ctx, "alice", stanza(7), far, 6)
		wantErr(t, "Enqueue beyond max 6", err, store.ErrQueueFull)
		// Acks make room; other users are not affected.
		check(t, "Ack", s.Ack(ctx, "alice", seqs[0]))
		_, err = s.Enqueue(ctx, "alice", stanza(8), far, 6)
		check(t, "Enqueue after Ack", err)
		_, err = s.Enqueue(ctx, "bob", stanza(9), far, 1)
		check(t, "Enqueue for bob", err)
		depth(t, s, "alice", 6)
	}},
	{"PendingSkipsExpired", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a, err := s.Enqueue(ctx, "alice", stanza(0), far, 0)
		check(t, "Enqueue", err)
		_, err = s.Enqueue(ctx, "alice", stanza(1), past, 0)
		check(t, "Enqueue", err)
		c, err := s.Enqueue(ctx, "alice", stanza(2), far, 0)
		check(t, "Enqueue", err)
		_, err = s.Enqueue(ctx, "alice", stanza(3), past, 0)
		check(t, "Enqueue", err)
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, a, c)
		// limit counts returned items, not skipped ones.
		items, err = s.Pending(ctx, "alice", a, 1)
		check(t, "Pending", err)
		checkSeqs(t, items, c)
	}},
	{"ZeroExpiresNeverExpires", func(t *testing.T, s store.Store) {
		// Not spelled out in store.go: a zero expires means "no expiry",
		// not "expired since year 1".
		ctx := t.Context()
		seq, err := s.Enqueue(ctx, "alice", stanza(0), time.Time{}, 0)
		check(t, "Enqueue", err)
		n, err := s.Expire(ctx, time.Now().Add(100*365*24*time.Hour))
		check(t, "Expire", err)
		if n != 0 {
			t.Fatalf("Expire deleted %d items without expiry", n)
		}
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, seq)
		if !items[0].Expires.IsZero() {
			t.Fatalf("Expires = %v, want zero", items[0].Expires)
		}
	}},
	{"Expire", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var keep []uint64
		for i := range 6 {
			exp := past
			if i%2 == 0 {
				exp = far
			}
			for _, u := range []string{"alice", "bob"} {
				seq, err := s.Enqueue(ctx, u, stanza(i), exp, 0)
				check(t, "Enqueue", err)
				if u == "alice" && exp == far {
					keep = append(keep, seq)
				}
			}
		}
		n, err := s.Expire(ctx, time.Now())
		check(t, "Expire", err)
		if n != 6 {
			t.Fatalf("Expire = %d, want 6", n)
		}
		depth(t, s, "alice", 3)
		depth(t, s, "bob", 3)
		items, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, items, keep...)
		n, err = s.Expire(ctx, time.Now())
		check(t, "Expire again", err)
		if n != 0 {
			t.Fatalf("second Expire = %d, want 0", n)
		}
		// now is the caller's: later it catches the rest. Expires equal to
		// now is not "before now".
		n, err = s.Expire(ctx, far)
		check(t, "Expire(far)", err)
		if n != 0 {
			t.Fatalf("Expire(far) = %d, want 0", n)
		}
		n, err = s.Expire(ctx, far.Add(time.Second))
		check(t, "Expire(far+1s)", err)
		if n != 6 {
			t.Fatalf("Expire(far+1s) = %d, want 6", n)
		}
		depth(t, s, "alice", 0)
		depth(t, s, "bob", 0)
	}},
	{"ConcurrentEnqueueOneUser", func(t *testing.T, s store.Store) {
		concurrentEnqueue(t, s, 64, 16, 1)
	}},
	{"ConcurrentEnqueueManyUsers", func(t *testing.T, s store.Store) {
		concurrentEnqueue(t, s, 64, 16, 64)
	}},
	{"ConcurrentEnqueueMax", func(t *testing.T, s store.Store) {
		// 64 senders race for 100 slots: exactly 100 win.
		ctx := t.Context()
		const senders, each, max = 64, 4, 100
		var mu sync.Mutex
		ok, full := 0, 0
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := range each {
					_, err := s.Enqueue(ctx, "alice", stanza(g*each+i), far, max)
					mu.Lock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, store.ErrQueueFull):
						full++
					default:
						t.Errorf("Enqueue: %v", err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if ok != max || full != senders*each-max {
			t.Fatalf("%d accepted, %d refused; want %d, %d", ok, full, max, senders*each-max)
		}
		depth(t, s, "alice", max)
	}},
	{"ConcurrentEnqueueAck", func(t *testing.T, s store.Store) {
		// Delivery running against arrival: every item is acked exactly
		// once, and the counts end at zero.
		ctx := t.Context()
		const senders, each = 32, 16
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				user := fmt.Sprintf("u%d", g%4)
				for i := range each {
					seq, err := s.Enqueue(ctx, user, stanza(i), far, 0)
					if err != nil {
						t.Errorf("Enqueue: %v", err)
						return
					}
					if err := s.Ack(ctx, user, seq); err != nil {
						t.Errorf("Ack: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		for u := range 4 {
			depth(t, s, fmt.Sprintf("u%d", u), 0)
		}
	}},
}

// concurrentEnqueue has senders goroutines enqueue each stanzas, spread
// round-robin over users recipients, and checks that nothing is lost or
// duplicated: per user, seqs are unique, every sender saw its own seqs
// increase, and Pending returns every stanza once in seq order.
func concurrentEnqueue(t *testing.T, s store.Store, senders, each, users int) {
	ctx := t.Context()
	type sent struct {
		user string
		seq  uint64
		body string
	}
	results := make([][]sent, senders)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				user := fmt.Sprintf("user%d", (g+i)%users)
				body := fmt.Sprintf("<message id='%d-%d'/>", g, i)
				seq, err := s.Enqueue(ctx, user, []byte(body), far, 0)
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				results[g] = append(results[g], sent{user, seq, body})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := make(map[string]map[uint64]string) // user -> seq -> body
	for g, rs := range results {
		last := make(map[string]uint64)
		for _, r := range rs {
			if r.seq <= last[r.user] {
				t.Fatalf("sender %d got seq %d for %s after %d", g, r.seq, r.user, last[r.user])
			}
			last[r.user] = r.seq
			if want[r.user] == nil {
				want[r.user] = make(map[uint64]string)
			}
			if prev, dup := want[r.user][r.seq]; dup {
				t.Fatalf("seq %d of %s issued twice: %s and %s", r.seq, r.user, prev, r.body)
			}
			want[r.user][r.seq] = r.body
		}
	}
	total := 0
	for user, bySeq := range want {
		items, err := s.Pending(ctx, user, 0, 0)
		check(t, "Pending", err)
		if len(items) != len(bySeq) {
			t.Fatalf("Pending(%s) returned %d items, %d were enqueued", user, len(items), len(bySeq))
		}
		for i, it := range items {
			if i > 0 && it.Seq <= items[i-1].Seq {
				t.Fatalf("Pending(%s) not in seq order: %d after %d", user, it.Seq, items[i-1].Seq)
			}
			if string(it.Stanza) != bySeq[it.Seq] {
				t.Fatalf("%s seq %d: stanza %q, enqueued %q", user, it.Seq, it.Stanza, bySeq[it.Seq])
			}
		}
		depth(t, s, user, len(bySeq))
		total += len(items)
	}
	if total != senders*each {
		t.Fatalf("%d items stored, %d enqueued", total, senders*each)
	}
}
