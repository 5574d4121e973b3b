package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// archiveOf returns s as a store.Archive. store.Store does not embed
// Archive yet, so the suite asserts it: a backend run by the suite must
// implement it.
func archiveOf(t *testing.T, s store.Store) store.Archive {
	t.Helper()
	a, ok := s.(store.Archive)
	if !ok {
		t.Fatalf("%T does not implement store.Archive", s)
	}
	return a
}

// archived builds message i of a test archive: archived i seconds after
// t0, id "id<i>", a stanza that names i.
func archived(i int, with string) store.ArchivedMessage {
	return store.ArchivedMessage{
		ID:     fmt.Sprintf("id%d", i),
		Time:   t0.Add(time.Duration(i) * time.Second),
		With:   with,
		Stanza: fmt.Appendf(nil, "<message id='m%d'><body>%d</body></message>", i, i),
	}
}

// fillArchive appends archived(i) for i in [0, n) to owner's archive; even
// messages are with "even@x", odd ones with "odd@x".
func fillArchive(t *testing.T, a store.Archive, owner string, n int) []store.ArchivedMessage {
	t.Helper()
	ms := make([]store.ArchivedMessage, n)
	for i := range n {
		with := "even@x"
		if i%2 == 1 {
			with = "odd@x"
		}
		ms[i] = archived(i, with)
		check(t, "AppendArchive", a.AppendArchive(t.Context(), owner, ms[i]))
	}
	return ms
}

