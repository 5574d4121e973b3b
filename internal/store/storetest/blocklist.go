package storetest

import (
	"slices"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

func blocklistOf(t *testing.T, s store.Store) store.Blocklist {
	t.Helper()
	b, ok := s.(store.Blocklist)
	if !ok {
		t.Fatalf("%T does not implement store.Blocklist", s)
	}
	return b
}

func wantBlocked(t *testing.T, b store.Blocklist, user string, want ...string) {
	t.Helper()
	got, err := b.BlockedJIDs(t.Context(), user)
	check(t, "BlockedJIDs", err)
	if !slices.Equal(got, want) {
		t.Fatalf("BlockedJIDs(%s) = %q, want %q", user, got, want)
	}
}

var blocklistTests = []test{
	{"Empty", func(t *testing.T, s store.Store) {
		wantBlocked(t, blocklistOf(t, s), "alice")
	}},
	{"BlockUnblock", func(t *testing.T, s store.Store) {
		b, ctx := blocklistOf(t, s), t.Context()
		check(t, "Block", b.Block(ctx, "alice", "spam@example.org", "example.net", "eve@localhost/phone"))
		// Blocking again keeps one entry; order is byte order.
		check(t, "Block", b.Block(ctx, "alice", "example.net"))
		wantBlocked(t, b, "alice", "eve@localhost/phone", "example.net", "spam@example.org")
		check(t, "Unblock", b.Unblock(ctx, "alice", "example.net", "never-blocked@x"))
		wantBlocked(t, b, "alice", "eve@localhost/phone", "spam@example.org")
		check(t, "Unblock all", b.Unblock(ctx, "alice"))
		wantBlocked(t, b, "alice")
	}},
	{"UsersIsolated", func(t *testing.T, s store.Store) {
		b, ctx := blocklistOf(t, s), t.Context()
		check(t, "Block", b.Block(ctx, "ann", "x@y"))
		check(t, "Block", b.Block(ctx, "anna", "z@y"))
		wantBlocked(t, b, "ann", "x@y")
		wantBlocked(t, b, "anna", "z@y")
		check(t, "Unblock all", b.Unblock(ctx, "ann"))
		wantBlocked(t, b, "anna", "z@y")
	}},
	{"DeletedWithAccount", func(t *testing.T, s store.Store) {
		b, ctx := blocklistOf(t, s), t.Context()
		check(t, "CreateAccount", s.CreateAccount(ctx, account("alice")))
		check(t, "Block", b.Block(ctx, "alice", "x@y"))
		check(t, "DeleteAccount", s.DeleteAccount(ctx, "alice"))
		wantBlocked(t, b, "alice")
	}},
}
