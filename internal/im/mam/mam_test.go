package mam_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/im/mam"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

func eq[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func one(t *testing.T, what string, got, want any) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// TestArchiveAndQueryAll sends messages both ways and reads both archives
// back: order, addressing, queryid, ids, delay stamps and the fin.
func TestArchiveAndQueryAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	bob := e.online("bob@example.com/phone")
	e.send("alice@example.com/desk", "bob@example.com", "0")
	e.send("alice@example.com/desk", "bob@example.com/phone", "1")
	e.send("bob@example.com/phone", "alice@example.com", "2")
	// What bob's device received carries the stanza ids of bob's archive.
	var bobSaw []string
	for _, g := range bob.Take() {
		if g.Name == "message" {
			bobSaw = append(bobSaw, g.Child("stanza-id", stanza.NSStanzaID).Attr("id"))
		}
	}

	r := e.iq(alice, "", "set", q{queryID: "f27"}.el())
	eq(t, "alice's bodies", r.bodies(), bodies(0, 3))
	for i, x := range r.results {
		one(t, "result from", x.from, "alice@example.com")
		one(t, "result to", x.to, "alice@example.com/desk")
		one(t, "queryid", x.queryID, "f27")
		if x.id == "" {
			t.Fatalf("result %d without archive id", i)
		}
		if _, err := time.Parse(time.RFC3339Nano, x.stamp); err != nil {
			t.Fatalf("result %d stamp %q: %v", i, x.stamp, err)
		}
		if i > 0 && x.stamp <= r.results[i-1].stamp {
			t.Fatalf("stamps not increasing: %q then %q", r.results[i-1].stamp, x.stamp)
		}
	}
	eq(t, "original senders", []string{r.results[0].msgFrom, r.results[2].msgFrom},
		[]string{"alice@example.com/desk", "bob@example.com/phone"})
	complete, first, index, last, count := r.fin(t)
	one(t, "complete", complete, true)
	one(t, "first", first, r.results[0].id)
	one(t, "first index", index, "0")
	one(t, "last", last, r.results[2].id)
	one(t, "count", count, "3")

	r = e.iq(bob, "bob@example.com", "set", q{}.el())
	eq(t, "bob's bodies", r.bodies(), bodies(0, 3))
	eq(t, "bob's archive ids of what he received", r.ids()[:2], bobSaw[:2])
	one(t, "no queryid", r.results[0].queryID, "")
}

func TestFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob", "carol")
	alice := e.online("alice@example.com/desk")
	for i := range 6 {
		to := "bob@example.com"
		if i%2 == 1 {
			to = "carol@example.com"
		}
		e.send("alice@example.com/desk", to, fmt.Sprint(i))
	}
	all := e.iq(alice, "", "set", q{}.el())
	eq(t, "all", all.bodies(), bodies(0, 6))

	r := e.iq(alice, "", "set", q{}.field("with", "carol@example.com").el())
	eq(t, "with carol", r.bodies(), []string{"1", "3", "5"})
	_, _, _, _, count := r.fin(t)
	one(t, "count with carol", count, "3")
	// A full JID matches the account (the archive keeps bare JIDs).
	r = e.iq(alice, "", "set", q{}.field("with", "bob@example.com/any").el())
	eq(t, "with bob's full JID", r.bodies(), []string{"0", "2", "4"})
	r = e.iq(alice, "", "set", q{}.field("with", "dave@example.com").el())
	eq(t, "with a stranger", r.bodies(), nil)

	// start and end are inclusive; stamps come from the results.
	st := func(i int) string { return all.results[i].stamp }
	r = e.iq(alice, "", "set", q{}.field("start", st(2)).el())
	eq(t, "start", r.bodies(), bodies(2, 6))
	r = e.iq(alice, "", "set", q{}.field("end", st(2)).el())
	eq(t, "end", r.bodies(), bodies(0, 3))
	r = e.iq(alice, "", "set", q{}.field("start", st(1)).field("end", st(4)).field("with", "bob@example.com").el())
	eq(t, "start, end and with", r.bodies(), []string{"2", "4"})
	// Time zones are honoured.
	loc := time.FixedZone("", 2*3600)
	ts, err := time.Parse(time.RFC3339Nano, st(3))
	if err != nil {
		t.Fatal(err)
	}
	r = e.iq(alice, "", "set", q{}.field("start", ts.In(loc).Format(time.RFC3339Nano)).el())
	eq(t, "start with a +02:00 offset", r.bodies(), bodies(3, 6))

	// after-id and before-id form fields (MAM 1.1).
	r = e.iq(alice, "", "set", q{}.field("after-id", all.results[1].id).field("before-id", all.results[4].id).el())
	eq(t, "after-id, before-id", r.bodies(), bodies(2, 4))
}