func ids(ms []store.ArchivedMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// queryPage runs q and checks ids, Complete and Count (which may be -1:
// when it is not, it must equal count).
func queryPage(t *testing.T, a store.Archive, owner string, q store.ArchiveQuery, wantIDs []string, complete bool, count int) store.ArchivePage {
	t.Helper()
	p, err := a.QueryArchive(t.Context(), owner, q)
	check(t, "QueryArchive", err)
	if got := ids(p.Items); !slices.Equal(got, wantIDs) && !(len(got) == 0 && len(wantIDs) == 0) {
		t.Fatalf("QueryArchive(%q, %+v) ids:\n got %v\nwant %v", owner, q, got, wantIDs)
	}
	if p.Complete != complete {
		t.Fatalf("QueryArchive(%q, %+v) complete = %v, want %v", owner, q, p.Complete, complete)
	}
	if p.Count != -1 && p.Count != count {
		t.Fatalf("QueryArchive(%q, %+v) count = %d, want %d or -1", owner, q, p.Count, count)
	}
	return p
}

func idRange(from, to, step int) []string {
	var out []string
	for i := from; i < to; i += step {
		out = append(out, fmt.Sprintf("id%d", i))
	}
	return out
}

// mixedArchive appends n messages to owner's archive, message i archived i
// seconds after t0: even ones under ids that carry their position
// (store.NewArchiveID, as the router makes them), odd ones under other ids
// ("id<i>"), and message 5 under an id that carries a position but not the
// one of its own time (the id of a message made an hour later). Messages
// divisible by 3 are with "three@x", the others with "other@x". It
// returns the messages in archive order.
func mixedArchive(t *testing.T, a store.Archive, owner string, n int) []store.ArchivedMessage {
	t.Helper()
	ms := make([]store.ArchivedMessage, n)
	for i := range n {
		m := archived(i, "other@x")
		if i%3 == 0 {
			m.With = "three@x"
		}
		switch {
		case i == 5:
			m.ID = store.NewArchiveID(m.Time.Add(time.Hour))
		case i%2 == 0:
			m.ID = store.NewArchiveID(m.Time)
		}
		ms[i] = m
	}
	// A routed message's two copies go in one call; the order of the
	// calls is not the archive order.
	for _, i := range rand.Perm(n) {
		check(t, "AppendArchives", a.AppendArchives(t.Context(), store.ArchiveEntry{Owner: owner, Message: ms[i]}))
	}
	return ms
}

func pick(ms []store.ArchivedMessage, keep func(i int) bool) []string {
	var out []string
	for i, m := range ms {
		if keep(i) {
			out = append(out, m.ID)
		}
	}
	return out
}

var archiveTests = []test{
	{"Empty", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		queryPage(t, a, "alice", store.ArchiveQuery{}, nil, true, 0)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 10, Last: true}, nil, true, 0)
		_, err := a.QueryArchive(t.Context(), "alice", store.ArchiveQuery{AfterID: "nope"})
		wantErr(t, "QueryArchive after unknown id in empty archive", err, store.ErrNotFound)
	}},
	{"AppendAndRead", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		ms := fillArchive(t, a, "alice", 5)
		p := queryPage(t, a, "alice", store.ArchiveQuery{}, ids(ms), true, 5)
		for i, m := range p.Items {
			w := ms[i]
			if m.ID != w.ID || !m.Time.Equal(w.Time) || m.With != w.With || !bytes.Equal(m.Stanza, w.Stanza) {
				t.Fatalf("item %d:\n got %+v\nwant %+v", i, m, w)
			}
		}
		// The same id in another archive is another message.
		dup := archived(99, "x@y")
		dup.ID = ms[2].ID
		check(t, "AppendArchive same id, other owner", a.AppendArchive(t.Context(), "bob", dup))
		queryPage(t, a, "bob", store.ArchiveQuery{}, []string{dup.ID}, true, 1)
	}},
	{"AppendArchives", func(t *testing.T, s store.Store) {
		// Several archives in one call, the way a routed message's two
		// copies arrive, and the same order as one call each.
		a := archiveOf(t, s)
		ctx := t.Context()
		m0, m1, m2 := archived(0, "bob@x"), archived(1, "alice@x"), archived(2, "bob@x")
		check(t, "AppendArchives", a.AppendArchives(ctx,
			store.ArchiveEntry{Owner: "alice", Message: m0},
			store.ArchiveEntry{Owner: "bob", Message: m1},
			store.ArchiveEntry{Owner: "alice", Message: m2}))
		queryPage(t, a, "alice", store.ArchiveQuery{}, []string{"id0", "id2"}, true, 2)
		queryPage(t, a, "bob", store.ArchiveQuery{}, []string{"id1"}, true, 1)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "bob@x", AfterID: "id0"}, []string{"id2"}, true, -1)
		check(t, "AppendArchives of nothing", a.AppendArchives(ctx))
		// All or none: one refused entry keeps the others out.
		if err := a.AppendArchives(ctx,
			store.ArchiveEntry{Owner: "carol", Message: archived(3, "")},
			store.ArchiveEntry{Owner: "bad\x00owner", Message: archived(4, "")}); err == nil {
			t.Fatalf("AppendArchives with an invalid owner succeeded")
		}
		if err := a.AppendArchives(ctx,
			store.ArchiveEntry{Owner: "carol", Message: archived(5, "")},
			store.ArchiveEntry{Owner: "carol", Message: store.ArchivedMessage{Time: t0, Stanza: []byte("x")}}); err == nil {
			t.Fatalf("AppendArchives with an empty id succeeded")
		}
		queryPage(t, a, "carol", store.ArchiveQuery{}, nil, true, 0)
	}},
	{"SharedStanza", func(t *testing.T, s store.Store) {
		// A routed message's two copies carry the same stanza (a backend
		// may store it once). Each archive reads it back, whichever
		// path a page takes, and deleting or expiring one copy leaves
		// the other whole.
		a := archiveOf(t, s)
		ctx := t.Context()
		appendPair := func(i int) {
			t.Helper()
			st := fmt.Appendf(nil, "<message id='p%d'><body>shared %d</body></message>", i, i)
			tm := t0.Add(time.Duration(i) * time.Second)
			check(t, "AppendArchives pair", a.AppendArchives(ctx,
				store.ArchiveEntry{Owner: "alice", Message: store.ArchivedMessage{ID: fmt.Sprintf("a%d", i), Time: tm, With: "bob@x", Stanza: st}},
				store.ArchiveEntry{Owner: "bob", Message: store.ArchivedMessage{ID: fmt.Sprintf("b%d", i), Time: tm.Add(time.Millisecond), With: "alice@x", Stanza: st}}))
		}
		checkStanzas := func(owner, prefix string, want []int) {
			t.Helper()
			var wantIDs []string
			for _, i := range want {
				wantIDs = append(wantIDs, fmt.Sprintf("%s%d", prefix, i))
			}
			with := "bob@x"
			if owner == "bob" {
				with = "alice@x"
			}
			for _, q := range []store.ArchiveQuery{{}, {With: with}, {Last: true, Max: len(want) + 1}} {
				p, err := a.QueryArchive(ctx, owner, q)
				check(t, "QueryArchive "+owner, err)
				if got := ids(p.Items); !slices.Equal(got, wantIDs) {
					t.Fatalf("%s's archive (%+v): %q, want %q", owner, q, got, wantIDs)
				}
				for k, m := range p.Items {
					if w := fmt.Sprintf("<message id='p%d'><body>shared %d</body></message>", want[k], want[k]); string(m.Stanza) != w {
						t.Fatalf("%s's %s: stanza %q, want %q", owner, m.ID, m.Stanza, w)
					}
				}
			}
			if len(want) > 1 {
				queryPage(t, a, owner, store.ArchiveQuery{AfterID: wantIDs[0], Max: 1}, wantIDs[1:2], len(want) == 2, -1)
			}
		}
		for i := range 4 {
			appendPair(i)
		}
		checkStanzas("alice", "a", []int{0, 1, 2, 3})
		checkStanzas("bob", "b", []int{0, 1, 2, 3})

		// Expiry between the two copies of message 0: alice's goes, bob's
		// (a millisecond later) stays whole.
		_, err := a.ExpireArchive(ctx, t0.Add(time.Millisecond/2))
		check(t, "ExpireArchive", err)
		checkStanzas("alice", "a", []int{1, 2, 3})
		checkStanzas("bob", "b", []int{0, 1, 2, 3})

		// Deleting the first copies' archive leaves the second ones.
		check(t, "DeleteArchive alice", a.DeleteArchive(ctx, "alice"))
		checkStanzas("alice", "a", nil)
		checkStanzas("bob", "b", []int{0, 1, 2, 3})

		// And the other way round, through account deletion.
		appendPair(4)
		check(t, "CreateAccount bob", s.CreateAccount(ctx, store.Account{Username: "bob", Created: t0}))
		check(t, "DeleteAccount bob", s.DeleteAccount(ctx, "bob"))
		checkStanzas("bob", "b", nil)
		checkStanzas("alice", "a", []int{4})

		// Both copies expired: nothing is left of either.
		appendPair(5)
		_, err = a.ExpireArchive(ctx, t0.Add(time.Hour))
		check(t, "ExpireArchive all", err)
		checkStanzas("alice", "a", nil)
		checkStanzas("bob", "b", nil)
	}},
	{"OrderByTimeThenInsertion", func(t *testing.T, s store.Store) {
		// Order is by Time, not by insertion or id; equal times keep
		// insertion order.
		a := archiveOf(t, s)
		ctx := t.Context()
		for _, m := range []store.ArchivedMessage{
			{ID: "c", Time: t0.Add(2 * time.Second), Stanza: []byte("c")},
			{ID: "a", Time: t0, Stanza: []byte("a")},
			{ID: "z1", Time: t0.Add(time.Second), Stanza: []byte("z1")},
			{ID: "b1", Time: t0.Add(time.Second), Stanza: []byte("b1")},
			{ID: "m1", Time: t0.Add(time.Second), Stanza: []byte("m1")},
			// Before 1970: byte order of times must still be time order.
			{ID: "old", Time: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), Stanza: []byte("old")},
			// Sub-second order.
			{ID: "ns", Time: t0.Add(time.Second - time.Millisecond), Stanza: []byte("ns")},
		} {
			check(t, "AppendArchive "+m.ID, a.AppendArchive(ctx, "alice", m))
		}
		want := []string{"old", "a", "ns", "z1", "b1", "m1", "c"}
		queryPage(t, a, "alice", store.ArchiveQuery{}, want, true, len(want))
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 3, Last: true}, want[4:], false, len(want))
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "z1", Max: 1}, []string{"b1"}, false, len(want))
	}},
	{"Filters", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		fillArchive(t, a, "alice", 20)
		sec := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
		// With is an exact match on the bare JID.
		queryPage(t, a, "alice", store.ArchiveQuery{With: "odd@x"}, idRange(1, 20, 2), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "odd@x.org"}, nil, true, 0)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "odd"}, nil, true, 0)
		// Start and End are inclusive.
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(5)}, idRange(5, 20, 1), true, 15)
		queryPage(t, a, "alice", store.ArchiveQuery{End: sec(5)}, idRange(0, 6, 1), true, 6)
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(5), End: sec(9)}, idRange(5, 10, 1), true, 5)
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(5), End: sec(5)}, []string{"id5"}, true, 1)
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(9), End: sec(5)}, nil, true, 0)
		// Bounds between messages.
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(5).Add(time.Millisecond), End: sec(8).Add(-time.Millisecond)},
			idRange(6, 8, 1), true, 2)
		// All filters together.
		queryPage(t, a, "alice", store.ArchiveQuery{With: "even@x", Start: sec(3), End: sec(12)}, idRange(4, 13, 2), true, 5)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "even@x", Start: sec(3), End: sec(12), Max: 2}, idRange(4, 7, 2), false, 5)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "even@x", Start: sec(3), End: sec(12), Max: 2, Last: true}, idRange(10, 13, 2), false, 5)
	}},
	{"AfterBeforeIDs", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		ctx := t.Context()
		fillArchive(t, a, "alice", 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3"}, idRange(4, 10, 1), true, 10)
		// The id bounds are part of the matching range: a forward page that
		// reaches BeforeID is complete, as is a Last page that reaches AfterID.
		queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: "id3"}, idRange(0, 3, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3", BeforeID: "id7"}, idRange(4, 7, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3", BeforeID: "id7", Max: 3, Last: true}, idRange(4, 7, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3", BeforeID: "id7", Max: 2, Last: true}, idRange(5, 7, 1), false, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3", BeforeID: "id7", Max: 2}, idRange(4, 6, 1), false, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3", BeforeID: "id4"}, nil, true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id7", BeforeID: "id3"}, nil, true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id9"}, nil, true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: "id0", Last: true}, nil, true, 10)
		// An id bound combines with filters; the id's own message need not match them.
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id3", With: "odd@x"}, []string{"id5", "id7", "id9"}, true, 5)
		queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: "id6", With: "odd@x", Max: 2, Last: true}, []string{"id3", "id5"}, false, 5)
		// Unknown ids, also ids of another archive, are ErrNotFound.
		check(t, "AppendArchive", a.AppendArchive(ctx, "bob", archived(100, "")))
		for _, q := range []store.ArchiveQuery{
			{AfterID: "nope"}, {BeforeID: "nope"}, {AfterID: "id100"}, {BeforeID: "id100", Last: true},
			{AfterID: "id1", BeforeID: "nope"},
		} {
			_, err := a.QueryArchive(ctx, "alice", q)
			wantErr(t, fmt.Sprintf("QueryArchive(%+v)", q), err, store.ErrNotFound)
		}
	}},
	{"PositionIDs", func(t *testing.T, s store.Store) {
		// Ids that carry their message's position (store.NewArchiveID),
		// other ids, and a position id of another time, in one archive:
		// every id bound finds its message, whatever its kind.
		a := archiveOf(t, s)
		ctx := t.Context()
		const n = 14
		ms := mixedArchive(t, a, "alice", n)
		all := ids(ms)
		p := queryPage(t, a, "alice", store.ArchiveQuery{}, all, true, n)
		for i, m := range p.Items {
			if !m.Time.Equal(ms[i].Time) || m.With != ms[i].With || !bytes.Equal(m.Stanza, ms[i].Stanza) {
				t.Fatalf("item %d:\n got %+v\nwant %+v", i, m, ms[i])
			}
		}
		for i, id := range all {
			queryPage(t, a, "alice", store.ArchiveQuery{AfterID: id}, all[i+1:], true, n)
			queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: id}, all[:i], true, n)
			queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: id, Max: 2, Last: true}, all[max(0, i-2):i], i <= 2, n)
			if i+3 < n {
				queryPage(t, a, "alice", store.ArchiveQuery{AfterID: id, BeforeID: all[i+3]}, all[i+1:i+3], true, n)
			}
		}
		// Paging both ways, with pages that start and end on both kinds.
		for _, max := range []int{1, 2, 3, 5} {
			var got []string
			after := ""
			for {
				p, err := a.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: after, Max: max})
				check(t, "QueryArchive", err)
				got = append(got, ids(p.Items)...)
				if p.Complete {
					break
				}
				after = p.Items[len(p.Items)-1].ID
			}
			if !slices.Equal(got, all) {
				t.Fatalf("forward pages of %d: %v, want %v", max, got, all)
			}
			got = nil
			before := ""
			for {
				p, err := a.QueryArchive(ctx, "alice", store.ArchiveQuery{BeforeID: before, Max: max, Last: true})
				check(t, "QueryArchive", err)
				got = append(ids(p.Items), got...)
				if p.Complete {
					break
				}
				before = p.Items[0].ID
			}
			if !slices.Equal(got, all) {
				t.Fatalf("backward pages of %d: %v, want %v", max, got, all)
			}
		}
		// With-filtered pages, bounded by ids of both kinds (the bound's own
		// message need not match the filter).
		three := pick(ms, func(i int) bool { return i%3 == 0 })
		queryPage(t, a, "alice", store.ArchiveQuery{With: "three@x"}, three, true, len(three))
		queryPage(t, a, "alice", store.ArchiveQuery{With: "three@x", AfterID: all[4]}, pick(ms, func(i int) bool { return i%3 == 0 && i > 4 }), true, len(three))
		queryPage(t, a, "alice", store.ArchiveQuery{With: "three@x", AfterID: all[5]}, pick(ms, func(i int) bool { return i%3 == 0 && i > 5 }), true, len(three))
		queryPage(t, a, "alice", store.ArchiveQuery{With: "three@x", AfterID: all[3], Max: 2}, []string{all[6], all[9]}, false, len(three))
		queryPage(t, a, "alice", store.ArchiveQuery{With: "other@x", BeforeID: all[10], Max: 3, Last: true}, []string{all[5], all[7], all[8]}, false, 9)
		// Start, End and Last.
		sec := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(4), End: sec(6)}, all[4:7], true, 3)
		queryPage(t, a, "alice", store.ArchiveQuery{Start: sec(4), End: sec(6), AfterID: all[4]}, all[5:7], true, 3)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 3, Last: true}, all[n-3:], false, n)
		// An id that carries a position but is not in this archive, at a
		// time with or without a message, and ids of another archive.
		check(t, "AppendArchive", a.AppendArchive(ctx, "bob", store.ArchivedMessage{ID: store.NewArchiveID(sec(20)), Time: sec(20), Stanza: []byte("b")}))
		bobs, err := a.QueryArchive(ctx, "bob", store.ArchiveQuery{})
		check(t, "QueryArchive bob", err)
		for _, id := range []string{
			store.NewArchiveID(sec(2)), store.NewArchiveID(sec(100)), store.NewArchiveID(ms[5].Time),
			bobs.Items[0].ID, strings.ToUpper(all[0]), all[0][:31],
		} {
			for _, q := range []store.ArchiveQuery{{AfterID: id}, {BeforeID: id, Last: true}, {AfterID: all[1], BeforeID: id}} {
				_, err := a.QueryArchive(ctx, "alice", q)
				wantErr(t, fmt.Sprintf("QueryArchive(%+v)", q), err, store.ErrNotFound)
			}
		}
		queryPage(t, a, "bob", store.ArchiveQuery{AfterID: bobs.Items[0].ID}, nil, true, 1)

		// Expiry takes both kinds, their ids and their with entries.
		nx, err := a.ExpireArchive(ctx, sec(6))
		check(t, "ExpireArchive", err)
		if nx != 6 {
			t.Fatalf("ExpireArchive = %d, want 6", nx)
		}
		queryPage(t, a, "alice", store.ArchiveQuery{}, all[6:], true, n-6)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "three@x"}, pick(ms, func(i int) bool { return i%3 == 0 && i >= 6 }), true, 3)
		for _, id := range all[:6] {
			_, err := a.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: id})
			wantErr(t, "QueryArchive after an expired id", err, store.ErrNotFound)
		}
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: all[6], Max: 1}, all[7:8], false, n-6)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: all[7], Max: 1}, all[8:9], false, n-6)

		// Deletion takes the rest.
		check(t, "DeleteArchive", a.DeleteArchive(ctx, "alice"))
		queryPage(t, a, "alice", store.ArchiveQuery{}, nil, true, 0)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "three@x"}, nil, true, 0)
		for _, id := range all[6:] {
			_, err := a.QueryArchive(ctx, "alice", store.ArchiveQuery{BeforeID: id})
			wantErr(t, "QueryArchive before a deleted id", err, store.ErrNotFound)
		}
		queryPage(t, a, "bob", store.ArchiveQuery{}, ids(bobs.Items), true, 1)
		// The ids are free again.
		for _, m := range ms {
			check(t, "AppendArchive after delete", a.AppendArchive(ctx, "alice", m))
		}
		queryPage(t, a, "alice", store.ArchiveQuery{}, all, true, n)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: all[11]}, all[12:], true, n)
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: all[4], BeforeID: all[6]}, all[5:6], true, n)
	}},
	{"PagingForward", func(t *testing.T, s store.Store) {
		// RSM forward paging: Max and AfterID of the last item, to the end.
		a := archiveOf(t, s)
		ms := fillArchive(t, a, "alice", 10)
		var got []string
		after := ""
		want := [][]string{idRange(0, 3, 1), idRange(3, 6, 1), idRange(6, 9, 1), idRange(9, 10, 1)}
		for i, w := range want {
			p := queryPage(t, a, "alice", store.ArchiveQuery{AfterID: after, Max: 3}, w, i == len(want)-1, 10)
			got = append(got, ids(p.Items)...)
			after = p.Items[len(p.Items)-1].ID
		}
		if !slices.Equal(got, ids(ms)) {
			t.Fatalf("paged ids %v, want %v", got, ids(ms))
		}
		// A page that ends exactly at the last item is complete.
		queryPage(t, a, "alice", store.ArchiveQuery{AfterID: "id6", Max: 3}, idRange(7, 10, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 10}, ids(ms), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 9}, ids(ms[:9]), false, 10)
	}},
	{"PagingBackward", func(t *testing.T, s store.Store) {
		// RSM <before/> paging: the last page first, then BeforeID of the
		// first item, to the start. Items stay oldest first.
		a := archiveOf(t, s)
		fillArchive(t, a, "alice", 10)
		want := [][]string{idRange(7, 10, 1), idRange(4, 7, 1), idRange(1, 4, 1), idRange(0, 1, 1)}
		before := ""
		for i, w := range want {
			p := queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: before, Max: 3, Last: true}, w, i == len(want)-1, 10)
			before = p.Items[0].ID
		}
		queryPage(t, a, "alice", store.ArchiveQuery{BeforeID: "id3", Max: 3, Last: true}, idRange(0, 3, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 10, Last: true}, idRange(0, 10, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 0, Last: true}, idRange(0, 10, 1), true, 10)
		queryPage(t, a, "alice", store.ArchiveQuery{Max: 9, Last: true}, idRange(1, 10, 1), false, 10)
	}},
	{"Prefs", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		ctx := t.Context()
		_, err := a.GetArchivePrefs(ctx, "alice")
		wantErr(t, "GetArchivePrefs before any Set", err, store.ErrNotFound)
		p := store.ArchivePrefs{Default: "roster", Always: []string{"a@x", "b@x"}, Never: []string{"c@x"}}
		check(t, "SetArchivePrefs", a.SetArchivePrefs(ctx, "alice", p))
		got, err := a.GetArchivePrefs(ctx, "alice")
		check(t, "GetArchivePrefs", err)
		if got.Default != p.Default || !slices.Equal(got.Always, p.Always) || !slices.Equal(got.Never, p.Never) {
			t.Fatalf("GetArchivePrefs = %+v, want %+v", got, p)
		}
		// Set replaces, and empty lists read back empty.
		check(t, "SetArchivePrefs", a.SetArchivePrefs(ctx, "alice", store.ArchivePrefs{Default: "never"}))
		got, err = a.GetArchivePrefs(ctx, "alice")
		check(t, "GetArchivePrefs", err)
		if got.Default != "never" || len(got.Always) != 0 || len(got.Never) != 0 {
			t.Fatalf("GetArchivePrefs after replace = %+v", got)
		}
		_, err = a.GetArchivePrefs(ctx, "bob")
		wantErr(t, "GetArchivePrefs of another owner", err, store.ErrNotFound)
	}},
	{"DeleteArchive", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		ctx := t.Context()
		ms := fillArchive(t, a, "alice", 6)
		fillArchive(t, a, "bob", 3)
		check(t, "SetArchivePrefs", a.SetArchivePrefs(ctx, "alice", store.ArchivePrefs{Default: "always"}))
		check(t, "SetArchivePrefs", a.SetArchivePrefs(ctx, "bob", store.ArchivePrefs{Default: "never"}))
		check(t, "DeleteArchive", a.DeleteArchive(ctx, "alice"))
		queryPage(t, a, "alice", store.ArchiveQuery{}, nil, true, 0)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "odd@x"}, nil, true, 0)
		_, err := a.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: "id1"})
		wantErr(t, "QueryArchive after a deleted id", err, store.ErrNotFound)
		_, err = a.GetArchivePrefs(ctx, "alice")
		wantErr(t, "GetArchivePrefs after delete", err, store.ErrNotFound)
		// Ids are free again.
		check(t, "AppendArchive after delete", a.AppendArchive(ctx, "alice", ms[0]))
		queryPage(t, a, "alice", store.ArchiveQuery{}, []string{"id0"}, true, 1)
		// Deleting an empty archive is fine; others are untouched.
		check(t, "DeleteArchive empty", a.DeleteArchive(ctx, "carol"))
		queryPage(t, a, "bob", store.ArchiveQuery{}, idRange(0, 3, 1), true, 3)
		queryPage(t, a, "bob", store.ArchiveQuery{With: "odd@x"}, []string{"id1"}, true, 1)
		if p, err := a.GetArchivePrefs(ctx, "bob"); err != nil || p.Default != "never" {
			t.Fatalf("bob's prefs after deleting alice's archive: %+v, %v", p, err)
		}
	}},
	{"Expire", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		ctx := t.Context()
		fillArchive(t, a, "alice", 10)
		fillArchive(t, a, "bob", 3)
		fillArchive(t, a, "room@conference.x", 7)
		// Messages at t0+0s..t0+4s are older than t0+5s; t0+5s itself stays.
		n, err := a.ExpireArchive(ctx, t0.Add(5*time.Second))
		check(t, "ExpireArchive", err)
		if n != 5+3+5 {
			t.Fatalf("ExpireArchive = %d, want 13", n)
		}
		queryPage(t, a, "alice", store.ArchiveQuery{}, idRange(5, 10, 1), true, 5)
		queryPage(t, a, "bob", store.ArchiveQuery{}, nil, true, 0)
		queryPage(t, a, "room@conference.x", store.ArchiveQuery{}, idRange(5, 7, 1), true, 2)
		// The indexes went with the messages.
		queryPage(t, a, "alice", store.ArchiveQuery{With: "odd@x"}, []string{"id5", "id7", "id9"}, true, 3)
		_, err = a.QueryArchive(ctx, "alice", store.ArchiveQuery{AfterID: "id4"})
		wantErr(t, "QueryArchive after an expired id", err, store.ErrNotFound)
		check(t, "AppendArchive of an expired id", a.AppendArchive(ctx, "alice", archived(4, "")))
		n, err = a.ExpireArchive(ctx, t0.Add(5*time.Second))
		check(t, "ExpireArchive again", err)
		if n != 1 {
			t.Fatalf("second ExpireArchive = %d, want 1 (the re-appended id4)", n)
		}
		n, err = a.ExpireArchive(ctx, t0)
		check(t, "ExpireArchive of nothing", err)
		if n != 0 {
			t.Fatalf("ExpireArchive before everything = %d, want 0", n)
		}
	}},
	{"ExpireMany", func(t *testing.T, s store.Store) {
		// More expired messages than a backend may delete in one batch.
		a := archiveOf(t, s)
		ctx := t.Context()
		const total = 2500
		for i := range total {
			check(t, "AppendArchive", a.AppendArchive(ctx, "alice", archived(i, "w@x")))
		}
		n, err := a.ExpireArchive(ctx, t0.Add(2400*time.Second))
		check(t, "ExpireArchive", err)
		if n != 2400 {
			t.Fatalf("ExpireArchive = %d, want 2400", n)
		}
		queryPage(t, a, "alice", store.ArchiveQuery{}, idRange(2400, total, 1), true, 100)
		queryPage(t, a, "alice", store.ArchiveQuery{With: "w@x"}, idRange(2400, total, 1), true, 100)
	}},
	{"OwnersIsolated", func(t *testing.T, s store.Store) {
		// Owners that prefix one another, a room owner, and withs that
		// prefix one another keep apart in every operation.
		a := archiveOf(t, s)
		ctx := t.Context()
		owners := []string{"ann", "ann2", "an", "r@conference.x", "r@conference.x.org", "r"}
		for i, o := range owners {
			for j := range 3 {
				m := archived(j, "p@x")
				m.Stanza = []byte(o)
				if j == 2 {
					m.With = "p@x.org"
				}
				check(t, "AppendArchive", a.AppendArchive(ctx, o, m))
			}
			check(t, "SetArchivePrefs", a.SetArchivePrefs(ctx, o, store.ArchivePrefs{Default: fmt.Sprint(i)}))
		}
		for i, o := range owners {
			p := queryPage(t, a, o, store.ArchiveQuery{}, idRange(0, 3, 1), true, 3)
			for _, m := range p.Items {
				if string(m.Stanza) != o {
					t.Fatalf("archive %q holds a message of %q", o, m.Stanza)
				}
			}
			queryPage(t, a, o, store.ArchiveQuery{With: "p@x"}, idRange(0, 2, 1), true, 2)
			queryPage(t, a, o, store.ArchiveQuery{With: "p@x.org"}, []string{"id2"}, true, 1)
			queryPage(t, a, o, store.ArchiveQuery{Max: 1, Last: true}, []string{"id2"}, false, 3)
			if p, err := a.GetArchivePrefs(ctx, o); err != nil || p.Default != fmt.Sprint(i) {
				t.Fatalf("prefs of %q: %+v, %v", o, p, err)
			}
		}
		check(t, "DeleteArchive", a.DeleteArchive(ctx, "ann"))
		check(t, "DeleteArchive", a.DeleteArchive(ctx, "r@conference.x"))
		for _, o := range owners {
			want := idRange(0, 3, 1)
			if o == "ann" || o == "r@conference.x" {
				want = nil
			}
			queryPage(t, a, o, store.ArchiveQuery{}, want, true, len(want))
		}
	}},
	{"InvalidNames", func(t *testing.T, s store.Store) {
		// Names a backend cannot key (empty, NUL) are refused, never
		// mixed into another owner's archive.
		a := archiveOf(t, s)
		ctx := t.Context()
		fillArchive(t, a, "ann", 2)
		for _, owner := range []string{"", "ann\x00x", "ann\x00"} {
			if err := a.AppendArchive(ctx, owner, archived(7, "")); err == nil {
				t.Fatalf("AppendArchive(%q) succeeded", owner)
			}
			if _, err := a.QueryArchive(ctx, owner, store.ArchiveQuery{}); err == nil {
				t.Fatalf("QueryArchive(%q) succeeded", owner)
			}
			if err := a.DeleteArchive(ctx, owner); err == nil {
				t.Fatalf("DeleteArchive(%q) succeeded", owner)
			}
		}
		if err := a.AppendArchive(ctx, "ann", archived(8, "w@x\x00y")); err == nil {
			t.Fatalf("AppendArchive with a NUL in With succeeded")
		}
		m := archived(9, "")
		m.ID = ""
		if err := a.AppendArchive(ctx, "ann", m); err == nil {
			t.Fatalf("AppendArchive with an empty id succeeded")
		}
		queryPage(t, a, "ann", store.ArchiveQuery{}, idRange(0, 2, 1), true, 2)
	}},
	{"LargeStanza", func(t *testing.T, s store.Store) {
		a := archiveOf(t, s)
		m := archived(0, "w@x")
		m.Stanza = []byte("<message><body>" + strings.Repeat("é", 100_000) + "</body></message>")
		check(t, "AppendArchive", a.AppendArchive(t.Context(), "alice", m))
		p := queryPage(t, a, "alice", store.ArchiveQuery{With: "w@x"}, []string{"id0"}, true, 1)
		if !bytes.Equal(p.Items[0].Stanza, m.Stanza) {
			t.Fatalf("large stanza changed on the way")
		}
	}},
}

