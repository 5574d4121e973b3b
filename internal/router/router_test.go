package router_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

var ctx = context.Background()

// TestBareJIDRouting is RFC 6121 §8.5.2.1.1: a message to the bare JID goes
// to the available resources with the highest non-negative priority;
// negative priorities and unavailable sessions never get it; headlines go to
// every non-negative resource.
func TestBareJIDRouting(t *testing.T) {
	t.Parallel()
	type sess struct {
		res   string
		avail bool
		prio  int
	}
	cases := []struct {
		name     string
		sessions []sess
		typ      string
		want     []string // resources that get the message
		queued   int
	}{
		{"highest priority wins", []sess{{"a", true, 5}, {"b", true, 1}, {"c", true, 0}}, "chat", []string{"a"}, 1},
		{"ties all get it", []sess{{"a", true, 5}, {"b", true, 5}, {"c", true, 1}}, "chat", []string{"a", "b"}, 1},
		{"normal like chat", []sess{{"a", true, 2}, {"b", true, 3}}, "", []string{"b"}, 1},
		{"negative excluded", []sess{{"a", true, -1}, {"b", true, 0}}, "chat", []string{"b"}, 1},
		{"unavailable excluded even with high priority", []sess{{"a", false, 100}, {"b", true, 0}}, "chat", []string{"b"}, 1},
		{"all negative: queued", []sess{{"a", true, -1}, {"b", true, -5}}, "chat", nil, 1},
		{"bound but no presence: queued", []sess{{"a", false, 0}}, "chat", nil, 1},
		{"no session: queued", nil, "chat", nil, 1},
		{"headline to every non-negative", []sess{{"a", true, 5}, {"b", true, 0}, {"c", true, -1}}, "headline", []string{"a", "b"}, 0},
		{"headline offline: dropped", nil, "headline", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opts{}, "alice", "bob")
			sender := e.bind("alice@example.com/desk", true, 0)
			byRes := map[string]*fakeSession{}
			for _, s := range tc.sessions {
				byRes[s.res] = e.bind("bob@example.com/"+s.res, s.avail, s.prio)
			}
			e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", tc.typ, "hello"))
			want := map[string]bool{}
			for _, r := range tc.want {
				want[r] = true
			}
			for res, s := range byRes {
				got, acks := s.TakeAcks()
				if want[res] != (len(got) == 1) || len(got) > 1 {
					t.Errorf("resource %s got %d messages, want delivery %v", res, len(got), want[res])
					continue
				}
				if len(got) == 1 {
					if got[0].ChildText("body", "") != "hello" {
						t.Errorf("resource %s got %v", res, got[0])
					}
					if (acks[0] != nil) != (tc.queued == 1) {
						t.Errorf("resource %s: ack %v, want one only for a queued message", res, acks[0])
					}
				}
			}
			if got, _ := sender.TakeAcks(); len(got) != 0 {
				t.Errorf("sender got %d stanzas (bounce?): %v", len(got), got[0])
			}
			if d := e.depth("bob"); d != tc.queued {
				t.Errorf("queue depth %d, want %d", d, tc.queued)
			}
		})
	}
}

// TestFullJIDMissingResource is RFC 6121 §8.5.3.2.1: to a full JID whose
// resource is not bound, chat and normal are treated as to the bare JID,
// headline and error are ignored, groupchat gets service-unavailable.
func TestFullJIDMissingResource(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ       string
		toBare    bool   // delivered to bob's other resource
		queued    int    // queue entries
		bounce    string // error condition to the sender
		bobOnline bool
	}{
		{typ: "chat", toBare: true, queued: 1, bobOnline: true},
		{typ: "normal", toBare: true, queued: 1, bobOnline: true},
		{typ: "", toBare: true, queued: 1, bobOnline: true},
		{typ: "chat", queued: 1},
		{typ: "headline", bobOnline: true},
		{typ: "groupchat", bounce: "service-unavailable", bobOnline: true},
		{typ: "error", bobOnline: true},
	}
	for _, tc := range cases {
		t.Run(tc.typ+map[bool]string{true: "/online", false: "/offline"}[tc.bobOnline], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opts{}, "alice", "bob")
			sender := e.bind("alice@example.com/desk", true, 0)
			var other *fakeSession
			if tc.bobOnline {
				other = e.bind("bob@example.com/phone", true, 0)
			}
			e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com/gone", tc.typ, "hello"))
			if other != nil {
				got, _ := other.TakeAcks()
				if tc.toBare != (len(got) == 1) {
					t.Errorf("other resource got %d, want delivery %v", len(got), tc.toBare)
				}
			}
			if d := e.depth("bob"); d != tc.queued {
				t.Errorf("queue depth %d, want %d", d, tc.queued)
			}
			got, _ := sender.TakeAcks()
			switch {
			case tc.bounce == "" && len(got) != 0:
				t.Errorf("sender got %v", got[0])
			case tc.bounce != "" && (len(got) != 1 || errorCondition(got[0]) != tc.bounce):
				t.Errorf("sender got %v, want a %s error", got, tc.bounce)
			}
		})
	}
}

