package roster_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/stanza"
)

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// TestSubscriptionHandshake walks RFC 6121 Appendix A from none to both on
// both sides, checking both items, what each user's sessions receive and
// the roster pushes, step by step.
func TestSubscriptionHandshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", true)
	bob := e.online("bob@example.com/phone", true)
	e.iq(alice, "get", stanza.New("query", stanza.NSRoster)) // both want pushes
	e.iq(bob, "get", stanza.New("query", stanza.NSRoster))

	steps := []struct {
		name               string
		from               *session
		typ, to            string
		alice, bob         string   // item states afterwards
		alicePres, bobPres []string // presence received
		alicePush, bobPush []string // roster pushes received
	}{
		{
			name: "alice subscribes", from: alice, typ: "subscribe", to: "bob@example.com",
			alice: "none+ask", bob: "none+pending+hidden",
			bobPres:   []string{"subscribe alice@example.com"},
			alicePush: []string{"bob@example.com none+ask"},
		},
		{
			name: "bob approves", from: bob, typ: "subscribed", to: "alice@example.com",
			alice: "to", bob: "from",
			// alice learns of the approval, then bob's current presence.
			alicePres: []string{"subscribed bob@example.com", "available bob@example.com/phone"},
			alicePush: []string{"bob@example.com to"},
			bobPush:   []string{"alice@example.com from"},
		},
		{
			name: "bob subscribes back", from: bob, typ: "subscribe", to: "alice@example.com",
			alice: "to+pending", bob: "from+ask",
			alicePres: []string{"subscribe bob@example.com"},
			alicePush: []string{"bob@example.com to"},
			bobPush:   []string{"alice@example.com from+ask"},
		},
		{
			name: "alice approves", from: alice, typ: "subscribed", to: "bob@example.com",
			alice: "both", bob: "both",
			bobPres:   []string{"subscribed alice@example.com", "available alice@example.com/desk"},
			alicePush: []string{"bob@example.com both"},
			bobPush:   []string{"alice@example.com both"},
		},
		{
			name: "subscribing again changes nothing", from: alice, typ: "subscribe", to: "bob@example.com",
			alice: "both", bob: "both",
		},
		{
			name: "alice unsubscribes", from: alice, typ: "unsubscribe", to: "bob@example.com",
			alice: "from", bob: "to",
			// bob sees the request; alice gets bob's unavailable.
			bobPres:   []string{"unsubscribe alice@example.com"},
			alicePres: []string{"unavailable bob@example.com/phone"},
			alicePush: []string{"bob@example.com from"},
			bobPush:   []string{"alice@example.com to"},
		},
		{
			name: "alice cancels bob's subscription", from: alice, typ: "unsubscribed", to: "bob@example.com",
			alice: "none", bob: "none",
			bobPres:   []string{"unavailable alice@example.com/desk", "unsubscribed alice@example.com"},
			alicePush: []string{"bob@example.com none"},
			bobPush:   []string{"alice@example.com none"},
		},
		{
			name: "unsolicited subscribed is ignored", from: bob, typ: "subscribed", to: "alice@example.com",
			alice: "none", bob: "none+approved",
			// For bob it is a pre-approval (RFC 6121 §3.4); alice sees nothing.
			bobPush: []string{"alice@example.com none"},
		},
	}
	for _, st := range steps {
		e.sub(st.from, st.typ, st.to)
		if got := e.state("alice", "bob@example.com"); got != st.alice {
			t.Errorf("%s: alice's item %s, want %s", st.name, got, st.alice)
		}
		if got := e.state("bob", "alice@example.com"); got != st.bob {
			t.Errorf("%s: bob's item %s, want %s", st.name, got, st.bob)
		}
		ag, bg := alice.Take(), bob.Take()
		// Order is checked by TestApprovalThenPresence; here only the set.
		eq(t, st.name+": alice's presence", sorted(presences(ag)), sorted(st.alicePres))
		eq(t, st.name+": bob's presence", sorted(presences(bg)), sorted(st.bobPres))
		eq(t, st.name+": alice's pushes", pushes(ag), st.alicePush)
		eq(t, st.name+": bob's pushes", pushes(bg), st.bobPush)
	}
}

