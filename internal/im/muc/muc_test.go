package muc

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

func TestInstantRoomCreation(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	got := alice.join("lobby", "Alice")
	self := findSelf(got)
	if self == nil {
		t.Fatalf("no self-presence: %s", dump(got))
	}
	for _, code := range []int{statusSelf, statusCreated, statusLogging} {
		if !hasStatus(self, code) {
			t.Errorf("self-presence lacks status %d: %s", code, dump(got))
		}
	}
	it := userItem(self)
	if it.Attr("affiliation") != "owner" || it.Attr("role") != "moderator" || it.Attr("jid") != "alice@localhost/phone" {
		t.Errorf("owner item: %s", dump([]*stanza.Element{self}))
	}
	if self.From() != occJID("lobby", "Alice") {
		t.Errorf("self-presence from %q", self.From())
	}
	if oid := self.Child("occupant-id", NSOccupantID); oid == nil || oid.Attr("id") == "" {
		t.Error("no occupant-id on the self-presence")
	}
	// The subject always ends the join.
	if last := got[len(got)-1]; last.Name != "message" || last.Child("subject", "") == nil {
		t.Errorf("join does not end with the subject: %s", dump(got))
	}

	// Locked until configured: others get item-not-found.
	bob := e.client("bob@localhost/pc")
	if c := errCond(only(t, bob.join("lobby", "Bob"))); c != "item-not-found" {
		t.Fatalf("join of a locked room: %q", c)
	}
	alice.configure("lobby")
	got = bob.join("lobby", "Bob")
	if findSelf(got) == nil {
		t.Fatalf("bob could not join the configured room: %s", dump(got))
	}
	// Bob got alice's presence first, without her real JID (semi-anonymous).
	first := got[0]
	if first.From() != occJID("lobby", "Alice") || userItem(first).Attr("jid") != "" {
		t.Errorf("first presence to bob: %s", dump(got))
	}
	// Alice (a moderator) sees bob's real JID.
	ap := only(t, filter(alice.take(), isName("presence")))
	if ap.From() != occJID("lobby", "Bob") || userItem(ap).Attr("jid") != "bob@localhost/pc" || userItem(ap).Attr("role") != "participant" {
		t.Errorf("bob's presence to alice: %s", dump([]*stanza.Element{ap}))
	}
}

func TestReservedRoomConfigForm(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.join("team", "Alice")
	alice.send(iq("get", roomJID("team"), "f", stanza.New("query", NSOwner)))
	res := findIQ(alice.take(), "f")
	if res == nil || res.Type() != "result" {
		t.Fatal("no config form")
	}
	x := res.Child("query", NSOwner).Child("x", NSData)
	if x == nil || x.Attr("type") != "form" || formValues(x)["FORM_TYPE"][0] != NSRoomConfig {
		t.Fatalf("form: %s", dump([]*stanza.Element{res}))
	}
	alice.configure("team",
		"FORM_TYPE", NSRoomConfig,
		"muc#roomconfig_roomname", "The Team",
		"muc#roomconfig_persistentroom", "1",
		"muc#roomconfig_membersonly", "1",
		"muc#roomconfig_whois", "anyone",
		"muc#roomconfig_publicroom", "0")
	alice.send(iq("get", roomJID("team"), "i", stanza.New("query", NSDiscoInfo)))
	info := findIQ(alice.take(), "i")
	var feats []string
	for _, f := range info.Child("query", NSDiscoInfo).Children {
		if f.Name == "feature" {
			feats = append(feats, f.Attr("var"))
		}
	}
	for _, want := range []string{"muc_persistent", "muc_membersonly", "muc_nonanonymous", "muc_hidden", NS, NSMAM, stanza.NSStanzaID} {
		if !slices.Contains(feats, want) {
			t.Errorf("disco#info lacks %s: %v", want, feats)
		}
	}
	if id := info.Child("query", NSDiscoInfo).Child("identity", ""); id.Attr("name") != "The Team" || id.Attr("category") != "conference" {
		t.Errorf("identity: %+v", id.Attrs)
	}
	roominfo := formValues(info.Child("query", NSDiscoInfo).Child("x", NSData))
	if roominfo["FORM_TYPE"][0] != NSRoomInfo || roominfo["muc#roominfo_occupants"][0] != "1" {
		t.Errorf("roominfo form: %v", roominfo)
	}

	// A bad value is not-acceptable and changes nothing.
	x = stanza.New("x", NSData).SetAttr("type", "submit").Append(field("muc#roomconfig_whois", "", "", "everyone"))
	alice.send(iq("set", roomJID("team"), "bad", stanza.New("query", NSOwner).Append(x)))
	if c := errCond(findIQ(alice.take(), "bad")); c != "not-acceptable" {
		t.Errorf("bad whois: %q", c)
	}
	// Oversized fields are refused.
	x = stanza.New("x", NSData).SetAttr("type", "submit").Append(field("muc#roomconfig_roomname", "", "", strings.Repeat("n", 5000)))
	alice.send(iq("set", roomJID("team"), "big", stanza.New("query", NSOwner).Append(x)))
	if c := errCond(findIQ(alice.take(), "big")); c != "not-acceptable" {
		t.Errorf("oversized name: %q", c)
	}
	// Only owners configure.
	bob := e.client("bob@localhost/pc")
	bob.send(iq("get", roomJID("team"), "f2", stanza.New("query", NSOwner)))
	if c := errCond(findIQ(bob.take(), "f2")); c != "forbidden" {
		t.Errorf("non-owner config: %q", c)
	}
}

