// Package routertest gives protocol-module tests a real router on a real
// embedded store, with fake client sessions that record what the router
// delivers to them. Only the sessions are fakes: routing, queueing and
// storage are the production code.
package routertest

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Quiet is a logger that discards everything.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Codec is the server's storage format for stanzas.
var Codec = xmlstream.Storage{}

// Session is a router.Session that records what it is given. It also
// offers what the roster module asks of sessions (LastPresence,
// RosterWanted).
type Session struct {
	j       jid.JID
	avail   atomic.Bool
	prio    atomic.Int32
	refuse  atomic.Bool
	autoAck atomic.Bool
	wanted  atomic.Bool
	last    atomic.Pointer[stanza.Element]

	mu       sync.Mutex
	got      []*stanza.Element
	acks     []*router.Ack
	kickedBy *stanza.StreamError
	kicks    int
	notify   chan struct{}
}

// NewSession returns an unbound session for the full JID.
func NewSession(t testing.TB, full string, available bool, prio int) *Session {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{j: j, notify: make(chan struct{}, 1)}
	s.avail.Store(available)
	s.prio.Store(int32(prio))
	return s
}

// JID implements router.Session.
func (s *Session) JID() jid.JID { return s.j }

// Available implements router.Session.
func (s *Session) Available() bool { return s.avail.Load() }

// Priority implements router.Session.
func (s *Session) Priority() int { return int(s.prio.Load()) }

// SetAvailable changes availability and priority.
func (s *Session) SetAvailable(on bool, prio int) {
	s.avail.Store(on)
	s.prio.Store(int32(prio))
}

// Refuse makes Deliver return false (a closing or full session).
func (s *Session) Refuse(on bool) { s.refuse.Store(on) }

// AutoAck makes the session acknowledge every delivery at once.
func (s *Session) AutoAck(on bool) { s.autoAck.Store(on) }

// Deliver implements router.Session.
func (s *Session) Deliver(el *stanza.Element, ack *router.Ack) bool {
	if s.refuse.Load() {
		return false
	}
	s.mu.Lock()
	s.got = append(s.got, el)
	s.acks = append(s.acks, ack)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if s.autoAck.Load() {
		ack.Done()
	}
	return true
}

// Kick implements router.Session.
func (s *Session) Kick(err *stanza.StreamError) {
	s.mu.Lock()
	s.kickedBy = err
	s.kicks++
	s.mu.Unlock()
}

// Kicked returns the last stream error the session was kicked with and
// how many times it was kicked.
func (s *Session) Kicked() (*stanza.StreamError, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kickedBy, s.kicks
}

// LastPresence is the session's last broadcast presence (roster module).
func (s *Session) LastPresence() *stanza.Element { return s.last.Load() }

// SetLastPresence records the session's broadcast presence.
func (s *Session) SetLastPresence(p *stanza.Element) { s.last.Store(p) }

// RosterWanted reports whether the session has requested the roster.
func (s *Session) RosterWanted() bool { return s.wanted.Load() }

// SetRosterWanted records a roster request (roster module).
func (s *Session) SetRosterWanted() { s.wanted.Store(true) }

// Take returns and forgets what was delivered.
func (s *Session) Take() []*stanza.Element {
	got, _ := s.TakeAcks()
	return got
}

// TakeAcks returns and forgets what was delivered, with the acks.
func (s *Session) TakeAcks() ([]*stanza.Element, []*router.Ack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	got, acks := s.got, s.acks
	s.got, s.acks = nil, nil
	return got, acks
}

// TakeFirst removes and returns the first delivered stanza match accepts,
// leaving the others, or nil.
func (s *Session) TakeFirst(match func(*stanza.Element) bool) *stanza.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.got {
		if match(g) {
			s.got = append(s.got[:i:i], s.got[i+1:]...)
			s.acks = append(s.acks[:i:i], s.acks[i+1:]...)
			return g
		}
	}
	return nil
}

// Wait returns and forgets the delivered stanzas once match accepts one of
// them, failing the test after timeout (for deliveries made by background
// goroutines).
func (s *Session) Wait(t testing.TB, timeout time.Duration, match func(*stanza.Element) bool) []*stanza.Element {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var seen []*stanza.Element
	for {
		seen = append(seen, s.Take()...)
		for _, el := range seen {
			if match(el) {
				return seen
			}
		}
		select {
		case <-s.notify:
		case <-deadline.C:
			t.Fatalf("%s: no matching stanza within %v; got %v", s.j, timeout, seen)
			return nil
		}
	}
}

