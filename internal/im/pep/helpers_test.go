package pep_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/im/caps"
	"github.com/parley-im/parley/internal/im/pep"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const (
	domain      = "example.com"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsData      = "jabber:x:data"
	devicelist  = "eu.siacs.conversations.axolotl.devicelist"
	devices2    = "urn:xmpp:omemo:2:devices"
	bundles2    = "urn:xmpp:omemo:2:bundles"
)

var (
	ctx      = context.Background()
	quietLog = routertest.Quiet
)

// session is a fake client session (routertest.Session records what it is
// given) that, like a client, answers the server's disco#info with its own
// features (or, if lie is set, with those instead).
type session struct {
	*routertest.Session
	e     *env
	j     jid.JID
	info  *stanza.Element // the disco#info query it answers with
	lie   *stanza.Element // if set, answered instead of info
	asked atomic.Int32    // disco#info requests received
}

func (e *env) newSession(full string, info *stanza.Element) *session {
	rs := routertest.NewSession(e.t, full, false, 0)
	return &session{Session: rs, e: e, j: rs.JID(), info: info}
}

// Deliver implements router.Session.
func (s *session) Deliver(el *stanza.Element, ack *router.Ack) bool {
	if el.Name == "iq" && el.Type() == "get" {
		if q := el.Child("query", nsDiscoInfo); q != nil {
			s.asked.Add(1)
			ans := s.info
			if s.lie != nil {
				ans = s.lie
			}
			r := stanza.New("iq", stanza.NSClient).SetAttr("type", "result").SetAttr("id", el.ID()).
				SetAttr("from", s.j.String()).SetAttr("to", el.From())
			a := ans.Copy()
			a.SetAttr("node", q.Attr("node"))
			r.Append(a)
			s.e.r.Route(ctx, r)
			return true
		}
	}
	return s.Session.Deliver(el, ack)
}

// take returns and forgets what was delivered.
func (s *session) take() []*stanza.Element { return s.Take() }

// events returns the pubsub event messages in got as "from node kind id"
// lines (kind: item, retract, delete), with "+delay" for a delayed one.
func events(got []*stanza.Element) []string {
	var out []string
	for _, m := range got {
		if m.Name != "message" {
			continue
		}
		ev := m.Child("event", pep.NSEvent)
		if ev == nil {
			continue
		}
		if m.Type() != "headline" {
			out = append(out, "not-headline")
		}
		delay := ""
		if m.Child("delay", stanza.NSDelay) != nil {
			delay = "+delay"
		}
		for _, c := range ev.Elements() {
			if c.Name == "delete" {
				out = append(out, m.From()+" "+c.Attr("node")+" delete"+delay)
				continue
			}
			for _, it := range c.Elements() {
				out = append(out, m.From()+" "+c.Attr("node")+" "+it.Name+" "+it.Attr("id")+delay)
			}
		}
	}
	return out
}

type env struct {
	t    *testing.T
	st   *pebble.Store
	r    *router.Router
	caps *caps.Cache
	svc  *pep.Service
	warm atomic.Int32
}

type limits struct {
	itemBytes, nodes, items int
}

func newEnv(t *testing.T, l limits, users ...string) *env {
	t.Helper()
	re := routertest.New(t, domain, routertest.Options{}, users...)
	st, r := re.Store, re.Router
	cc := caps.New(caps.Config{Sender: r, Logger: quietLog})
	svc, err := pep.New(pep.Config{
		Store: st, Router: r, Codec: routertest.Codec, Caps: cc, Logger: quietLog,
		MaxItemBytes: l.itemBytes, MaxNodesPerUser: l.nodes, MaxItemsPerNode: l.items,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, r: r, caps: cc, svc: svc}
}

// discoInfo is a client's disco#info with the given features.
func discoInfo(features ...string) *stanza.Element {
	q := stanza.New("query", nsDiscoInfo).Append(
		stanza.New("identity", nsDiscoInfo).SetAttr("category", "client").SetAttr("type", "phone"))
	for _, f := range features {
		q.Append(stanza.New("feature", nsDiscoInfo).SetAttr("var", f))
	}
	return q
}

func capsOf(t *testing.T, q *stanza.Element) *stanza.Element {
	t.Helper()
	ver, err := caps.Ver(q, "sha-1")
	if err != nil {
		t.Fatal(err)
	}
	return stanza.New("c", caps.NS).SetAttr("hash", "sha-1").SetAttr("node", "https://test.example").SetAttr("ver", ver)
}

// presence is an available presence from the session with its caps.
func (s *session) presence(t *testing.T) *stanza.Element {
	return stanza.New("presence", stanza.NSClient).SetAttr("from", s.j.String()).Append(capsOf(t, s.info))
}

// warmCaps makes the ver of q known to the caps cache (as another client
// with the same features would), so that a presence announcing it is
// handled synchronously.
func (e *env) warmCaps(q *stanza.Element) {
	e.t.Helper()
	s := e.newSession("warm@example.com/w"+strconv.Itoa(int(e.warm.Add(1))), q)
	if _, err := e.r.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	if _, ok := e.caps.Record(s.j, capsOf(e.t, q), func(caps.Features) { close(done) }); !ok {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.t.Fatal("caps discovery never completed")
		}
	}
	e.caps.Forget(s.j)
	e.r.Unbind(s)
}

// bind binds a session whose client has the given features, not yet available.
func (e *env) bind(full string, features ...string) *session {
	e.t.Helper()
	s := e.newSession(full, discoInfo(features...))
	if old, err := e.r.Bind(s); err != nil || old != nil {
		e.t.Fatalf("bind %s: %v %v", full, old, err)
	}
	return s
}

