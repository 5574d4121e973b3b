package pebble

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/storetest"
)

func TestArchivePersistent(t *testing.T) {
	storetest.RunArchivePersistent(t, func(dir string) (store.Store, error) {
		return Open(dir, Options{Logger: quiet})
	})
}

var at0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func appendN(t testing.TB, s *Store, owner string, n int, with func(i int) string) {
	t.Helper()
	for i := range n {
		m := store.ArchivedMessage{ID: fmt.Sprint(i), Time: at0.Add(time.Duration(i) * time.Second), With: with(i), Stanza: []byte("<message/>")}
		if err := s.AppendArchive(t.Context(), owner, m); err != nil {
			t.Fatalf("AppendArchive: %v", err)
		}
	}
}

// TestArchiveCount pins what this backend reports as Count: exact when the
// page holds every matching item, -1 otherwise (see QueryArchive).
func TestArchiveCount(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	appendN(t, s, "alice", 10, func(i int) string { return fmt.Sprintf("w%d@x", i%2) })
	for _, c := range []struct {
		q    store.ArchiveQuery
		want int
	}{
		{store.ArchiveQuery{}, 10},
		{store.ArchiveQuery{Max: 10}, 10},
		{store.ArchiveQuery{Max: 10, Last: true}, 10},
		{store.ArchiveQuery{With: "w1@x"}, 5},
		{store.ArchiveQuery{Start: at0.Add(8 * time.Second)}, 2},
		{store.ArchiveQuery{Max: 9}, -1},
		{store.ArchiveQuery{Max: 9, Last: true}, -1},
		{store.ArchiveQuery{AfterID: "3"}, -1},
		{store.ArchiveQuery{BeforeID: "3", Last: true}, -1},
	} {
		p, err := s.QueryArchive(t.Context(), "alice", c.q)
		if err != nil {
			t.Fatalf("QueryArchive(%+v): %v", c.q, err)
		}
		if p.Count != c.want {
			t.Errorf("QueryArchive(%+v).Count = %d, want %d", c.q, p.Count, c.want)
		}
	}
}

// TestDeleteArchiveBatch checks the helper DeleteAccount uses: it adds to a
// caller's batch and nothing is deleted before that batch commits.
func TestDeleteArchiveBatch(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	appendN(t, s, "ann", 3, func(int) string { return "w@x" })
	appendN(t, s, "ann2", 3, func(int) string { return "w@x" })
	if err := s.SetArchivePrefs(ctx, "ann", store.ArchivePrefs{Default: "never"}); err != nil {
		t.Fatal(err)
	}
	b := s.db.NewBatch()
	if err := s.deleteArchiveBatch(b, "ann"); err != nil {
		t.Fatalf("deleteArchiveBatch: %v", err)
	}
	if p, err := s.QueryArchive(ctx, "ann", store.ArchiveQuery{}); err != nil || len(p.Items) != 3 {
		t.Fatalf("before commit: %d items, %v", len(p.Items), err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.ArchiveQuery{{}, {With: "w@x"}} {
		if p, err := s.QueryArchive(ctx, "ann", q); err != nil || len(p.Items) != 0 {
			t.Fatalf("after commit (%+v): %d items, %v", q, len(p.Items), err)
		}
		if p, err := s.QueryArchive(ctx, "ann2", q); err != nil || len(p.Items) != 3 {
			t.Fatalf("ann2 after deleting ann (%+v): %d items, %v", q, len(p.Items), err)
		}
	}
	if _, err := s.GetArchivePrefs(ctx, "ann"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("prefs after commit: %v", err)
	}
	if err := s.deleteArchiveBatch(s.db.NewBatch(), "a\x00b"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("deleteArchiveBatch with NUL owner: %v", err)
	}
}

// TestArchiveCorruptValue makes sure a damaged value is an error, not a
// panic or a wrong message.
func TestArchiveCorruptValue(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	appendN(t, s, "alice", 1, func(int) string { return "" })
	k := append(archivePrefix(tagArchive, "alice", ""), appendPos(nil, at0, 1)...)
	if err := s.db.Set(k, []byte{formatV1, 200}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueryArchive(t.Context(), "alice", store.ArchiveQuery{}); !errors.Is(err, errCorrupt) {
		t.Fatalf("QueryArchive over a corrupt value: %v", err)
	}
}

func TestPosOrder(t *testing.T) {
	times := []time.Time{
		time.Unix(-1<<40, 0), time.Unix(-1, 999_999_999), time.Unix(0, 0), time.Unix(0, 1),
		at0, at0.Add(time.Nanosecond), time.Unix(1<<40, 0),
	}
	var prev []byte
	for i, tm := range times {
		p := appendPos(nil, tm, 7)
		if len(p) != posLen || !posTime(p).Equal(tm) {
			t.Fatalf("pos of %v: %x decodes to %v", tm, p, posTime(p))
		}
		if i > 0 && string(prev) >= string(p) {
			t.Fatalf("pos of %v does not sort after the one of %v", tm, times[i-1])
		}
		prev = p
	}
}
