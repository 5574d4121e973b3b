package muc

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/stanza"
)

const nsRSM = "http://jabber.org/protocol/rsm"

// mamQuery asks the room's archive for a page and returns the forwarded
// bodies, their archive ids and the <fin/>.
func mamQuery(t *testing.T, c *client, room, qid string, rsm ...*stanza.Element) ([]string, []string, *stanza.Element) {
	t.Helper()
	q := stanza.New("query", NSMAM).SetAttr("queryid", qid)
	if len(rsm) > 0 {
		q.Append(stanza.New("set", nsRSM).Append(rsm...))
	}
	c.send(iq("set", roomJID(room), "q-"+qid, q))
	got := c.take()
	var bodies, ids []string
	var fin *stanza.Element
	for _, el := range got {
		if el.Name == "iq" && el.ID() == "q-"+qid {
			if el.Type() != "result" {
				t.Fatalf("MAM query %s: %s", qid, dump([]*stanza.Element{el}))
			}
			fin = el.Child("fin", NSMAM)
			continue
		}
		res := el.Child("result", NSMAM)
		if res == nil || res.Attr("queryid") != qid || el.From() != roomJID(room) {
			t.Fatalf("unexpected stanza during MAM query: %s", dump([]*stanza.Element{el}))
		}
		m := res.Child("forwarded", "").Child("message", "")
		bodies = append(bodies, m.ChildText("body", ""))
		ids = append(ids, res.Attr("id"))
	}
	if fin == nil {
		t.Fatalf("no fin: %s", dump(got))
	}
	return bodies, ids, fin
}

func rsmMax(n int) *stanza.Element {
	return stanza.New("max", nsRSM).AppendText(strconv.Itoa(n))
}

func TestMAMOnRoomWithPaging(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("team", "Alice")
	alice.configure("team", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_membersonly", "1")
	setAff(alice, "team", "bob@localhost", "member")
	var sids []string
	for i := range 5 {
		alice.send(groupchat("team", "a"+strconv.Itoa(i), "msg"+strconv.Itoa(i)))
		m := only(t, alice.take())
		sids = append(sids, m.Child("stanza-id", stanza.NSStanzaID).Attr("id"))
	}
	// Bob, a member, was offline: he catches up from the archive without
	// joining, two at a time.
	bob := e.client("bob@localhost/pc")
	b1, ids1, fin1 := mamQuery(t, bob, "team", "p1", rsmMax(2))
	if !slices.Equal(b1, []string{"msg0", "msg1"}) || fin1.Attr("complete") == "true" {
		t.Fatalf("page 1: %v %v complete=%q", b1, ids1, fin1.Attr("complete"))
	}
	// Archive ids are the stanza ids the room stamped.
	if !slices.Equal(ids1, sids[:2]) {
		t.Errorf("archive ids %v, stanza ids %v", ids1, sids[:2])
	}
	last := fin1.Child("set", nsRSM).ChildText("last", nsRSM)
	b2, _, _ := mamQuery(t, bob, "team", "p2", rsmMax(2), stanza.New("after", nsRSM).AppendText(last))
	if !slices.Equal(b2, []string{"msg2", "msg3"}) {
		t.Errorf("page 2: %v", b2)
	}
	b3, _, fin3 := mamQuery(t, bob, "team", "p3", rsmMax(2), stanza.New("after", nsRSM).AppendText(sids[3]))
	if !slices.Equal(b3, []string{"msg4"}) || fin3.Attr("complete") != "true" {
		t.Errorf("page 3: %v complete=%q", b3, fin3.Attr("complete"))
	}
	// The last page, as a client catching up on the latest does.
	b4, _, _ := mamQuery(t, bob, "team", "p4", rsmMax(2), stanza.New("before", nsRSM))
	if !slices.Equal(b4, []string{"msg3", "msg4"}) {
		t.Errorf("last page: %v", b4)
	}
	// A stranger may not read a members-only room's archive.
	carol := e.client("carol@localhost/x")
	carol.send(iq("set", roomJID("team"), "q", stanza.New("query", NSMAM)))
	if c := errCond(findIQ(carol.take(), "q")); c != "forbidden" {
		t.Errorf("stranger's MAM query: %q", c)
	}
	// The archive survives a restart.
	e.restart()
	b5, _, _ := mamQuery(t, bob, "team", "p5", rsmMax(10))
	if !slices.Equal(b5, []string{"msg0", "msg1", "msg2", "msg3", "msg4"}) {
		t.Errorf("after restart: %v", b5)
	}
}

// TestRoomArchiveIDsCarryPosition: with the default IDGen a room's stanza
// ids are archive ids that carry their position (store.NewArchiveID), the
// room archives each message at the time its id carries, so that the store
// keys it by that position without an id index entry, and paging by those
// ids works, across a restart too.
func TestRoomArchiveIDsCarryPosition(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *Config) {
		c.IDGen = nil
		// Every reading of the clock moves it, as a real clock does:
		// the archive must take the id's time, not a later reading.
		c.Now = func() time.Time {
			e.clock.Advance(time.Microsecond)
			return e.clock.Now()
		}
	})
	alice := e.client("alice@localhost/phone")
	alice.create("team", "Alice")
	alice.configure("team", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_enablelogging", "1")
	var sids []string
	for i := range 3 {
		e.clock.Advance(time.Second)
		alice.send(groupchat("team", "a"+strconv.Itoa(i), "msg"+strconv.Itoa(i)))
		m := only(t, alice.take())
		sid := m.Child("stanza-id", stanza.NSStanzaID).Attr("id")
		p, ok := store.ParseArchiveID(sid)
		if !ok {
			t.Fatalf("stanza id %q does not carry an archive position", sid)
		}
		if d := e.clock.Now().Sub(p.Time()); d < 0 || d > time.Millisecond {
			t.Errorf("id %q carries %v, want the room's clock %v", sid, p.Time(), e.clock.Now())
		}
		sids = append(sids, sid)
	}
	page, err := e.st.QueryArchive(context.Background(), roomJID("team"), store.ArchiveQuery{AfterID: sids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].ID != sids[1] || page.Items[1].ID != sids[2] {
		t.Fatalf("after %s: %+v", sids[0], page.Items)
	}
	for i, it := range page.Items {
		p, _ := store.ParseArchiveID(it.ID)
		if !it.Time.Equal(p.Time()) {
			t.Errorf("item %d archived at %v, its id carries %v", i, it.Time, p.Time())
		}
	}
	e.restart()
	bob := e.client("bob@localhost/pc") // the room is open: anyone may read its archive
	b, _, _ := mamQuery(t, bob, "team", "p", rsmMax(10), stanza.New("after", nsRSM).AppendText(sids[1]))
	if !slices.Equal(b, []string{"msg2"}) {
		t.Errorf("after %s, after a restart: %v", sids[1], b)
	}
}