// TestPreApproval: RFC 6121 §3.4 — bob approves before alice asks; her
// request is then answered by the server without bothering bob.
func TestPreApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", true)
	bob := e.online("bob@example.com/phone", true)
	e.sub(bob, "subscribed", "alice@example.com")
	if got := e.state("bob", "alice@example.com"); got != "none+approved" {
		t.Fatalf("bob's item after pre-approval: %s", got)
	}
	if got := alice.Take(); len(got) != 0 {
		t.Fatalf("a pre-approval was routed to alice: %v", got[0])
	}
	bob.Take()
	e.sub(alice, "subscribe", "bob@example.com")
	if got := e.state("bob", "alice@example.com"); got != "from" {
		t.Errorf("bob's item: %s, want from", got)
	}
	if got := e.state("alice", "bob@example.com"); got != "to" {
		t.Errorf("alice's item: %s, want to", got)
	}
	eq(t, "bob's presence", presences(bob.Take()), nil)
	eq(t, "alice's presence", presences(alice.Take()), []string{"subscribed bob@example.com", "available bob@example.com/phone"})
}

// TestSubscribeUnknownUser: RFC 6121 §3.1.3 — the server answers for a
// contact that does not exist with unsubscribed.
func TestSubscribeUnknownUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice")
	alice := e.online("alice@example.com/desk", true)
	e.sub(alice, "subscribe", "nobody@example.com")
	eq(t, "alice's presence", presences(alice.Take()), []string{"unsubscribed nobody@example.com"})
	if got := e.state("alice", "nobody@example.com"); got != "none" {
		t.Errorf("alice's item %s, want none (ask cleared)", got)
	}
}

// TestSubscribeSelfIgnored: subscribing to oneself does nothing.
func TestSubscribeSelfIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice")
	alice := e.online("alice@example.com/desk", true)
	e.sub(alice, "subscribe", "alice@example.com")
	if got := e.state("alice", "alice@example.com"); got != "absent" {
		t.Errorf("self item %s", got)
	}
	if got := alice.Take(); len(got) != 0 {
		t.Errorf("got %v", got[0])
	}
}

// mutual makes the users of a and b subscribed both ways.
func mutual(e *env, a, b *session) {
	aj, bj := a.JID().Bare().String(), b.JID().Bare().String()
	e.sub(a, "subscribe", bj)
	e.sub(b, "subscribed", aj)
	e.sub(b, "subscribe", aj)
	e.sub(a, "subscribed", bj)
	a.Take()
	b.Take()
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestApprovalThenPresence: RFC 6121 §3.1.5 — the contact's server routes
// the subscribed and "MUST then also send current presence" (in that
// order: the user's client only accepts the contact's presence once it knows
// the subscription exists). §3.2.2 is the reverse for unsubscribed:
// unavailable first, "while the user is still subscribed".
func TestApprovalThenPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", true)
	bob := e.online("bob@example.com/phone", true)
	e.sub(alice, "subscribe", "bob@example.com")
	alice.Take()
	e.sub(bob, "subscribed", "alice@example.com")
	eq(t, "alice after approval", presences(alice.Take()), []string{"subscribed bob@example.com", "available bob@example.com/phone"})
	e.sub(bob, "unsubscribed", "alice@example.com")
	eq(t, "alice after cancellation", presences(alice.Take()), []string{"unavailable bob@example.com/phone", "unsubscribed bob@example.com"})
}

