package mam_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/im/mam"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const (
	domain    = "example.com"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
	nsData    = "jabber:x:data"
)

// t0 is the fake clock's start; each archived message takes the next second.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// clock is a fake time source: every call is one second later.
type clock struct {
	mu sync.Mutex
	n  int
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := t0.Add(time.Duration(c.n) * time.Second)
	c.n++
	return t
}

type env struct {
	t     *testing.T
	re    *routertest.Env
	m     *mam.Module
	clock *clock
}

// newEnv is the module on a real router and Pebble store, with archiving
// wired into the router as the server does.
func newEnv(t *testing.T, cfg mam.Config, users ...string) *env {
	t.Helper()
	return newEnvWith(t, cfg, routertest.Options{}, users...)
}

// newEnvWith is newEnv with router options (stanza ids, clock).
func newEnvWith(t *testing.T, cfg mam.Config, o routertest.Options, users ...string) *env {
	t.Helper()
	re := routertest.New(t, domain, o, users...)
	c := &clock{}
	cfg.Archive, cfg.Roster, cfg.Router, cfg.Codec, cfg.Logger = re.Store, re.Store, re.Router, routertest.Codec, routertest.Quiet
	if cfg.Now == nil {
		cfg.Now = c.now
	}
	if cfg.Retention == 0 {
		cfg.Retention = 24 * time.Hour
	}
	m := mam.New(cfg)
	re.Router.SetArchiver(m)
	return &env{t: t, re: re, m: m, clock: c}
}

func (e *env) online(full string) *routertest.Session {
	e.t.Helper()
	s := e.re.Bind(full, true, 0)
	s.AutoAck(true)
	return s
}

// send routes a chat message with a body.
func (e *env) send(from, to, body string) {
	e.re.Router.Route(e.t.Context(), routertest.Msg(from, to, "chat", body))
}

// result is one archive result message as a client sees it.
type result struct {
	from, to, queryID, id, stamp, body, msgFrom string
}

// reply is everything a query produced: results, then the iq.
type reply struct {
	results []result
	iq      *stanza.Element
}

func (r reply) bodies() []string {
	out := make([]string, len(r.results))
	for i, x := range r.results {
		out[i] = x.body
	}
	return out
}

func (r reply) ids() []string {
	out := make([]string, len(r.results))
	for i, x := range r.results {
		out[i] = x.id
	}
	return out
}

// fin returns complete, first, first index ("" if absent), last and count
// ("" if absent) of the iq result.
func (r reply) fin(t *testing.T) (complete bool, first, index, last, count string) {
	t.Helper()
	if r.iq.Type() != "result" {
		t.Fatalf("iq %s: %v", r.iq.Type(), routertest.ErrorCondition(r.iq))
	}
	f := r.iq.Child("fin", mam.NS)
	if f == nil {
		t.Fatalf("iq result without fin")
	}
	set := f.Child("set", nsRSM)
	if set == nil {
		t.Fatalf("fin without RSM set")
	}
	if fe := set.Child("first", nsRSM); fe != nil {
		first, index = fe.TextContent(), fe.Attr("index")
	}
	return f.Attr("complete") == "true", first, index, set.ChildText("last", nsRSM), set.ChildText("count", nsRSM)
}

// iq routes an iq from s (to its own account when to is "") and returns
// what s received for it, checking that result messages come first and
// the iq reply last.
func (e *env) iq(s *routertest.Session, to, typ string, payload *stanza.Element) reply {
	e.t.Helper()
	s.Take()
	e.re.Router.Route(e.t.Context(), routertest.IQ(s.JID().String(), to, typ, "q1", payload))
	got := s.Take()
	if len(got) == 0 || got[len(got)-1].Name != "iq" || got[len(got)-1].ID() != "q1" {
		e.t.Fatalf("last stanza received is not the iq reply: %v", got)
	}
	var r reply
	r.iq = got[len(got)-1]
	for _, g := range got[:len(got)-1] {
		if g.Name == "iq" {
			e.t.Fatalf("two iq replies")
		}
		res := g.Child("result", mam.NS)
		if g.Name != "message" || res == nil {
			continue
		}
		fwd := res.Child("forwarded", nsForward)
		if fwd == nil {
			e.t.Fatalf("result without forwarded: %v", g)
		}
		orig := fwd.Child("message", stanza.NSClient)
		delay := fwd.Child("delay", stanza.NSDelay)
		if orig == nil || delay == nil {
			e.t.Fatalf("forwarded without message or delay: %v", fwd)
		}
		r.results = append(r.results, result{
			from: g.From(), to: g.To(), queryID: res.Attr("queryid"), id: res.Attr("id"),
			stamp: delay.Attr("stamp"), body: orig.ChildText("body", stanza.NSClient), msgFrom: orig.From(),
		})
	}
	return r
}

// q is a query builder: form fields and RSM elements.
type q struct {
	queryID string
	fields  [][2]string
	rsm     []*stanza.Element
}

func (b q) field(name, value string) q {
	b.fields = append(append([][2]string(nil), b.fields...), [2]string{name, value})
	return b
}

func (b q) max(n int) q { return b.set("max", strconv.Itoa(n)) }

func (b q) set(name, text string) q {
	el := stanza.New(name, nsRSM)
	if text != "" {
		el.AppendText(text)
	}
	b.rsm = append(append([]*stanza.Element(nil), b.rsm...), el)
	return b
}

func (b q) el() *stanza.Element {
	query := stanza.New("query", mam.NS)
	if b.queryID != "" {
		query.SetAttr("queryid", b.queryID)
	}
	if len(b.fields) > 0 {
		x := stanza.New("x", nsData).SetAttr("type", "submit")
		x.Append(formField("FORM_TYPE", mam.NS))
		for _, f := range b.fields {
			x.Append(formField(f[0], f[1]))
		}
		query.Append(x)
	}
	if len(b.rsm) > 0 {
		query.Append(stanza.New("set", nsRSM).Append(b.rsm...))
	}
	return query
}

func formField(name, value string) *stanza.Element {
	return stanza.New("field", nsData).SetAttr("var", name).Append(stanza.New("value", nsData).AppendText(value))
}

func bodies(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func archived(t *testing.T, st store.Archive, owner string) []store.ArchivedMessage {
	t.Helper()
	p, err := st.QueryArchive(t.Context(), owner, store.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}
