package muc

import (
	"slices"
	"testing"

	"github.com/parley-im/parley/stanza"
)

func TestModerationRetractsForEveryone(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client("alice@localhost/phone")
	alice.create("lobby", "Alice")
	bob := e.client("bob@localhost/pc")
	bob.join("lobby", "Bob")
	bob.send(groupchat("lobby", "b1", "something rude"))
	bob.send(groupchat("lobby", "b2", "something fine"))
	msgs := filter(alice.take(), isName("message"))
	sid := msgs[0].Child("stanza-id", stanza.NSStanzaID).Attr("id")
	bob.take()
	moderate := func(c *client, id string) *stanza.Element {
		c.send(iq("set", roomJID("lobby"), "mod", stanza.New("moderate", NSModeration).SetAttr("id", id).
			Append(stanza.New("retract", NSRetract), stanza.New("reason", NSModeration).AppendText("rude"))))
		return findIQ(c.take(), "mod")
	}
	if c := errCond(moderate(bob, sid)); c != "forbidden" {
		t.Errorf("participant moderation: %q", c)
	}
	if r := moderate(alice, sid); r == nil || r.Type() != "result" {
		t.Fatalf("moderation: %v", r)
	}
	m := only(t, bob.take())
	rt := m.Child("retract", NSRetract)
	if rt == nil || rt.Attr("id") != sid || rt.Child("moderated", NSModeration) == nil || m.From() != roomJID("lobby") {
		t.Errorf("retraction: %s", dump([]*stanza.Element{m}))
	}
	// A new joiner does not get the retracted message as history.
	carol := e.client("carol@localhost/x")
	if b := bodies(carol.join("lobby", "Carol")); !slices.Equal(b, []string{"something fine"}) {
		t.Errorf("history after moderation: %v", b)
	}
}