// TestPaging pages forwards and backwards to completion with RSM.
func TestPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	for i := range 7 {
		e.send("alice@example.com/desk", "bob@example.com", fmt.Sprint(i))
	}

	var got []string
	after := ""
	for page := 0; ; page++ {
		b := q{}.max(3)
		if after != "" {
			b = b.set("after", after)
		}
		r := e.iq(alice, "", "set", b.el())
		complete, first, index, last, count := r.fin(t)
		got = append(got, r.bodies()...)
		one(t, "first", first, r.results[0].id)
		one(t, "last", last, r.results[len(r.results)-1].id)
		if page == 0 {
			one(t, "index of the first page", index, "0")
			one(t, "count of a partial page", count, "")
		}
		if complete {
			one(t, "pages", page, 2)
			break
		}
		if page == 2 {
			t.Fatalf("third page not complete")
		}
		after = last
	}
	eq(t, "forward", got, bodies(0, 7))

	got = nil
	before := ""
	for page := 0; ; page++ {
		r := e.iq(alice, "", "set", q{}.max(3).set("before", before).el())
		complete, first, _, last, _ := r.fin(t)
		got = append(r.bodies(), got...)
		one(t, "last", last, r.results[len(r.results)-1].id)
		if complete {
			one(t, "pages", page, 2)
			eq(t, "the first page backwards is the oldest", r.bodies(), []string{"0"})
			break
		}
		if page == 2 {
			t.Fatalf("third page backwards not complete")
		}
		before = first
	}
	eq(t, "backward", got, bodies(0, 7))

	// A last page that holds everything knows its count and index.
	r := e.iq(alice, "", "set", q{}.max(10).set("before", "").el())
	complete, _, index, _, count := r.fin(t)
	one(t, "complete", complete, true)
	one(t, "count", count, "7")
	one(t, "index", index, "0")

	// max 0 asks for the count alone.
	r = e.iq(alice, "", "set", q{}.max(0).el())
	eq(t, "max 0", r.bodies(), nil)
	complete, first, _, _, _ := r.fin(t)
	one(t, "max 0 complete", complete, false)
	one(t, "max 0 first", first, "")
}

func TestPageBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{MaxPage: 4}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	for i := range 6 {
		e.send("alice@example.com/desk", "bob@example.com", fmt.Sprint(i))
	}
	// Too large a max is clamped (XEP-0059 allows fewer items than asked).
	r := e.iq(alice, "", "set", q{}.max(1000000).el())
	eq(t, "clamped", r.bodies(), bodies(0, 4))
	complete, _, _, _, _ := r.fin(t)
	one(t, "complete", complete, false)
	// No max: DefaultPage, bounded by MaxPage.
	r = e.iq(alice, "", "set", q{}.el())
	eq(t, "default page", r.bodies(), bodies(0, 4))
}