func TestNonAnonymousJoinLeave(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("open", "Alice")
	alice.configure("open", "muc#roomconfig_whois", "anyone")
	alice.take()
	bob := e.client("bob@localhost/pc")
	got := bob.join("open", "Bob")
	self := findSelf(got)
	if !hasStatus(self, statusNonAnonymous) {
		t.Errorf("no 100 in a non-anonymous room: %s", dump(got))
	}
	if p := got[0]; userItem(p).Attr("jid") != "alice@localhost/phone" {
		t.Errorf("participant does not see real JIDs in a non-anonymous room: %s", dump(got))
	}
	aliceID := got[0].Child("occupant-id", NSOccupantID).Attr("id")
	bobID := self.Child("occupant-id", NSOccupantID).Attr("id")
	if aliceID == "" || aliceID == bobID {
		t.Errorf("occupant ids: alice %q bob %q", aliceID, bobID)
	}
	alice.take()
	bob.send(presence(occJID("open", "Bob")).SetAttr("type", "unavailable"))
	if p := only(t, alice.take()); p.Type() != "unavailable" || p.From() != occJID("open", "Bob") || userItem(p).Attr("role") != "none" {
		t.Errorf("leave seen by alice: %s", dump([]*stanza.Element{p}))
	}
	if p := only(t, bob.take()); p.Type() != "unavailable" || !hasStatus(p, statusSelf) {
		t.Errorf("leave seen by bob: %s", dump([]*stanza.Element{p}))
	}
	// Rejoining keeps the same occupant id.
	got = bob.join("open", "Robert")
	if id := findSelf(got).Child("occupant-id", NSOccupantID).Attr("id"); id != bobID {
		t.Errorf("occupant id changed across joins: %q then %q", bobID, id)
	}
}

func TestNicknames(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	// Conflict, case-insensitively.
	if c := errCond(only(t, bob.join("lobby", "alice"))); c != "conflict" {
		t.Errorf("nick conflict: %q", c)
	}
	// A nickname the PRECIS Nickname profile rejects: a valid resourcepart
	// that is empty once spaces are trimmed.
	bob.send(presence(roomJID("lobby")+"/   ", mucX()))
	if c := errCond(only(t, bob.take())); c != "jid-malformed" {
		t.Errorf("invalid nickname: %q", c)
	}
	// No nickname at all.
	bob.send(presence(roomJID("lobby"), mucX()))
	if c := errCond(only(t, bob.take())); c != "jid-malformed" {
		t.Errorf("join without a nickname: %q", c)
	}
	// A nickname the profile rewrites (spaces collapsed) gets 210.
	got := bob.join("lobby", "  Bob   Smith ")
	self := findSelf(got)
	if self == nil || !hasStatus(self, statusNickRewrite) || self.From() != occJID("lobby", "Bob Smith") {
		t.Fatalf("rewritten nick: %s", dump(got))
	}
	alice.take()
	// Nick change: 303 from the old nick, then presence from the new one.
	bob.send(presence(occJID("lobby", "Bobby")))
	seen := alice.take()
	if len(seen) != 2 || seen[0].Type() != "unavailable" || !hasStatus(seen[0], statusNickChange) ||
		userItem(seen[0]).Attr("nick") != "Bobby" || seen[1].From() != occJID("lobby", "Bobby") {
		t.Fatalf("nick change seen by alice: %s", dump(seen))
	}
	own := bob.take()
	if len(own) != 2 || !hasStatus(own[0], statusSelf) || !hasStatus(own[0], statusNickChange) || !hasStatus(own[1], statusSelf) {
		t.Errorf("nick change seen by bob: %s", dump(own))
	}
	// Changing to a taken nick is a conflict.
	bob.send(presence(occJID("lobby", "ALICE")))
	if c := errCond(only(t, bob.take())); c != "conflict" {
		t.Errorf("nick change to a taken nick: %q", c)
	}
}