// TestRosterRemove: RFC 6121 §2.5.2 — removing a contact with a mutual
// subscription sends unsubscribe and unsubscribed, leaving the contact's
// item at none.
func TestRosterRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", true)
	bob := e.online("bob@example.com/phone", true)
	mutual(e, alice, bob)
	e.iq(alice, "get", stanza.New("query", stanza.NSRoster))
	res := e.iq(alice, "set", stanza.New("query", stanza.NSRoster).Append(
		stanza.New("item", stanza.NSRoster).SetAttr("jid", "bob@example.com").SetAttr("subscription", "remove")))
	if res.Type() != "result" {
		t.Fatalf("remove: %v", res)
	}
	if got := e.state("alice", "bob@example.com"); got != "absent" {
		t.Errorf("alice's item %s after remove", got)
	}
	if got := e.state("bob", "alice@example.com"); got != "none" {
		t.Errorf("bob's item %s, want none", got)
	}
	bp := presences(bob.Take())
	if !slices.Contains(bp, "unsubscribe alice@example.com") || !slices.Contains(bp, "unsubscribed alice@example.com") {
		t.Errorf("bob got %q, want unsubscribe and unsubscribed", bp)
	}
	eq(t, "alice's pushes", pushes(alice.Take()), []string{"bob@example.com remove"})
	// Removing what is not there.
	res = e.iq(alice, "set", stanza.New("query", stanza.NSRoster).Append(
		stanza.New("item", stanza.NSRoster).SetAttr("jid", "bob@example.com").SetAttr("subscription", "remove")))
	if stanza.ParseError(res) == nil || stanza.ParseError(res).Condition != "item-not-found" {
		t.Errorf("second remove: %v", res)
	}
}

// TestRosterRemoveSendsUnavailable: after removing a contact who was
// subscribed to our presence, the contact must learn we are gone
// (RFC 6121 §2.5.2 → §3.2.2: unsubscribed is followed by unavailable
// presence from each available resource).
func TestRosterRemoveSendsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", true)
	bob := e.online("bob@example.com/phone", true)
	mutual(e, alice, bob)
	e.iq(alice, "set", stanza.New("query", stanza.NSRoster).Append(
		stanza.New("item", stanza.NSRoster).SetAttr("jid", "bob@example.com").SetAttr("subscription", "remove")))
	bp := presences(bob.Take())
	if !slices.Contains(bp, "unavailable alice@example.com/desk") {
		t.Errorf("bob got %q: no unavailable from alice, whose presence he may no longer see", bp)
	}
}

// TestRosterSetAndVersioning: sets bump the version, a get with the current
// version is an empty result (XEP-0237), an old one gets the full roster.
func TestRosterSetAndVersioning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice")
	alice := e.online("alice@example.com/desk", false)
	res := e.iq(alice, "get", stanza.New("query", stanza.NSRoster))
	q := res.Child("query", stanza.NSRoster)
	if res.Type() != "result" || q == nil || len(q.Elements()) != 0 {
		t.Fatalf("empty roster: %v", res)
	}
	v0 := q.Attr("ver")
	set := func(contact, name string, groups ...string) *stanza.Element {
		it := stanza.New("item", stanza.NSRoster).SetAttr("jid", contact).SetAttr("name", name)
		for _, g := range groups {
			it.Append(stanza.New("group", stanza.NSRoster).AppendText(g))
		}
		return e.iq(alice, "set", stanza.New("query", stanza.NSRoster).Append(it))
	}
	if r := set("carol@elsewhere.example", "Carol", "Friends"); r.Type() != "result" {
		t.Fatalf("set: %v", r)
	}
	res = e.iq(alice, "get", stanza.New("query", stanza.NSRoster).SetAttr("ver", v0))
	q = res.Child("query", stanza.NSRoster)
	if q == nil || len(q.Elements()) != 1 {
		t.Fatalf("get with an old version: %v", res)
	}
	it := q.Elements()[0]
	if it.Attr("jid") != "carol@elsewhere.example" || it.Attr("name") != "Carol" || it.Attr("subscription") != "none" || it.ChildText("group", "") != "Friends" {
		t.Errorf("item %v", it)
	}
	v1 := q.Attr("ver")
	if v1 == v0 {
		t.Fatalf("version did not change: %s", v1)
	}
	res = e.iq(alice, "get", stanza.New("query", stanza.NSRoster).SetAttr("ver", v1))
	if res.Type() != "result" || len(res.Elements()) != 0 {
		t.Errorf("get with the current version: %v, want an empty result", res)
	}
	// Invalid sets.
	for name, q := range map[string]*stanza.Element{
		"two items": stanza.New("query", stanza.NSRoster).Append(
			stanza.New("item", stanza.NSRoster).SetAttr("jid", "a@example.com"),
			stanza.New("item", stanza.NSRoster).SetAttr("jid", "b@example.com")),
		"bad jid": stanza.New("query", stanza.NSRoster).Append(stanza.New("item", stanza.NSRoster).SetAttr("jid", "a@b@c")),
		"duplicate group": stanza.New("query", stanza.NSRoster).Append(stanza.New("item", stanza.NSRoster).SetAttr("jid", "a@example.com").Append(
			stanza.New("group", stanza.NSRoster).AppendText("x"), stanza.New("group", stanza.NSRoster).AppendText("x"))),
	} {
		if r := e.iq(alice, "set", q); r.Type() != "error" {
			t.Errorf("%s: %v", name, r)
		}
	}
}