func TestUnknownID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	e.send("alice@example.com/desk", "bob@example.com", "0")
	for name, b := range map[string]q{
		"RSM after":  q{}.set("after", "nope"),
		"RSM before": q{}.set("before", "nope"),
		"after-id":   q{}.field("after-id", "nope"),
		"before-id":  q{}.field("before-id", "nope"),
	} {
		r := e.iq(alice, "", "set", b.el())
		one(t, name, routertest.ErrorCondition(r.iq), "item-not-found")
		eq(t, name+" results", r.bodies(), nil)
	}
	// An id of bob's archive that alice's does not hold (bob's note to
	// himself has a copy in his archive only).
	bob := e.online("bob@example.com/phone")
	e.send("bob@example.com/phone", "bob@example.com", "note")
	res := e.iq(bob, "", "set", q{}.el()).results
	id := res[len(res)-1].id
	r := e.iq(alice, "", "set", q{}.set("after", id).el())
	one(t, "another archive's id", routertest.ErrorCondition(r.iq), "item-not-found")
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	e.send("alice@example.com/desk", "bob@example.com", "0")
	many := q{}
	for i := range 40 {
		many = many.field("with", fmt.Sprintf("u%d@example.com", i))
	}
	for _, c := range []struct {
		name string
		el   *stanza.Element
		want string
	}{
		{"bad date", q{}.field("start", "yesterday").el(), "bad-request"},
		{"date without zone", q{}.field("start", "2025-03-04T05:06:07").el(), "bad-request"},
		{"bad JID", q{}.field("with", "a@b@c").el(), "bad-request"},
		{"two values", q{}.el(), ""},
		{"bad max", q{}.set("max", "ten").el(), "bad-request"},
		{"negative max", q{}.set("max", "-1").el(), "bad-request"},
		{"empty after", q{}.set("after", "").el(), "bad-request"},
		{"too many fields", many.el(), "bad-request"},
		{"long queryid", q{queryID: strings.Repeat("x", 300)}.el(), "bad-request"},
		{"long id", q{}.set("after", strings.Repeat("x", 300)).el(), "bad-request"},
		{"RSM index", q{}.set("index", "3").el(), "feature-not-implemented"},
		{"unknown field", q{}.field("include-groupchat", "true").el(), "feature-not-implemented"},
		{"ids with another field", q{}.field("ids", "x").field("with", "bob@example.com").el(), "bad-request"},
		{"ids with RSM", q{}.field("ids", "x").max(5).el(), "bad-request"},
	} {
		el := c.el
		if c.name == "two values" {
			el = q{}.field("with", "bob@example.com").el()
			el.Child("x", nsData).Elements()[1].Append(stanza.New("value", nsData).AppendText("carol@example.com"))
			c.want = "bad-request"
		}
		r := e.iq(alice, "", "set", el)
		one(t, c.name, routertest.ErrorCondition(r.iq), c.want)
		eq(t, c.name+": results", r.bodies(), nil)
	}
	x := q{}.field("with", "bob@example.com").el()
	x.Child("x", nsData).Elements()[0].Children[0].Children[0].Text = "urn:xmpp:mam:1"
	r := e.iq(alice, "", "set", x)
	one(t, "wrong FORM_TYPE", routertest.ErrorCondition(r.iq), "bad-request")
}

// TestForbidden: another user's archive, prefs or metadata.
func TestForbidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	e.send("bob@example.com/x", "alice@example.com", "secret")
	bob := e.online("bob@example.com/phone")
	for _, p := range []*stanza.Element{q{}.el(), stanza.New("prefs", mam.NS), stanza.New("metadata", mam.NS)} {
		r := e.iq(bob, "alice@example.com", "get", p)
		if p.Name == "query" {
			r = e.iq(bob, "alice@example.com", "set", p)
		}
		one(t, p.Name+" of another user", routertest.ErrorCondition(r.iq), "forbidden")
		eq(t, p.Name+" results", r.bodies(), nil)
	}
	eq(t, "alice's own archive", e.iq(alice, "", "set", q{}.el()).bodies(), []string{"secret"})
}