func TestPasswordRoom(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("secret", "Alice")
	alice.configure("secret", "muc#roomconfig_passwordprotectedroom", "1", "muc#roomconfig_roomsecret", "s3cret")
	bob := e.client("bob@localhost/pc")
	if c := errCond(only(t, bob.join("secret", "Bob"))); c != "not-authorized" {
		t.Errorf("no password: %q", c)
	}
	if c := errCond(only(t, bob.join("secret", "Bob", stanza.New("password", NS).AppendText("wrong")))); c != "not-authorized" {
		t.Errorf("wrong password: %q", c)
	}
	if findSelf(bob.join("secret", "Bob", stanza.New("password", NS).AppendText("s3cret"))) == nil {
		t.Error("right password refused")
	}
}

func TestMembersOnly(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("club", "Alice")
	alice.configure("club", "muc#roomconfig_membersonly", "1")
	bob := e.client("bob@localhost/pc")
	if c := errCond(only(t, bob.join("club", "Bob"))); c != "registration-required" {
		t.Fatalf("non-member join: %q", c)
	}
	setAff(alice, "club", "bob@localhost", "member")
	got := bob.join("club", "Bob")
	if self := findSelf(got); self == nil || userItem(self).Attr("affiliation") != "member" {
		t.Fatalf("member join: %s", dump(got))
	}
	// The member list is visible to the owner.
	alice.send(iq("get", roomJID("club"), "ml", stanza.New("query", NSAdmin).Append(stanza.New("item", NSAdmin).SetAttr("affiliation", "member"))))
	res := findIQ(alice.take(), "ml")
	items := res.Child("query", NSAdmin).Elements()
	if len(items) != 1 || items[0].Attr("jid") != "bob@localhost" {
		t.Errorf("member list: %s", dump([]*stanza.Element{res}))
	}
	// Removing the membership removes bob with 321.
	setAff(alice, "club", "bob@localhost", "none")
	if p := only(t, bob.take()); p.Type() != "unavailable" || !hasStatus(p, statusAffRemoved) {
		t.Errorf("membership removed: %s", dump([]*stanza.Element{p}))
	}
}

// setAff changes an affiliation as c and fails unless it succeeds.
func setAff(c *client, room, who, aff string) {
	c.e.t.Helper()
	c.send(iq("set", roomJID(room), "aff", stanza.New("query", NSAdmin).
		Append(stanza.New("item", NSAdmin).SetAttr("jid", who).SetAttr("affiliation", aff))))
	res := findIQ(c.take(), "aff")
	if res == nil || res.Type() != "result" {
		c.e.t.Fatalf("set %s to %s: %v", who, aff, res)
	}
}

func TestGroupchatFanOut(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob2 := e.client("bob@localhost/laptop")
	carol := e.client("carol@localhost/x")
	bob.join("lobby", "Bob")
	bob2.join("lobby", "Bob") // a second session under the same nick
	carol.join("lobby", "Carol")
	alice.take()
	bob.take()
	// A forged stanza-id by the room is stripped.
	m := groupchat("lobby", "c1", "hello all")
	m.Append(stanza.New("stanza-id", stanza.NSStanzaID).SetAttr("by", roomJID("lobby")).SetAttr("id", "forged"))
	carol.send(m)
	var sid string
	for name, c := range map[string]*client{"alice": alice, "bob": bob, "bob2": bob2, "carol": carol} {
		got := only(t, filter(c.take(), isName("message")))
		if got.From() != occJID("lobby", "Carol") || got.Type() != "groupchat" || got.ID() != "c1" || got.To() != c.j.String() {
			t.Errorf("%s got %s", name, dump([]*stanza.Element{got}))
		}
		var ids []string
		for _, ch := range got.Children {
			if ch.Name == "stanza-id" {
				ids = append(ids, ch.Attr("id"))
				if ch.Attr("by") != roomJID("lobby") {
					t.Errorf("stanza-id by %q", ch.Attr("by"))
				}
			}
		}
		if len(ids) != 1 || ids[0] == "forged" {
			t.Errorf("%s: stanza ids %v", name, ids)
		}
		if sid == "" {
			sid = ids[0]
		} else if ids[0] != sid {
			t.Errorf("recipients saw different stanza ids: %s vs %s", sid, ids[0])
		}
		if got.Child("occupant-id", NSOccupantID) == nil {
			t.Errorf("%s: no occupant-id", name)
		}
	}
	// A non-occupant cannot speak.
	dave := e.client("dave@localhost/x")
	dave.send(groupchat("lobby", "d1", "let me in"))
	if c := errCond(only(t, dave.take())); c != "not-acceptable" {
		t.Errorf("non-occupant message: %q", c)
	}
	// A full session drops; the others still get the message.
	bob.sess.Refuse(true)
	before := e.s.Stats.Dropped.Load()
	carol.send(groupchat("lobby", "c2", "second"))
	if e.s.Stats.Dropped.Load() != before+1 {
		t.Errorf("dropped = %d, want %d", e.s.Stats.Dropped.Load(), before+1)
	}
	if b := bodies(alice.take()); !slices.Equal(b, []string{"second"}) {
		t.Errorf("alice after a drop: %v", b)
	}
	if b := bodies(bob2.take()); !slices.Equal(b, []string{"second"}) {
		t.Errorf("bob's other session after a drop: %v", b)
	}
}

