package pebble

import (
	"errors"
	"fmt"
	"slices"
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

// TestArchivePositionIDKeys checks which appends write an id index entry:
// none for an id that carries the position of the message's time, one for
// any other id, and that expiry leaves no key of either behind.
func TestArchivePositionIDKeys(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	keys := func() [3]int {
		return [3]int{rawKeys(t, s, tagArchive), rawKeys(t, s, tagArchiveID), rawKeys(t, s, tagArchiveWith)}
	}
	want := func(what string, w [3]int) {
		t.Helper()
		if got := keys(); got != w {
			t.Fatalf("%s: %d message, %d id index, %d with index keys; want %v", what, got[0], got[1], got[2], w)
		}
	}
	// A routed message's two copies, as mam archives them: the time is
	// the one the id carries.
	copies := func(id1, id2 string, tm time.Time) {
		t.Helper()
		err := s.AppendArchives(ctx,
			store.ArchiveEntry{Owner: "bob", Message: store.ArchivedMessage{ID: id1, Time: tm, With: "alice@x", Stanza: []byte("<m/>")}},
			store.ArchiveEntry{Owner: "alice", Message: store.ArchivedMessage{ID: id2, Time: tm, With: "bob@x", Stanza: []byte("<m/>")}})
		if err != nil {
			t.Fatalf("AppendArchives: %v", err)
		}
	}
	var posIDs, otherIDs []string
	tm := at0
	p1, _ := store.ParseArchiveID(store.NewArchiveID(tm))
	id1, id2 := store.FormatArchiveID(p1), store.NewArchiveID(tm)
	copies(id1, id2, tm)
	posIDs = append(posIDs, id1, id2)
	want("position ids", [3]int{2, 0, 2})

	copies("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6ba7b811-9dad-11d1-80b4-00c04fd430c8", tm.Add(time.Second))
	otherIDs = append(otherIDs, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6ba7b811-9dad-11d1-80b4-00c04fd430c8")
	want("UUIDs", [3]int{4, 2, 4})

	// The same instant in another location, and a clock reading with a
	// monotonic part, are the id's time.
	now := time.Now()
	idA, idB := store.NewArchiveID(tm.Add(2*time.Second)), store.NewArchiveID(now)
	for _, m := range []store.ArchivedMessage{
		{ID: idA, Time: tm.Add(2 * time.Second).In(time.FixedZone("x", -5*3600)), Stanza: []byte("<m/>")},
		{ID: idB, Time: now, Stanza: []byte("<m/>")},
	} {
		if err := s.AppendArchive(ctx, "alice", m); err != nil {
			t.Fatal(err)
		}
	}
	posIDs = append(posIDs, idA, idB)
	want("position ids in other clothes", [3]int{6, 2, 4})

	// An id that carries a position, but not the one of the message's
	// time, is indexed.
	late := store.NewArchiveID(tm.Add(time.Hour))
	if err := s.AppendArchive(ctx, "alice", store.ArchivedMessage{ID: late, Time: tm.Add(3 * time.Second), Stanza: []byte("<m/>")}); err != nil {
		t.Fatal(err)
	}
	otherIDs = append(otherIDs, late)
	want("a position id of another time", [3]int{7, 3, 4})

	p, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	wantAlice := []string{id2, "6ba7b811-9dad-11d1-80b4-00c04fd430c8", idA, late, idB}
	if got := ids(p.Items); !slices.Equal(got, wantAlice) {
		t.Fatalf("alice's archive %q, want %q", got, wantAlice)
	}
	for i, id := range wantAlice {
		p, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: id, Max: 1})
		if err != nil || len(p.Items) != min(1, len(wantAlice)-i-1) || len(p.Items) == 1 && p.Items[0].ID != wantAlice[i+1] {
			t.Fatalf("page after %q: %q, %v", id, ids(p.Items), err)
		}
	}

	// Expiry leaves nothing of either kind.
	n, err := s.ExpireArchive(ctx, now.Add(time.Second))
	if err != nil || n != 7 {
		t.Fatalf("ExpireArchive = %d, %v; want 7", n, err)
	}
	want("after expiry", [3]int{0, 0, 0})
	for _, id := range append(posIDs, otherIDs...) {
		for _, owner := range []string{"alice", "bob"} {
			if _, err := s.QueryArchive(ctx, owner, store.ArchiveQuery{AfterID: id}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: after expired id %q: %v", owner, id, err)
			}
		}
	}
}