// TestRosterOfOthersForbidden: only the user may touch its roster.
func TestRosterOfOthersForbidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", false)
	el := stanza.New("iq", stanza.NSClient).SetAttr("from", "alice@example.com/desk").SetAttr("to", "bob@example.com").
		SetAttr("type", "get").SetAttr("id", "x").Append(stanza.New("query", stanza.NSRoster))
	e.r.Route(ctx, el)
	got := alice.Take()
	if len(got) != 1 || stanza.ParseError(got[0]) == nil || stanza.ParseError(got[0]).Condition != "forbidden" {
		t.Fatalf("got %v, want forbidden", got)
	}
}

// TestPushesOnlyToInterestedSessions: RFC 6121 §2.1.6 — pushes go to the
// resources that requested the roster, not to the others.
func TestPushesOnlyToInterestedSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice")
	desk := e.online("alice@example.com/desk", true)
	phone := e.online("alice@example.com/phone", true)
	e.iq(desk, "get", stanza.New("query", stanza.NSRoster))
	desk.Take()
	phone.Take()
	e.iq(desk, "set", stanza.New("query", stanza.NSRoster).Append(stanza.New("item", stanza.NSRoster).SetAttr("jid", "carol@example.com")))
	eq(t, "desk pushes", pushes(desk.Take()), []string{"carol@example.com none"})
	eq(t, "phone pushes", pushes(phone.Take()), nil)
	// The push is addressed to the full JID and carries the version.
	e.iq(phone, "get", stanza.New("query", stanza.NSRoster))
	phone.Take()
	e.iq(desk, "set", stanza.New("query", stanza.NSRoster).Append(stanza.New("item", stanza.NSRoster).SetAttr("jid", "dave@example.com")))
	for _, g := range phone.Take() {
		if g.Type() == "set" {
			if g.To() != "alice@example.com/phone" || g.ID() == "" || g.Child("query", stanza.NSRoster).Attr("ver") == "" {
				t.Errorf("push %v", g)
			}
		}
	}
}

// TestPendingSubscriptionAtInitialPresence: a request made while the
// contact was offline is delivered when the contact sends initial presence,
// and again at each initial presence until answered.
func TestPendingSubscriptionAtInitialPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	alice := e.online("alice@example.com/desk", true)
	e.sub(alice, "subscribe", "bob@example.com")
	bob := e.online("bob@example.com/phone", false)
	if got := bob.Take(); len(got) != 0 {
		t.Fatalf("delivered before initial presence: %v", got[0])
	}
	e.initialPresence(bob, "")
	eq(t, "bob at initial presence", presences(bob.Take()), []string{"subscribe alice@example.com"})
	bob2 := e.online("bob@example.com/laptop", true)
	if !slices.Contains(presences(bob2.Take()), "subscribe alice@example.com") {
		t.Errorf("second resource did not get the pending request")
	}
	e.sub(bob, "subscribed", "alice@example.com")
	bob3 := e.online("bob@example.com/tablet", true)
	if slices.Contains(presences(bob3.Take()), "subscribe alice@example.com") {
		t.Errorf("answered request delivered again")
	}
}