// Env is a router on a real Pebble store in a temporary directory.
type Env struct {
	T      testing.TB
	Store  *pebble.Store
	Router *router.Router

	closeOnce sync.Once
}

// Options tune New.
type Options struct {
	MaxOffline  int
	MaxSessions int
	Expiry      time.Duration
	// Now is the router's clock (nil: time.Now); IDGen makes its stanza
	// ids (nil: "sid-1", "sid-2", … in routing order).
	Now   func() time.Time
	IDGen func() string
	// WrapStore, if set, wraps the store the router uses (Env.Store stays
	// the store itself).
	WrapStore func(store.Store) store.Store
}

// New opens a store and a router for domain and creates the accounts.
func New(t testing.TB, domain string, o Options, users ...string) *Env {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: Quiet})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	idGen := o.IDGen
	if idGen == nil {
		idGen = func() string { return "sid-" + strconv.FormatInt(n.Add(1), 10) }
	}
	var rs store.Store = st
	if o.WrapStore != nil {
		rs = o.WrapStore(st)
	}
	r, err := router.New(router.Config{
		Domain:             domain,
		Store:              rs,
		Codec:              Codec,
		Logger:             Quiet,
		MaxOfflineMessages: o.MaxOffline,
		MaxSessionsPerUser: o.MaxSessions,
		OfflineExpiry:      o.Expiry,
		IDGen:              idGen,
		Now:                o.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Store: st, Router: r}
	t.Cleanup(func() {
		e.CloseRouter()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	for _, u := range users {
		e.AddUser(u)
	}
	return e
}

// CloseRouter closes the router once (Router.Close is not idempotent).
func (e *Env) CloseRouter() { e.closeOnce.Do(e.Router.Close) }

// EnsureUser creates the account unless it exists.
func (e *Env) EnsureUser(name string) {
	e.T.Helper()
	if _, err := e.Store.GetAccount(context.Background(), name); err == nil {
		return
	}
	e.AddUser(name)
}

// AddUser creates an account. Its credentials are not usable for a login:
// the router only asks whether an account exists.
func (e *Env) AddUser(name string) {
	e.T.Helper()
	c := store.SCRAM{Salt: []byte("salt"), Iterations: sasl.DefaultIterations, StoredKey: []byte("k"), ServerKey: []byte("k")}
	if err := e.Store.CreateAccount(context.Background(), store.Account{Username: name, Created: time.Now(), SHA1: c, SHA256: c}); err != nil {
		e.T.Fatal(err)
	}
}

// Bind creates and binds a session.
func (e *Env) Bind(full string, available bool, prio int) *Session {
	e.T.Helper()
	s := NewSession(e.T, full, available, prio)
	if old, err := e.Router.Bind(s); err != nil || old != nil {
		e.T.Fatalf("bind %s: replaced %v, err %v", full, old, err)
	}
	return s
}

// Depth is the user's queue depth.
func (e *Env) Depth(user string) int {
	e.T.Helper()
	d, err := e.Store.Depth(context.Background(), user)
	if err != nil {
		e.T.Fatal(err)
	}
	return d
}

// WaitDepth waits for the background acknowledgement writer to bring the
// user's queue to n entries.
func (e *Env) WaitDepth(user string, n int) {
	e.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.Depth(user) != n {
		if time.Now().After(deadline) {
			e.T.Fatalf("queue depth of %s = %d, want %d", user, e.Depth(user), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Msg builds a message stanza; an empty body adds none.
func Msg(from, to, typ, body string) *stanza.Element {
	m := stanza.New("message", stanza.NSClient).SetAttr("from", from).SetAttr("to", to).SetAttr("type", typ).SetAttr("id", "m1")
	if body != "" {
		m.Append(stanza.New("body", stanza.NSClient).AppendText(body))
	}
	return m
}

// IQ builds an iq stanza with one payload.
func IQ(from, to, typ, id string, payload *stanza.Element) *stanza.Element {
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", typ).SetAttr("id", id).SetAttr("from", from)
	if to != "" {
		iq.SetAttr("to", to)
	}
	if payload != nil {
		iq.Append(payload)
	}
	return iq
}

// ErrorCondition returns the stanza error condition of el, or "".
func ErrorCondition(el *stanza.Element) string {
	if el.Type() != "error" {
		return ""
	}
	if e := stanza.ParseError(el); e != nil {
		return e.Condition
	}
	return ""
}
