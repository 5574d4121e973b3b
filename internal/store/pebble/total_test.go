package pebble

import (
	"context"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// TestQueueTotal: the store-wide count follows enqueues, acks, expiry and
// account deletion, and is rebuilt from disk at Open.
func TestQueueTotal(t *testing.T) { forJournalModes(t, testQueueTotal) }

func testQueueTotal(t *testing.T, noJournal bool) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{Durability: DurabilityOS, DisableQueueJournal: noJournal})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b"} {
		if err := s.CreateAccount(ctx, store.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	later := time.Now().Add(time.Hour)
	var seqs []uint64
	for i := range 3 {
		seq, err := s.Enqueue(ctx, "a", []byte{'m', byte('0' + i)}, later, 0)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if _, err := s.Enqueue(ctx, "b", []byte("x"), time.Now().Add(-time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if got := s.QueueTotal(); got != 4 {
		t.Fatalf("QueueTotal = %d after 4 enqueues", got)
	}
	if err := s.Ack(ctx, "a", seqs[0], seqs[0], 999); err != nil {
		t.Fatal(err)
	}
	if got := s.QueueTotal(); got != 3 {
		t.Fatalf("QueueTotal = %d after acking one (twice, plus an unknown seq)", got)
	}
	if n, err := s.Expire(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if got := s.QueueTotal(); got != 2 {
		t.Fatalf("QueueTotal = %d after expiry", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{Durability: DurabilityOS, DisableQueueJournal: noJournal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.QueueTotal(); got != 2 {
		t.Fatalf("QueueTotal = %d after reopening", got)
	}
	if err := s.DeleteAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := s.QueueTotal(); got != 0 {
		t.Fatalf("QueueTotal = %d after deleting the account", got)
	}
}