// TestFullJIDDelivery: a message to a bound full JID goes to that resource
// only, whatever its priority or availability.
func TestFullJIDDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	hi := e.bind("bob@example.com/hi", true, 10)
	lo := e.bind("bob@example.com/lo", false, -1)
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com/lo", "chat", "to lo"))
	if got, _ := lo.TakeAcks(); len(got) != 1 {
		t.Fatalf("lo got %d", len(got))
	}
	if got, _ := hi.TakeAcks(); len(got) != 0 {
		t.Fatalf("hi got %d", len(got))
	}
}

// TestOfflineQueueAndFlush: with no available resource a message waits in
// the durable queue; FlushQueue hands it over with a XEP-0203 delay, and the
// session's acknowledgement deletes it.
func TestOfflineQueueAndFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "one"))
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "two"))
	if d := e.depth("bob"); d != 2 {
		t.Fatalf("depth %d, want 2", d)
	}
	bob := e.bind("bob@example.com/phone", true, 0)
	if err := e.r.FlushQueue(ctx, bob); err != nil {
		t.Fatal(err)
	}
	got, acks := bob.TakeAcks()
	if len(got) != 2 {
		t.Fatalf("flushed %d, want 2", len(got))
	}
	for i, want := range []string{"one", "two"} {
		m := got[i]
		if m.ChildText("body", "") != want {
			t.Errorf("message %d body %q, want %q (oldest first)", i, m.ChildText("body", ""), want)
		}
		d := m.Child("delay", stanza.NSDelay)
		if d == nil {
			t.Fatalf("message %d has no delay: %v", i, m)
		}
		if d.Attr("from") != domain {
			t.Errorf("delay from %q", d.Attr("from"))
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", d.Attr("stamp")); err != nil {
			t.Errorf("delay stamp %q: %v", d.Attr("stamp"), err)
		}
		if sid := m.Child("stanza-id", stanza.NSStanzaID); sid == nil || sid.Attr("by") != "bob@example.com" {
			t.Errorf("message %d stanza-id %v", i, sid)
		}
		if m.From() != "alice@example.com/desk" || m.To() != "bob@example.com" {
			t.Errorf("message %d from %q to %q", i, m.From(), m.To())
		}
	}
	// Not yet acknowledged: still queued.
	if d := e.depth("bob"); d != 2 {
		t.Fatalf("depth %d before acks, want 2", d)
	}
	acks[0].Done()
	acks[0].Done() // idempotent
	e.waitDepth("bob", 1)
	acks[1].Done()
	e.waitDepth("bob", 0)
}

// TestFlushQueueStopsWhenRefused: a session that refuses (closing or full)
// leaves the rest queued.
func TestFlushQueueStopsWhenRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	for range 3 {
		e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "x"))
	}
	bob := e.bind("bob@example.com/phone", true, 0)
	bob.Refuse(true)
	if err := e.r.FlushQueue(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if d := e.depth("bob"); d != 3 {
		t.Fatalf("depth %d, want 3", d)
	}
}

