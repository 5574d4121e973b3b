package router_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/stanza"
)

type archiveLog struct {
	mu  sync.Mutex
	got []string // "owner peer id body"
}

func (a *archiveLog) ArchiveMessage(_ context.Context, el *stanza.Element, _ []byte, copies ...router.ArchiveCopy) {
	a.mu.Lock()
	for _, c := range copies {
		a.got = append(a.got, c.Owner+" "+c.Peer.String()+" "+c.ID+" "+el.ChildText("body", stanza.NSClient))
	}
	a.mu.Unlock()
}

func TestArchiveBothSides(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	log := &archiveLog{}
	e.r.SetArchiver(log)
	b := e.bind("bob@example.com/phone", true, 0)
	b.AutoAck(true)
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"))
	// Bodiless chat states are not archived.
	e.r.Route(ctx, stanza.New("message", stanza.NSClient).SetAttr("type", "chat").
		SetAttr("from", "alice@example.com/desk").SetAttr("to", "bob@example.com").
		Append(stanza.New("composing", "http://jabber.org/protocol/chatstates")))
	got, _ := b.TakeAcks()
	if len(got) != 2 {
		t.Fatalf("bob received %d stanzas, want 2", len(got))
	}
	// Both copies are under the stanza id bob saw (one id per routed
	// message, so that the store can keep one stanza for both).
	sid := got[0].Child("stanza-id", stanza.NSStanzaID).Attr("id")
	want := []string{"bob alice@example.com/desk " + sid + " hi", "alice bob@example.com " + sid + " hi"}
	log.mu.Lock()
	defer log.mu.Unlock()
	if !slices.Equal(log.got, want) {
		t.Fatalf("archived %q, want %q", log.got, want)
	}
}

// TestDefaultIDsCarryArchivePosition checks the default IDGen: stanza ids
// are store.NewArchiveID of the router's clock, so that the archive keys
// both copies of a routed message by the position their ids carry.
func TestDefaultIDsCarryArchivePosition(t *testing.T) {
	t.Parallel()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: routertest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	r, err := router.New(router.Config{Domain: domain, Store: st, Codec: routertest.Codec, Logger: routertest.Quiet,
		Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	e := &routertest.Env{T: t, Store: st, Router: r}
	t.Cleanup(func() {
		e.CloseRouter()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	e.AddUser("alice")
	e.AddUser("bob")
	log := &archiveLog{}
	r.SetArchiver(log)
	b := e.Bind("bob@example.com/phone", true, 0)
	b.AutoAck(true)
	for range 2 {
		r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"))
	}
	got, _ := b.TakeAcks()
	if len(got) != 2 {
		t.Fatalf("bob received %d stanzas, want 2", len(got))
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.got) != 4 {
		t.Fatalf("archived %q, want 4 copies", log.got)
	}
	var seen []string
	for i, g := range log.got {
		id := strings.Fields(g)[2]
		p, ok := store.ParseArchiveID(id)
		if !ok || !p.Time().Equal(at) {
			t.Fatalf("copy %q: id %q carries %v, %v; want the router's time %v", g, id, p.Time(), ok, at)
		}
		// Both copies are under the stanza id bob saw.
		if sid := got[i/2].Child("stanza-id", stanza.NSStanzaID).Attr("id"); sid != id {
			t.Fatalf("bob saw stanza id %q, copy %q archived under %q", sid, g, id)
		}
		if i%2 == 0 {
			seen = append(seen, id)
		}
	}
	// One per message, unique, and in the order they were made.
	if !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != len(seen) {
		t.Fatalf("ids %q are not unique and increasing", seen)
	}
}
