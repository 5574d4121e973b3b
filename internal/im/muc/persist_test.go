package muc

import (
	"slices"
	"testing"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/stanza"
)

// TestRoomSurvivesRestart: a persistent room keeps its configuration,
// affiliations, subject, occupant ids and archive across a restart of the
// service on the same store, and is loaded lazily by the first stanza.
func TestRoomSurvivesRestart(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("team", "Alice")
	alice.configure("team",
		"muc#roomconfig_persistentroom", "1",
		"muc#roomconfig_membersonly", "1",
		"muc#roomconfig_roomname", "The Team",
		"muc#roomconfig_whois", "anyone")
	setAff(alice, "team", "bob@localhost", "member")
	setAff(alice, "team", "mallory@localhost", "outcast")
	bob := e.client("bob@localhost/pc")
	bobID := findSelf(bob.join("team", "Bob")).Child("occupant-id", NSOccupantID).Attr("id")
	alice.send(stanza.New("message", stanza.NSClient).SetAttr("to", roomJID("team")).SetAttr("type", "groupchat").
		Append(stanza.New("subject", stanza.NSClient).AppendText("Launch")))
	for _, b := range []string{"first", "second", "third"} {
		bob.send(groupchat("team", b, b))
	}

	e.restart()
	if n := e.s.Stats.Rooms.Load(); n != 1 {
		t.Errorf("rooms counted at start = %d, want 1", n)
	}
	if n := e.s.Stats.Active.Load(); n != 0 {
		t.Errorf("rooms active right after start = %d, want 0 (lazy)", n)
	}
	// Occupants were told of the shutdown.
	if p := filter(bob.take(), func(el *stanza.Element) bool { return hasStatus(el, statusShutdown) }); len(p) != 1 {
		t.Errorf("bob got %d presences with 332", len(p))
	}
	alice.take()

	carol := e.client("carol@localhost/x")
	if c := errCond(only(t, carol.join("team", "Carol"))); c != "registration-required" {
		t.Errorf("members-only after restart: %q", c)
	}
	mallory := e.client("mallory@localhost/x")
	if c := errCond(only(t, mallory.join("team", "Mal"))); c != "forbidden" {
		t.Errorf("outcast after restart: %q", c)
	}
	got := bob.join("team", "Bob")
	self := findSelf(got)
	if self == nil || userItem(self).Attr("affiliation") != "member" || !hasStatus(self, statusNonAnonymous) {
		t.Fatalf("member join after restart: %s", dump(got))
	}
	if id := self.Child("occupant-id", NSOccupantID).Attr("id"); id != bobID {
		t.Errorf("occupant id changed across restart: %q then %q", bobID, id)
	}
	if b := bodies(got); !slices.Equal(b, []string{"first", "second", "third"}) {
		t.Errorf("history after restart: %v", b)
	}
	if s := got[len(got)-1]; s.ChildText("subject", "") != "Launch" || s.From() != occJID("team", "Alice") {
		t.Errorf("subject after restart: %s", dump(got[len(got)-1:]))
	}
	bob.send(iq("get", roomJID("team"), "i", stanza.New("query", NSDiscoInfo)))
	info := findIQ(bob.take(), "i")
	if id := info.Child("query", NSDiscoInfo).Child("identity", ""); id == nil || id.Attr("name") != "The Team" {
		t.Errorf("name after restart: %s", dump([]*stanza.Element{info}))
	}
	// The archive is the room's, with the sender's real bare JID.
	page, err := e.st.QueryArchive(t.Context(), roomJID("team"), store.ArchiveQuery{})
	if err != nil || len(page.Items) != 3 || page.Items[0].With != "bob@localhost" {
		t.Fatalf("archive after restart: %+v, %v", page, err)
	}
	// The owner is still the owner.
	alice.send(iq("get", roomJID("team"), "f", stanza.New("query", NSOwner)))
	if r := findIQ(alice.take(), "f"); r == nil || r.Type() != "result" {
		t.Errorf("owner after restart: %v", r)
	}
}

// TestCorruptRecord: a room whose record cannot be decoded answers
// internal-server-error instead of being recreated over its data.
func TestCorruptRecord(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.st.PutRoom(t.Context(), store.Room{JID: roomJID("bad"), Data: []byte{9, 9}}); err != nil {
		t.Fatal(err)
	}
	bob := e.client("bob@localhost/pc")
	if c := errCond(only(t, bob.join("bad", "Bob"))); c != "internal-server-error" {
		t.Errorf("join of a corrupt room: %q", c)
	}
	if _, err := e.st.GetRoom(t.Context(), roomJID("bad")); err != nil {
		t.Errorf("the corrupt record was removed: %v", err)
	}
}

// TestForgetUser: a deleted account's affiliations leave every room (also
// across a restart), and a room it owned gets its admins as owners.
func TestForgetUser(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("team", "Alice")
	alice.configure("team", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_membersonly", "1")
	setAff(alice, "team", "bob@localhost", "admin")
	setAff(alice, "team", "carol@localhost", "member")
	alice.send(presence(occJID("team", "Alice")).SetAttr("type", "unavailable"))
	if err := e.s.ForgetUser(t.Context(), alice.j.Bare()); err != nil {
		t.Fatal(err)
	}
	e.restart()
	bob := e.client("bob@localhost/pc")
	if self := findSelf(bob.join("team", "Bob")); self == nil || userItem(self).Attr("affiliation") != "owner" {
		t.Fatalf("the admin was not promoted: %s", dump([]*stanza.Element{self}))
	}
	// A new account called alice is a stranger to the members-only room.
	alice.take()
	if c := errCond(only(t, alice.join("team", "Alice"))); c != "registration-required" {
		t.Errorf("re-created account joins: %q", c)
	}
}

// TestTemporaryRoomEndsWithService: a temporary room does not survive a
// restart, and neither does its archive.
func TestTemporaryRoomEndsWithService(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("tmp", "Alice")
	alice.send(groupchat("tmp", "1", "ephemeral"))
	e.restart()
	page, err := e.st.QueryArchive(t.Context(), roomJID("tmp"), store.ArchiveQuery{})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("a temporary room's archive outlived it: %d items, %v", len(page.Items), err)
	}
	alice.take()
	if self := findSelf(alice.join("tmp", "Alice")); self == nil || !hasStatus(self, statusCreated) {
		t.Error("the temporary room survived the restart")
	}
}