func TestPrefs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob", "carol", "dave")
	alice := e.online("alice@example.com/desk")
	prefs := func(r reply) string {
		t.Helper()
		p := r.iq.Child("prefs", mam.NS)
		if r.iq.Type() != "result" || p == nil {
			t.Fatalf("prefs reply: %v", r.iq)
		}
		s := p.Attr("default")
		for _, l := range []string{"always", "never"} {
			var jids []string
			for _, j := range p.Child(l, mam.NS).Elements() {
				jids = append(jids, j.TextContent())
			}
			s += " " + l + "=" + strings.Join(jids, ",")
		}
		return s
	}
	setPrefs := func(def string, always, never []string) reply {
		el := stanza.New("prefs", mam.NS).SetAttr("default", def)
		for _, l := range []struct {
			name string
			jids []string
		}{{"always", always}, {"never", never}} {
			list := stanza.New(l.name, mam.NS)
			for _, j := range l.jids {
				list.Append(stanza.New("jid", mam.NS).AppendText(j))
			}
			el.Append(list)
		}
		return e.iq(alice, "", "set", el)
	}
	one(t, "default prefs", prefs(e.iq(alice, "", "get", stanza.New("prefs", mam.NS))), "always always= never=")

	// never by default, but always with carol.
	one(t, "set", prefs(setPrefs("never", []string{"carol@example.com/res"}, nil)), "never always=carol@example.com never=")
	one(t, "get", prefs(e.iq(alice, "", "get", stanza.New("prefs", mam.NS))), "never always=carol@example.com never=")
	e.send("bob@example.com/x", "alice@example.com", "from bob, never")
	e.send("carol@example.com/x", "alice@example.com", "from carol, always")

	// roster: only contacts in alice's roster, never dave even so.
	setPrefs("roster", nil, []string{"dave@example.com"})
	for _, c := range []string{"bob@example.com", "dave@example.com"} {
		if _, err := e.re.Store.PutRosterItem(t.Context(), "alice", store.RosterItem{JID: c, Subscription: store.SubBoth, InRoster: true}); err != nil {
			t.Fatal(err)
		}
	}
	// A pending request alone is not "in the roster".
	if _, err := e.re.Store.PutRosterItem(t.Context(), "alice", store.RosterItem{JID: "carol@example.com", Subscription: store.SubNone, PendingIn: true}); err != nil {
		t.Fatal(err)
	}
	e.send("bob@example.com/x", "alice@example.com", "from bob, roster")
	e.send("carol@example.com/x", "alice@example.com", "from carol, not in roster")
	e.send("dave@example.com/x", "alice@example.com", "from dave, never")
	e.send("eve@elsewhere.org/x", "alice@example.com", "from a stranger")

	// always, but never anyone of elsewhere.org.
	setPrefs("always", nil, []string{"elsewhere.org"})
	e.send("eve@elsewhere.org/x", "alice@example.com", "from elsewhere, never")
	e.send("carol@example.com/x", "alice@example.com", "from carol, default always")

	eq(t, "archived", e.iq(alice, "", "set", q{}.el()).bodies(),
		[]string{"from carol, always", "from bob, roster", "from carol, default always"})

	// Invalid prefs are refused and change nothing.
	one(t, "bad default", routertest.ErrorCondition(setPrefs("sometimes", nil, nil).iq), "bad-request")
	one(t, "in both lists", routertest.ErrorCondition(setPrefs("always", []string{"x@y"}, []string{"x@y/r"}).iq), "bad-request")
	one(t, "bad JID", routertest.ErrorCondition(setPrefs("always", []string{"a@b@c"}, nil).iq), "jid-malformed")
	var lots []string
	for i := range mam.MaxPrefsJIDs + 1 {
		lots = append(lots, fmt.Sprintf("u%d@example.com", i))
	}
	one(t, "too many JIDs", routertest.ErrorCondition(setPrefs("always", lots, nil).iq), "not-acceptable")
	one(t, "unchanged", prefs(e.iq(alice, "", "get", stanza.New("prefs", mam.NS))), "always always= never=elsewhere.org")
}

func TestDefaultPref(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{DefaultPref: mam.PrefNever}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	e.send("bob@example.com/x", "alice@example.com", "not archived")
	eq(t, "archived", e.iq(alice, "", "set", q{}.el()).bodies(), nil)
	p := e.iq(alice, "", "get", stanza.New("prefs", mam.NS)).iq.Child("prefs", mam.NS)
	one(t, "default reported", p.Attr("default"), "never")
}

