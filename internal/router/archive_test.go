package router_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/router"
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
	// The recipient's archive id is the stanza id bob saw.
	sid := got[0].Child("stanza-id", stanza.NSStanzaID).Attr("id")
	want := []string{"bob alice@example.com/desk " + sid + " hi", "alice bob@example.com sid-2 hi"}
	log.mu.Lock()
	defer log.mu.Unlock()
	if !slices.Equal(log.got, want) {
		t.Fatalf("archived %q, want %q", log.got, want)
	}
}
