package router_test

import (
	"testing"

	"github.com/parley-im/parley/internal/im/carbons"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// carbonsIQ routes an enable/disable iq from the session, to "" (own
// account), the user's bare JID or the domain, and returns the reply.
func carbonsIQ(t *testing.T, e *env, s *fakeSession, to, op, typ string) *stanza.Element {
	t.Helper()
	iq := stanza.New("iq", stanza.NSClient).SetAttr("from", s.JID().String()).SetAttr("type", typ).SetAttr("id", "c1").
		Append(stanza.New(op, carbons.NS))
	if to != "" {
		iq.SetAttr("to", to)
	}
	e.r.Route(ctx, iq)
	got, _ := s.TakeAcks()
	if len(got) != 1 || got[0].Name != "iq" || got[0].ID() != "c1" {
		t.Fatalf("%s %s to %q: %s got %v, want one iq reply", typ, op, to, s.JID(), got)
	}
	return got[0]
}

func enableCarbons(t *testing.T, e *env, s *fakeSession) {
	t.Helper()
	if r := carbonsIQ(t, e, s, "", "enable", "set"); r.Type() != "result" {
		t.Fatalf("enable carbons for %s: %v", s.JID(), r)
	}
}

func carbonsEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, opts{}, "alice", "bob")
	carbons.Register(e.r)
	return e
}

// wantCarbon checks that s got exactly one stanza, a kind (sent|received)
// carbon wrapping a message with body, and returns the forwarded message.
func wantCarbon(t *testing.T, s *fakeSession, kind, body string) *stanza.Element {
	t.Helper()
	got, acks := s.TakeAcks()
	if len(got) != 1 {
		t.Fatalf("%s got %d stanzas %v, want one %s carbon", s.JID(), len(got), got, kind)
	}
	c := got[0]
	if acks[0] != nil {
		t.Errorf("%s: carbon delivered with a queue ack", s.JID())
	}
	if c.Name != "message" || c.From() != s.JID().Bare().String() || c.To() != s.JID().String() {
		t.Errorf("%s: carbon envelope from=%q to=%q", s.JID(), c.From(), c.To())
	}
	w := c.Child(kind, carbons.NS)
	if w == nil {
		t.Fatalf("%s: no <%s/> in %v", s.JID(), kind, c)
	}
	f := w.Child("forwarded", router.NSForward)
	if f == nil || f.Child("message", stanza.NSClient) == nil {
		t.Fatalf("%s: no forwarded message in %v", s.JID(), c)
	}
	m := f.Child("message", stanza.NSClient)
	if c.Type() != m.Type() {
		t.Errorf("%s: carbon type %q, forwarded type %q", s.JID(), c.Type(), m.Type())
	}
	if m.ChildText("body", stanza.NSClient) != body {
		t.Errorf("%s: forwarded body %q, want %q", s.JID(), m.ChildText("body", stanza.NSClient), body)
	}
	return m
}

func wantNothing(t *testing.T, what string, ss ...*fakeSession) {
	t.Helper()
	for _, s := range ss {
		if got, _ := s.TakeAcks(); len(got) != 0 {
			t.Errorf("%s: %s got %v", what, s.JID(), got)
		}
	}
}

func wantOriginal(t *testing.T, s *fakeSession, body string) *stanza.Element {
	t.Helper()
	got, _ := s.TakeAcks()
	if len(got) != 1 || got[0].ChildText("body", stanza.NSClient) != body || got[0].Child("received", carbons.NS) != nil {
		t.Fatalf("%s got %v, want the original %q", s.JID(), got, body)
	}
	return got[0]
}

func TestCarbonsEnableDisable(t *testing.T) {
	t.Parallel()
	e := carbonsEnv(t)
	a := e.bind("alice@example.com/a", true, 0)
	e.bind("bob@example.com/x", true, 0)
	aj := a.JID()
	if e.r.CarbonsEnabled(aj) {
		t.Fatal("carbons on before enable")
	}
	for _, to := range []string{"", "alice@example.com", "example.com"} {
		if r := carbonsIQ(t, e, a, to, "enable", "set"); r.Type() != "result" || !e.r.CarbonsEnabled(aj) {
			t.Fatalf("enable to %q: reply %v, enabled %v", to, r, e.r.CarbonsEnabled(aj))
		}
		// A second enable is not an error (XEP-0280 §10.1).
		if r := carbonsIQ(t, e, a, to, "enable", "set"); r.Type() != "result" {
			t.Fatalf("repeated enable to %q: %v", to, r)
		}
		if r := carbonsIQ(t, e, a, to, "disable", "set"); r.Type() != "result" || e.r.CarbonsEnabled(aj) {
			t.Fatalf("disable to %q: reply %v, enabled %v", to, r, e.r.CarbonsEnabled(aj))
		}
		if r := carbonsIQ(t, e, a, to, "disable", "set"); r.Type() != "result" {
			t.Fatalf("repeated disable to %q: %v", to, r)
		}
	}
	if r := carbonsIQ(t, e, a, "", "enable", "get"); errorCondition(r) != "bad-request" {
		t.Errorf("get enable: %v, want bad-request", r)
	}
	if r := carbonsIQ(t, e, a, "", "private", "set"); errorCondition(r) != "bad-request" {
		t.Errorf("set private: %v, want bad-request", r)
	}
	if r := carbonsIQ(t, e, a, "bob@example.com", "enable", "set"); errorCondition(r) != "not-allowed" {
		t.Errorf("enable on bob's account: %v, want not-allowed", r)
	}
	if e.r.CarbonsEnabled(aj) || e.r.CarbonsEnabled(jid.MustParse("bob@example.com/x")) {
		t.Error("a refused request changed the state")
	}
	if e.r.SetCarbons(jid.MustParse("alice@example.com/nobody"), true) {
		t.Error("SetCarbons on an unbound JID succeeded")
	}
}