// TestHints: XEP-0334 hints and non-chat types keep a message out of the
// archive even when offered directly (the router already filters them).
func TestHints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice")
	peer := mustJID(t, "bob@example.com/x")
	msg := func(typ, body string, hints ...string) *stanza.Element {
		m := routertest.Msg(peer.String(), "alice@example.com", typ, body)
		for _, h := range hints {
			m.Append(stanza.New(h, "urn:xmpp:hints"))
		}
		return m
	}
	ctx := t.Context()
	archiveOne(ctx, e.m, "alice", peer, "a1", msg("chat", "no-store", "no-store"))
	archiveOne(ctx, e.m, "alice", peer, "a2", msg("chat", "no-permanent-store", "no-permanent-store"))
	archiveOne(ctx, e.m, "alice", peer, "a3", msg("groupchat", "groupchat"))
	archiveOne(ctx, e.m, "alice", peer, "a4", msg("headline", "headline"))
	archiveOne(ctx, e.m, "alice", peer, "a5", msg("normal", "kept, with store hint", "store"))
	archiveOne(ctx, e.m, "alice", peer, "a6", msg("", "kept, no type"))
	var got []string
	for _, m := range archived(t, e.re.Store, "alice") {
		got = append(got, m.ID+" "+m.With)
	}
	eq(t, "archived", got, []string{"a5 bob@example.com", "a6 bob@example.com"})
	// Store errors are logged, not raised (an owner the store refuses).
	archiveOne(ctx, e.m, "bad\x00owner", peer, "a7", msg("chat", "refused"))
	one(t, "after a refused append", len(archived(t, e.re.Store, "alice")), 2)
	// An owner whose preferences cannot be read does not keep the other
	// side's copy out.
	e.m.ArchiveMessage(ctx, msg("chat", "one side refused"), nil,
		router.ArchiveCopy{Owner: "alice", Peer: peer, ID: "a8"},
		router.ArchiveCopy{Owner: "bad\x00owner", Peer: peer, ID: "a9"})
	one(t, "after a half-refused pair", len(archived(t, e.re.Store, "alice")), 3)
}

// TestCopiesShareSerialisation: both sides of a message are archived from
// one call, each under its own id and peer, and the router's serialised
// form is stored as given instead of being made again.
func TestCopiesShareSerialisation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice, bob := mustJID(t, "alice@example.com/desk"), mustJID(t, "bob@example.com/x")
	el := routertest.Msg(alice.String(), "bob@example.com", "chat", "hi")
	raw := routertest.Codec.Marshal(el)
	e.m.ArchiveMessage(t.Context(), el, raw,
		router.ArchiveCopy{Owner: "bob", Peer: alice, ID: "b1"},
		router.ArchiveCopy{Owner: "alice", Peer: bob, ID: "a1"})
	for _, c := range []struct{ owner, id, with string }{{"bob", "b1", "alice@example.com"}, {"alice", "a1", "bob@example.com"}} {
		got := archived(t, e.re.Store, c.owner)
		one(t, c.owner+"'s archive", len(got), 1)
		if got[0].ID != c.id || got[0].With != c.with || string(got[0].Stanza) != string(raw) {
			t.Fatalf("%s archived %s/%s %q, want %s/%s %q", c.owner, got[0].ID, got[0].With, got[0].Stanza, c.id, c.with, raw)
		}
	}
}

func archiveOne(ctx context.Context, m *mam.Module, owner string, peer jid.JID, id string, el *stanza.Element) {
	m.ArchiveMessage(ctx, el, nil, router.ArchiveCopy{Owner: owner, Peer: peer, ID: id})
}

// TestArchivingOff: Retention 0 archives nothing and refuses queries.
func TestArchivingOff(t *testing.T) {
	t.Parallel()
	re := routertest.New(t, domain, routertest.Options{}, "alice", "bob")
	m := mam.New(mam.Config{Archive: re.Store, Roster: re.Store, Router: re.Router, Codec: routertest.Codec, Logger: routertest.Quiet})
	re.Router.SetArchiver(m)
	alice := re.Bind("alice@example.com/desk", true, 0)
	alice.AutoAck(true)
	re.Router.Route(t.Context(), routertest.Msg("bob@example.com/x", "alice@example.com", "chat", "hi"))
	one(t, "archived", len(archived(t, re.Store, "alice")), 0)
	if f := m.Features(); len(f) != 0 {
		t.Fatalf("Features with archiving off: %v", f)
	}
	alice.Take()
	re.Router.Route(t.Context(), routertest.IQ("alice@example.com/desk", "", "set", "q1", q{}.el()))
	got := alice.TakeFirst(func(el *stanza.Element) bool { return el.Name == "iq" })
	if got == nil {
		t.Fatalf("no reply")
	}
	one(t, "query", routertest.ErrorCondition(got), "feature-not-implemented")
	n, err := m.Expire(t.Context(), time.Now())
	if err != nil || n != 0 {
		t.Fatalf("Expire with archiving off: %d, %v", n, err)
	}
}

