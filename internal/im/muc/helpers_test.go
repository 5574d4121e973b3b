package muc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const (
	domain  = "localhost"
	service = "conference.localhost"
)

var quietLog = routertest.Quiet

// fakeSession is a routertest.Session (it records what it is given; Refuse
// makes it behave like a session whose outbound buffer is full) that can
// also hold a delivery: when gate is set, Deliver tells entered and waits
// for gate to close, a way to hold a room's goroutine still in a test.
type fakeSession struct {
	*routertest.Session
	j       jid.JID
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

// Deliver implements router.Session.
func (s *fakeSession) Deliver(el *stanza.Element, ack *router.Ack) bool {
	s.mu.Lock()
	gate := s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		close(s.entered)
		<-gate
	}
	return s.Session.Deliver(el, ack)
}

// clock is a settable time source: tests move it, nothing sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	re    *routertest.Env
	t     *testing.T
	st    *pebble.Store
	r     *router.Router
	s     *Service
	clock *clock
	ids   atomic.Int64
	mod   func(*Config)
}

// newEnv starts a router on a real Pebble store in t.TempDir() and a MUC
// service on it; mod adjusts the service's Config.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, mod: mod}
	e.re = routertest.New(t, domain, routertest.Options{
		Now:   e.clock.Now,
		IDGen: func() string { return "r-" + strconv.FormatInt(e.ids.Add(1), 10) },
	})
	e.st, e.r = e.re.Store, e.re.Router
	e.start()
	// Runs before routertest's cleanup: rooms save through the store.
	t.Cleanup(func() { e.s.Close() })
	return e
}