// TestCarbonsReceived is XEP-0280 §8: a message to one resource is copied
// to the recipient's other available carbons-enabled resources, outside the
// durable queue.
func TestCarbonsReceived(t *testing.T) {
	t.Parallel()
	e := carbonsEnv(t)
	a := e.bind("alice@example.com/a", true, 0)
	b := e.bind("alice@example.com/b", true, 0)
	away := e.bind("alice@example.com/away", false, 0)  // enabled, not available
	plain := e.bind("alice@example.com/plain", true, 0) // available, not enabled
	bob := e.bind("bob@example.com/x", true, 0)
	for _, s := range []*fakeSession{a, b, away} {
		enableCarbons(t, e, s)
	}
	e.r.Route(ctx, msg("bob@example.com/x", "alice@example.com/a", "chat", "hi a"))
	wantOriginal(t, a, "hi a")
	m := wantCarbon(t, b, "received", "hi a")
	if m.From() != "bob@example.com/x" || m.To() != "alice@example.com/a" {
		t.Errorf("forwarded message from=%q to=%q", m.From(), m.To())
	}
	wantNothing(t, "received carbon", away, plain, bob)
	if d := e.depth("alice"); d != 1 {
		t.Errorf("alice's queue depth %d, want 1 (the original only)", d)
	}

	// A chat state (type chat, no body) is eligible too, and not queued.
	cs := msg("bob@example.com/x", "alice@example.com/a", "chat", "")
	cs.Append(stanza.New("composing", "http://jabber.org/protocol/chatstates"))
	e.r.Route(ctx, cs)
	if got, _ := a.TakeAcks(); len(got) != 1 {
		t.Fatalf("chat state: a got %v", got)
	}
	wantCarbon(t, b, "received", "")
	// A normal message with a body is eligible.
	e.r.Route(ctx, msg("bob@example.com/x", "alice@example.com/a", "normal", "n"))
	wantOriginal(t, a, "n")
	if c := wantCarbon(t, b, "received", "n"); c.Type() != "normal" {
		t.Errorf("forwarded type %q", c.Type())
	}
}

// TestCarbonsSent is XEP-0280 §9: a message a user sends from one resource
// is copied to the user's other carbons-enabled resources, not to the sender.
func TestCarbonsSent(t *testing.T) {
	t.Parallel()
	e := carbonsEnv(t)
	a := e.bind("alice@example.com/a", true, 0)
	b := e.bind("alice@example.com/b", true, 0)
	plain := e.bind("alice@example.com/plain", true, 0)
	bob := e.bind("bob@example.com/x", true, 0)
	enableCarbons(t, e, a)
	enableCarbons(t, e, b)
	e.r.Route(ctx, msg("alice@example.com/a", "bob@example.com", "chat", "to bob"))
	wantOriginal(t, bob, "to bob")
	m := wantCarbon(t, b, "sent", "to bob")
	if m.From() != "alice@example.com/a" || m.To() != "bob@example.com" {
		t.Errorf("forwarded message from=%q to=%q", m.From(), m.To())
	}
	wantNothing(t, "sent carbon", a, plain)

	// To one of her own resources: the received side copies it once, to
	// the others (not to the sender).
	e.r.Route(ctx, msg("alice@example.com/a", "alice@example.com/plain", "chat", "self"))
	wantOriginal(t, plain, "self")
	wantCarbon(t, b, "received", "self")
	wantNothing(t, "message to self", a, bob)
}

