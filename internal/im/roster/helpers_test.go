package roster_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/im/roster"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const domain = "example.com"

var (
	ctx      = context.Background()
	quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// storeCodec is the server's storage format for queued stanzas.
var storeCodec = xmlstream.Storage{}

// session is a fake bound client session with what the roster module
// needs beyond router.Session.
type session struct {
	j       jid.JID
	avail   atomic.Bool
	wanted  atomic.Bool
	last    atomic.Pointer[stanza.Element]
	autoAck bool
	mu      sync.Mutex
	got     []*stanza.Element
}

func (s *session) JID() jid.JID                  { return s.j }
func (s *session) Available() bool               { return s.avail.Load() }
func (s *session) Priority() int                 { return 0 }
func (s *session) Kick(*stanza.StreamError)      {}
func (s *session) LastPresence() *stanza.Element { return s.last.Load() }
func (s *session) RosterWanted() bool            { return s.wanted.Load() }
func (s *session) SetRosterWanted()              { s.wanted.Store(true) }
func (s *session) Deliver(el *stanza.Element, ack *router.Ack) bool {
	s.mu.Lock()
	s.got = append(s.got, el)
	s.mu.Unlock()
	if s.autoAck {
		ack.Done()
	}
	return true
}

// take returns and forgets what was delivered.
func (s *session) take() []*stanza.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

type env struct {
	t  *testing.T
	st *pebble.Store
	r  *router.Router
	m  *roster.Module
}

func newEnv(t *testing.T, users ...string) *env {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{Domain: domain, Store: st, Codec: storeCodec, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	e := &env{t: t, st: st, r: r, m: roster.New(st, r, quietLog)}
	for _, u := range users {
		c := store.SCRAM{Salt: []byte("salt"), Iterations: sasl.DefaultIterations, StoredKey: []byte("k"), ServerKey: []byte("k")}
		if err := st.CreateAccount(ctx, store.Account{Username: u, Created: time.Now(), SHA1: c, SHA256: c}); err != nil {
			t.Fatal(err)
		}
	}
	return e
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
	s := &session{j: mustJID(e.t, full), autoAck: true}
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
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", s.j.String())
	if status != "" {
		p.Append(stanza.New("status", stanza.NSClient).AppendText(status))
	}
	s.avail.Store(true)
	s.last.Store(p)
	e.m.Broadcast(ctx, s, p, true)
}

// offline ends s as the c2s session does when its connection drops.
func (e *env) offline(s *session, directed ...jid.JID) {
	e.r.Unbind(s)
	if s.avail.Swap(false) {
		e.m.Ended(ctx, s, directed)
	}
}

// sub sends an outbound subscription presence from user's session.
func (e *env) sub(from *session, typ, to string) {
	p := stanza.New("presence", stanza.NSClient).SetAttr("from", from.j.String()).SetAttr("to", to).SetAttr("type", typ)
	e.m.Subscription(ctx, from.j, p)
}

// iq routes an iq from s to its own account and returns the reply.
func (e *env) iq(s *session, typ string, query *stanza.Element) *stanza.Element {
	e.t.Helper()
	el := stanza.New("iq", stanza.NSClient).SetAttr("from", s.j.String()).SetAttr("type", typ).SetAttr("id", "r1").Append(query)
	e.r.Route(ctx, el)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.got {
		if g.Name == "iq" && g.ID() == "r1" && (g.Type() == "result" || g.Type() == "error") {
			s.got = append(s.got[:i:i], s.got[i+1:]...)
			return g
		}
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