// TestLiveDeliveryAckDeletes: a message delivered live is queued first and
// deleted once delivered; several resources acknowledging delete it once.
func TestLiveDeliveryAckDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	a := e.bind("bob@example.com/a", true, 1)
	b := e.bind("bob@example.com/b", true, 1)
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"))
	if d := e.depth("bob"); d != 1 {
		t.Fatalf("depth %d before acknowledgement, want 1", d)
	}
	_, acksA := a.TakeAcks()
	_, acksB := b.TakeAcks()
	if len(acksA) != 1 || len(acksB) != 1 || acksA[0] == nil || acksA[0] != acksB[0] {
		t.Fatalf("acks %v %v: want one shared ack", acksA, acksB)
	}
	// One device's acknowledgement is not enough: the entry waits for
	// every device the message was delivered to.
	acksA[0].Done()
	e.closeRouter() // flushes pending deletions, if any were (wrongly) made
	if d := e.depth("bob"); d != 1 {
		t.Fatalf("depth %d after one of two devices acknowledged, want 1", d)
	}
	acksB[0].Done() // after Close the acker deletes synchronously
	if d := e.depth("bob"); d != 0 {
		t.Fatalf("depth %d after both devices acknowledged, want 0", d)
	}
}

// visibleProbe runs during after the router's visible callback, inside the
// store's EnqueueVisible: while the append is not yet known durable.
type visibleProbe struct {
	store.Store
	during func()
}

func (p *visibleProbe) EnqueueVisible(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(uint64)) (uint64, error) {
	return p.Store.EnqueueVisible(ctx, user, stanza, expires, max, func(seq uint64) {
		visible(seq)
		p.during()
	})
}

// TestDeliveryBeforeDurable: the recipient is handed the message as soon
// as the queue has it, not after the store made it durable (the sender's
// Route returns only then).
func TestDeliveryBeforeDurable(t *testing.T) {
	t.Parallel()
	probe := &visibleProbe{}
	re := routertest.New(t, domain, routertest.Options{WrapStore: func(s store.Store) store.Store {
		probe.Store = s
		return probe
	}}, "alice", "bob")
	re.Bind("alice@example.com/desk", true, 0)
	bob := re.Bind("bob@example.com/phone", true, 0)
	calls := 0
	probe.during = func() {
		calls++
		got, acks := bob.TakeAcks()
		if len(got) != 1 || got[0].ChildText("body", "") != "hi" || acks[0] == nil {
			t.Errorf("inside EnqueueVisible the recipient had %d messages, want the queued one", len(got))
		}
	}
	re.Router.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"))
	if calls != 1 {
		t.Fatalf("EnqueueVisible's callback ran %d times, want 1", calls)
	}
	if got, _ := bob.TakeAcks(); len(got) != 0 {
		t.Errorf("recipient got %d more messages after the append", len(got))
	}
}

// TestUnacknowledgedDeviceKeepsEntry: a device that never acknowledges
// (it went away) keeps the entry queued, and the next initial presence of
// any device of the user delivers it again.
func TestUnacknowledgedDeviceKeepsEntry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	a := e.bind("bob@example.com/a", true, 1)
	b := e.bind("bob@example.com/b", true, 1)
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"))
	_, acksA := a.TakeAcks()
	acksA[0].Done()
	e.r.Unbind(b) // b goes away without acknowledging
	c := e.bind("bob@example.com/c", true, 1)
	c.AutoAck(true)
	if err := e.r.FlushQueue(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, _ := c.TakeAcks()
	if len(got) != 1 || got[0].ChildText("body", "jabber:client") != "hi" {
		t.Fatalf("redelivered %v, want the unacknowledged message", got)
	}
	e.waitDepth("bob", 0)
}

// TestQueueFullBounces: past MaxOfflineMessages the sender gets
// resource-constraint.
func TestQueueFullBounces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{maxOffline: 2}, "alice", "bob")
	sender := e.bind("alice@example.com/desk", true, 0)
	for range 2 {
		e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "fits"))
	}
	if got, _ := sender.TakeAcks(); len(got) != 0 {
		t.Fatalf("bounce before the queue was full: %v", got[0])
	}
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "too many"))
	got, _ := sender.TakeAcks()
	if len(got) != 1 || errorCondition(got[0]) != "resource-constraint" {
		t.Fatalf("sender got %v, want resource-constraint", got)
	}
	r := got[0]
	if r.To() != "alice@example.com/desk" || r.From() != "bob@example.com" || r.ID() != "m1" {
		t.Errorf("bounce addressing: to %q from %q id %q", r.To(), r.From(), r.ID())
	}
	if e := stanza.ParseError(r); e.Type != stanza.ErrTypeWait {
		t.Errorf("error type %q, want wait", e.Type)
	}
	if d := e.depth("bob"); d != 2 {
		t.Errorf("depth %d, want 2", d)
	}
}