// TestPresenceBroadcast: RFC 6121 §4.2, §4.4 — presence goes to contacts
// with a from or both subscription and the user's other resources, never to
// to/none contacts; initial presence brings the presence of contacts we are
// subscribed to.
func TestPresenceBroadcast(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob", "carol", "dave", "erin")
	a := e.online("alice@example.com/desk", true)
	b := e.online("bob@example.com/r", true)
	c := e.online("carol@example.com/r", true)
	d := e.online("dave@example.com/r", true)
	x := e.online("erin@example.com/r", true)
	// bob: from (bob subscribed to alice).
	e.sub(b, "subscribe", "alice@example.com")
	e.sub(a, "subscribed", "bob@example.com")
	// carol: to (alice subscribed to carol).
	e.sub(a, "subscribe", "carol@example.com")
	e.sub(c, "subscribed", "alice@example.com")
	// dave: both.
	mutual(e, a, d)
	// erin: none, but in the roster.
	e.iq(a, "set", stanza.New("query", stanza.NSRoster).Append(stanza.New("item", stanza.NSRoster).SetAttr("jid", "erin@example.com")))
	for _, s := range []*session{a, b, c, d, x} {
		s.Take()
	}
	want := map[string]string{"bob": "from", "carol": "to", "dave": "both", "erin": "none"}
	for u, sub := range want {
		if got := e.state("alice", u+"@example.com"); got != sub {
			t.Fatalf("alice's item for %s: %s, want %s", u, got, sub)
		}
	}
	// A second resource of alice comes online.
	a2 := routertest.NewSession(t, "alice@example.com/phone", false, 0)
	a2.AutoAck(true)
	if _, err := e.r.Bind(a2); err != nil {
		t.Fatal(err)
	}
	e.initialPresence(a2, "here")
	for name, s := range map[string]*session{"bob": b, "dave": d, "alice/desk": a} {
		if got := presences(s.Take()); !slices.Equal(got, []string{"available alice@example.com/phone"}) {
			t.Errorf("%s got %q", name, got)
		}
	}
	for name, s := range map[string]*session{"carol": c, "erin": x} {
		if got := s.Take(); len(got) != 0 {
			t.Errorf("%s got %v", name, got[0])
		}
	}
	// alice/phone got the presence of carol and dave (she is subscribed to
	// them) and of her other resource, but not bob's or erin's.
	got := presences(a2.Take())
	slices.Sort(got)
	eq(t, "alice/phone at initial presence", got, []string{"available alice@example.com/desk", "available carol@example.com/r", "available dave@example.com/r"})

	// An update goes to the same set.
	upd := stanza.New("presence", stanza.NSClient).SetAttr("from", "alice@example.com/phone").Append(stanza.New("show", stanza.NSClient).AppendText("away"))
	e.m.Broadcast(ctx, a2, upd, false)
	for name, s := range map[string]*session{"bob": b, "dave": d, "alice/desk": a} {
		g := s.Take()
		if len(g) != 1 || g[0].ChildText("show", "") != "away" {
			t.Errorf("%s: update %v", name, g)
		}
	}
	if got := c.Take(); len(got) != 0 {
		t.Errorf("carol got the update")
	}
	if got := a2.Take(); len(got) != 0 {
		t.Errorf("an update was echoed or brought probes: %v", got[0])
	}
}

