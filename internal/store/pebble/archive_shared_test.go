package pebble

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// appendPair archives message i for alice (recipient) and bob (sender)
// the way the router and the mam module do: one call, one stanza, one id
// that carries its position.
func appendPair(t testing.TB, s *Store, i int) []byte {
	t.Helper()
	st := fmt.Appendf(nil, "<message id='p%d'><body>shared stanza %d</body></message>", i, i)
	tm := at0.Add(time.Duration(i) * time.Second)
	id := store.NewArchiveID(tm)
	if err := s.AppendArchives(t.Context(),
		store.ArchiveEntry{Owner: "alice", Message: store.ArchivedMessage{ID: id, Time: tm, With: "bob@x", Stanza: st}},
		store.ArchiveEntry{Owner: "bob", Message: store.ArchivedMessage{ID: id, Time: tm, With: "alice@x", Stanza: st}},
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
// which refers back to it, and one conversation key replaces both with
// index entries.
func TestArchiveSharedLayout(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	st := appendPair(t, s, 0)
	av, bv := archiveValues(t, s, "alice"), archiveValues(t, s, "bob")
	if len(av) != 1 || len(bv) != 1 {
		t.Fatalf("%d and %d values, want one each", len(av), len(bv))
	}
	if a := av[0]; a.format != archHolder || !bytes.Equal(a.stanza, st) || a.other != "bob" || a.with != "bob@x" {
		t.Fatalf("alice's copy: %+v", a)
	}
	if b := bv[0]; b.format != archRef || len(b.stanza) != 0 || b.other != "alice" || b.with != "alice@x" {
		t.Fatalf("bob's copy: %+v", b)
	}
	if n := rawKeys(t, s, tagArchiveWith); n != 0 {
		t.Fatalf("%d with index entries for a shared pair, want 0", n)
	}
	if n := rawKeys(t, s, tagArchiveConv); n != 1 {
		t.Fatalf("%d conversation keys, want 1", n)
	}

	// Copies with different stanzas or ids, or for one owner, stay copies
	// of their own.
	tm := at0.Add(time.Hour)
	id := store.NewArchiveID(tm)
	if err := s.AppendArchives(t.Context(),
		store.ArchiveEntry{Owner: "carol", Message: store.ArchivedMessage{ID: id, Time: tm, With: "dave@x", Stanza: []byte("<a/>")}},
		store.ArchiveEntry{Owner: "dave", Message: store.ArchivedMessage{ID: id, Time: tm, With: "carol@x", Stanza: []byte("<b/>")}},
		store.ArchiveEntry{Owner: "erin", Message: store.ArchivedMessage{ID: id, Time: tm, Stanza: []byte("<c/>")}},
		store.ArchiveEntry{Owner: "erin", Message: store.ArchivedMessage{ID: store.NewArchiveID(tm), Time: tm, Stanza: []byte("<c/>")}},
		store.ArchiveEntry{Owner: "fred", Message: store.ArchivedMessage{ID: store.NewArchiveID(tm), Time: tm, Stanza: []byte("<c/>")}},
	); err != nil {
		t.Fatal(err)
	}
	// Nor do two whose peers are not each other's owners: a with page
	// would look for them under another conversation.
	id = store.NewArchiveID(tm)
	if err := s.AppendArchives(t.Context(),
		store.ArchiveEntry{Owner: "gina", Message: store.ArchivedMessage{ID: id, Time: tm, With: "hank@x", Stanza: []byte("<d/>")}},
		store.ArchiveEntry{Owner: "hugo", Message: store.ArchivedMessage{ID: id, Time: tm, With: "gina@x", Stanza: []byte("<d/>")}},
	); err != nil {
		t.Fatal(err)
	}
	if p, err := s.QueryArchive(t.Context(), "gina", store.ArchiveQuery{With: "hank@x"}); err != nil || len(p.Items) != 1 {
		t.Fatalf("gina with hank: %d items, %v", len(p.Items), err)
	}
	for _, o := range []string{"carol", "dave", "erin", "fred", "gina", "hugo"} {
		for _, v := range archiveValues(t, s, o) {
			if v.format != archInline {
				t.Fatalf("%s: format %d, want %d", o, v.format, archInline)
			}
		}
	}
	// Expiry leaves no key of either kind behind.
	if _, err := s.ExpireArchive(t.Context(), tm.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{tagArchive, tagArchiveID, tagArchiveWith, tagArchiveConv} {
		if n := rawKeys(t, s, tag); n != 0 {
			t.Errorf("%d %s keys after expiring everything", n, tag)
		}
	}
}

// TestArchiveSharedWithPages merges a with page from the with index (a
// copy of its own) and the conversation keys (shared copies), in both
// directions and across page boundaries, and keeps a peer on another
// domain with the same localpart apart.
func TestArchiveSharedWithPages(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	var want []string
	for i := range 12 {
		tm := at0.Add(time.Duration(i) * time.Second)
		id := store.NewArchiveID(tm)
		st := fmt.Appendf(nil, "<m n='%d'/>", i)
		var err error
		switch i % 3 {
		case 0: // shared with bob
			err = s.AppendArchives(ctx,
				store.ArchiveEntry{Owner: "alice", Message: store.ArchivedMessage{ID: id, Time: tm, With: "bob@x", Stanza: st}},
				store.ArchiveEntry{Owner: "bob", Message: store.ArchivedMessage{ID: id, Time: tm, With: "alice@x", Stanza: st}})
			want = append(want, id)
		case 1: // alice's alone, with bob (bob does not archive it)
			err = s.AppendArchive(ctx, "alice", store.ArchivedMessage{ID: id, Time: tm, With: "bob@x", Stanza: st})
			want = append(want, id)
		case 2: // another bob, on another domain
			err = s.AppendArchive(ctx, "alice", store.ArchivedMessage{ID: id, Time: tm, With: "bob@y", Stanza: st})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// bob@y shares alice's conversation keys with bob@x: none may leak.
	p, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{With: "bob@y"})
	if err != nil || len(p.Items) != 4 || !p.Complete || p.Count != 4 {
		t.Fatalf("with bob@y: %d items, complete %v, count %d, %v", len(p.Items), p.Complete, p.Count, err)
	}
	for _, last := range []bool{false, true} {
		for _, max := range []int{0, 1, 3, 5, 8, 100} {
			var got []string
			q := store.ArchiveQuery{With: "bob@x", Max: max, Last: last}
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("max %d last %v: no end", max, last)
				}
				p, err := s.QueryArchive(ctx, "alice", q)
				if err != nil {
					t.Fatal(err)
				}
				if last {
					got = append(ids(p.Items), got...)
				} else {
					got = append(got, ids(p.Items)...)
				}
				if p.Complete || len(p.Items) == 0 {
					break
				}
				if last {
					q.BeforeID = p.Items[0].ID
				} else {
					q.AfterID = p.Items[len(p.Items)-1].ID
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("with bob@x, max %d, last %v: %q, want %q", max, last, got, want)
			}
		}
	}
	// bob's side: the shared copies only.
	p, err = s.QueryArchive(ctx, "bob", store.ArchiveQuery{With: "alice@x"})
	if err != nil || len(p.Items) != 4 || !p.Complete {
		t.Fatalf("bob with alice: %d items, %v", len(p.Items), err)
	}
	for i, m := range p.Items {
		if w := fmt.Sprintf("<m n='%d'/>", 3*i); string(m.Stanza) != w {
			t.Fatalf("bob's item %d: %q, want %q", i, m.Stanza, w)
		}
	}
	// Once alice's archive is gone, bob's copies are his own, with index
	// and all, and no conversation key is left.
	if err := s.DeleteArchive(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n := rawKeys(t, s, tagArchiveConv); n != 0 {
		t.Fatalf("%d conversation keys after deleting the holders' archive", n)
	}
	p, err = s.QueryArchive(ctx, "bob", store.ArchiveQuery{With: "alice@x"})
	if err != nil || len(p.Items) != 4 || !p.Complete {
		t.Fatalf("bob with alice after alice's deletion: %d items, %v", len(p.Items), err)
	}
	for _, v := range archiveValues(t, s, "bob") {
		if v.format != archInline {
			t.Fatalf("bob's copy after alice's deletion: format %d", v.format)
		}
	}
}

// TestArchiveDanglingRef checks that a copy whose holder is gone (expiry
// takes the two copies in separate batches) is skipped, not an error.
func TestArchiveDanglingRef(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	appendPair(t, s, 0)
	appendPair(t, s, 1)
	lo, hi := userPrefix(tagArchive, "alice")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	it.First()
	first := bytes.Clone(it.Key())
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
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
	if err := s.db.Set(first, encodeArchived(archInline, store.ArchivedMessage{ID: "x", Stanza: []byte("<x/>")}, ""), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueryArchive(t.Context(), "bob", store.ArchiveQuery{}); err == nil {
		t.Fatal("QueryArchive through a reference to an unshared copy succeeded")
	}
}

// TestArchiveDeleteRacesAppends deletes the holders' archive over and over
// while pairs are appended: every sender's copy must still read its stanza.
// An append during the deletion's walk that the last step missed (no
// noteHolders, or no Store.archive) leaves a copy whose stanza is gone,
// which a page skips.
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

// FuzzDecodeArchived feeds arbitrary bytes to the archived value decoder:
// it must not panic, and whatever it accepts must encode to a value that
// decodes the same (lengths are uvarints, which accept padded encodings,
// so the bytes themselves may differ).
func FuzzDecodeArchived(f *testing.F) {
	m := store.ArchivedMessage{ID: "g000003b0kn863cvbfqhhqn78vqm3s80", With: "bob@x", Stanza: []byte("<message/>")}
	f.Add(encodeArchived(archInline, m, ""))
	f.Add(encodeArchived(archHolder, m, "bob"))
	f.Add(encodeArchived(archRef, store.ArchivedMessage{ID: m.ID, With: "alice@x"}, "alice"))
	f.Add([]byte{archRef, 0, 0, 0})
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, v []byte) {
		a, err := decodeArchived(v)
		if err != nil {
			return
		}
		if a.format != archInline && a.other == "" {
			t.Fatalf("accepted format %d without the other owner", a.format)
		}
		if a.format == archRef && len(a.stanza) != 0 {
			t.Fatalf("accepted a reference with a stanza")
		}
		back := encodeArchived(a.format, store.ArchivedMessage{ID: a.id, With: a.with, Stanza: a.stanza}, a.other)
		b, err := decodeArchived(back)
		if err != nil {
			t.Fatalf("%q decodes to %+v, whose encoding %q does not decode: %v", v, a, back, err)
		}
		if b.format != a.format || b.id != a.id || b.with != a.with || b.other != a.other || !bytes.Equal(b.stanza, a.stanza) {
			t.Fatalf("%q decodes to %+v, which encodes to %q, which decodes to %+v", v, a, back, b)
		}
	})
}