// TestCarbonsBareJID: resources that got a message to the bare JID under the
// RFC 6121 rules get no carbon of it; the others do.
func TestCarbonsBareJID(t *testing.T) {
	t.Parallel()
	e := carbonsEnv(t)
	a := e.bind("alice@example.com/a", true, 1)
	b := e.bind("alice@example.com/b", true, 1)
	low := e.bind("alice@example.com/low", true, 0)
	neg := e.bind("alice@example.com/neg", true, -1)
	for _, s := range []*fakeSession{a, b, low, neg} {
		enableCarbons(t, e, s)
	}
	e.r.Route(ctx, msg("bob@example.com/x", "alice@example.com", "chat", "bare"))
	wantOriginal(t, a, "bare")
	wantOriginal(t, b, "bare")
	wantCarbon(t, low, "received", "bare")
	wantCarbon(t, neg, "received", "bare")
}

// TestCarbonsNotEligible: <private/>, <no-copy/> and the types XEP-0280 §6
// leaves out are not copied; <private/> is removed from what the recipient
// gets (§7).
func TestCarbonsNotEligible(t *testing.T) {
	t.Parallel()
	e := carbonsEnv(t)
	a := e.bind("alice@example.com/a", true, 0)
	b := e.bind("alice@example.com/b", true, 0)
	bob := e.bind("bob@example.com/x", true, 0)
	bob2 := e.bind("bob@example.com/y", true, 0)
	for _, s := range []*fakeSession{a, b, bob, bob2} {
		enableCarbons(t, e, s)
	}
	for _, mark := range []*stanza.Element{stanza.New("private", carbons.NS), stanza.New("no-copy", "urn:xmpp:hints")} {
		m := msg("alice@example.com/a", "bob@example.com/x", "chat", "secret")
		m.Append(mark)
		e.r.Route(ctx, m)
		got := wantOriginal(t, bob, "secret")
		if mark.Name == "private" && got.Child("private", carbons.NS) != nil {
			t.Errorf("<private/> left in the delivered message")
		}
		if mark.Name == "no-copy" && got.Child("no-copy", "urn:xmpp:hints") == nil {
			t.Errorf("<no-copy/> removed from the delivered message")
		}
		if m.Child(mark.Name, mark.NS) == nil {
			t.Errorf("the sender's stanza was changed")
		}
		wantNothing(t, mark.Name, a, b, bob2)
	}
	for _, typ := range []string{"headline", "normal", "error"} {
		body := "x"
		if typ == "normal" {
			body = "" // normal without a body
		}
		m := msg("alice@example.com/a", "bob@example.com/x", typ, body)
		m.Append(stanza.New("x", "urn:example"))
		e.r.Route(ctx, m)
		if got, _ := bob.TakeAcks(); len(got) != 1 {
			t.Fatalf("%s: bob got %v", typ, got)
		}
		wantNothing(t, typ, a, b, bob2)
	}
	// Copies of carbons and MUC private messages are not carboned.
	for _, payload := range []*stanza.Element{stanza.New("received", carbons.NS), stanza.New("x", "http://jabber.org/protocol/muc#user")} {
		m := msg("alice@example.com/a", "bob@example.com/x", "chat", "p")
		m.Append(payload)
		e.r.Route(ctx, m)
		if got, _ := bob.TakeAcks(); len(got) != 1 || got[0].From() != "alice@example.com/a" {
			t.Fatalf("%s: bob got %v", payload.NS, got)
		}
		wantNothing(t, payload.NS, a, b, bob2)
	}
}

// TestCarbonsEndWithSession: the state belongs to the session; unbinding
// drops it and a new session on the same resource starts without it.
func TestCarbonsEndWithSession(t *testing.T) {
	t.Parallel()
	e := carbonsEnv(t)
	a := e.bind("alice@example.com/a", true, 0)
	b := e.bind("alice@example.com/b", true, 0)
	enableCarbons(t, e, b)
	e.r.Unbind(b)
	if e.r.CarbonsEnabled(b.JID()) {
		t.Fatal("carbons still on after unbind")
	}
	b2 := e.bind("alice@example.com/b", true, 0)
	if e.r.CarbonsEnabled(b2.JID()) {
		t.Fatal("a new session inherited carbons")
	}
	e.r.Route(ctx, msg("bob@example.com/x", "alice@example.com/a", "chat", "hi"))
	wantOriginal(t, a, "hi")
	wantNothing(t, "after unbind", b, b2)

	// A session replaced by a new login (conflict) does not hand its state
	// to the newcomer either.
	enableCarbons(t, e, b2)
	b3 := newSession(t, "alice@example.com/b", true, 0)
	if old, err := e.r.Bind(b3); err != nil || old != b2 {
		t.Fatalf("replace: %v %v", old, err)
	}
	e.r.Unbind(b2)
	if e.r.CarbonsEnabled(b3.JID()) {
		t.Fatal("the replacing session inherited carbons")
	}
	e.r.Route(ctx, msg("bob@example.com/x", "alice@example.com/a", "chat", "hi"))
	wantOriginal(t, a, "hi")
	wantNothing(t, "after replace", b2, b3)
}