func TestExpire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{Retention: time.Hour}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	for i := range 4 {
		e.send("bob@example.com/x", "alice@example.com", fmt.Sprint(i))
	}
	// bob is local too; both copies of a message share one tick of the
	// clock: alice's and bob's are at t0+0s, 1s, 2s, 3s.
	items := archived(t, e.re.Store, "alice")
	one(t, "third message archived at", items[2].Time, t0.Add(2*time.Second))
	n, err := e.m.Expire(t.Context(), items[2].Time.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	one(t, "expired (alice's and bob's older than t0+2s)", n, 4)
	eq(t, "alice after expiry", e.iq(alice, "", "set", q{}.el()).bodies(), []string{"2", "3"})
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	md := e.iq(alice, "", "get", stanza.New("metadata", mam.NS)).iq.Child("metadata", mam.NS)
	if md == nil || len(md.Elements()) != 0 {
		t.Fatalf("metadata of an empty archive: %v", md)
	}
	for i := range 3 {
		e.send("bob@example.com/x", "alice@example.com", fmt.Sprint(i))
	}
	all := e.iq(alice, "", "set", q{}.el())
	md = e.iq(alice, "", "get", stanza.New("metadata", mam.NS)).iq.Child("metadata", mam.NS)
	start, end := md.Child("start", mam.NS), md.Child("end", mam.NS)
	if start == nil || end == nil {
		t.Fatalf("metadata: %v", md)
	}
	one(t, "start id", start.Attr("id"), all.results[0].id)
	one(t, "start timestamp", start.Attr("timestamp"), all.results[0].stamp)
	one(t, "end id", end.Attr("id"), all.results[2].id)
	one(t, "end timestamp", end.Attr("timestamp"), all.results[2].stamp)
}

func TestQueryForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice")
	alice := e.online("alice@example.com/desk")
	r := e.iq(alice, "", "get", stanza.New("query", mam.NS))
	x := r.iq.Child("query", mam.NS).Child("x", nsData)
	var vars []string
	for _, f := range x.Elements() {
		vars = append(vars, f.Attr("var"))
	}
	eq(t, "form fields", vars, []string{"FORM_TYPE", "with", "start", "end", "after-id", "before-id", "ids"})
}

// TestAnswerRoomArchive drives Answer as the MUC service does: a room
// owner, results from the room's JID to the requester.
func TestAnswerRoomArchive(t *testing.T) {
	t.Parallel()
	re := routertest.New(t, domain, routertest.Options{})
	room := mustJID(t, "r@conference.example.com")
	ctx := t.Context()
	for i := range 3 {
		m := routertest.Msg("r@conference.example.com/nick", "", "groupchat", fmt.Sprint(i))
		if err := re.Store.AppendArchive(ctx, room.String(), store.ArchivedMessage{
			ID: fmt.Sprintf("r%d", i), Time: t0.Add(time.Duration(i) * time.Second), With: "ann@example.com", Stanza: routertest.Codec.Marshal(m),
		}); err != nil {
			t.Fatal(err)
		}
	}
	requester := mustJID(t, "ann@example.com/phone")
	var got []*stanza.Element
	iq := routertest.IQ(requester.String(), room.String(), "set", "x", q{queryID: "qq"}.max(2).set("before", "").el())
	res, err := mam.Answer(ctx, re.Store, routertest.Codec, room.String(), room, requester, iq, 0, func(el *stanza.Element) { got = append(got, el) })
	if err != nil {
		t.Fatal(err)
	}
	one(t, "results", len(got), 2)
	for i, g := range got {
		one(t, "from", g.From(), "r@conference.example.com")
		one(t, "to", g.To(), "ann@example.com/phone")
		res := g.Child("result", mam.NS)
		one(t, "id", res.Attr("id"), fmt.Sprintf("r%d", i+1))
		one(t, "queryid", res.Attr("queryid"), "qq")
		orig := res.Child("forwarded", nsForward).Child("message", stanza.NSClient)
		one(t, "body", orig.ChildText("body", stanza.NSClient), fmt.Sprint(i+1))
		one(t, "type", orig.Type(), "groupchat")
	}
	rr := reply{iq: res}
	complete, first, _, last, _ := rr.fin(t)
	one(t, "complete", complete, false)
	one(t, "first", first, "r1")
	one(t, "last", last, "r2")

	_, err = mam.Answer(ctx, re.Store, routertest.Codec, room.String(), room, requester,
		routertest.IQ(requester.String(), room.String(), "set", "x", q{}.set("after", "nope").el()), 0, func(*stanza.Element) {})
	if se := stanza.AsError(err); err == nil || se.Condition != "item-not-found" {
		t.Fatalf("unknown id: %v", err)
	}
}

