package router_test

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

const domain = "example.com"

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// storeCodec is the server's storage format for queued stanzas.
var storeCodec = xmlstream.Storage{}

// fakeSession is a router.Session that records what it is given.
type fakeSession struct {
	j        jid.JID
	avail    atomic.Bool
	prio     atomic.Int32
	refuse   atomic.Bool // Deliver returns false
	autoAck  bool        // call ack.Done on delivery
	mu       sync.Mutex
	got      []*stanza.Element
	acks     []*router.Ack
	kickedBy *stanza.StreamError
	kicks    int
}

func newSession(t *testing.T, full string, available bool, prio int) *fakeSession {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSession{j: j}
	s.avail.Store(available)
	s.prio.Store(int32(prio))
	return s
}

func (s *fakeSession) JID() jid.JID    { return s.j }
func (s *fakeSession) Available() bool { return s.avail.Load() }
func (s *fakeSession) Priority() int   { return int(s.prio.Load()) }

func (s *fakeSession) Deliver(el *stanza.Element, ack *router.Ack) bool {
	if s.refuse.Load() {
		return false
	}
	s.mu.Lock()
	s.got = append(s.got, el)
	s.acks = append(s.acks, ack)
	s.mu.Unlock()
	if s.autoAck {
		ack.Done()
	}
	return true
}

func (s *fakeSession) Kick(err *stanza.StreamError) {
	s.mu.Lock()
	s.kickedBy = err
	s.kicks++
	s.mu.Unlock()
}

// received returns and forgets what was delivered.
func (s *fakeSession) received() ([]*stanza.Element, []*router.Ack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	got, acks := s.got, s.acks
	s.got, s.acks = nil, nil
	return got, acks
}

type env struct {
	t         *testing.T
	st        *pebble.Store
	r         *router.Router
	closeOnce sync.Once
}

// closeRouter closes the router once (Router.Close is not idempotent).
func (e *env) closeRouter() { e.closeOnce.Do(e.r.Close) }

type opts struct {
	maxOffline  int
	maxSessions int
	expiry      time.Duration
}

func newEnv(t *testing.T, o opts, users ...string) *env {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	r, err := router.New(router.Config{
		Domain:             domain,
		Store:              st,
		Codec:              storeCodec,
		Logger:             quietLog,
		MaxOfflineMessages: o.maxOffline,
		MaxSessionsPerUser: o.maxSessions,
		OfflineExpiry:      o.expiry,
		IDGen:              func() string { return "sid-" + strconv.FormatInt(n.Add(1), 10) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, r: r}
	t.Cleanup(func() {
		e.closeRouter()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	for _, u := range users {
		e.addUser(u)
	}
	return e
}

// Accounts need no usable credentials here: the router only asks whether
// they exist.
func (e *env) addUser(name string) {
	e.t.Helper()
	c := store.SCRAM{Salt: []byte("salt"), Iterations: sasl.DefaultIterations, StoredKey: []byte("k"), ServerKey: []byte("k")}
	if err := e.st.CreateAccount(context.Background(), store.Account{Username: name, Created: time.Now(), SHA1: c, SHA256: c}); err != nil {
		e.t.Fatal(err)
	}
}

// bind creates and binds a fake session.
func (e *env) bind(full string, available bool, prio int) *fakeSession {
	e.t.Helper()
	s := newSession(e.t, full, available, prio)
	if old, err := e.r.Bind(s); err != nil || old != nil {
		e.t.Fatalf("bind %s: replaced %v, err %v", full, old, err)
	}
	return s
}

func (e *env) depth(user string) int {
	e.t.Helper()
	d, err := e.st.Depth(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// waitDepth waits for the background acknowledgement writer.
func (e *env) waitDepth(user string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.depth(user) != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("queue depth of %s = %d, want %d", user, e.depth(user), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func msg(from, to, typ, body string) *stanza.Element {
	m := stanza.New("message", stanza.NSClient).SetAttr("from", from).SetAttr("to", to).SetAttr("type", typ).SetAttr("id", "m1")
	if body != "" {
		m.Append(stanza.New("body", stanza.NSClient).AppendText(body))
	}
	return m
}

// errorCondition returns the stanza error condition of el, or "".
func errorCondition(el *stanza.Element) string {
	if el.Type() != "error" {
		return ""
	}
	if e := stanza.ParseError(el); e != nil {
		return e.Condition
	}
	return ""
}