// start builds and starts a service on the env's router and store.
func (e *env) start() {
	e.t.Helper()
	cfg := Config{
		Domain: service, ServerDomain: domain, Router: e.r, Store: e.st, Codec: xmlstream.Storage{},
		Logger: quietLog, Now: e.clock.Now,
		IDGen: func() string { return "m-" + strconv.FormatInt(e.ids.Add(1), 10) },
	}
	if e.mod != nil {
		e.mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.r.HandleDomain(service, s.Handle)
}

// restart closes the service and opens a new one on the same store, as a
// server restart does.
func (e *env) restart() {
	e.t.Helper()
	e.s.Close()
	e.start()
}

type client struct {
	e    *env
	j    jid.JID
	sess *fakeSession
}

// client binds a session for full (creating the account if needed).
func (e *env) client(full string) *client {
	e.t.Helper()
	j := jid.MustParse(full)
	e.re.EnsureUser(j.Local())
	s := &fakeSession{Session: routertest.NewSession(e.t, full, true, 0), j: j}
	if _, err := e.r.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return &client{e: e, j: j, sess: s}
}

// sync waits until the room has handled everything sent to it so far.
func (e *env) sync(room string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.s.Sync(ctx, room); err != nil {
		e.t.Fatal(err)
	}
}

// send routes el from the client as its session would and waits for the
// room to handle it.
func (c *client) send(el *stanza.Element) {
	c.e.t.Helper()
	el.SetAttr("from", c.j.String())
	c.e.r.Route(context.Background(), el)
	if to := jid.MustParse(el.To()); to.Local() != "" {
		c.e.sync(to.Local())
	}
}

// take returns and forgets what the client received.
func (c *client) take() []*stanza.Element { return c.sess.Take() }

func roomJID(room string) string      { return room + "@" + service }
func occJID(room, nick string) string { return roomJID(room) + "/" + nick }
func mucX(children ...*stanza.Element) *stanza.Element {
	return stanza.New("x", NS).Append(children...)
}

func presence(to string, children ...*stanza.Element) *stanza.Element {
	return stanza.New("presence", stanza.NSClient).SetAttr("to", to).Append(children...)
}

func groupchat(room, id, body string) *stanza.Element {
	return stanza.New("message", stanza.NSClient).SetAttr("to", roomJID(room)).SetAttr("type", "groupchat").
		SetAttr("id", id).Append(stanza.New("body", stanza.NSClient).AppendText(body))
}

func iq(typ, to, id string, payload *stanza.Element) *stanza.Element {
	return stanza.New("iq", stanza.NSClient).SetAttr("type", typ).SetAttr("to", to).SetAttr("id", id).Append(payload)
}

// join sends a MUC join and returns what the client got back.
func (c *client) join(room, nick string, x ...*stanza.Element) []*stanza.Element {
	c.e.t.Helper()
	c.send(presence(occJID(room, nick), mucX(x...)))
	return c.take()
}

// create makes an instant room owned by c (join, 201, submit empty form).
func (c *client) create(room, nick string) {
	c.e.t.Helper()
	got := c.join(room, nick)
	self := findSelf(got)
	if self == nil || !hasStatus(self, statusCreated) {
		c.e.t.Fatalf("creating %s: no self-presence with 201 in %s", room, dump(got))
	}
	c.configure(room)
}

// configure submits a configuration form with the given fields.
func (c *client) configure(room string, fields ...string) {
	c.e.t.Helper()
	x := stanza.New("x", NSData).SetAttr("type", "submit")
	for i := 0; i+1 < len(fields); i += 2 {
		x.Append(field(fields[i], "", "", fields[i+1]))
	}
	c.send(iq("set", roomJID(room), "cfg", stanza.New("query", NSOwner).Append(x)))
	got := c.take()
	if r := findIQ(got, "cfg"); r == nil || r.Type() != "result" {
		c.e.t.Fatalf("configure %s: %s", room, dump(got))
	}
}

// findSelf returns the self-presence (status 110) among els.
func findSelf(els []*stanza.Element) *stanza.Element {
	for _, el := range els {
		if el.Name == "presence" && hasStatus(el, statusSelf) {
			return el
		}
	}
	return nil
}

func findIQ(els []*stanza.Element, id string) *stanza.Element {
	for _, el := range els {
		if el.Name == "iq" && el.ID() == id {
			return el
		}
	}
	return nil
}

func filter(els []*stanza.Element, f func(*stanza.Element) bool) []*stanza.Element {
	var out []*stanza.Element
	for _, el := range els {
		if f(el) {
			out = append(out, el)
		}
	}
	return out
}

func isName(name string) func(*stanza.Element) bool {
	return func(el *stanza.Element) bool { return el.Name == name }
}

func bodies(els []*stanza.Element) []string {
	var out []string
	for _, el := range els {
		if el.Name == "message" {
			if b := el.Child("body", ""); b != nil {
				out = append(out, b.TextContent())
			}
		}
	}
	return out
}

func statuses(el *stanza.Element) []int {
	x := el.Child("x", NSUser)
	if x == nil {
		return nil
	}
	var out []int
	for _, c := range x.Children {
		if c.Name == "status" {
			n, _ := strconv.Atoi(c.Attr("code"))
			out = append(out, n)
		}
	}
	return out
}

func hasStatus(el *stanza.Element, code int) bool { return slices.Contains(statuses(el), code) }

func userItem(el *stanza.Element) *stanza.Element {
	if x := el.Child("x", NSUser); x != nil {
		return x.Child("item", NSUser)
	}
	return nil
}

func errCond(el *stanza.Element) string {
	if el == nil || el.Type() != "error" {
		return ""
	}
	if e := stanza.ParseError(el); e != nil {
		return e.Condition
	}
	return ""
}

// only returns the one element of els or fails.
func only(t *testing.T, els []*stanza.Element) *stanza.Element {
	t.Helper()
	if len(els) != 1 {
		t.Fatalf("want one stanza, got %d: %s", len(els), dump(els))
	}
	return els[0]
}

func dump(els []*stanza.Element) string {
	var b strings.Builder
	for _, el := range els {
		fmt.Fprintf(&b, "\n  %s", xmlstream.AppendElement(nil, el, stanza.NSClient))
	}
	return b.String()
}

// waitFor waits until cond holds, failing after a generous deadline: for
// effects that follow an answer asynchronously (a room retiring).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen", what)
		}
		time.Sleep(time.Millisecond)
	}
}