func TestHistoryOnJoin(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	for _, b := range []string{"one", "two", "three", "four"} {
		alice.send(groupchat("lobby", b, b))
		e.clock.Advance(time.Minute)
	}
	bob := e.client("bob@localhost/pc")
	got := bob.join("lobby", "Bob", stanza.New("history", NS).SetAttr("maxstanzas", "2"))
	hist := filter(got, func(el *stanza.Element) bool { return el.Name == "message" && el.Child("body", "") != nil })
	if b := bodies(hist); !slices.Equal(b, []string{"three", "four"}) {
		t.Fatalf("maxstanzas=2 history: %v", b)
	}
	d := hist[0].Child("delay", stanza.NSDelay)
	if d == nil || d.Attr("from") != roomJID("lobby") || d.Attr("stamp") != "2026-01-02T03:06:05.000Z" {
		t.Errorf("delay: %s", dump(hist[:1]))
	}
	// Order: presences, history, subject last.
	if got[len(got)-1].Child("subject", "") == nil {
		t.Errorf("subject is not last: %s", dump(got))
	}
	carol := e.client("carol@localhost/x")
	got = carol.join("lobby", "Carol", stanza.New("history", NS).SetAttr("seconds", "150"))
	if b := bodies(got); !slices.Equal(b, []string{"three", "four"}) {
		t.Errorf("seconds=150 history: %v", b)
	}
	dave := e.client("dave@localhost/x")
	got = dave.join("lobby", "Dave", stanza.New("history", NS).SetAttr("maxchars", "0"))
	if b := bodies(got); len(b) != 0 {
		t.Errorf("maxchars=0 history: %v", b)
	}
	erin := e.client("erin@localhost/x")
	got = erin.join("lobby", "Erin", stanza.New("history", NS).SetAttr("since", "2026-01-02T03:05:00Z"))
	if b := bodies(got); !slices.Equal(b, []string{"two", "three", "four"}) {
		t.Errorf("since history: %v", b)
	}
	frank := e.client("frank@localhost/x")
	if b := bodies(frank.join("lobby", "Frank")); !slices.Equal(b, []string{"one", "two", "three", "four"}) {
		t.Errorf("default history: %v", b)
	}
	// Hostile values are ignored, not obeyed into an overflow.
	gina := e.client("gina@localhost/x")
	got = gina.join("lobby", "Gina", stanza.New("history", NS).SetAttr("seconds", "9223372036854775807").SetAttr("maxstanzas", "-5"))
	if b := bodies(got); !slices.Equal(b, []string{"one", "two", "three", "four"}) {
		t.Errorf("hostile history request: %v", b)
	}
}

func TestSubject(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	subj := func(text string) *stanza.Element {
		return stanza.New("message", stanza.NSClient).SetAttr("to", roomJID("lobby")).SetAttr("type", "groupchat").SetAttr("id", "s").
			Append(stanza.New("subject", stanza.NSClient).AppendText(text))
	}
	// A participant may not change it by default.
	bob.send(subj("mine"))
	if c := errCond(only(t, bob.take())); c != "forbidden" {
		t.Errorf("participant subject change: %q", c)
	}
	alice.send(subj("Plans for Friday"))
	for _, c := range []*client{alice, bob} {
		m := only(t, c.take())
		if m.ChildText("subject", "") != "Plans for Friday" || m.From() != occJID("lobby", "Alice") {
			t.Errorf("subject broadcast: %s", dump([]*stanza.Element{m}))
		}
	}
	carol := e.client("carol@localhost/x")
	got := carol.join("lobby", "Carol")
	if last := got[len(got)-1]; last.ChildText("subject", "") != "Plans for Friday" {
		t.Errorf("subject on join: %s", dump(got))
	}
	// Too long.
	alice.take()
	alice.send(subj(strings.Repeat("s", 2000)))
	if c := errCond(only(t, alice.take())); c != "not-acceptable" {
		t.Errorf("long subject: %q", c)
	}
}