// TestUnavailableOnSessionEnd: a session that ends while available sends
// unavailable to from/both contacts, the user's other resources and the
// directed-presence recipients.
func TestUnavailableOnSessionEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob", "carol", "dave")
	a := e.online("alice@example.com/desk", true)
	a2 := e.online("alice@example.com/phone", true)
	b := e.online("bob@example.com/r", true)
	c := e.online("carol@example.com/r", true)
	d := e.online("dave@example.com/r", true)
	e.sub(b, "subscribe", "alice@example.com")
	e.sub(a, "subscribed", "bob@example.com") // bob: from
	e.sub(a, "subscribe", "carol@example.com")
	e.sub(c, "subscribed", "alice@example.com") // carol: to
	for _, s := range []*session{a, a2, b, c, d} {
		s.Take()
	}
	e.offline(a, mustJID(t, "dave@example.com/r"))
	for name, s := range map[string]*session{"bob": b, "alice/phone": a2, "dave (directed)": d} {
		if got := presences(s.Take()); !slices.Equal(got, []string{"unavailable alice@example.com/desk"}) {
			t.Errorf("%s got %q", name, got)
		}
	}
	if got := c.Take(); len(got) != 0 {
		t.Errorf("carol (to only) got %v", got[0])
	}
}

// TestProbe: RFC 6121 §4.3 — a probe from a subscribed contact is answered
// with the last presence of each available resource; others get nothing.
func TestProbe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob", "carol")
	a := e.online("alice@example.com/desk", false)
	e.initialPresence(a, "working")
	b := e.online("bob@example.com/r", true)
	c := e.online("carol@example.com/r", true)
	e.sub(b, "subscribe", "alice@example.com")
	e.sub(a, "subscribed", "bob@example.com")
	for _, s := range []*session{a, b, c} {
		s.Take()
	}
	probe := func(from string) {
		e.r.Route(ctx, stanza.New("presence", stanza.NSClient).SetAttr("type", "probe").SetAttr("from", from).SetAttr("to", "alice@example.com"))
	}
	probe("bob@example.com/r")
	got := b.Take()
	if len(got) != 1 || got[0].From() != "alice@example.com/desk" || got[0].ChildText("status", "") != "working" {
		t.Fatalf("bob's probe answered with %v", got)
	}
	// Not subscribed: no presence leaks (RFC 6121 §4.3.2 suggests
	// unsubscribed in reply; not checked here).
	probe("carol@example.com/r")
	for _, g := range c.Take() {
		if g.Name == "presence" && (g.Type() == "" || g.Type() == "unavailable") {
			t.Errorf("unsubscribed carol's probe answered with presence: %v", g)
		}
	}
	if got := a.Take(); len(got) != 0 {
		t.Errorf("the probe reached alice: %v", got[0])
	}
	// Unavailable users answer nothing (the last unavailable is not stored).
	e.offline(a)
	b.Take()
	probe("bob@example.com/r")
	for _, g := range b.Take() {
		if g.Name == "presence" && g.Type() == "" {
			t.Errorf("probe of an offline user answered with available presence: %v", g)
		}
	}
}

// TestOfflineMessagesAtInitialPresence: queued messages are handed over at
// initial presence and deleted once delivered.
func TestOfflineMessagesAtInitialPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alice", "bob")
	e.online("alice@example.com/desk", true)
	for i := range 3 {
		e.r.Route(ctx, stanza.New("message", stanza.NSClient).SetAttr("from", "alice@example.com/desk").SetAttr("to", "bob@example.com").
			SetAttr("type", "chat").Append(stanza.New("body", stanza.NSClient).AppendText(strconv.Itoa(i))))
	}
	b := e.online("bob@example.com/r", true)
	var bodies []string
	for _, g := range b.Take() {
		if g.Name == "message" {
			bodies = append(bodies, g.ChildText("body", ""))
		}
	}
	eq(t, "offline messages", bodies, []string{"0", "1", "2"})
	waitDepth(t, e, "bob", 0)
}
