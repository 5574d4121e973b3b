package pebble

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// appendPair archives message i for alice (recipient) and bob (sender)
// the way the mam module does: one call, one stanza, two ids that carry
// their positions.
func appendPair(t testing.TB, s *Store, i int) []byte {
	t.Helper()
	st := fmt.Appendf(nil, "<message id='p%d'><body>shared stanza %d</body></message>", i, i)
	tm := at0.Add(time.Duration(i) * time.Second)
	ida, idb := store.NewArchiveID(tm), store.NewArchiveID(tm)
	if err := s.AppendArchives(t.Context(),
		store.ArchiveEntry{Owner: "alice", Message: store.ArchivedMessage{ID: ida, Time: tm, With: "bob@x", Stanza: st}},
		store.ArchiveEntry{Owner: "bob", Message: store.ArchivedMessage{ID: idb, Time: tm, With: "alice@x", Stanza: st}},
	); err != nil {
		t.Fatalf("AppendArchives: %v", err)
	}
	return st
}

// archiveValues returns the decoded values under owner's message keys.
func archiveValues(t *testing.T, s *Store, owner string) []archivedValue {
	t.Helper()
	lo, hi := userPrefix(tagArchive, owner)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []archivedValue
	for ok := it.First(); ok; ok = it.Next() {
		a, err := decodeArchived(bytes.Clone(it.Value()))
		if err != nil {
			t.Fatalf("key %q: %v", it.Key(), err)
		}
		out = append(out, a)
	}
	return out
}

// TestArchiveSharedLayout checks that a routed message's two copies store
// its stanza once: the recipient's copy holds it and names the sender's,
// which refers back to it.
func TestArchiveSharedLayout(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	st := appendPair(t, s, 0)
	av, bv := archiveValues(t, s, "alice"), archiveValues(t, s, "bob")
	if len(av) != 1 || len(bv) != 1 {
		t.Fatalf("%d and %d values, want one each", len(av), len(bv))
	}
	a, b := av[0], bv[0]
	if a.format != archHolder || !bytes.Equal(a.stanza, st) || a.other != "bob" {
		t.Fatalf("alice's copy: %+v", a)
	}
	if b.format != archRef || len(b.stanza) != 0 || b.other != "alice" {
		t.Fatalf("bob's copy: %+v", b)
	}
	pa, _ := store.ParseArchiveID(a.id)
	pb, _ := store.ParseArchiveID(b.id)
	if !bytes.Equal(a.otherPos, pb[:]) || !bytes.Equal(b.otherPos, pa[:]) {
		t.Fatalf("positions do not name each other: alice %x→%x, bob %x→%x", pa, a.otherPos, pb, b.otherPos)
	}

	// Copies with different stanzas, or for one owner, stay copies of
	// their own.
	tm := at0.Add(time.Hour)
	if err := s.AppendArchives(t.Context(),
		store.ArchiveEntry{Owner: "carol", Message: store.ArchivedMessage{ID: store.NewArchiveID(tm), Time: tm, Stanza: []byte("<a/>")}},
		store.ArchiveEntry{Owner: "dave", Message: store.ArchivedMessage{ID: store.NewArchiveID(tm), Time: tm, Stanza: []byte("<b/>")}},
		store.ArchiveEntry{Owner: "erin", Message: store.ArchivedMessage{ID: store.NewArchiveID(tm), Time: tm, Stanza: []byte("<c/>")}},
		store.ArchiveEntry{Owner: "erin", Message: store.ArchivedMessage{ID: store.NewArchiveID(tm), Time: tm, Stanza: []byte("<c/>")}},
	); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"carol", "dave", "erin"} {
		for _, v := range archiveValues(t, s, o) {
			if v.format != archInline {
				t.Fatalf("%s: format %d, want %d", o, v.format, archInline)
			}
		}
	}
}

// TestArchiveDanglingRef checks that a copy whose holder is gone (a crash
// between expiry's two steps) is skipped, not an error.
func TestArchiveDanglingRef(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	appendPair(t, s, 0)
	appendPair(t, s, 1)
	lo, _ := userPrefix(tagArchive, "alice")
	first := append(lo, archiveValues(t, s, "bob")[0].otherPos...)
	if err := s.db.Delete(first, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.ArchiveQuery{{}, {With: "alice@x"}} {
		p, err := s.QueryArchive(t.Context(), "bob", q)
		if err != nil || len(p.Items) != 1 || !bytes.Contains(p.Items[0].Stanza, []byte("stanza 1")) {
			t.Fatalf("bob's archive (%+v) with a dangling copy: %+v, %v", q, p.Items, err)
		}
	}
	// A copy referring to a key that holds no shared stanza is corrupt.
	if err := s.db.Set(first, encodeArchived(archInline, store.ArchivedMessage{ID: "x", Stanza: []byte("<x/>")}, "", nil), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueryArchive(t.Context(), "bob", store.ArchiveQuery{}); err == nil {
		t.Fatal("QueryArchive through a reference to an unshared copy succeeded")
	}
}

// TestArchiveDeleteRacesAppends deletes the holders' archive over and over
// while pairs are appended: every sender's copy must still read its stanza.
// Without Store.archive, an append between the deletion's walk and its
// range delete leaves a copy whose stanza is gone, which a page skips.
func TestArchiveDeleteRacesAppends(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	const n, writers = 600, 4
	done := make(chan struct{})
	deleter := make(chan struct{})
	deletions := 0
	go func() {
		defer close(deleter)
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := s.DeleteArchive(t.Context(), "alice"); err != nil {
				t.Error(err)
				return
			}
			deletions++
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				appendPair(t, s, i)
			}
		})
	}
	wg.Wait()
	close(done)
	<-deleter
	p, err := s.QueryArchive(t.Context(), "bob", store.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != n {
		t.Fatalf("bob has %d of %d copies after %d deletions of alice's archive", len(p.Items), n, deletions)
	}
	for _, m := range p.Items {
		if !bytes.HasPrefix(m.Stanza, []byte("<message id='p")) {
			t.Fatalf("bob's %s: stanza %q", m.ID, m.Stanza)
		}
	}
	t.Logf("%d deletions of alice's archive during %d appends", deletions, n)
}
