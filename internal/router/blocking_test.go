package router_test

import (
	"context"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// blockSet is a Blocker over a fixed map user → blocked bare JIDs.
type blockSet struct {
	mu sync.Mutex
	m  map[string][]string
}

func (b *blockSet) Blocks(_ context.Context, user string, other jid.JID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range b.m[user] {
		if j == other.Bare().String() || j == other.Domain() {
			return true
		}
	}
	return false
}

func TestBlockingEnforced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob", "carol")
	a := e.bind("alice@example.com/desk", true, 0)
	b := e.bind("bob@example.com/phone", true, 0)
	c := e.bind("carol@example.com/pc", true, 0)
	e.r.SetBlocker(&blockSet{m: map[string][]string{"bob": {"alice@example.com"}}})

	// Inbound: alice's message to bob (who blocks her) is not delivered or
	// queued, and she gets service-unavailable: bob looks offline.
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"))
	if got, _ := b.TakeAcks(); len(got) != 0 {
		t.Fatalf("bob received %v from a blocked sender", got)
	}
	if d := e.depth("bob"); d != 0 {
		t.Fatalf("bob's queue depth %d, want 0", d)
	}
	got, _ := a.TakeAcks()
	if len(got) != 1 || errorCondition(got[0]) != "service-unavailable" {
		t.Fatalf("alice got %v, want one service-unavailable error", got)
	}
	// Inbound presence is dropped silently.
	e.r.Route(ctx, stanza.New("presence", stanza.NSClient).SetAttr("from", "alice@example.com/desk").SetAttr("to", "bob@example.com/phone"))
	if got, _ := b.TakeAcks(); len(got) != 0 {
		t.Fatalf("bob received presence %v from a blocked sender", got)
	}
	if got, _ := a.TakeAcks(); len(got) != 0 {
		t.Fatalf("alice got %v for a presence to a blocker, want nothing", got)
	}

	// Outbound: bob's message to alice is refused with not-acceptable and
	// the <blocked/> application condition.
	e.r.Route(ctx, msg("bob@example.com/phone", "alice@example.com", "chat", "psst"))
	if got, _ := a.TakeAcks(); len(got) != 0 {
		t.Fatalf("alice received %v from someone who blocks her", got)
	}
	got, _ = b.TakeAcks()
	if len(got) != 1 || errorCondition(got[0]) != "not-acceptable" ||
		got[0].Child("error", "jabber:client").Child("blocked", router.NSBlockingErrors) == nil {
		t.Fatalf("bob got %v, want not-acceptable with <blocked/>", got)
	}
	// An iq request from bob to alice's resource is refused the same way.
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("id", "q1").
		SetAttr("from", "bob@example.com/phone").SetAttr("to", "alice@example.com/desk").
		Append(stanza.New("query", "jabber:iq:version"))
	e.r.Route(ctx, iq)
	got, _ = b.TakeAcks()
	if len(got) != 1 || errorCondition(got[0]) != "not-acceptable" {
		t.Fatalf("bob got %v for an iq to a blocked JID, want not-acceptable", got)
	}

	// Others are unaffected, and bob's own iqs to his account still work.
	e.r.Route(ctx, msg("carol@example.com/pc", "bob@example.com", "chat", "hello"))
	if got, _ := b.TakeAcks(); len(got) != 1 {
		t.Fatalf("bob received %d stanzas from carol, want 1", len(got))
	}
	e.r.Route(ctx, msg("bob@example.com/phone", "carol@example.com", "chat", "hey"))
	if got, _ := c.TakeAcks(); len(got) != 1 {
		t.Fatalf("carol received %d stanzas from bob, want 1", len(got))
	}
	e.r.Route(ctx, msg("bob@example.com/phone", "bob@example.com", "chat", "note to self"))
	if got, _ := b.TakeAcks(); len(got) != 1 {
		t.Fatalf("bob's note to self: %d stanzas, want 1", len(got))
	}
}