// online binds a session and sends its initial presence with caps whose
// ver is already known, so everything it triggers has happened on return.
func (e *env) online(full string, features ...string) *session {
	e.t.Helper()
	s := e.bind(full, features...)
	e.warmCaps(s.info)
	e.initial(s)
	return s
}

func (e *env) initial(s *session) {
	s.SetAvailable(true, 0)
	e.svc.PresenceBroadcast(ctx, s, s.presence(e.t), true)
}

// subscribe makes follower subscribed to owner's presence: owner's roster
// item has subscription from, follower's has to.
func (e *env) subscribe(follower, owner string) {
	e.t.Helper()
	e.addSub(owner, follower+"@"+domain, store.SubFrom)
	e.addSub(follower, owner+"@"+domain, store.SubTo)
}

func (e *env) addSub(user, contact, sub string) {
	e.t.Helper()
	it, err := e.st.GetRosterItem(ctx, user, contact)
	if err == nil {
		switch {
		case it.Subscription == store.SubTo && sub == store.SubFrom, it.Subscription == store.SubFrom && sub == store.SubTo:
			sub = store.SubBoth
		}
	}
	if _, err := e.st.PutRosterItem(ctx, user, store.RosterItem{JID: contact, Subscription: sub, InRoster: true}); err != nil {
		e.t.Fatal(err)
	}
}

// iq routes an iq from s (to, if not empty) and returns the reply.
func (e *env) iq(s *session, typ, to string, payload *stanza.Element) *stanza.Element {
	e.t.Helper()
	el := stanza.New("iq", stanza.NSClient).SetAttr("from", s.j.String()).SetAttr("type", typ).SetAttr("id", "q1").Append(payload)
	if to != "" {
		el.SetAttr("to", to)
	}
	e.r.Route(ctx, el)
	if g := s.TakeFirst(func(g *stanza.Element) bool {
		return g.Name == "iq" && g.ID() == "q1" && (g.Type() == "result" || g.Type() == "error")
	}); g != nil {
		return g
	}
	e.t.Fatalf("no reply to %s iq", typ)
	return nil
}

// ok fails unless reply is a result.
func ok(t *testing.T, reply *stanza.Element) *stanza.Element {
	t.Helper()
	if reply.Type() != "result" {
		e := stanza.ParseError(reply)
		t.Fatalf("error reply: %+v", e)
	}
	return reply
}

// wantError fails unless reply is an error with the condition and, if
// given, the pubsub-specific condition.
func wantError(t *testing.T, reply *stanza.Element, cond, psCond string) {
	t.Helper()
	if reply.Type() != "error" {
		t.Fatalf("got %s, want error %s", reply.Type(), cond)
	}
	e := stanza.ParseError(reply)
	if e.Condition != cond {
		t.Fatalf("error %s, want %s", e.Condition, cond)
	}
	if psCond == "" {
		return
	}
	errEl := reply.Child("error", "")
	if errEl.Child(psCond, pep.NSErrors) == nil {
		t.Fatalf("error %s lacks pubsub condition %s: %v", cond, psCond, errEl.Elements())
	}
}

// field is a data form field.
func field(name string, values ...string) *stanza.Element {
	f := stanza.New("field", nsData).SetAttr("var", name)
	for _, v := range values {
		f.Append(stanza.New("value", nsData).AppendText(v))
	}
	return f
}

func form(formType string, fields ...*stanza.Element) *stanza.Element {
	return stanza.New("x", nsData).SetAttr("type", "submit").
		Append(field("FORM_TYPE", formType).SetAttr("type", "hidden")).Append(fields...)
}

// publishIQ builds <pubsub><publish node><item id>payload</item></publish>[options]</pubsub>.
func publishIQ(node, id string, payload *stanza.Element, options ...*stanza.Element) *stanza.Element {
	item := stanza.New("item", pep.NS).Append(payload)
	if id != "" {
		item.SetAttr("id", id)
	}
	ps := stanza.New("pubsub", pep.NS).Append(stanza.New("publish", pep.NS).SetAttr("node", node).Append(item))
	if len(options) > 0 {
		ps.Append(stanza.New("publish-options", pep.NS).Append(form(pep.NSPublishOptions, options...)))
	}
	return ps
}

func deviceList(ids ...string) *stanza.Element {
	l := stanza.New("list", "eu.siacs.conversations.axolotl")
	for _, id := range ids {
		l.Append(stanza.New("device", "eu.siacs.conversations.axolotl").SetAttr("id", id))
	}
	return l
}

func itemsIQ(node string, maxItems string, ids ...string) *stanza.Element {
	it := stanza.New("items", pep.NS).SetAttr("node", node)
	if maxItems != "" {
		it.SetAttr("max_items", maxItems)
	}
	for _, id := range ids {
		it.Append(stanza.New("item", pep.NS).SetAttr("id", id))
	}
	return stanza.New("pubsub", pep.NS).Append(it)
}

// itemIDs returns the ids of the items in an items result, with the
// payload's device ids for device lists ("id:1,2").
func itemIDs(t *testing.T, reply *stanza.Element) []string {
	t.Helper()
	ok(t, reply)
	items := reply.Child("pubsub", pep.NS).Child("items", pep.NS)
	var out []string
	for _, it := range items.Elements() {
		s := it.Attr("id")
		if l := it.Child("list", "eu.siacs.conversations.axolotl"); l != nil {
			s += ":"
			for i, d := range l.Elements() {
				if i > 0 {
					s += ","
				}
				s += d.Attr("id")
			}
		}
		out = append(out, s)
	}
	return out
}

// waitEvents waits until s has been given n event messages and returns them.
func waitEvents(t *testing.T, s *session, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var all []*stanza.Element
	for {
		all = append(all, s.take()...)
		if ev := events(all); len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s got events %v, want %d", s.j, events(all), n)
		}
		time.Sleep(time.Millisecond)
	}
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
