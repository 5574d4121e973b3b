package blocking

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

type session = routertest.Session

type env struct {
	t  *testing.T
	st *pebble.Store
	r  *router.Router
	m  *Module
	// presence records the PresenceSender calls as "from>to:gone".
	mu       sync.Mutex
	presence []string
}

func newEnv(t *testing.T) *env {
	re := routertest.New(t, "example.com", routertest.Options{}, "alice", "bob", "carol")
	e := &env{t: t, st: re.Store, r: re.Router}
	var err error
	e.m, err = New(Config{Store: re.Store, Router: re.Router, Logger: routertest.Quiet, MaxItems: 5, Presence: func(_ context.Context, from, to jid.JID, gone bool) {
		e.mu.Lock()
		e.presence = append(e.presence, from.String()+">"+to.String()+":"+map[bool]string{true: "gone", false: "back"}[gone])
		e.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) bind(full string) *session {
	e.t.Helper()
	s := routertest.NewSession(e.t, full, true, 0)
	s.AutoAck(true)
	if _, err := e.r.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// iq sends an iq from s with no to (the user's own account) and returns
// the single reply.
func (e *env) iq(s *session, typ string, payload *stanza.Element) *stanza.Element {
	e.t.Helper()
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", typ).SetAttr("id", "x1").
		SetAttr("from", s.JID().String()).Append(payload)
	e.r.Route(e.t.Context(), iq)
	for _, el := range s.Take() {
		if el.Name == "iq" && el.ID() == "x1" {
			return el
		}
	}
	e.t.Fatalf("no reply to %s", payload.Name)
	return nil
}

func list(name string, jids ...string) *stanza.Element {
	el := stanza.New(name, NS)
	for _, j := range jids {
		el.Append(stanza.New("item", NS).SetAttr("jid", j))
	}
	return el
}

func listed(t *testing.T, el *stanza.Element, name string) []string {
	t.Helper()
	c := el.Child(name, NS)
	if c == nil {
		t.Fatalf("no <%s/> in %v", name, el)
	}
	var out []string
	for _, it := range c.Children {
		out = append(out, it.Attr("jid"))
	}
	return out
}

func errCond(el *stanza.Element) string { return routertest.ErrorCondition(el) }

func TestBlockListPushAndUnblock(t *testing.T) {
	e := newEnv(t)
	phone := e.bind("bob@example.com/phone")
	desk := e.bind("bob@example.com/desk")
	if got := listed(t, e.iq(phone, "get", stanza.New("blocklist", NS)), "blocklist"); len(got) != 0 {
		t.Fatalf("initial blocklist %q, want empty", got)
	}
	// The roster says bob and alice share presence both ways: blocking
	// hides each from the other.
	if _, err := e.st.PutRosterItem(t.Context(), "bob", store.RosterItem{JID: "alice@example.com", Subscription: store.SubBoth, InRoster: true}); err != nil {
		t.Fatal(err)
	}
	res := e.iq(desk, "set", list("block", "Alice@Example.com", "spam.example"))
	if res.Type() != "result" {
		t.Fatalf("block: %v", res)
	}
	// Only the resource that fetched the list gets the push (XEP-0191 §3.3).
	pushes := phone.Take()
	if len(pushes) != 1 || !slices.Equal(listed(t, pushes[0], "block"), []string{"alice@example.com", "spam.example"}) {
		t.Fatalf("push to phone: %v", pushes)
	}
	if got := desk.Take(); len(got) != 0 {
		t.Fatalf("desk, which never fetched the list, got %v", got)
	}
	e.mu.Lock()
	if want := []string{"bob@example.com>alice@example.com:gone", "alice@example.com>bob@example.com:gone"}; !slices.Equal(e.presence, want) {
		t.Fatalf("presence calls %q, want %q", e.presence, want)
	}
	e.presence = nil
	e.mu.Unlock()
	if got := listed(t, e.iq(desk, "get", stanza.New("blocklist", NS)), "blocklist"); !slices.Equal(got, []string{"alice@example.com", "spam.example"}) {
		t.Fatalf("blocklist %q", got)
	}
	ctx := t.Context()
	for j, want := range map[string]bool{
		"alice@example.com":      true,
		"alice@example.com/res":  true,
		"anyone@spam.example/x":  true,
		"spam.example":           true,
		"carol@example.com":      false,
		"alice@example.org":      false,
		"alice@sub.spam.example": false,
	} {
		if got := e.m.Blocks(ctx, "bob", jid.MustParse(j)); got != want {
			t.Errorf("Blocks(bob, %s) = %v, want %v", j, got, want)
		}
	}
	if e.m.Blocks(ctx, "alice", jid.MustParse("bob@example.com")) {
		t.Error("blocking is one-way in the list: alice does not block bob")
	}

	// Unblock one: the cache follows the store at once.
	if res := e.iq(desk, "set", list("unblock", "alice@example.com")); res.Type() != "result" {
		t.Fatalf("unblock: %v", res)
	}
	if e.m.Blocks(ctx, "bob", jid.MustParse("alice@example.com")) {
		t.Fatal("alice still blocked after unblock")
	}
	e.mu.Lock()
	if want := []string{"bob@example.com>alice@example.com:back", "alice@example.com>bob@example.com:back"}; !slices.Equal(e.presence, want) {
		t.Fatalf("presence calls after unblock %q, want %q", e.presence, want)
	}
	e.mu.Unlock()
	// Unblock all.
	if res := e.iq(desk, "set", stanza.New("unblock", NS)); res.Type() != "result" {
		t.Fatalf("unblock all: %v", res)
	}
	if got := listed(t, e.iq(desk, "get", stanza.New("blocklist", NS)), "blocklist"); len(got) != 0 {
		t.Fatalf("blocklist after unblock all %q", got)
	}
	pushes = phone.Take()
	if n := len(pushes); n != 2 || pushes[1].Child("unblock", NS) == nil || len(pushes[1].Child("unblock", NS).Children) != 0 {
		t.Fatalf("pushes after unblocks: %v", pushes)
	}
}

func TestBlockErrors(t *testing.T) {
	e := newEnv(t)
	s := e.bind("bob@example.com/phone")
	for _, tc := range []struct {
		name    string
		typ     string
		payload *stanza.Element
		want    string
	}{
		{"empty block", "set", stanza.New("block", NS), "bad-request"},
		{"malformed jid", "set", list("block", "a@b@c"), "jid-malformed"},
		{"too many", "set", list("block", "a@x", "b@x", "c@x", "d@x", "e@x", "f@x"), "not-acceptable"},
		{"get without blocklist", "get", stanza.New("block", NS), "bad-request"},
	} {
		if got := errCond(e.iq(s, tc.typ, tc.payload)); got != tc.want {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.want)
		}
	}
	// The list fills to MaxItems across requests, then refuses.
	if res := e.iq(s, "set", list("block", "a@x", "b@x", "c@x")); res.Type() != "result" {
		t.Fatal(res)
	}
	if got := errCond(e.iq(s, "set", list("block", "d@x", "e@x", "f@x"))); got != "not-acceptable" {
		t.Fatalf("overfilling: %q, want not-acceptable", got)
	}
	// Another user's list is not ours to read.
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("id", "x1").
		SetAttr("from", "bob@example.com/phone").SetAttr("to", "alice@example.com").Append(stanza.New("blocklist", NS))
	e.r.Route(t.Context(), iq)
	got := s.Take()
	if len(got) != 1 || errCond(got[0]) != "forbidden" {
		t.Fatalf("reading alice's list: %v", got)
	}
}

// TestEnforcedThroughRouter: the module is the router's blocker.
func TestEnforcedThroughRouter(t *testing.T) {
	e := newEnv(t)
	bob := e.bind("bob@example.com/phone")
	alice := e.bind("alice@example.com/desk")
	e.iq(bob, "set", list("block", "alice@example.com"))
	bob.Take()
	m := stanza.New("message", stanza.NSClient).SetAttr("type", "chat").
		SetAttr("from", "alice@example.com/desk").SetAttr("to", "bob@example.com").
		Append(stanza.New("body", stanza.NSClient).AppendText("hi"))
	e.r.Route(t.Context(), m)
	if got := bob.Take(); len(got) != 0 {
		t.Fatalf("bob got %v from a blocked contact", got)
	}
	if got := alice.Take(); len(got) != 1 || errCond(got[0]) != "service-unavailable" {
		t.Fatalf("alice got %v, want service-unavailable", got)
	}
}
