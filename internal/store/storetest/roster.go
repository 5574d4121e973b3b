package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

var (
	carol = store.RosterItem{
		JID: "carol@example.org", Name: "Carol", Subscription: store.SubBoth,
		Groups: []string{"Friends", "Work"}, InRoster: true,
	}
	dave = store.RosterItem{
		JID: "dave@example.net", Subscription: store.SubNone,
		AskOut: true, Approved: true, InRoster: true,
	}
	// eve exists only to remember her pending subscription request.
	eve = store.RosterItem{
		JID: "eve@example.com", Subscription: store.SubNone, PendingIn: true,
	}
)

var rosterTests = []test{
	{"Empty", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		items, ver, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		if len(items) != 0 || ver != 0 {
			t.Fatalf("empty roster: %d items, version %d", len(items), ver)
		}
		if v, err := s.RosterVersion(ctx, "alice"); err != nil || v != 0 {
			t.Fatalf("RosterVersion = %d, %v", v, err)
		}
	}},
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for i, it := range []store.RosterItem{carol, dave, eve} {
			v, err := s.PutRosterItem(ctx, "alice", it)
			check(t, "PutRosterItem", err)
			if v != uint64(i+1) {
				t.Fatalf("PutRosterItem #%d returned version %d", i+1, v)
			}
		}
		for _, want := range []store.RosterItem{carol, dave, eve} {
			got, err := s.GetRosterItem(ctx, "alice", want.JID)
			check(t, "GetRosterItem", err)
			checkRoster(t, []store.RosterItem{got}, want)
		}
		items, ver, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		checkRoster(t, items, carol, dave, eve)
		if ver != 3 {
			t.Fatalf("RosterItems version = %d, want 3", ver)
		}
	}},
	{"GetNotFound", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetRosterItem(ctx, "alice", "carol@example.org")
		wantErr(t, "GetRosterItem", err, store.ErrNotFound)
		_, err = s.PutRosterItem(ctx, "alice", carol)
		check(t, "PutRosterItem", err)
		_, err = s.GetRosterItem(ctx, "alice", "dave@example.net")
		wantErr(t, "GetRosterItem", err, store.ErrNotFound)
	}},
	{"Replace", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.PutRosterItem(ctx, "alice", carol)
		check(t, "PutRosterItem", err)
		changed := carol
		changed.Name, changed.Subscription, changed.Groups = "C.", store.SubTo, nil
		v, err := s.PutRosterItem(ctx, "alice", changed)
		check(t, "PutRosterItem", err)
		if v != 2 {
			t.Fatalf("version after replace = %d, want 2", v)
		}
		items, _, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		checkRoster(t, items, changed)
	}},
	{"Delete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.PutRosterItem(ctx, "alice", carol)
		check(t, "PutRosterItem", err)
		_, err = s.PutRosterItem(ctx, "alice", dave)
		check(t, "PutRosterItem", err)
		v, err := s.DeleteRosterItem(ctx, "alice", carol.JID)
		check(t, "DeleteRosterItem", err)
		if v != 3 {
			t.Fatalf("version after delete = %d, want 3", v)
		}
		_, err = s.GetRosterItem(ctx, "alice", carol.JID)
		wantErr(t, "GetRosterItem", err, store.ErrNotFound)
		items, ver, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		checkRoster(t, items, dave)
		if ver != 3 {
			t.Fatalf("RosterItems version = %d, want 3", ver)
		}
	}},
	{"DeleteNotFound", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.PutRosterItem(ctx, "alice", carol)
		check(t, "PutRosterItem", err)
		_, err = s.DeleteRosterItem(ctx, "alice", dave.JID)
		wantErr(t, "DeleteRosterItem", err, store.ErrNotFound)
		if v, err := s.RosterVersion(ctx, "alice"); err != nil || v != 1 {
			t.Fatalf("a failed delete changed the version: %d, %v", v, err)
		}
	}},
	{"VersionMonotonic", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var last uint64
		for i := range 20 {
			var v uint64
			var err error
			if i%3 == 2 {
				v, err = s.DeleteRosterItem(ctx, "alice", fmt.Sprintf("c%d@example.org", i-1))
			} else {
				v, err = s.PutRosterItem(ctx, "alice", store.RosterItem{JID: fmt.Sprintf("c%d@example.org", i)})
			}
			check(t, "roster write", err)
			if v <= last {
				t.Fatalf("write %d returned version %d after %d", i, v, last)
			}
			last = v
			if got, err := s.RosterVersion(ctx, "alice"); err != nil || got != v {
				t.Fatalf("RosterVersion = %d, %v; the write returned %d", got, err, v)
			}
		}
	}},
	{"IndependentUsers", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for range 3 {
			_, err := s.PutRosterItem(ctx, "alice", carol)
			check(t, "PutRosterItem", err)
		}
		v, err := s.PutRosterItem(ctx, "bob", dave)
		check(t, "PutRosterItem", err)
		if v != 1 {
			t.Fatalf("bob's first version = %d, want 1", v)
		}
		items, ver, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		checkRoster(t, items, carol)
		if ver != 3 {
			t.Fatalf("alice's version = %d, want 3", ver)
		}
		items, _, err = s.RosterItems(ctx, "bob")
		check(t, "RosterItems", err)
		checkRoster(t, items, dave)
	}},
	{"ConcurrentWrites", func(t *testing.T, s store.Store) {
		// Every write gets its own version: 16 writers x 8 writes give
		// exactly the versions 1..128.
		ctx := t.Context()
		const writers, each = 16, 8
		versions := make(chan uint64, writers*each)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					v, err := s.PutRosterItem(ctx, "alice", store.RosterItem{JID: fmt.Sprintf("c%d-%d@example.org", w, i)})
					if err != nil {
						t.Errorf("PutRosterItem: %v", err)
						return
					}
					versions <- v
				}
			})
		}
		wg.Wait()
		close(versions)
		var got []uint64
		for v := range versions {
			got = append(got, v)
		}
		slices.Sort(got)
		for i, v := range got {
			if v != uint64(i+1) {
				t.Fatalf("versions of concurrent writes: %v", got)
			}
		}
		items, ver, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		if len(items) != writers*each || ver != writers*each {
			t.Fatalf("RosterItems: %d items, version %d", len(items), ver)
		}
	}},
}
