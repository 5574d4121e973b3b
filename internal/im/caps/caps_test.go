package caps_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/im/caps"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const (
	domain      = "example.com"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsData      = "jabber:x:data"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// session is a fake client session: every iq it is given goes to its
// channel, where the test (playing the client) answers it.
type session struct {
	j   jid.JID
	iqs chan *stanza.Element
}

func (s *session) JID() jid.JID             { return s.j }
func (s *session) Available() bool          { return true }
func (s *session) Priority() int            { return 0 }
func (s *session) Kick(*stanza.StreamError) {}
func (s *session) Deliver(el *stanza.Element, _ *router.Ack) bool {
	if el.Name == "iq" {
		s.iqs <- el
	}
	return true
}

type env struct {
	t *testing.T
	r *router.Router
	c *caps.Cache
}

func newEnv(t *testing.T, cfg caps.Config) *env {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{Domain: domain, Store: st, Codec: xmlstream.Storage{}, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	cfg.Sender = r
	cfg.Logger = quietLog
	return &env{t: t, r: r, c: caps.New(cfg)}
}

func (e *env) bind(full string) *session {
	e.t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		e.t.Fatal(err)
	}
	s := &session{j: j, iqs: make(chan *stanza.Element, 16)}
	if _, err := e.r.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// next returns the next iq the session was sent.
func (s *session) next(t *testing.T) *stanza.Element {
	t.Helper()
	select {
	case iq := <-s.iqs:
		return iq
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was never asked", s.j)
		return nil
	}
}

// none fails if the session has been sent an iq.
func (s *session) none(t *testing.T) {
	t.Helper()
	select {
	case iq := <-s.iqs:
		t.Fatalf("%s was asked %v", s.j, iq.Children[0].Attrs)
	default:
	}
}

// answer routes the client's disco#info result (or an error) to iq.
func (e *env) answer(s *session, iq *stanza.Element, query *stanza.Element) {
	r := stanza.New("iq", stanza.NSClient).SetAttr("id", iq.ID()).SetAttr("from", s.j.String()).SetAttr("to", iq.From())
	if query == nil {
		r.SetAttr("type", "error").Append(stanza.ErrServiceUnavailable.Element(stanza.NSClient))
	} else {
		q := query.Copy()
		q.SetAttr("node", iq.Child("query", nsDiscoInfo).Attr("node"))
		r.SetAttr("type", "result").Append(q)
	}
	e.r.Route(context.Background(), r)
}

// info builds a disco#info query with a client identity and features.
func info(features ...string) *stanza.Element {
	q := stanza.New("query", nsDiscoInfo)
	q.Append(stanza.New("identity", nsDiscoInfo).SetAttr("category", "client").SetAttr("type", "phone").SetAttr("name", "Test"))
	for _, f := range features {
		q.Append(stanza.New("feature", nsDiscoInfo).SetAttr("var", f))
	}
	return q
}

func capsEl(t *testing.T, q *stanza.Element, hash string) *stanza.Element {
	t.Helper()
	ver, err := caps.Ver(q, hash)
	if err != nil {
		t.Fatal(err)
	}
	return stanza.New("c", caps.NS).SetAttr("hash", hash).SetAttr("node", "https://client.example").SetAttr("ver", ver)
}

// got collects the features callbacks report.
type got struct {
	ch chan caps.Features
}

func newGot() *got { return &got{ch: make(chan caps.Features, 4)} }

func (g *got) then(f caps.Features) { g.ch <- f }

func (g *got) wait(t *testing.T) caps.Features {
	t.Helper()
	select {
	case f := <-g.ch:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("features never reported")
		return caps.Features{}
	}
}

func (g *got) none(t *testing.T) {
	t.Helper()
	select {
	case f := <-g.ch:
		t.Fatalf("features reported: %v", f.List())
	default:
	}
}

func TestVerXEP0115Examples(t *testing.T) {
	// XEP-0115 §5.2, the simple example.
	simple := stanza.New("query", nsDiscoInfo).Append(
		stanza.New("identity", nsDiscoInfo).SetAttr("category", "client").SetAttr("type", "pc").SetAttr("name", "Exodus 0.9.1"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/caps"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/disco#info"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/disco#items"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/muc"),
	)
	if v, err := caps.Ver(simple, "sha-1"); err != nil || v != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("simple example: %q, %v", v, err)
	}
	// §5.3, the complex example: languages, an extended form, unsorted input.
	field := func(name string, values ...string) *stanza.Element {
		f := stanza.New("field", nsData).SetAttr("var", name)
		for _, v := range values {
			f.Append(stanza.New("value", nsData).AppendText(v))
		}
		return f
	}
	complexQ := stanza.New("query", nsDiscoInfo).Append(
		stanza.New("identity", nsDiscoInfo).SetAttr("xml:lang", "en").SetAttr("category", "client").SetAttr("name", "Psi 0.11").SetAttr("type", "pc"),
		stanza.New("identity", nsDiscoInfo).SetAttr("xml:lang", "el").SetAttr("category", "client").SetAttr("name", "Ψ 0.11").SetAttr("type", "pc"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/disco#items"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/caps"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/disco#info"),
		stanza.New("feature", nsDiscoInfo).SetAttr("var", "http://jabber.org/protocol/muc"),
		stanza.New("x", nsData).SetAttr("type", "result").Append(
			field("FORM_TYPE", "urn:xmpp:dataforms:softwareinfo").SetAttr("type", "hidden"),
			field("ip_version", "ipv6", "ipv4"),
			field("os", "Mac"),
			field("os_version", "10.5.1"),
			field("software", "Psi"),
			field("software_version", "0.11"),
		),
		// A form without FORM_TYPE takes no part (§5.4).
		stanza.New("x", nsData).SetAttr("type", "result").Append(field("junk", "x")),
	)
	if v, err := caps.Ver(complexQ, "sha-1"); err != nil || v != "q07IKJEyjvHSyhy//CH0CxmKi8w=" {
		t.Fatalf("complex example: %q, %v", v, err)
	}
}

func TestVerRejects(t *testing.T) {
	dup := info("urn:a", "urn:a")
	if _, err := caps.Ver(dup, "sha-1"); !errors.Is(err, caps.ErrIllFormed) {
		t.Fatalf("duplicate feature: %v", err)
	}
	if _, err := caps.Ver(info("urn:a"), "md5"); !errors.Is(err, caps.ErrUnsupportedHash) {
		t.Fatalf("md5: %v", err)
	}
	many := info()
	for i := range caps.MaxFeatures + 1 {
		many.Append(stanza.New("feature", nsDiscoInfo).SetAttr("var", "urn:f:"+strconv.Itoa(i)))
	}
	if _, err := caps.Ver(many, "sha-1"); !errors.Is(err, caps.ErrIllFormed) {
		t.Fatalf("too many features: %v", err)
	}
	if v1, err := caps.Ver(info("urn:a"), "sha-256"); err != nil || v1 == "" {
		t.Fatalf("sha-256: %q %v", v1, err)
	}
}

// TestDiscoverAndShare: the first resource announcing an unknown ver is
// asked; its verified answer serves the next resource without a query.
func TestDiscoverAndShare(t *testing.T) {
	e := newEnv(t, caps.Config{})
	a, b := e.bind("ann@example.com/a"), e.bind("bob@example.com/b")
	q := info("urn:xmpp:omemo:2:devices+notify", "http://jabber.org/protocol/caps")
	c := capsEl(t, q, "sha-1")
	g := newGot()
	if _, ok := e.c.Record(a.j, c, g.then); ok {
		t.Fatal("unknown ver reported known")
	}
	iq := a.next(t)
	if iq.Type() != "get" || iq.From() != domain || iq.Child("query", nsDiscoInfo).Attr("node") != "https://client.example#"+c.Attr("ver") {
		t.Fatalf("disco#info request: %v %v", iq.Attrs, iq.Children[0].Attrs)
	}
	e.answer(a, iq, q)
	f := g.wait(t)
	if !f.Has("urn:xmpp:omemo:2:devices+notify") || f.Len() != 2 {
		t.Fatalf("features %v", f.List())
	}
	if !e.c.HasFeature(a.j, "urn:xmpp:omemo:2:devices+notify") || e.c.HasFeature(a.j, "urn:other") {
		t.Fatal("HasFeature disagrees")
	}
	f, ok := e.c.Record(b.j, c, nil)
	if !ok || !f.Has("urn:xmpp:omemo:2:devices+notify") {
		t.Fatalf("verified ver not shared: %v %v", ok, f.List())
	}
	b.none(t)
	// Announcing the same again is free and known.
	if _, ok := e.c.Record(a.j, c, nil); !ok {
		t.Fatal("re-announcement unknown")
	}
	a.none(t)
	e.c.Forget(a.j)
	if _, ok := e.c.Features(a.j); ok {
		t.Fatal("features after Forget")
	}
	if !e.c.HasFeature(b.j, "urn:xmpp:omemo:2:devices+notify") {
		t.Fatal("Forget of one resource dropped another's")
	}
	if res, vers := e.c.Len(); res != 1 || vers != 1 {
		t.Fatalf("Len = %d, %d", res, vers)
	}
}

// TestWrongHashNotShared: an answer that does not hash to the announced
// ver is believed for the resource that gave it and never for another.
func TestWrongHashNotShared(t *testing.T) {
	e := newEnv(t, caps.Config{})
	eve, bob, cat := e.bind("eve@example.com/x"), e.bind("bob@example.com/b"), e.bind("cat@example.com/c")
	honest := info("urn:xmpp:omemo:2:devices+notify")
	c := capsEl(t, honest, "sha-1")
	lie := info("urn:evil+notify")

	g := newGot()
	e.c.Record(eve.j, c, g.then)
	e.answer(eve, eve.next(t), lie)
	if f := g.wait(t); !f.Has("urn:evil+notify") {
		t.Fatalf("eve's own answer: %v", f.List())
	}
	// Bob announces the same ver: not served from eve's answer, asked himself.
	gb := newGot()
	if _, ok := e.c.Record(bob.j, c, gb.then); ok {
		t.Fatal("unverified answer shared")
	}
	e.answer(bob, bob.next(t), honest)
	if f := gb.wait(t); !f.Has("urn:xmpp:omemo:2:devices+notify") || f.Has("urn:evil+notify") {
		t.Fatalf("bob's features: %v", f.List())
	}
	// Now verified: cat gets bob's answer at once.
	f, ok := e.c.Record(cat.j, c, nil)
	if !ok || f.Has("urn:evil+notify") || !f.Has("urn:xmpp:omemo:2:devices+notify") {
		t.Fatalf("cat: %v %v", ok, f.List())
	}
	cat.none(t)
	if e.c.HasFeature(bob.j, "urn:evil+notify") || !e.c.HasFeature(eve.j, "urn:evil+notify") {
		t.Fatal("per-resource answers mixed up")
	}
}

// TestFailedAnswerAsksNext: resources waiting on one ver are asked in turn
// when the first fails; the one that answered with an error stays unknown.
func TestFailedAnswerAsksNext(t *testing.T) {
	e := newEnv(t, caps.Config{})
	a, b := e.bind("ann@example.com/a"), e.bind("bob@example.com/b")
	q := info("urn:n+notify")
	c := capsEl(t, q, "sha-1")
	ga, gb := newGot(), newGot()
	e.c.Record(a.j, c, ga.then)
	iq := a.next(t)
	// bob joins the query in flight and is not asked yet.
	e.c.Record(b.j, c, gb.then)
	b.none(t)
	e.answer(a, iq, nil) // an error
	e.answer(b, b.next(t), q)
	if f := gb.wait(t); !f.Has("urn:n+notify") {
		t.Fatalf("bob: %v", f.List())
	}
	// The ver is verified now, and ann, still announcing it, gets it too.
	if f := ga.wait(t); !f.Has("urn:n+notify") {
		t.Fatalf("ann: %v", f.List())
	}
	a.none(t)
}

// TestUnverifiableHash: legacy caps (no hash) and unknown hashes are
// answered per resource, never shared.
func TestUnverifiableHash(t *testing.T) {
	e := newEnv(t, caps.Config{})
	a, b := e.bind("ann@example.com/a"), e.bind("bob@example.com/b")
	for _, hash := range []string{"", "md5"} {
		c := stanza.New("c", caps.NS).SetAttr("node", "n").SetAttr("ver", "v1")
		if hash != "" {
			c.SetAttr("hash", hash)
		}
		ga, gb := newGot(), newGot()
		e.c.Record(a.j, c, ga.then)
		e.c.Record(b.j, c, gb.then)
		e.answer(a, a.next(t), info("urn:a+notify"))
		e.answer(b, b.next(t), info("urn:b+notify"))
		if f := ga.wait(t); !f.Has("urn:a+notify") || f.Has("urn:b+notify") {
			t.Fatalf("hash %q: ann %v", hash, f.List())
		}
		if f := gb.wait(t); !f.Has("urn:b+notify") || f.Has("urn:a+notify") {
			t.Fatalf("hash %q: bob %v", hash, f.List())
		}
		if _, vers := e.c.Len(); vers != 0 {
			t.Fatalf("hash %q: unverifiable ver cached", hash)
		}
	}
}

// TestStaleAnswer: an answer for caps the resource no longer announces
// does not become its features.
func TestStaleAnswer(t *testing.T) {
	e := newEnv(t, caps.Config{})
	a := e.bind("ann@example.com/a")
	q1, q2 := info("urn:one+notify"), info("urn:two+notify")
	g := newGot()
	e.c.Record(a.j, capsEl(t, q1, "sha-1"), g.then)
	iq1 := a.next(t)
	g2 := newGot()
	// A new announcement while the first query is in flight waits for it:
	// one query per resource at a time.
	e.c.Record(a.j, capsEl(t, q2, "sha-1"), g2.then)
	a.none(t)
	e.answer(a, iq1, q1)
	e.answer(a, a.next(t), q2)
	if f := g2.wait(t); !f.Has("urn:two+notify") {
		t.Fatalf("features %v", f.List())
	}
	g.none(t)
	if e.c.HasFeature(a.j, "urn:one+notify") {
		t.Fatal("stale answer used")
	}
	// The first ver verified anyway and is cached for others.
	if _, vers := e.c.Len(); vers != 2 {
		t.Fatalf("vers cached: %d", vers)
	}
}

// TestBounds: queries in flight and cached vers are bounded.
func TestBounds(t *testing.T) {
	e := newEnv(t, caps.Config{MaxQueries: 1, MaxVers: 1})
	a, b := e.bind("ann@example.com/a"), e.bind("bob@example.com/b")
	qa, qb := info("urn:a"), info("urn:b")
	ga, gb := newGot(), newGot()
	e.c.Record(a.j, capsEl(t, qa, "sha-1"), ga.then)
	iq := a.next(t)
	e.c.Record(b.j, capsEl(t, qb, "sha-1"), gb.then)
	b.none(t) // over MaxQueries: not asked
	e.answer(a, iq, qa)
	ga.wait(t)
	gb.none(t)
	b.none(t)
	// Announcing again once there is room asks.
	e.c.Forget(b.j)
	e.c.Record(b.j, capsEl(t, qb, "sha-1"), gb.then)
	e.answer(b, b.next(t), qb)
	gb.wait(t)
	if _, vers := e.c.Len(); vers != 1 {
		t.Fatalf("vers cached past MaxVers: %d", vers)
	}
	// ann keeps her features although her ver was evicted.
	if !e.c.HasFeature(a.j, "urn:a") {
		t.Fatal("eviction dropped a resource's features")
	}
	// Invalid caps forget the resource.
	if _, ok := e.c.Record(a.j, stanza.New("c", caps.NS).SetAttr("node", "n"), nil); ok {
		t.Fatal("caps without ver known")
	}
	if _, ok := e.c.Features(a.j); ok {
		t.Fatal("invalid caps kept old features")
	}
}

// TestConcurrent hammers Record, Features and Forget from many goroutines
// (run with -race).
func TestConcurrent(t *testing.T) {
	e := newEnv(t, caps.Config{})
	q := info("urn:x+notify")
	c := capsEl(t, q, "sha-1")
	var sessions []*session
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		sessions = append(sessions, e.bind(u+"@example.com/r"))
	}
	// Every session answers whatever it is asked.
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, s := range sessions {
		wg.Go(func() {
			for {
				select {
				case iq := <-s.iqs:
					e.answer(s, iq, q)
				case <-done:
					return
				}
			}
		})
	}
	var users sync.WaitGroup
	for _, s := range sessions {
		users.Go(func() {
			for range 50 {
				e.c.Record(s.j, c, nil)
				e.c.HasFeature(s.j, "urn:x+notify")
				e.c.Forget(s.j)
			}
		})
	}
	users.Wait()
	g := newGot()
	if _, ok := e.c.Record(sessions[0].j, c, g.then); !ok {
		g.wait(t)
	}
	close(done)
	wg.Wait()
	if !e.c.HasFeature(sessions[0].j, "urn:x+notify") {
		t.Fatal("features unknown after the storm")
	}
}

// TestClose: a query in flight ends at Close without an answer, and no new
// query starts.
func TestClose(t *testing.T) {
	e := newEnv(t, caps.Config{})
	a, b := e.bind("ann@example.com/a"), e.bind("bob@example.com/b")
	g := newGot()
	e.c.Record(a.j, capsEl(t, info("urn:a"), "sha-1"), g.then)
	a.next(t) // asked, never answered
	e.c.Close()
	waitFor(t, func() bool { return e.r.PendingIQs() == 0 })
	g.none(t)
	e.c.Record(b.j, capsEl(t, info("urn:b"), "sha-1"), nil)
	b.none(t)
}

// waitFor waits until cond holds (work done on another goroutine).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}
