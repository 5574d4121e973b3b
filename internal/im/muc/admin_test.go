package muc

import (
	"testing"

	"github.com/parley-im/parley/stanza"
)

func adminSet(c *client, room string, items ...*stanza.Element) *stanza.Element {
	c.e.t.Helper()
	c.send(iq("set", roomJID(room), "adm", stanza.New("query", NSAdmin).Append(items...)))
	return findIQ(c.take(), "adm")
}

func adminItem(attrs ...string) *stanza.Element {
	it := stanza.New("item", NSAdmin)
	for i := 0; i+1 < len(attrs); i += 2 {
		it.SetAttr(attrs[i], attrs[i+1])
	}
	return it
}

func TestAffiliationRules(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	setAff(alice, "lobby", "bob@localhost", "admin")
	bob := e.client("bob@localhost/pc")
	if self := findSelf(bob.join("lobby", "Bob")); userItem(self).Attr("role") != "moderator" {
		t.Fatalf("admin's role: %s", dump([]*stanza.Element{self}))
	}
	carol := e.client("carol@localhost/x")
	carol.join("lobby", "Carol")
	// An admin cannot ban the owner, nor make another admin.
	if c := errCond(adminSet(bob, "lobby", adminItem("jid", "alice@localhost", "affiliation", "outcast"))); c != "not-allowed" {
		t.Errorf("admin bans owner: %q", c)
	}
	if c := errCond(adminSet(bob, "lobby", adminItem("jid", "carol@localhost", "affiliation", "admin"))); c != "not-allowed" {
		t.Errorf("admin makes admin: %q", c)
	}
	// An admin cannot kick the owner.
	if c := errCond(adminSet(bob, "lobby", adminItem("nick", "Alice", "role", "none"))); c != "not-allowed" {
		t.Errorf("admin kicks owner: %q", c)
	}
	// A request is applied whole or not at all.
	r := adminSet(alice, "lobby",
		adminItem("jid", "dave@localhost", "affiliation", "member"),
		adminItem("jid", "x@localhost", "affiliation", "bogus"))
	if c := errCond(r); c != "bad-request" {
		t.Errorf("mixed request: %q", c)
	}
	alice.send(iq("get", roomJID("lobby"), "ml", stanza.New("query", NSAdmin).Append(adminItem("affiliation", "member"))))
	if items := findIQ(alice.take(), "ml").Child("query", NSAdmin).Elements(); len(items) != 0 {
		t.Errorf("half of a refused request was applied: %s", dump(items))
	}
	// Membership promotes carol's affiliation in place: everyone sees it.
	alice.take()
	carol.take()
	if r := adminSet(bob, "lobby", adminItem("nick", "Carol", "affiliation", "member")); r.Type() != "result" {
		t.Fatalf("admin adds member by nick: %s", dump([]*stanza.Element{r}))
	}
	if p := only(t, alice.take()); userItem(p).Attr("affiliation") != "member" || p.From() != occJID("lobby", "Carol") {
		t.Errorf("affiliation change seen by alice: %s", dump([]*stanza.Element{p}))
	}
	// Granting moderator needs an admin; a moderator-participant cannot.
	if r := adminSet(bob, "lobby", adminItem("nick", "Carol", "role", "moderator")); r.Type() != "result" {
		t.Errorf("admin grants moderator: %s", dump([]*stanza.Element{r}))
	}
	if c := errCond(adminSet(carol, "lobby", adminItem("nick", "Bob", "role", "visitor"))); c != "not-allowed" {
		t.Errorf("member-moderator revokes admin's voice: %q", c)
	}
	// Too many items in one request.
	var many []*stanza.Element
	for range maxAdminItems + 1 {
		many = append(many, adminItem("jid", "z@localhost", "affiliation", "member"))
	}
	if c := errCond(adminSet(alice, "lobby", many...)); c != "bad-request" {
		t.Errorf("oversized request: %q", c)
	}
}

func TestBecomingMembersOnlyRemovesStrangers(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	carol := e.client("carol@localhost/x")
	carol.join("lobby", "Carol")
	setAff(alice, "lobby", "carol@localhost", "member")
	alice.take()
	bob.take()
	carol.take()
	alice.configure("lobby", "muc#roomconfig_membersonly", "1")
	got := bob.take()
	if len(got) != 1 || got[0].Type() != "unavailable" || !hasStatus(got[0], statusMembersOnly) {
		t.Errorf("stranger removed: %s", dump(got))
	}
	// Carol stays, sees bob go and the 104 configuration notice.
	got = carol.take()
	if len(got) != 2 || !hasStatus(got[0], statusMembersOnly) || !hasStatus(got[1], statusConfigChange) {
		t.Errorf("member after the change: %s", dump(got))
	}
}

func TestPresenceUpdateBroadcast(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	alice.take()
	bob.take()
	bob.send(presence(occJID("lobby", "Bob"), stanza.New("show", stanza.NSClient).AppendText("away"), stanza.New("x", NSUser)))
	p := only(t, alice.take())
	if p.ChildText("show", "") != "away" || len(p.Children) != 3 || p.Type() != "" {
		t.Errorf("presence update: %s", dump([]*stanza.Element{p}))
	}
	if s := only(t, bob.take()); !hasStatus(s, statusSelf) {
		t.Errorf("own update: %s", dump([]*stanza.Element{s}))
	}
}

func TestTooManyInvites(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	x := stanza.New("x", NSUser)
	for range maxInvites + 1 {
		x.Append(stanza.New("invite", NSUser).SetAttr("to", "bob@localhost"))
	}
	alice.send(stanza.New("message", stanza.NSClient).SetAttr("to", roomJID("lobby")).Append(x))
	if c := errCond(only(t, alice.take())); c != "policy-violation" {
		t.Errorf("too many invites: %q", c)
	}
}

func TestAffiliationLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAffiliations = 2 })
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice") // the owner is the first entry
	setAff(alice, "lobby", "bob@localhost", "member")
	if c := errCond(adminSet(alice, "lobby", adminItem("jid", "carol@localhost", "affiliation", "member"))); c != "resource-constraint" {
		t.Errorf("past MaxAffiliations: %q", c)
	}
	// Changing an existing entry is not a new one.
	setAff(alice, "lobby", "bob@localhost", "outcast")
}
