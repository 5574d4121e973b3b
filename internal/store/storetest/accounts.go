package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

var accountTests = []test{
	{"CreateGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := account("alice")
		check(t, "CreateAccount", s.CreateAccount(ctx, a))
		got, err := s.GetAccount(ctx, "alice")
		check(t, "GetAccount", err)
		checkAccount(t, got, a)
	}},
	{"CreatedKeepsInstant", func(t *testing.T, s store.Store) {
		// Created comes back as the same instant whatever the location.
		ctx := t.Context()
		a := account("bob")
		a.Created = t0.In(time.FixedZone("X", 5*3600))
		check(t, "CreateAccount", s.CreateAccount(ctx, a))
		got, err := s.GetAccount(ctx, "bob")
		check(t, "GetAccount", err)
		checkAccount(t, got, a)
	}},
	{"CreateExists", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		check(t, "CreateAccount", s.CreateAccount(ctx, account("alice")))
		other := account("alice")
		other.SHA256 = scram(9)
		wantErr(t, "second CreateAccount", s.CreateAccount(ctx, other), store.ErrExists)
		got, err := s.GetAccount(ctx, "alice")
		check(t, "GetAccount", err)
		checkAccount(t, got, account("alice")) // the first one stays
	}},
	{"GetNotFound", func(t *testing.T, s store.Store) {
		_, err := s.GetAccount(t.Context(), "nobody")
		wantErr(t, "GetAccount", err, store.ErrNotFound)
	}},
	{"SetCredentials", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		check(t, "CreateAccount", s.CreateAccount(ctx, account("alice")))
		check(t, "SetCredentials", s.SetCredentials(ctx, "alice", scram(7), scram(8)))
		got, err := s.GetAccount(ctx, "alice")
		check(t, "GetAccount", err)
		want := account("alice") // Username and Created unchanged
		want.SHA1, want.SHA256 = scram(7), scram(8)
		checkAccount(t, got, want)
	}},
	{"SetCredentialsNotFound", func(t *testing.T, s store.Store) {
		// Not spelled out in store.go; a password change for a missing
		// account must not create one.
		ctx := t.Context()
		wantErr(t, "SetCredentials", s.SetCredentials(ctx, "nobody", scram(7), scram(8)), store.ErrNotFound)
		_, err := s.GetAccount(ctx, "nobody")
		wantErr(t, "GetAccount", err, store.ErrNotFound)
	}},
	{"ListPaging", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var want []string
		for i := range 25 {
			want = append(want, fmt.Sprintf("user%02d", i))
		}
		// Create in a scrambled order: the list must come back sorted.
		for i := range want {
			check(t, "CreateAccount", s.CreateAccount(ctx, account(want[(i*7)%len(want)])))
		}
		var got []string
		after := ""
		for range 10 {
			page, err := s.ListAccounts(ctx, after, 10)
			check(t, "ListAccounts", err)
			if len(page) > 10 {
				t.Fatalf("ListAccounts(%q, 10) returned %d names", after, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged ListAccounts:\n got %v\nwant %v", got, want)
		}
		page, err := s.ListAccounts(ctx, "user10", 3)
		check(t, "ListAccounts", err)
		if !slices.Equal(page, []string{"user11", "user12", "user13"}) {
			t.Fatalf("ListAccounts(user10, 3) = %v", page)
		}
		page, err = s.ListAccounts(ctx, "user105", 2) // after need not exist
		check(t, "ListAccounts", err)
		if !slices.Equal(page, []string{"user11", "user12"}) {
			t.Fatalf("ListAccounts(user105, 2) = %v", page)
		}
		page, err = s.ListAccounts(ctx, "user24", 10)
		check(t, "ListAccounts", err)
		if len(page) != 0 {
			t.Fatalf("ListAccounts after the last = %v", page)
		}
		// limit <= 0 means no limit (not spelled out in store.go).
		page, err = s.ListAccounts(ctx, "", 0)
		check(t, "ListAccounts", err)
		if !slices.Equal(page, want) {
			t.Fatalf("ListAccounts(\"\", 0) = %v", page)
		}
	}},
	{"ListEmpty", func(t *testing.T, s store.Store) {
		page, err := s.ListAccounts(t.Context(), "", 10)
		check(t, "ListAccounts", err)
		if len(page) != 0 {
			t.Fatalf("ListAccounts on an empty store = %v", page)
		}
	}},
	{"Count", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		n, err := s.CountAccounts(ctx)
		check(t, "CountAccounts", err)
		if n != 0 {
			t.Fatalf("CountAccounts on an empty store = %d", n)
		}
		for i := range 7 {
			check(t, "CreateAccount", s.CreateAccount(ctx, account(fmt.Sprintf("u%d", i))))
		}
		_ = s.CreateAccount(ctx, account("u3")) // ErrExists: no change
		check(t, "DeleteAccount", s.DeleteAccount(ctx, "u5"))
		n, err = s.CountAccounts(ctx)
		check(t, "CountAccounts", err)
		if n != 6 {
			t.Fatalf("CountAccounts = %d, want 6", n)
		}
	}},
	{"DeleteNotFound", func(t *testing.T, s store.Store) {
		wantErr(t, "DeleteAccount", s.DeleteAccount(t.Context(), "nobody"), store.ErrNotFound)
	}},
	{"DeleteRemovesEverything", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for _, u := range []string{"alice", "bob"} {
			check(t, "CreateAccount", s.CreateAccount(ctx, account(u)))
			_, err := s.PutRosterItem(ctx, u, store.RosterItem{JID: "carol@example.org", Subscription: store.SubBoth, InRoster: true})
			check(t, "PutRosterItem", err)
			_, err = s.PutRosterItem(ctx, u, store.RosterItem{JID: "dave@example.org", Subscription: store.SubNone, InRoster: true})
			check(t, "PutRosterItem", err)
			for range 3 {
				_, err := s.Enqueue(ctx, u, []byte("<message/>"), time.Time{}, 0)
				check(t, "Enqueue", err)
			}
			check(t, "PutVCard", s.PutVCard(ctx, u, []byte("<vCard xmlns='vcard-temp'/>")))
		}
		check(t, "DeleteAccount", s.DeleteAccount(ctx, "alice"))

		_, err := s.GetAccount(ctx, "alice")
		wantErr(t, "GetAccount", err, store.ErrNotFound)
		items, ver, err := s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		if len(items) != 0 || ver != 0 {
			t.Fatalf("roster after DeleteAccount: %d items, version %d", len(items), ver)
		}
		_, err = s.GetRosterItem(ctx, "alice", "carol@example.org")
		wantErr(t, "GetRosterItem", err, store.ErrNotFound)
		if v, err := s.RosterVersion(ctx, "alice"); err != nil || v != 0 {
			t.Fatalf("RosterVersion after DeleteAccount = %d, %v", v, err)
		}
		if d, err := s.Depth(ctx, "alice"); err != nil || d != 0 {
			t.Fatalf("Depth after DeleteAccount = %d, %v", d, err)
		}
		pending, err := s.Pending(ctx, "alice", 0, 0)
		check(t, "Pending", err)
		checkSeqs(t, pending)
		_, err = s.GetVCard(ctx, "alice")
		wantErr(t, "GetVCard", err, store.ErrNotFound)
		wantErr(t, "second DeleteAccount", s.DeleteAccount(ctx, "alice"), store.ErrNotFound)

		// bob is untouched.
		if _, err := s.GetAccount(ctx, "bob"); err != nil {
			t.Fatalf("GetAccount(bob): %v", err)
		}
		items, ver, err = s.RosterItems(ctx, "bob")
		check(t, "RosterItems(bob)", err)
		if len(items) != 2 || ver != 2 {
			t.Fatalf("bob's roster: %d items, version %d", len(items), ver)
		}
		if d, err := s.Depth(ctx, "bob"); err != nil || d != 3 {
			t.Fatalf("Depth(bob) = %d, %v", d, err)
		}
		if _, err := s.GetVCard(ctx, "bob"); err != nil {
			t.Fatalf("GetVCard(bob): %v", err)
		}

		// The name is free again, with nothing left over.
		check(t, "CreateAccount again", s.CreateAccount(ctx, account("alice")))
		items, _, err = s.RosterItems(ctx, "alice")
		check(t, "RosterItems", err)
		if len(items) != 0 {
			t.Fatalf("recreated account has %d roster items", len(items))
		}
		if d, err := s.Depth(ctx, "alice"); err != nil || d != 0 {
			t.Fatalf("Depth of recreated account = %d, %v", d, err)
		}
	}},
	{"DeleteKeepsPrefixNeighbours", func(t *testing.T, s store.Store) {
		// "al" is a prefix of "alice": deleting one must not touch the other.
		ctx := t.Context()
		for _, u := range []string{"al", "alice"} {
			check(t, "CreateAccount", s.CreateAccount(ctx, account(u)))
			_, err := s.PutRosterItem(ctx, u, store.RosterItem{JID: "x@example.org"})
			check(t, "PutRosterItem", err)
			_, err = s.Enqueue(ctx, u, []byte("m"), time.Time{}, 0)
			check(t, "Enqueue", err)
			check(t, "PutVCard", s.PutVCard(ctx, u, []byte("v")))
		}
		check(t, "DeleteAccount", s.DeleteAccount(ctx, "al"))
		if _, err := s.GetRosterItem(ctx, "alice", "x@example.org"); err != nil {
			t.Fatalf("GetRosterItem(alice): %v", err)
		}
		if d, err := s.Depth(ctx, "alice"); err != nil || d != 1 {
			t.Fatalf("Depth(alice) = %d, %v", d, err)
		}
		if _, err := s.GetVCard(ctx, "alice"); err != nil {
			t.Fatalf("GetVCard(alice): %v", err)
		}
		names, err := s.ListAccounts(ctx, "", 0)
		check(t, "ListAccounts", err)
		if !slices.Equal(names, []string{"alice"}) {
			t.Fatalf("ListAccounts = %v", names)
		}
	}},
}
