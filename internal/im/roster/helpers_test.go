package roster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/im/roster"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const domain = "example.com"

var (
	ctx      = context.Background()
	quietLog = routertest.Quiet
)

// session is a fake bound client session (LastPresence and RosterWanted
// are what the roster module needs beyond router.Session).
type session = routertest.Session

type env struct {
	t  *testing.T
	st *pebble.Store
	r  *router.Router
	m  *roster.Module
}

func newEnv(t *testing.T, users ...string) *env {
	t.Helper()
	re := routertest.New(t, domain, routertest.Options{}, users...)
	return &env{t: t, st: re.Store, r: re.Router, m: roster.New(re.Store, re.Router, quietLog)}
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// online binds a session; with available it has sent initial presence
// (through Broadcast, as the c2s session does).
func (e *env) online(full string, available bool) *session {
	e.t.Helper()
	s := routertest.NewSession(e.t, full, false, 0)
	s.AutoAck(true)
	if _, err := e.r.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	if available {
		e.initialPresence(s, "")
	}
	return s
}

// initialPresence sends initial presence for s with an optional status.
func (e *env) initialPresence(s *session, status string) {
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", s.JID().String())
	if status != "" {
		p.Append(stanza.New("status", stanza.NSClient).AppendText(status))
	}
	s.SetAvailable(true, 0)
	s.SetLastPresence(p)
	e.m.Broadcast(ctx, s, p, true)
}

// offline ends s as the c2s session does when its connection drops.
func (e *env) offline(s *session, directed ...jid.JID) {
	e.r.Unbind(s)
	if s.Available() {
		s.SetAvailable(false, 0)
		e.m.Ended(ctx, s, directed)
	}
}

// sub sends an outbound subscription presence from user's session.
func (e *env) sub(from *session, typ, to string) {
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", from.JID().String()).SetAttr("to", to).SetAttr("type", typ)
	e.m.Subscription(ctx, from.JID(), p)
}

// iq routes an iq from s to its own account and returns the reply.
func (e *env) iq(s *session, typ string, query *stanza.Element) *stanza.Element {
	e.t.Helper()
	el := stanza.New("iq", stanza.NSClient).SetAttr("from", s.JID().String()).SetAttr("type", typ).SetAttr("id", "r1").Append(query)
	e.r.Route(ctx, el)
	if g := s.TakeFirst(func(g *stanza.Element) bool {
		return g.Name == "iq" && g.ID() == "r1" && (g.Type() == "result" || g.Type() == "error")
	}); g != nil {
		return g
	}
	e.t.Fatalf("no reply to roster %s", typ)
	return nil
}

// item reads user's roster item for contact; ok is false if absent.
func (e *env) item(user, contact string) (store.RosterItem, bool) {
	e.t.Helper()
	it, err := e.st.GetRosterItem(ctx, user, contact)
	if errors.Is(err, store.ErrNotFound) {
		return store.RosterItem{}, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return it, true
}

// state is a compact view of an item: subscription, +ask, +pending, +approved, +in.
func (e *env) state(user, contact string) string {
	it, ok := e.item(user, contact)
	if !ok {
		return "absent"
	}
	s := it.Subscription
	if it.AskOut {
		s += "+ask"
	}
	if it.PendingIn {
		s += "+pending"
	}
	if it.Approved {
		s += "+approved"
	}
	if !it.InRoster {
		s += "+hidden"
	}
	return s
}

// presences returns "type from" of the presence stanzas in got ("" type is "available").
func presences(got []*stanza.Element) []string {
	var out []string
	for _, g := range got {
		if g.Name != "presence" {
			continue
		}
		typ := g.Type()
		if typ == "" {
			typ = "available"
		}
		out = append(out, typ+" "+g.From())
	}
	return out
}

// pushes returns the roster pushes in got as "jid subscription[+ask]".
func pushes(got []*stanza.Element) []string {
	var out []string
	for _, g := range got {
		if g.Name != "iq" || g.Type() != "set" {
			continue
		}
		q := g.Child("query", stanza.NSRoster)
		if q == nil {
			continue
		}
		for _, it := range q.Elements() {
			s := it.Attr("jid") + " " + it.Attr("subscription")
			if it.Attr("ask") != "" {
				s += "+ask"
			}
			out = append(out, s)
		}
	}
	return out
}

func waitDepth(t *testing.T, e *env, user string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := e.st.Depth(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if d == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("depth of %s = %d, want %d", user, d, n)
		}
		time.Sleep(time.Millisecond)
	}
}
