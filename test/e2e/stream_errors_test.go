package e2e

import (
	"testing"
)

// Test 6a: an authenticated raw-socket client sends broken XML; the server
// answers <stream:error><not-well-formed/></stream:error>, closes that
// connection, and the slixmpp sessions of other users keep working.
func TestMalformedXMLKicksOnlyTheOffender(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2", "mallory": "evil"})
	srv := startServer(t, dir)

	alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
	bob := login(t, srv, "bob@localhost/phone", "hunter2", clientOpts{})

	raw, jid := loginRaw(t, srv, "mallory", "evil", "raw")
	if jid != "mallory@localhost/raw" {
		t.Fatalf("raw client bound %q, want mallory@localhost/raw", jid)
	}
	raw.send(`<message to='bob@localhost' type='chat'><body>x</message>`)
	raw.expectStreamError("not-well-formed")

	// The others were not affected.
	alice.send(bob.JID, "still here?")
	assertMessage(t, bob.expectMessage("still here?"), alice.JID, "chat")
	bob.send(alice.JID, "yes")
	assertMessage(t, alice.expectMessage("yes"), bob.JID, "chat")
	// Nothing of the broken stanza reached bob.
	if got := bob.all(evMatch("message", map[string]string{"body": "x"})); len(got) != 0 {
		t.Errorf("the malformed stanza was delivered: %v", got)
	}
	for _, c := range []*client{alice, bob} {
		if got := c.all(evMatch("stream_error", nil)); len(got) != 0 {
			t.Errorf("%s got a stream error: %v", c.name, got)
		}
		if got := c.all(evMatch("disconnected", nil)); len(got) != 0 {
			t.Errorf("%s was disconnected: %v", c.name, got)
		}
	}
	alice.quit()
	bob.quit()
	srv.Stop()
}

// Test 6b: raw-socket protocol violations before authentication.
func TestRawStreamErrorsBeforeAuth(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "secret"})
	srv := startServer(t, dir)

	t.Run("stanza_before_auth_is_not_authorized", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2S)
		c.openStream()
		c.send(`<message to='alice@localhost' type='chat'><body>let me in</body></message>`)
		c.expectStreamError("not-authorized")
	})

	t.Run("iq_after_starttls_before_auth_is_not_authorized", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2S)
		c.openStream()
		c.startTLS()
		c.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
		c.expectStreamError("not-authorized")
	})

	t.Run("broken_xml_before_tls_is_not_well_formed", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2S)
		c.openStream()
		// Broken inside the start tag, so no element can be seen before
		// the syntax error.
		c.send(`<message to='alice@localhost' <<</message>`)
		c.expectStreamError("not-well-formed")
	})

	t.Run("server_still_accepts_logins", func(t *testing.T) {
		// Alongside the broken connections above, a well-behaved one
		// negotiates and gets answers as usual.
		t.Parallel()
		c, jid := loginRaw(t, srv, "alice", "secret", "ok")
		if jid != "alice@localhost/ok" {
			t.Errorf("bound %q", jid)
		}
		c.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
		n := c.mustNext("ping result")
		if !n.is(nsClient, "iq") || n.attr("type") != "result" || n.attr("id") != "p1" {
			t.Errorf("ping: got %s, want iq result id=p1", n)
		}
	})
}