// RunArchivePersistent checks that archives, their indexes and preferences
// survive a close and reopen. open is as for RunPersistent.
func RunArchivePersistent(t *testing.T, open func(dir string) (store.Store, error)) {
	t.Run("Persist/Archive", func(t *testing.T) {
		t.Parallel()
		r := reopener{t: t, dir: t.TempDir(), open: open}
		ctx := t.Context()
		posTime := t0.Add(time.Minute)
		posID := store.NewArchiveID(posTime)
		r.do(func(s store.Store) {
			a := archiveOf(t, s)
			fillArchive(t, a, "alice", 6)
			fillArchive(t, a, "r@conference.x", 2)
			// An id that carries its position, which has no id index.
			check(t, "AppendArchive", a.AppendArchive(ctx, "bob", store.ArchivedMessage{ID: posID, Time: posTime, Stanza: []byte("p")}))
			check(t, "AppendArchive", a.AppendArchive(ctx, "bob", store.ArchivedMessage{ID: "after", Time: posTime.Add(time.Second), Stanza: []byte("a")}))
			check(t, "SetArchivePrefs", a.SetArchivePrefs(ctx, "alice", store.ArchivePrefs{Default: "roster", Never: []string{"n@x"}}))
		})
		r.do(func(s store.Store) {
			a := archiveOf(t, s)
			queryPage(t, a, "alice", store.ArchiveQuery{}, idRange(0, 6, 1), true, 6)
			queryPage(t, a, "alice", store.ArchiveQuery{With: "odd@x", AfterID: "id1"}, []string{"id3", "id5"}, true, 3)
			queryPage(t, a, "r@conference.x", store.ArchiveQuery{}, idRange(0, 2, 1), true, 2)
			queryPage(t, a, "bob", store.ArchiveQuery{AfterID: posID}, []string{"after"}, true, 2)
			queryPage(t, a, "bob", store.ArchiveQuery{BeforeID: "after"}, []string{posID}, true, 2)
			p, err := a.GetArchivePrefs(ctx, "alice")
			check(t, "GetArchivePrefs", err)
			if p.Default != "roster" || !slices.Equal(p.Never, []string{"n@x"}) || len(p.Always) != 0 {
				t.Fatalf("prefs after reopen: %+v", p)
			}
			// Equal times keep insertion order across the restart too.
			check(t, "AppendArchive", a.AppendArchive(ctx, "alice", store.ArchivedMessage{ID: "late", Time: t0.Add(5 * time.Second), Stanza: []byte("x")}))
			queryPage(t, a, "alice", store.ArchiveQuery{Max: 2, Last: true}, []string{"id5", "late"}, false, 7)
		})
	})
}