// TestStanzaID: the router stamps a XEP-0359 stanza-id by the recipient's
// bare JID and removes one a sender forged with that by; others stay.
func TestStanzaID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	bob := e.bind("bob@example.com/phone", true, 0)
	m := msg("alice@example.com/desk", "bob@example.com", "chat", "hi")
	m.Append(stanza.New("stanza-id", stanza.NSStanzaID).SetAttr("id", "forged").SetAttr("by", "bob@example.com"))
	m.Append(stanza.New("stanza-id", stanza.NSStanzaID).SetAttr("id", "theirs").SetAttr("by", "muc.example.net"))
	e.r.Route(ctx, m)
	got, _ := bob.TakeAcks()
	if len(got) != 1 {
		t.Fatalf("got %d", len(got))
	}
	var ours, theirs int
	for _, c := range got[0].Children {
		if c.Name != "stanza-id" || c.NS != stanza.NSStanzaID {
			continue
		}
		switch {
		case c.Attr("by") == "bob@example.com":
			ours++
			if c.Attr("id") == "forged" || c.Attr("id") == "" {
				t.Errorf("stanza-id by bob has id %q", c.Attr("id"))
			}
		case c.Attr("id") == "theirs":
			theirs++
		}
	}
	if ours != 1 || theirs != 1 {
		t.Errorf("stanza-ids: %d by the recipient (want 1), %d foreign (want 1): %v", ours, theirs, got[0].Children)
	}
	// The sender's element was not modified.
	if n := len(m.Children); n != 3 {
		t.Errorf("sender's stanza has %d children after routing, want 3", n)
	}
	// Each message gets its own id.
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "again"))
	got2, _ := bob.TakeAcks()
	if id1, id2 := got[0].Child("stanza-id", stanza.NSStanzaID).Attr("id"), got2[0].Child("stanza-id", stanza.NSStanzaID).Attr("id"); id1 == id2 {
		t.Errorf("two messages share stanza-id %q", id1)
	}
}

// TestChatStateNotQueued: a message without a body (chat state) is routed
// only while the recipient is online, never stored.
func TestChatStateNotQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	sender := e.bind("alice@example.com/desk", true, 0)
	composing := func() *stanza.Element {
		m := msg("alice@example.com/desk", "bob@example.com", "chat", "")
		return m.Append(stanza.New("composing", "http://jabber.org/protocol/chatstates"))
	}
	e.r.Route(ctx, composing())
	if d := e.depth("bob"); d != 0 {
		t.Fatalf("chat state queued offline: depth %d", d)
	}
	if got, _ := sender.TakeAcks(); len(got) != 0 {
		t.Fatalf("sender got %v", got[0])
	}
	bob := e.bind("bob@example.com/phone", true, 0)
	e.r.Route(ctx, composing())
	got, acks := bob.TakeAcks()
	if len(got) != 1 || acks[0] != nil {
		t.Fatalf("online chat state: %d delivered, ack %v", len(got), acks)
	}
	if d := e.depth("bob"); d != 0 {
		t.Fatalf("chat state queued online: depth %d", d)
	}
	// A no-store hint keeps even a body out of the queue.
	m := msg("alice@example.com/desk", "bob@example.com", "chat", "ephemeral")
	m.Append(stanza.New("no-store", "urn:xmpp:hints"))
	e.r.Route(ctx, m)
	if d := e.depth("bob"); d != 0 {
		t.Fatalf("no-store message queued: depth %d", d)
	}
}