// TestIDs fetches messages by id (XEP-0313 §4.1.4): in the order asked,
// unknown ids left out, whatever their place in the archive.
func TestIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{MaxPage: 4}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	for i := range 5 {
		e.send("bob@example.com/x", "alice@example.com", fmt.Sprint(i))
	}
	all := e.iq(alice, "", "set", q{}.max(5).el())
	one(t, "page size bounds the setup query", len(all.results), 4)
	ids := all.ids()
	rest := e.iq(alice, "", "set", q{}.set("after", ids[3]).el())
	ids = append(ids, rest.ids()...)

	query := q{}.el()
	idsField := stanza.New("field", nsData).SetAttr("var", "ids")
	for _, id := range []string{ids[4], "nope", ids[0], ids[2]} {
		idsField.Append(stanza.New("value", nsData).AppendText(id))
	}
	query.Append(stanza.New("x", nsData).SetAttr("type", "submit").Append(formField("FORM_TYPE", mam.NS), idsField))
	r := e.iq(alice, "", "set", query)
	eq(t, "bodies by id", r.bodies(), []string{"4", "0", "2"})
	complete, first, _, last, count := r.fin(t)
	one(t, "complete", complete, true)
	one(t, "first", first, ids[4])
	one(t, "last", last, ids[2])
	one(t, "count", count, "3")

	// More ids than a page (unknown ones count too): policy-violation.
	for _, id := range ids[:1] {
		idsField.Append(stanza.New("value", nsData).AppendText(id))
	}
	r = e.iq(alice, "", "set", query)
	one(t, "too many ids", routertest.ErrorCondition(r.iq), "policy-violation")
}

// TestLargePage: a page stops at about 1 MiB of messages, at the end the
// client pages from, and paging still reaches every message.
func TestLargePage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice")
	alice := e.online("alice@example.com/desk")
	peer := mustJID(t, "bob@example.com/x")
	big := strings.Repeat("x", 220<<10) // four fit in 1 MiB, and in one stored stanza's limit
	for i := range 6 {
		archiveOne(t.Context(), e.m, "alice", peer, fmt.Sprintf("id%d", i), routertest.Msg(peer.String(), "alice@example.com", "chat", fmt.Sprint(i)+big))
	}
	short := func(r reply) []string {
		var out []string
		for _, b := range r.bodies() {
			out = append(out, b[:1])
		}
		return out
	}
	r := e.iq(alice, "", "set", q{}.max(6).el())
	eq(t, "first page", short(r), []string{"0", "1", "2", "3"})
	complete, _, _, last, _ := r.fin(t)
	one(t, "complete", complete, false)
	r = e.iq(alice, "", "set", q{}.max(6).set("after", last).el())
	eq(t, "second page", short(r), []string{"4", "5"})
	complete, _, _, _, _ = r.fin(t)
	one(t, "second page complete", complete, true)
	r = e.iq(alice, "", "set", q{}.max(6).set("before", "").el())
	eq(t, "last page", short(r), []string{"2", "3", "4", "5"})
	complete, _, index, _, _ := r.fin(t)
	one(t, "last page complete", complete, false)
	one(t, "last page index", index, "2")
}

// TestPrefsCache: preferences are cached, a change through the module
// applies to the next message, and Forget drops what the store no longer
// holds (an account deleted and created again).
func TestPrefsCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mam.Config{}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	e.send("bob@example.com/x", "alice@example.com", "1 default always")
	e.iq(alice, "", "set", stanza.New("prefs", mam.NS).SetAttr("default", "never"))
	e.send("bob@example.com/x", "alice@example.com", "2 never, not archived")
	// Written behind the module's back: the cached "never" still applies.
	if err := e.re.Store.SetArchivePrefs(t.Context(), "alice", store.ArchivePrefs{Default: "always"}); err != nil {
		t.Fatal(err)
	}
	e.send("bob@example.com/x", "alice@example.com", "3 cached never, not archived")
	e.m.Forget("alice")
	e.send("bob@example.com/x", "alice@example.com", "4 reloaded always")
	eq(t, "archived", e.iq(alice, "", "set", q{}.el()).bodies(), []string{"1 default always", "4 reloaded always"})
}

