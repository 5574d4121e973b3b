package storetest

import (
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

type reopener struct {
	t    *testing.T
	dir  string
	open func(dir string) (store.Store, error)
}

// do opens the store, runs fn on it and closes it again.
func (r reopener) do(fn func(s store.Store)) {
	r.t.Helper()
	s, err := r.open(r.dir)
	check(r.t, "open", err)
	defer func() {
		r.t.Helper()
		check(r.t, "Close", s.Close())
	}()
	fn(s)
}

var persistTests = []struct {
	name string
	fn   func(t *testing.T, r reopener)
}{
	{"Everything", func(t *testing.T, r reopener) {
		ctx := t.Context()
		var seqs []uint64
		r.do(func(s store.Store) {
			check(t, "CreateAccount", s.CreateAccount(ctx, account("alice")))
			check(t, "CreateAccount", s.CreateAccount(ctx, account("bob")))
			check(t, "SetCredentials", s.SetCredentials(ctx, "bob", scram(5), scram(6)))
			for _, it := range []store.RosterItem{carol, dave, eve} {
				_, err := s.PutRosterItem(ctx, "alice", it)
				check(t, "PutRosterItem", err)
			}
			_, err := s.DeleteRosterItem(ctx, "alice", dave.JID)
			check(t, "DeleteRosterItem", err)
			seqs = enqueueN(t, s, "alice", 5)
			check(t, "Ack", s.Ack(ctx, "alice", seqs[0], seqs[3]))
			check(t, "PutVCard", s.PutVCard(ctx, "alice", []byte("<vCard/>")))
		})
		r.do(func(s store.Store) {
			a, err := s.GetAccount(ctx, "alice")
			check(t, "GetAccount", err)
			checkAccount(t, a, account("alice"))
			b, err := s.GetAccount(ctx, "bob")
			check(t, "GetAccount", err)
			want := account("bob")
			want.SHA1, want.SHA256 = scram(5), scram(6)
			checkAccount(t, b, want)
			if n, err := s.CountAccounts(ctx); err != nil || n != 2 {
				t.Fatalf("CountAccounts = %d, %v", n, err)
			}

			items, ver, err := s.RosterItems(ctx, "alice")
			check(t, "RosterItems", err)
			checkRoster(t, items, carol, eve)
			if ver != 4 {
				t.Fatalf("roster version after reopen = %d, want 4", ver)
			}
			v, err := s.PutRosterItem(ctx, "alice", dave)
			check(t, "PutRosterItem", err)
			if v != 5 {
				t.Fatalf("roster version continues at %d, want 5", v)
			}

			depth(t, s, "alice", 3)
			pending, err := s.Pending(ctx, "alice", 0, 0)
			check(t, "Pending", err)
			checkSeqs(t, pending, seqs[1], seqs[2], seqs[4])
			for i, it := range pending {
				if string(it.Stanza) != string(stanza([]int{1, 2, 4}[i])) || !it.Expires.Equal(far) {
					t.Fatalf("item %d after reopen: %q expires %v", it.Seq, it.Stanza, it.Expires)
				}
			}
			next := enqueueN(t, s, "alice", 1)[0]
			if next <= seqs[4] {
				t.Fatalf("seq %d issued after reopen, before that %d", next, seqs[4])
			}
			depth(t, s, "alice", 4)

			card, err := s.GetVCard(ctx, "alice")
			check(t, "GetVCard", err)
			if string(card) != "<vCard/>" {
				t.Fatalf("GetVCard = %q", card)
			}
		})
	}},
	{"SeqsAfterDrainedQueue", func(t *testing.T, r reopener) {
		// Seqs keep increasing across a restart even if the queue was
		// empty at Close, and even if its tail was acked.
		ctx := t.Context()
		var last uint64
		r.do(func(s store.Store) {
			seqs := enqueueN(t, s, "alice", 3)
			check(t, "Ack", s.Ack(ctx, "alice", seqs...))
			seqs = enqueueN(t, s, "bob", 3)
			check(t, "Ack", s.Ack(ctx, "bob", seqs[2]))
			last = seqs[2]
		})
		r.do(func(s store.Store) {
			depth(t, s, "alice", 0)
			if seq := enqueueN(t, s, "alice", 1)[0]; seq <= 3 {
				t.Fatalf("alice: seq %d after a drained queue of 3", seq)
			}
			depth(t, s, "bob", 2)
			if seq := enqueueN(t, s, "bob", 1)[0]; seq <= last {
				t.Fatalf("bob: seq %d issued again after reopen (last was %d)", seq, last)
			}
		})
	}},
	{"DeleteAccount", func(t *testing.T, r reopener) {
		ctx := t.Context()
		r.do(func(s store.Store) {
			check(t, "CreateAccount", s.CreateAccount(ctx, account("alice")))
			_, err := s.PutRosterItem(ctx, "alice", carol)
			check(t, "PutRosterItem", err)
			enqueueN(t, s, "alice", 2)
			check(t, "PutVCard", s.PutVCard(ctx, "alice", []byte("<vCard/>")))
			check(t, "DeleteAccount", s.DeleteAccount(ctx, "alice"))
		})
		r.do(func(s store.Store) {
			_, err := s.GetAccount(ctx, "alice")
			wantErr(t, "GetAccount", err, store.ErrNotFound)
			items, ver, err := s.RosterItems(ctx, "alice")
			check(t, "RosterItems", err)
			if len(items) != 0 || ver != 0 {
				t.Fatalf("roster after delete and reopen: %d items, version %d", len(items), ver)
			}
			depth(t, s, "alice", 0)
			_, err = s.GetVCard(ctx, "alice")
			wantErr(t, "GetVCard", err, store.ErrNotFound)
		})
	}},
	{"Expire", func(t *testing.T, r reopener) {
		// Expire finds items written before the restart; Depth agrees.
		ctx := t.Context()
		r.do(func(s store.Store) {
			_, err := s.Enqueue(ctx, "alice", stanza(0), past, 0)
			check(t, "Enqueue", err)
			_, err = s.Enqueue(ctx, "alice", stanza(1), far, 0)
			check(t, "Enqueue", err)
		})
		r.do(func(s store.Store) {
			depth(t, s, "alice", 2)
			n, err := s.Expire(ctx, time.Now())
			check(t, "Expire", err)
			if n != 1 {
				t.Fatalf("Expire = %d, want 1", n)
			}
			depth(t, s, "alice", 1)
		})
	}},
}