// TestMessageAddressing covers unknown users, remote domains and the server.
func TestMessageAddressing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		to, typ string
		bounce  string
	}{
		{"nobody@example.com", "chat", "service-unavailable"},
		{"nobody@example.com/res", "chat", "service-unavailable"},
		{"nobody@example.com", "error", ""},
		{"bob@elsewhere.example", "chat", "remote-server-not-found"},
		{"example.com", "chat", "service-unavailable"},
		{"example.com", "error", ""},
	}
	for _, tc := range cases {
		t.Run(tc.to+"/"+tc.typ, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opts{}, "alice")
			sender := e.bind("alice@example.com/desk", true, 0)
			e.r.Route(ctx, msg("alice@example.com/desk", tc.to, tc.typ, "hi"))
			got, _ := sender.TakeAcks()
			if tc.bounce == "" {
				if len(got) != 0 {
					t.Fatalf("error stanza answered with %v", got[0])
				}
				return
			}
			if len(got) != 1 || errorCondition(got[0]) != tc.bounce {
				t.Fatalf("got %v, want %s", got, tc.bounce)
			}
			if got[0].ChildText("body", "") != "hi" {
				t.Errorf("bounce does not carry the original payload: %v", got[0])
			}
		})
	}
}

// TestIQRouting: iqs to full JIDs are delivered or bounced; results and
// errors to bare JIDs or offline resources are dropped; iqs to bare JIDs and
// the server are answered by handlers.
func TestIQRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	alice := e.bind("alice@example.com/desk", true, 0)
	bob := e.bind("bob@example.com/phone", true, 0)
	iq := func(typ, to string, payloadNS string) *stanza.Element {
		el := stanza.New("iq", stanza.NSClient).SetAttr("from", "alice@example.com/desk").SetAttr("to", to).SetAttr("type", typ).SetAttr("id", "q1")
		if payloadNS != "" {
			el.Append(stanza.New("query", payloadNS))
		}
		return el
	}
	expectNothing := func(what string) {
		t.Helper()
		if got, _ := alice.TakeAcks(); len(got) != 0 {
			t.Errorf("%s: alice got %v", what, got[0])
		}
		if got, _ := bob.TakeAcks(); len(got) != 0 {
			t.Errorf("%s: bob got %v", what, got[0])
		}
	}
	expectError := func(what, cond string) {
		t.Helper()
		got, _ := alice.TakeAcks()
		if len(got) != 1 || errorCondition(got[0]) != cond {
			t.Errorf("%s: alice got %v, want %s", what, got, cond)
		}
	}

	e.r.Route(ctx, iq("get", "bob@example.com/phone", "urn:example:q"))
	if got, _ := bob.TakeAcks(); len(got) != 1 || got[0].Type() != "get" {
		t.Errorf("iq to online full JID: bob got %v", got)
	}
	e.r.Route(ctx, iq("get", "bob@example.com/gone", "urn:example:q"))
	expectError("get to offline full JID", "service-unavailable")
	e.r.Route(ctx, iq("set", "bob@example.com/gone", "urn:example:q"))
	expectError("set to offline full JID", "service-unavailable")
	e.r.Route(ctx, iq("result", "bob@example.com/gone", ""))
	expectNothing("result to offline full JID")
	e.r.Route(ctx, iq("error", "bob@example.com/gone", ""))
	expectNothing("error to offline full JID")
	e.r.Route(ctx, iq("result", "bob@example.com", ""))
	expectNothing("result to bare JID")
	e.r.Route(ctx, iq("result", "example.com", ""))
	expectNothing("result to the server")
	e.r.Route(ctx, iq("get", "bob@example.com", "urn:example:nohandler"))
	expectError("get to bare JID without handler", "service-unavailable")
	e.r.Route(ctx, iq("get", "example.com", "urn:example:nohandler"))
	expectError("get to server without handler", "service-unavailable")
	e.r.Route(ctx, iq("get", "example.com", ""))
	expectError("get without payload", "bad-request")

	var seenFrom, seenTo jid.JID
	e.r.HandleUserIQ("urn:example:user", func(_ context.Context, from, to jid.JID, _ *stanza.Element) (*stanza.Element, error) {
		seenFrom, seenTo = from, to
		return stanza.New("iq", stanza.NSClient).SetAttr("type", "result"), nil
	})
	e.r.Route(ctx, iq("get", "bob@example.com", "urn:example:user"))
	got, _ := alice.TakeAcks()
	if len(got) != 1 || got[0].Type() != "result" || got[0].ID() != "q1" || got[0].From() != "bob@example.com" || got[0].To() != "alice@example.com/desk" {
		t.Errorf("user iq handler reply: %v", got)
	}
	if seenFrom.String() != "alice@example.com/desk" || seenTo.String() != "bob@example.com" {
		t.Errorf("handler saw from %v to %v", seenFrom, seenTo)
	}
	if got, _ := bob.TakeAcks(); len(got) != 0 {
		t.Errorf("iq to bare JID reached bob's session: %v", got[0])
	}
	e.r.Route(ctx, iq("get", "nobody@example.com", "urn:example:user"))
	expectError("user iq to unknown account", "service-unavailable")

	e.r.HandleServerIQ("urn:example:fails", func(context.Context, jid.JID, jid.JID, *stanza.Element) (*stanza.Element, error) {
		return nil, stanza.ErrItemNotFound
	})
	e.r.Route(ctx, iq("get", "example.com", "urn:example:fails"))
	expectError("handler error", "item-not-found")
	e.r.HandleServerIQ("urn:example:opaque", func(context.Context, jid.JID, jid.JID, *stanza.Element) (*stanza.Element, error) {
		return nil, errors.New("disk on fire")
	})
	e.r.Route(ctx, iq("get", "example.com", "urn:example:opaque"))
	expectError("non-stanza handler error", "internal-server-error")
	e.r.HandleServerIQ("urn:example:panic", func(context.Context, jid.JID, jid.JID, *stanza.Element) (*stanza.Element, error) {
		panic("bug")
	})
	e.r.Route(ctx, iq("get", "example.com", "urn:example:panic"))
	expectError("handler panic", "internal-server-error")
	// A request without a to is for the sender's own bare JID.
	noTo := iq("get", "", "urn:example:user")
	noTo.SetAttr("to", "")
	e.r.Route(ctx, noTo)
	got, _ = alice.TakeAcks()
	if len(got) != 1 || got[0].Type() != "result" || got[0].HasAttr("from") {
		t.Errorf("iq without to: %v (want a result without from)", got)
	}
}