func TestPrivateMessage(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	pm := stanza.New("message", stanza.NSClient).SetAttr("to", occJID("lobby", "Alice")).SetAttr("type", "chat").SetAttr("id", "p1").
		Append(stanza.New("body", stanza.NSClient).AppendText("psst"))
	bob.send(pm)
	m := only(t, alice.take())
	if m.From() != occJID("lobby", "Bob") || m.ChildText("body", "") != "psst" || m.Child("x", NSUser) == nil || m.Type() != "chat" {
		t.Errorf("private message: %s", dump([]*stanza.Element{m}))
	}
	if len(bob.take()) != 0 {
		t.Error("the sender got something back")
	}
	pm = stanza.New("message", stanza.NSClient).SetAttr("to", occJID("lobby", "Nobody")).SetAttr("type", "chat").
		Append(stanza.New("body", stanza.NSClient).AppendText("?"))
	bob.send(pm)
	if c := errCond(only(t, bob.take())); c != "item-not-found" {
		t.Errorf("pm to nobody: %q", c)
	}
	alice.configure("lobby", "muc#roomconfig_allowpm", "none")
	alice.take()
	bob.take()
	bob.send(stanza.New("message", stanza.NSClient).SetAttr("to", occJID("lobby", "Alice")).SetAttr("type", "chat").
		Append(stanza.New("body", stanza.NSClient).AppendText("again")))
	if c := errCond(only(t, bob.take())); c != "forbidden" {
		t.Errorf("pm with allowpm=none: %q", c)
	}
}

func TestKickAndBan(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	carol := e.client("carol@localhost/x")
	bob.join("lobby", "Bob")
	carol.join("lobby", "Carol")
	alice.take()
	bob.take()
	// A participant cannot kick.
	carol.send(iq("set", roomJID("lobby"), "k0", stanza.New("query", NSAdmin).
		Append(stanza.New("item", NSAdmin).SetAttr("nick", "Bob").SetAttr("role", "none"))))
	if c := errCond(findIQ(carol.take(), "k0")); c != "forbidden" {
		t.Errorf("participant kick: %q", c)
	}
	// Nobody kicks the owner.
	alice.send(iq("set", roomJID("lobby"), "k1", stanza.New("query", NSAdmin).
		Append(stanza.New("item", NSAdmin).SetAttr("nick", "Bob").SetAttr("role", "none").
			Append(stanza.New("reason", NSAdmin).AppendText("spam")))))
	if r := findIQ(alice.take(), "k1"); r == nil || r.Type() != "result" {
		t.Fatalf("kick: %v", r)
	}
	p := only(t, bob.take())
	if p.Type() != "unavailable" || !hasStatus(p, statusKicked) || !hasStatus(p, statusSelf) ||
		userItem(p).ChildText("reason", NSUser) != "spam" || userItem(p).Child("actor", NSUser).Attr("nick") != "Alice" {
		t.Errorf("kicked presence: %s", dump([]*stanza.Element{p}))
	}
	if p := only(t, carol.take()); !hasStatus(p, statusKicked) || hasStatus(p, statusSelf) {
		t.Errorf("kick seen by carol: %s", dump([]*stanza.Element{p}))
	}
	// A kicked user may come back; a banned one may not.
	bob.join("lobby", "Bob")
	alice.take()
	carol.take()
	setAff(alice, "lobby", "bob@localhost", "outcast")
	if p := only(t, bob.take()); !hasStatus(p, statusBanned) || userItem(p).Attr("affiliation") != "outcast" {
		t.Errorf("banned presence: %s", dump([]*stanza.Element{p}))
	}
	if c := errCond(only(t, bob.join("lobby", "Bob"))); c != "forbidden" {
		t.Errorf("banned rejoin: %q", c)
	}
	// The last owner cannot step down.
	alice.send(iq("set", roomJID("lobby"), "own", stanza.New("query", NSAdmin).
		Append(stanza.New("item", NSAdmin).SetAttr("jid", "alice@localhost").SetAttr("affiliation", "member"))))
	if c := errCond(findIQ(alice.take(), "own")); c != "conflict" {
		t.Errorf("last owner demotion: %q", c)
	}
}

func TestModeratedRoomVoice(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("stage", "Alice")
	alice.configure("stage", "muc#roomconfig_moderatedroom", "1")
	bob := e.client("bob@localhost/pc")
	got := bob.join("stage", "Bob")
	if r := userItem(findSelf(got)).Attr("role"); r != "visitor" {
		t.Fatalf("role in a moderated room: %q", r)
	}
	alice.take()
	bob.send(groupchat("stage", "b1", "can I talk?"))
	if c := errCond(only(t, bob.take())); c != "forbidden" {
		t.Errorf("visitor message: %q", c)
	}
	if len(alice.take()) != 0 {
		t.Error("a visitor's message reached the room")
	}
	alice.send(iq("set", roomJID("stage"), "v", stanza.New("query", NSAdmin).
		Append(stanza.New("item", NSAdmin).SetAttr("nick", "Bob").SetAttr("role", "participant"))))
	if p := filter(bob.take(), isName("presence")); len(p) != 1 || userItem(p[0]).Attr("role") != "participant" {
		t.Fatalf("voice granted: %s", dump(p))
	}
	alice.take()
	bob.send(groupchat("stage", "b2", "thanks"))
	if b := bodies(alice.take()); !slices.Equal(b, []string{"thanks"}) {
		t.Errorf("voiced participant: %v", b)
	}
}