func ids(ms []store.ArchivedMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestArchivePositionIDMismatch covers an id that carries the position of
// a message with another id (which only an index-path message whose own
// position happens to be that one can be): the lookup checks the id in
// the value, and then falls back to the index.
func TestArchivePositionIDMismatch(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	pos := store.MakeArchivePos(at0, 42)
	posID := store.FormatArchiveID(pos)
	put := func(k, v []byte) {
		t.Helper()
		if err := s.db.Set(k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	// "other" lives at pos, through the index.
	put(append(archivePrefix(tagArchive, "alice", ""), pos[:]...), encodeArchived(archInline, store.ArchivedMessage{ID: "other", Stanza: []byte("<m/>")}, ""))
	put(archiveIDKey("alice", "other"), pos[:])
	for _, q := range []store.ArchiveQuery{{AfterID: posID}, {BeforeID: posID}} {
		if _, err := s.QueryArchive(ctx, "alice", q); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("QueryArchive(%+v) with another message at the id's position: %v", q, err)
		}
	}
	if p, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{BeforeID: "other"}); err != nil || len(p.Items) != 0 || !p.Complete {
		t.Fatalf("before other: %+v, %v", p, err)
	}
	// posID itself stored later, through the index (its time was not the
	// message's): found there.
	m := store.ArchivedMessage{ID: posID, Time: at0.Add(time.Second), Stanza: []byte("<m/>")}
	if err := s.AppendArchive(ctx, "alice", m); err != nil {
		t.Fatal(err)
	}
	p, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: "other"})
	if err != nil || !slices.Equal(ids(p.Items), []string{posID}) {
		t.Fatalf("after other: %q, %v", ids(p.Items), err)
	}
	p, err = s.QueryArchive(ctx, "alice", store.ArchiveQuery{BeforeID: posID})
	if err != nil || !slices.Equal(ids(p.Items), []string{"other"}) {
		t.Fatalf("before %q: %q, %v", posID, ids(p.Items), err)
	}
	// A damaged value at the id's position is an error, not a miss.
	put(append(archivePrefix(tagArchive, "alice", ""), pos[:]...), []byte{formatV1, 200})
	if _, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: posID}); !errors.Is(err, errCorrupt) {
		t.Fatalf("after an id whose position holds a damaged value: %v", err)
	}
}

// TestArchivePositionIDDeleteAccount checks that deleting an account takes
// its archive of both kinds of ids and leaves another's alone.
func TestArchivePositionIDDeleteAccount(t *testing.T) {
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	ctx := t.Context()
	owned := map[string][]string{}
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateAccount(ctx, store.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			tm := at0.Add(time.Duration(i) * time.Second)
			id := fmt.Sprintf("%s-%d", u, i)
			if i%2 == 0 {
				id = store.NewArchiveID(tm)
			}
			owned[u] = append(owned[u], id)
			if err := s.AppendArchive(ctx, u, store.ArchivedMessage{ID: id, Time: tm, With: "w@x", Stanza: []byte("<m/>")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := rawKeys(t, s, tagArchiveID); n != 6 {
		t.Fatalf("%d id index keys, want 6 (3 per owner)", n)
	}
	if err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{tagArchive, tagArchiveID, tagArchiveWith} {
		lo, _ := userPrefix(tag, "alice")
		if n := rawKeys(t, s, string(lo)); n != 0 {
			t.Fatalf("%d keys under %q after DeleteAccount", n, lo)
		}
	}
	for _, id := range owned["alice"] {
		if _, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: id}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after %q of a deleted account: %v", id, err)
		}
	}
	for i, id := range owned["bob"] {
		p, err := s.QueryArchive(ctx, "bob", store.ArchiveQuery{BeforeID: id, With: "w@x"})
		if err != nil || !slices.Equal(ids(p.Items), owned["bob"][:i]) {
			t.Fatalf("bob's page before %q: %q, %v", id, ids(p.Items), err)
		}
	}
}

// TestArchiveMessageKeys checks the keys expiry deletes for one message:
// no id index key for an id that carries the message's position (deleting
// a key that was never written would still write a tombstone).
func TestArchiveMessageKeys(t *testing.T) {
	pos := store.MakeArchivePos(at0, 9)
	posID := store.FormatArchiveID(pos)
	other := store.MakeArchivePos(at0, 10)
	msg := func(p store.ArchivePos) string {
		return string(append(archivePrefix(tagArchive, "alice", ""), p[:]...))
	}
	with := func(p store.ArchivePos) string {
		return string(append(archivePrefix(tagArchiveWith, "alice", "w@x"), p[:]...))
	}
	conv := func(p store.ArchivePos) string { return string(convKey("alice", "w", p[:])) }
	for _, c := range []struct {
		pos  store.ArchivePos
		v    archivedValue
		want []string
	}{
		{pos, archivedValue{format: archInline, id: posID, with: "w@x"}, []string{msg(pos), with(pos)}},
		{pos, archivedValue{format: archInline, id: posID}, []string{msg(pos)}},
		{other, archivedValue{format: archInline, id: posID, with: "w@x"}, []string{msg(other), string(archiveIDKey("alice", posID)), with(other)}},
		{pos, archivedValue{format: archInline, id: "uuid"}, []string{msg(pos), string(archiveIDKey("alice", "uuid"))}},
		// A holder has a conversation key instead of a with index entry,
		// a reference neither.
		{pos, archivedValue{format: archHolder, id: posID, with: "w@x", other: "w"}, []string{msg(pos), conv(pos)}},
		{pos, archivedValue{format: archRef, id: posID, with: "w@x", other: "w"}, []string{msg(pos)}},
		{other, archivedValue{format: archRef, id: "uuid", with: "w@x", other: "w"}, []string{msg(other), string(archiveIDKey("alice", "uuid"))}},
	} {
		var got []string
		for _, k := range archiveMessageKeys("alice", c.pos[:], c.v) {
			got = append(got, string(k))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("keys of %+v at %x:\n got %q\nwant %q", c.v, c.pos, got, c.want)
		}
	}
}