// TestPresenceRouting: directed presence to a bare JID goes to every
// available resource; to a full JID to that resource; to a missing resource
// nowhere.
func TestPresenceRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	a := e.bind("bob@example.com/a", true, -1)
	b := e.bind("bob@example.com/b", false, 0)
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", "alice@example.com/desk").SetAttr("to", "bob@example.com")
	e.r.Route(ctx, p)
	if got, _ := a.TakeAcks(); len(got) != 1 {
		t.Errorf("available resource got %d", len(got))
	}
	if got, _ := b.TakeAcks(); len(got) != 0 {
		t.Errorf("unavailable resource got %d", len(got))
	}
	p2 := p.Copy().SetAttr("to", "bob@example.com/b")
	e.r.Route(ctx, p2)
	if got, _ := b.TakeAcks(); len(got) != 1 {
		t.Errorf("full JID presence: %d", len(got))
	}
	e.r.Route(ctx, p.Copy().SetAttr("to", "bob@example.com/gone"))
	if got, _ := a.TakeAcks(); len(got) != 0 {
		t.Errorf("presence to a missing resource reached another: %d", len(got))
	}
}

// TestBindUnbindReplace: the session registry.
func TestBindUnbindReplace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{maxSessions: 2}, "alice")
	s1 := e.bind("alice@example.com/one", true, 0)
	s2 := e.bind("alice@example.com/two", true, 0)
	if n := e.r.SessionCount(); n != 2 {
		t.Fatalf("count %d", n)
	}
	// A third resource is over the limit.
	s3 := newSession(t, "alice@example.com/three", true, 0)
	if old, err := e.r.Bind(s3); !errors.Is(err, router.ErrTooManySessions) || old != nil {
		t.Fatalf("third bind: %v, %v", old, err)
	}
	// Replacing an existing resource is allowed at the limit.
	s1b := newSession(t, "alice@example.com/one", true, 0)
	old, err := e.r.Bind(s1b)
	if err != nil || old != router.Session(s1) {
		t.Fatalf("replace: old %v err %v", old, err)
	}
	if n := e.r.SessionCount(); n != 2 {
		t.Fatalf("count %d after replace", n)
	}
	j, _ := jid.Parse("alice@example.com/one")
	if s := e.r.Session(j); s != router.Session(s1b) {
		t.Fatalf("Session(one) = %v", s)
	}
	// The replaced session ending must not unbind its successor.
	e.r.Unbind(s1)
	if s := e.r.Session(j); s != router.Session(s1b) {
		t.Fatalf("Unbind of the replaced session removed its successor")
	}
	if n := e.r.SessionCount(); n != 2 {
		t.Fatalf("count %d", n)
	}
	e.r.Unbind(s2)
	e.r.Unbind(s2) // twice is harmless
	if n := e.r.SessionCount(); n != 1 || len(e.r.Sessions("alice")) != 1 {
		t.Fatalf("count %d sessions %v", e.r.SessionCount(), e.r.Sessions("alice"))
	}
	// Room again for another resource.
	if old, err := e.r.Bind(s3); err != nil || old != nil {
		t.Fatalf("bind after unbind: %v %v", old, err)
	}
	e.r.Unbind(s1b)
	e.r.Unbind(s3)
	if n := e.r.SessionCount(); n != 0 || e.r.Sessions("alice") != nil {
		t.Fatalf("count %d sessions %v", n, e.r.Sessions("alice"))
	}
	var all int
	e.r.AllSessions(func(router.Session) { all++ })
	if all != 0 {
		t.Fatalf("AllSessions saw %d", all)
	}
}