func TestDestroyWithAlternateVenue(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("old", "Alice")
	alice.configure("old", "muc#roomconfig_persistentroom", "1")
	bob := e.client("bob@localhost/pc")
	bob.join("old", "Bob")
	alice.take()
	alice.send(iq("set", roomJID("old"), "d", stanza.New("query", NSOwner).Append(
		stanza.New("destroy", NSOwner).SetAttr("jid", roomJID("new")).Append(stanza.New("reason", NSOwner).AppendText("moved")))))
	p := only(t, bob.take())
	d := p.Child("x", NSUser).Child("destroy", NSUser)
	if p.Type() != "unavailable" || d == nil || d.Attr("jid") != roomJID("new") || d.ChildText("reason", NSUser) != "moved" {
		t.Errorf("destroy presence: %s", dump([]*stanza.Element{p}))
	}
	got := alice.take()
	if r := findIQ(got, "d"); r == nil || r.Type() != "result" {
		t.Errorf("destroy result: %s", dump(got))
	}
	if _, err := e.st.GetRoom(t.Context(), roomJID("old")); err == nil {
		t.Error("the destroyed room is still stored")
	}
	bob.send(iq("get", roomJID("old"), "i", stanza.New("query", NSDiscoInfo)))
	if c := errCond(findIQ(bob.take(), "i")); c != "item-not-found" {
		t.Errorf("disco of a destroyed room: %q", c)
	}
}

func TestMediatedInvite(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("club", "Alice")
	alice.configure("club", "muc#roomconfig_membersonly", "1")
	bob := e.client("bob@localhost/pc")
	inv := stanza.New("message", stanza.NSClient).SetAttr("to", roomJID("club")).Append(
		stanza.New("x", NSUser).Append(stanza.New("invite", NSUser).SetAttr("to", "bob@localhost").
			Append(stanza.New("reason", NSUser).AppendText("join us"))))
	alice.send(inv)
	m := only(t, bob.take())
	i := m.Child("x", NSUser).Child("invite", NSUser)
	if m.From() != roomJID("club") || i == nil || i.Attr("from") != "alice@localhost" || i.ChildText("reason", NSUser) != "join us" {
		t.Fatalf("invitation: %s", dump([]*stanza.Element{m}))
	}
	// The invitation made bob a member: he can join the members-only room.
	if findSelf(bob.join("club", "Bob")) == nil {
		t.Error("invited member could not join")
	}
	// An offline invitee finds it in the offline queue.
	e.client("carol@localhost/x") // creates the account
	e.r.Unbind(e.r.Session(jid.MustParse("carol@localhost/x")))
	inv = stanza.New("message", stanza.NSClient).SetAttr("to", roomJID("club")).Append(
		stanza.New("x", NSUser).Append(stanza.New("invite", NSUser).SetAttr("to", "carol@localhost")))
	alice.send(inv)
	if n, err := e.st.Depth(t.Context(), "carol"); err != nil || n != 1 {
		t.Errorf("offline invitation queued: %d, %v", n, err)
	}
	// A plain participant may not invite to a members-only room.
	bob.take()
	inv = stanza.New("message", stanza.NSClient).SetAttr("to", roomJID("club")).Append(
		stanza.New("x", NSUser).Append(stanza.New("invite", NSUser).SetAttr("to", "dave@localhost")))
	bob.send(inv)
	if c := errCond(only(t, bob.take())); c != "forbidden" {
		t.Errorf("participant invite: %q", c)
	}
}

