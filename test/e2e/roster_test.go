package e2e

import (
	"testing"
)

// Test 3: roster add + the full RFC 6121 subscription handshake between two
// online users, checking roster pushes (with versions), the presence
// stanzas each side receives, and the final rosters.
func TestRosterSubscriptionHandshake(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	srv := startServer(t, dir)

	alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
	bob := login(t, srv, "bob@localhost/phone", "hunter2", clientOpts{})

	for _, c := range []*client{alice, bob} {
		if !c.Session.boolean("rosterver") {
			t.Errorf("%s: server did not advertise roster versioning (urn:xmpp:features:rosterver)", c.name)
		}
		r := c.all(evMatch("roster", nil))[0]
		if len(r.objs("items")) != 0 {
			t.Errorf("%s: fresh account has roster items: %s", c.name, r)
		}
	}
	versions := map[string]bool{}
	push := func(c *client, jid string, want string) event {
		t.Helper()
		ev := c.expect("roster push for "+jid+" "+want, stepTimeout, func(ev event) bool {
			if ev.str("ev") != "roster_push" {
				return false
			}
			for _, it := range ev.objs("items") {
				if it.str("jid") == jid && rosterState(it) == want {
					return true
				}
			}
			return false
		})
		if f := ev.str("from"); f != "" && f != bareJID(c.JID) {
			t.Errorf("%s: roster push from %q (must be absent or the user's bare JID)", c.name, f)
		}
		if len(ev.objs("items")) != 1 {
			t.Errorf("%s: roster push must contain exactly one item: %s", c.name, ev)
		}
		if c.Session.boolean("rosterver") {
			if ev.str("ver") == "" {
				t.Errorf("%s: roster push without ver although versioning is advertised: %s", c.name, ev)
			}
			if versions[c.name+ev.str("ver")] {
				t.Errorf("%s: roster version %q reused for a different roster state", c.name, ev.str("ver"))
			}
			versions[c.name+ev.str("ver")] = true
		}
		return ev
	}
	presence := func(c *client, from, typ string) event {
		t.Helper()
		return c.expectEv("presence", map[string]string{"from": from, "type": typ})
	}

	// 1. alice adds bob to her roster.
	alice.mustCall("roster_set", map[string]any{"jid": "bob@localhost", "name": "Bob", "groups": []string{"Friends"}})
	it := push(alice, "bob@localhost", "none").objs("items")[0]
	if it.str("name") != "Bob" || len(it.strs("groups")) != 1 || it.strs("groups")[0] != "Friends" {
		t.Errorf("alice's roster push lost name/group: %s", it)
	}

	// 2. alice subscribes to bob: her item becomes none+ask, bob gets the request.
	alice.mustCall("presence", map[string]any{"to": "bob@localhost", "type": "subscribe"})
	push(alice, "bob@localhost", "none+ask")
	presence(bob, "alice@localhost", "subscribe")

	// 3. bob approves: bob has alice "from", alice has bob "to", and alice
	//    receives bob's current presence.
	bob.mustCall("presence", map[string]any{"to": "alice@localhost", "type": "subscribed"})
	push(bob, "alice@localhost", "from")
	presence(alice, "bob@localhost", "subscribed")
	push(alice, "bob@localhost", "to")
	presence(alice, bob.JID, "available")

	// 4. bob subscribes back.
	bob.mustCall("presence", map[string]any{"to": "alice@localhost", "type": "subscribe"})
	push(bob, "alice@localhost", "from+ask")
	presence(alice, "bob@localhost", "subscribe")

	// 5. alice approves: both end with "both", bob receives alice's presence.
	alice.mustCall("presence", map[string]any{"to": "bob@localhost", "type": "subscribed"})
	push(alice, "bob@localhost", "both")
	presence(bob, "alice@localhost", "subscribed")
	push(bob, "alice@localhost", "both")
	presence(bob, alice.JID, "available")

	// Final rosters, fetched fresh from the server (ver="" signals that
	// the client supports versioning).
	for _, tc := range []struct {
		c       *client
		contact string
	}{{alice, "bob@localhost"}, {bob, "alice@localhost"}} {
		r := tc.c.mustCall("roster_get", map[string]any{"ver": ""})
		items := r.objs("items")
		if len(items) != 1 || items[0].str("jid") != tc.contact || rosterState(items[0]) != "both" {
			t.Errorf("%s: final roster %v, want exactly %s with subscription both and no ask", tc.c.name, items, tc.contact)
		}
		if !tc.c.Session.boolean("rosterver") {
			continue
		}
		if r.str("ver") == "" {
			t.Errorf("%s: roster result without ver although versioning is advertised and requested", tc.c.name)
		}
		if initial := tc.c.all(evMatch("roster", nil))[0].str("ver"); initial != "" && initial == r.str("ver") {
			t.Errorf("%s: roster version %q did not change although the roster did", tc.c.name, initial)
		}
		// Asking with the current version: RFC 6121 2.6.3 allows an empty
		// result (changes come as pushes) or the complete roster.
		r2 := tc.c.mustCall("roster_get", map[string]any{"ver": r.str("ver")})
		if r2.boolean("has_query") {
			items2 := r2.objs("items")
			if len(items2) != 1 || rosterState(items2[0]) != "both" {
				t.Errorf("%s: roster get with the current ver returned a different roster: %s", tc.c.name, r2)
			}
		}
	}

	// Presence now flows both ways: a status change reaches the contact.
	alice.mustCall("presence", map[string]any{"show": "away", "status": "lunch"})
	ev := bob.expect("alice's away presence", stepTimeout, func(ev event) bool {
		return ev.str("ev") == "presence" && ev.str("from") == alice.JID && ev.str("show") == "away"
	})
	if ev.str("status") != "lunch" {
		t.Errorf("status %q, want lunch", ev.str("status"))
	}
	bob.mustCall("presence", map[string]any{"show": "dnd"})
	alice.expect("bob's dnd presence", stepTimeout, func(ev event) bool {
		return ev.str("ev") == "presence" && ev.str("from") == bob.JID && ev.str("show") == "dnd"
	})

	// Going offline is broadcast too.
	bob.quit()
	presence(alice, bob.JID, "unavailable")
	alice.quit()
}

// rosterState renders an item as "none", "none+ask", "to", "from+ask", ...
func rosterState(it event) string {
	s := it.str("subscription")
	if s == "" {
		s = "none"
	}
	if it.str("ask") == "subscribe" {
		s += "+ask"
	}
	return s
}