// TestArchivePositionIDs runs the archive with the router's default kind
// of stanza ids (store.NewArchiveID of the router's clock): each copy is
// archived at the time its id carries, not the module's clock, and is
// found by its stanza id in every kind of query.
func TestArchivePositionIDs(t *testing.T) {
	t.Parallel()
	routed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	n := 0
	idGen := func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return store.NewArchiveID(routed.Add(time.Duration(n) * time.Millisecond))
	}
	e := newEnvWith(t, mam.Config{}, routertest.Options{IDGen: idGen}, "alice", "bob")
	alice := e.online("alice@example.com/desk")
	bob := e.online("bob@example.com/phone")
	for i := range 6 {
		e.send("alice@example.com/desk", "bob@example.com", fmt.Sprint(i))
	}
	var bobSaw []string
	for _, g := range bob.Take() {
		if g.Name == "message" {
			bobSaw = append(bobSaw, g.Child("stanza-id", stanza.NSStanzaID).Attr("id"))
		}
	}
	if len(bobSaw) != 6 {
		t.Fatalf("bob saw %d messages", len(bobSaw))
	}

	r := e.iq(bob, "", "set", q{}.el())
	eq(t, "bob's bodies", r.bodies(), bodies(0, 6))
	eq(t, "bob's archive ids", r.ids(), bobSaw)
	for _, x := range r.results {
		p, ok := store.ParseArchiveID(x.id)
		if !ok {
			t.Fatalf("archive id %q does not carry a position", x.id)
		}
		one(t, "stamp of "+x.id, x.stamp, p.Time().Format("2006-01-02T15:04:05.000000Z"))
	}
	for _, m := range archived(t, e.re.Store, "bob") {
		p, _ := store.ParseArchiveID(m.ID)
		if !m.Time.Equal(p.Time()) {
			t.Fatalf("message %s archived at %v, its id carries %v", m.ID, m.Time, p.Time())
		}
	}
	// Found by stanza id: RSM after and before, the form's after-id and
	// before-id, and the ids field.
	r = e.iq(bob, "", "set", q{}.set("after", bobSaw[1]).max(2).el())
	eq(t, "after", r.bodies(), bodies(2, 4))
	r = e.iq(bob, "", "set", q{}.set("before", bobSaw[4]).max(2).el())
	eq(t, "before", r.bodies(), bodies(2, 4))
	r = e.iq(bob, "", "set", q{}.field("after-id", bobSaw[0]).field("before-id", bobSaw[3]).el())
	eq(t, "after-id, before-id", r.bodies(), bodies(1, 3))
	r = e.iq(bob, "", "set", q{}.field("with", "alice@example.com").set("after", bobSaw[3]).el())
	eq(t, "with, after", r.bodies(), bodies(4, 6))
	query := q{}.el()
	idsField := stanza.New("field", nsData).SetAttr("var", "ids")
	for _, id := range []string{bobSaw[5], store.NewArchiveID(routed), bobSaw[2]} {
		idsField.Append(stanza.New("value", nsData).AppendText(id))
	}
	query.Append(stanza.New("x", nsData).SetAttr("type", "submit").Append(formField("FORM_TYPE", mam.NS), idsField))
	r = e.iq(bob, "", "set", query)
	eq(t, "ids", r.bodies(), []string{"5", "2"})

	// The sender's copies are under the same ids (one per routed
	// message), found the same way.
	r = e.iq(alice, "", "set", q{}.el())
	eq(t, "alice's bodies", r.bodies(), bodies(0, 6))
	eq(t, "alice's archive ids", r.ids(), bobSaw)
	r = e.iq(alice, "", "set", q{}.set("after", bobSaw[2]).el())
	eq(t, "alice after", r.bodies(), bodies(3, 6))
	r = e.iq(alice, "", "set", q{}.field("with", "bob@example.com").set("before", bobSaw[4]).max(2).el())
	eq(t, "alice with bob, before", r.bodies(), bodies(2, 4))
}
