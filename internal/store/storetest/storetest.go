// Package storetest is the conformance suite of store.Store: every backend
// runs it from its own tests, so all backends agree on the semantics the
// rest of Parley relies on.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... open in t.TempDir() ... })
//		storetest.RunPersistent(t, func(dir string) (store.Store, error) { return Open(dir, ...) })
//	}
//
// The suite checks behaviour only, never timing. Where store.go leaves a
// detail open, the suite pins the choice Parley relies on and says so in
// the test's comment (limit <= 0, zero expiry, seqs after a drained queue).
package storetest

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store each
// time it is called (e.g. in t.TempDir()); Run closes it when the subtest
// ends, so open must not register a Close of its own. Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	o := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	for _, g := range []struct {
		name  string
		tests []test
	}{
		{"Accounts", accountTests},
		{"Roster", rosterTests},
		{"Queue", queueTests},
		{"VCard", vcardTests},
		{"Blocklist", blocklistTests},
		{"Rooms", roomTests},
		{"Archive", archiveTests},
		{"PubSub", pubsubTests},
		{"Close", closeTests},
	} {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, o(t))
				})
			}
		})
	}
}

// RunPersistent runs the tests that close a store and open it again. open
// opens the store whose data lives in dir, creating it if dir is empty; the
// suite calls it several times on the same dir, never while a store on that
// dir is still open, and closes every store it gets.
func RunPersistent(t *testing.T, open func(dir string) (store.Store, error)) {
	for _, tc := range persistTests {
		t.Run("Persist/"+tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, reopener{t: t, dir: t.TempDir(), open: open})
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// check fails the test now if err is not nil.
func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails the test now unless errors.Is(err, want).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// t0 has whole seconds: backends may store times at coarser than
// nanosecond precision, but every one keeps seconds.
var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func scram(seed byte) store.SCRAM {
	return store.SCRAM{
		Salt:       bytes.Repeat([]byte{seed}, 16),
		Iterations: 4096 + int(seed),
		StoredKey:  bytes.Repeat([]byte{seed + 1}, 32),
		ServerKey:  bytes.Repeat([]byte{seed + 2}, 32),
	}
}

func account(name string) store.Account {
	return store.Account{Username: name, Created: t0, SHA1: scram(1), SHA256: scram(2)}
}

func equalSCRAM(a, b store.SCRAM) bool {
	return bytes.Equal(a.Salt, b.Salt) && a.Iterations == b.Iterations &&
		bytes.Equal(a.StoredKey, b.StoredKey) && bytes.Equal(a.ServerKey, b.ServerKey)
}

func checkAccount(t *testing.T, got, want store.Account) {
	t.Helper()
	if got.Username != want.Username || !got.Created.Equal(want.Created) ||
		!equalSCRAM(got.SHA1, want.SHA1) || !equalSCRAM(got.SHA256, want.SHA256) {
		t.Fatalf("account:\n got %+v\nwant %+v", got, want)
	}
}

// normRoster makes roster items comparable: group order carries no meaning
// and nil and empty group lists are the same.
func normRoster(items []store.RosterItem) []store.RosterItem {
	out := make([]store.RosterItem, len(items))
	for i, it := range items {
		it.Groups = slices.Sorted(slices.Values(it.Groups))
		if len(it.Groups) == 0 {
			it.Groups = nil
		}
		out[i] = it
	}
	slices.SortFunc(out, func(a, b store.RosterItem) int { return cmp.Compare(a.JID, b.JID) })
	return out
}

func checkRoster(t *testing.T, got []store.RosterItem, want ...store.RosterItem) {
	t.Helper()
	g, w := normRoster(got), normRoster(want)
	if !slices.EqualFunc(g, w, func(a, b store.RosterItem) bool {
		return a.JID == b.JID && a.Name == b.Name && a.Subscription == b.Subscription &&
			a.AskOut == b.AskOut && a.PendingIn == b.PendingIn && a.Approved == b.Approved &&
			a.InRoster == b.InRoster && slices.Equal(a.Groups, b.Groups)
	}) {
		t.Fatalf("roster:\n got %+v\nwant %+v", g, w)
	}
}

// checkSeqs fails unless items have exactly the given seqs, in that order.
func checkSeqs(t *testing.T, items []store.QueueItem, want ...uint64) {
	t.Helper()
	got := make([]uint64, len(items))
	for i, it := range items {
		got[i] = it.Seq
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("seqs: got %v, want %v", got, want)
	}
}