func TestSelfPing(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	alice.send(iq("get", occJID("lobby", "Alice"), "p", stanza.New("ping", NSPing)))
	if r := findIQ(alice.take(), "p"); r == nil || r.Type() != "result" || r.From() != occJID("lobby", "Alice") {
		t.Errorf("self-ping: %v", r)
	}
	bob := e.client("bob@localhost/pc")
	bob.send(iq("get", occJID("lobby", "Bob"), "p", stanza.New("ping", NSPing)))
	if c := errCond(findIQ(bob.take(), "p")); c != "not-acceptable" {
		t.Errorf("self-ping when not joined: %q", c)
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxOccupantsPerRoom = 2
		c.MessageBurst = 3
		c.MessageRate = 1
		c.MaxRooms = 1
	})
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	carol := e.client("carol@localhost/x")
	if c := errCond(only(t, carol.join("lobby", "Carol"))); c != "service-unavailable" {
		t.Errorf("full room: %q", c)
	}
	// A second room is over MaxRooms.
	if c := errCond(only(t, carol.join("other", "Carol"))); c != "not-allowed" {
		t.Errorf("too many rooms: %q", c)
	}
	alice.take()
	for i := range 3 {
		bob.send(groupchat("lobby", "b", "burst"))
		if got := bob.take(); len(got) != 1 || got[0].Type() == "error" {
			t.Fatalf("message %d of the burst: %s", i, dump(got))
		}
	}
	bob.send(groupchat("lobby", "b", "one too many"))
	if c := errCond(only(t, bob.take())); c != "resource-constraint" {
		t.Errorf("past the burst: %q", c)
	}
	e.clock.Advance(2 * time.Second) // refills two tokens
	bob.send(groupchat("lobby", "b", "later"))
	if got := only(t, bob.take()); got.Type() == "error" {
		t.Errorf("after the refill: %s", dump([]*stanza.Element{got}))
	}
}

func TestUnknownRoomAndService(t *testing.T) {
	e := newEnv(t, nil)
	bob := e.client("bob@localhost/pc")
	bob.send(iq("get", roomJID("nowhere"), "i", stanza.New("query", NSDiscoInfo)))
	if c := errCond(findIQ(bob.take(), "i")); c != "item-not-found" {
		t.Errorf("disco of an unknown room: %q", c)
	}
	bob.send(groupchat("nowhere", "m", "hello?"))
	if c := errCond(only(t, bob.take())); c != "item-not-found" {
		t.Errorf("message to an unknown room: %q", c)
	}
	// The unknown room does not stay active (it retires just after
	// answering, so wait for it).
	waitFor(t, "unknown room retires", func() bool { return e.s.Stats.Active.Load() == 0 })
	bob.send(iq("get", service, "si", stanza.New("query", NSDiscoInfo)))
	res := findIQ(bob.take(), "si")
	if res == nil || res.Type() != "result" || res.Child("query", NSDiscoInfo).Child("identity", "").Attr("category") != "conference" {
		t.Errorf("service disco#info: %v", res)
	}
}