// TestAckAfterCloseDoesNotPanic: a session may still write (and so
// acknowledge) after the router was closed — Server.Shutdown closes the
// router even when draining timed out. That must not crash the process.
func TestAckAfterCloseDoesNotPanic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}, "alice", "bob")
	e.bind("alice@example.com/desk", true, 0)
	bob := e.bind("bob@example.com/phone", true, 0)
	e.r.Route(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "late"))
	_, acks := bob.TakeAcks()
	if len(acks) != 1 || acks[0] == nil {
		t.Fatalf("acks %v", acks)
	}
	e.closeRouter()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("Ack.Done after Router.Close panicked: %v", p)
		}
	}()
	acks[0].Done()
}

// TestRouterConfig: New validates its configuration.
func TestRouterConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	for _, d := range []string{"", "user@example.com", "example.com/res"} {
		if _, err := router.New(router.Config{Domain: d, Store: e.st, Codec: routertest.Codec}); err == nil {
			t.Errorf("domain %q accepted", d)
		}
	}
	if _, err := router.New(router.Config{Domain: domain}); err == nil {
		t.Error("missing store accepted")
	}
}

// TestRouteAsync: a stored message makes RouteAsync return once the
// recipient has it, with done run exactly once when the append is durable;
// a stanza without an append (a chat state) is handled before RouteAsync
// returns false, and done never runs.
func TestRouteAsync(t *testing.T) {
	t.Parallel()
	re := routertest.New(t, domain, routertest.Options{}, "alice", "bob")
	re.Bind("alice@example.com/desk", true, 0)
	bob := re.Bind("bob@example.com/phone", true, 0)
	var calls atomic.Int32
	landed := make(chan struct{}, 2)
	done := func() { calls.Add(1); landed <- struct{}{} }
	var want int32 // done runs only if RouteAsync returned true
	if re.Router.RouteAsync(ctx, msg("alice@example.com/desk", "bob@example.com", "chat", "hi"), done) {
		want = 1
		<-landed
	}
	if got, _ := bob.TakeAcks(); len(got) != 1 || got[0].ChildText("body", "") != "hi" {
		t.Fatalf("recipient got %d messages, want the one routed", len(got))
	}
	if n, err := re.Store.Depth(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("Depth = %d, %v; want 1", n, err)
	}
	state := stanza.New("message", stanza.NSClient).SetAttr("from", "alice@example.com/desk").
		SetAttr("to", "bob@example.com").SetAttr("type", "chat").
		Append(stanza.New("composing", "http://jabber.org/protocol/chatstates"))
	if re.Router.RouteAsync(ctx, state, done) {
		t.Fatal("RouteAsync reported an append in flight for a chat state")
	}
	time.Sleep(10 * time.Millisecond) // a stray done would show by now
	if n := calls.Load(); n != want {
		t.Fatalf("done ran %d times, want %d", n, want)
	}
}