func TestRoomDirectory(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("pub", "Alice")
	alice.configure("pub", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_roomname", "Public")
	alice.create("hidden", "Alice")
	alice.configure("hidden", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_publicroom", "0")
	alice.create("temp", "Alice")
	alice.take()
	bob := e.client("bob@localhost/pc")
	bob.send(iq("get", service, "items", stanza.New("query", NSDiscoItems)))
	res := findIQ(bob.take(), "items")
	var jids []string
	for _, it := range res.Child("query", NSDiscoItems).Elements() {
		jids = append(jids, it.Attr("jid"))
	}
	if !slices.Equal(jids, []string{roomJID("pub"), roomJID("temp")}) {
		t.Errorf("directory: %v", jids)
	}
}

func TestTemporaryRoomDestroyedWhenEmpty(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("tmp", "Alice")
	if n := e.s.Stats.Rooms.Load(); n != 1 {
		t.Fatalf("rooms = %d", n)
	}
	alice.send(presence(occJID("tmp", "Alice")).SetAttr("type", "unavailable"))
	if n := e.s.Stats.Rooms.Load(); n != 0 {
		t.Errorf("rooms after the last occupant left = %d", n)
	}
	bob := e.client("bob@localhost/pc")
	got := bob.join("tmp", "Bob")
	if self := findSelf(got); self == nil || !hasStatus(self, statusCreated) {
		t.Errorf("the temporary room was not destroyed: %s", dump(got))
	}
}

func TestSessionEndedRemovesOccupant(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	alice.configure("lobby", "muc#roomconfig_persistentroom", "1")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	e.s.SessionEnded(t.Context(), bob.j)
	e.sync("lobby")
	if p := only(t, alice.take()); p.Type() != "unavailable" || p.From() != occJID("lobby", "Bob") {
		t.Errorf("session end seen by alice: %s", dump([]*stanza.Element{p}))
	}
	// The presence module's directed unavailable does the same.
	carol := e.client("carol@localhost/x")
	carol.join("lobby", "Carol")
	alice.take()
	carol.send(presence(roomJID("lobby")).SetAttr("type", "unavailable"))
	if p := only(t, alice.take()); p.Type() != "unavailable" || p.From() != occJID("lobby", "Carol") {
		t.Errorf("unavailable to the bare room: %s", dump([]*stanza.Element{p}))
	}
}

func TestIQRelayBetweenOccupants(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	bob.send(iq("get", occJID("lobby", "Alice"), "v1", stanza.New("query", "jabber:iq:version")))
	req := only(t, alice.take())
	if req.From() != occJID("lobby", "Bob") || req.Child("query", "jabber:iq:version") == nil || req.ID() == "v1" {
		t.Fatalf("relayed request: %s", dump([]*stanza.Element{req}))
	}
	// Someone else cannot answer in alice's place.
	fake := stanza.New("iq", stanza.NSClient).SetAttr("type", "result").SetAttr("id", req.ID()).SetAttr("to", occJID("lobby", "Bob"))
	e.client("mallory@localhost/x").send(fake)
	if got := bob.take(); len(got) != 0 {
		t.Fatalf("a stranger's answer was relayed: %s", dump(got))
	}
	alice.send(stanza.New("iq", stanza.NSClient).SetAttr("type", "result").SetAttr("id", req.ID()).SetAttr("to", occJID("lobby", "Bob")).
		Append(stanza.New("query", "jabber:iq:version").Append(stanza.New("name", "jabber:iq:version").AppendText("client"))))
	res := only(t, bob.take())
	if res.ID() != "v1" || res.Type() != "result" || res.From() != occJID("lobby", "Alice") || res.To() != "bob@localhost/pc" {
		t.Errorf("relayed answer: %s", dump([]*stanza.Element{res}))
	}
	// Non-occupants cannot reach occupants.
	carol := e.client("carol@localhost/x")
	carol.send(iq("get", occJID("lobby", "Alice"), "v2", stanza.New("query", "jabber:iq:version")))
	if c := errCond(findIQ(carol.take(), "v2")); c != "not-acceptable" {
		t.Errorf("stranger's iq to an occupant: %q", c)
	}
}

// TestFullMailbox: a room busy past its mailbox refuses new stanzas with
// resource-constraint, but a leave is never lost.
func TestFullMailbox(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Mailbox = 1 })
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	route := func(el *stanza.Element) {
		el.SetAttr("from", bob.j.String())
		e.r.Route(t.Context(), el)
	}
	// Hold the room in its delivery to alice.
	gate := make(chan struct{})
	alice.sess.mu.Lock()
	alice.sess.gate, alice.sess.entered = gate, make(chan struct{})
	entered := alice.sess.entered
	alice.sess.mu.Unlock()
	route(groupchat("lobby", "1", "one"))
	<-entered
	route(groupchat("lobby", "2", "two"))   // fills the mailbox
	route(groupchat("lobby", "3", "three")) // refused
	if c := errCond(only(t, filter(bob.take(), func(el *stanza.Element) bool { return el.Type() == "error" }))); c != "resource-constraint" {
		t.Errorf("past the mailbox: %q", c)
	}
	route(presence(occJID("lobby", "Bob")).SetAttr("type", "unavailable")) // waits in the background
	close(gate)
	// The leave waits in a goroutine for room in the mailbox, so a sync
	// may overtake it: sync until it has arrived (bounded, not timed).
	var got []*stanza.Element
	deadline := time.Now().Add(20 * time.Second)
	for {
		e.sync("lobby")
		got = append(got, alice.take()...)
		if len(filter(got, isName("presence"))) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if b := bodies(got); !slices.Equal(b, []string{"one", "two"}) {
		t.Errorf("alice got %v", b)
	}
	if p := got[len(got)-1]; p.Name != "presence" || p.Type() != "unavailable" || p.From() != occJID("lobby", "Bob") {
		t.Errorf("bob's leave was lost: %s", dump(got))
	}
}

// TestRejoinWithoutLeaving: a client that lost its state joins again
// without having left; it gets the whole join (occupants, self, subject).
func TestRejoinWithoutLeaving(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	got := bob.join("lobby", "Bob")
	if len(got) < 3 || got[0].From() != occJID("lobby", "Alice") || findSelf(got) == nil || got[len(got)-1].Child("subject", "") == nil {
		t.Errorf("rejoin: %s", dump(got))
	}
}

// TestFanOutSharesPayload: recipients get their own top-level element but
// one shared payload, and a persistent room's goroutine retires when its
// last occupant leaves (its state stays in the store).
func TestFanOutSharesPayload(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	alice.configure("lobby", "muc#roomconfig_persistentroom", "1")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	bob.send(groupchat("lobby", "b1", "shared"))
	a, b := only(t, alice.take()), only(t, bob.take())
	if a == b || a.To() == b.To() {
		t.Fatal("recipients share the top-level element")
	}
	if len(a.Children) == 0 || &a.Children[0] != &b.Children[0] {
		t.Error("the payload was copied per recipient")
	}
	for _, c := range []*client{alice, bob} {
		c.send(presence(occJID("lobby", "x")).SetAttr("type", "unavailable"))
	}
	waitFor(t, "idle persistent room retires", func() bool { return e.s.Stats.Active.Load() == 0 })
	if n := e.s.Stats.Rooms.Load(); n != 1 {
		t.Errorf("rooms = %d after the persistent room emptied", n)
	}
}
