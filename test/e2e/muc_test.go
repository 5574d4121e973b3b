package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const room = "team@conference.localhost"

// codes returns the MUC status codes of a presence event (or of a join
// result when key is "codes" at the top level).
func codes(ev event) []int {
	var raw []any
	if m := ev.obj("muc"); m != nil {
		raw, _ = m["codes"].([]any)
	} else {
		raw, _ = ev["codes"].([]any)
	}
	out := make([]int, 0, len(raw))
	for _, c := range raw {
		if f, ok := c.(float64); ok {
			out = append(out, int(f))
		}
	}
	return out
}

func hasCode(ev event, c int) bool { return slices.Contains(codes(ev), c) }

// mucPresence waits for presence from room/nick matching pred.
func mucPresence(c *client, nick string, pred func(event) bool) event {
	c.t.Helper()
	return c.expect("room presence of "+nick, stepTimeout, func(ev event) bool {
		return ev.str("ev") == "presence" && ev.str("from") == room+"/"+nick && (pred == nil || pred(ev))
	})
}

// groupchat waits for a groupchat message with body from room/nick.
func groupchat(c *client, nick, body string) event {
	c.t.Helper()
	return c.expect("groupchat "+body, stepTimeout, func(ev event) bool {
		return ev.str("ev") == "message" && ev.str("type") == "groupchat" && ev.str("from") == room+"/"+nick && ev.str("body") == body
	})
}

// TestGroupChat drives XEP-0045 with slixmpp's xep_0045 plugin: create and
// configure a members-only persistent room, membership, messages with room
// stanza ids, history on join, subject, kick, ban, the room's archive, and
// a server restart after which room, affiliations and archive remain.
func TestGroupChat(t *testing.T) {
	t.Parallel()
	requirePython(t)
	users := map[string]string{"alice": "pw-a", "bob": "pw-b", "carol": "pw-c", "eve": "pw-e"}
	dir := newDataDir(t, users)
	srv := startServer(t, dir)
	opts := clientOpts{extras: true}
	alice := login(t, srv, "alice@localhost/desk", "pw-a", opts)
	bob := login(t, srv, "bob@localhost/phone", "pw-b", opts)
	carol := login(t, srv, "carol@localhost/pc", "pw-c", opts)
	eve := login(t, srv, "eve@localhost/x", "pw-e", opts)

	// The service is listed on the server and describes itself.
	items := alice.mustCall("disco_items", map[string]any{"to": "localhost"}).objs("items")
	found := false
	for _, it := range items {
		found = found || it.str("jid") == "conference.localhost"
	}
	if !found {
		t.Fatalf("conference.localhost not in the server's disco#items: %v", items)
	}
	info := alice.mustCall("disco_info", map[string]any{"to": "conference.localhost"})
	if !slices.Contains(info.strs("features"), "http://jabber.org/protocol/muc") {
		t.Errorf("service features %v lack muc", info.strs("features"))
	}

	// alice creates the room (201) and configures it: persistent,
	// members-only, real JIDs visible to everyone.
	join := alice.mustCall("muc_join", map[string]any{"room": room, "nick": "alice"})
	if !slices.Contains(codes(join), 201) || !slices.Contains(codes(join), 110) || join.str("affiliation") != "owner" {
		t.Fatalf("creating join: %s", join)
	}
	alice.mustCall("muc_config", map[string]any{"room": room, "fields": map[string]any{
		"muc#roomconfig_persistentroom": "1",
		"muc#roomconfig_membersonly":    "1",
		"muc#roomconfig_whois":          "anyone",
		"muc#roomconfig_roomname":       "The team",
	}})
	alice.mustCall("muc_affiliation", map[string]any{"room": room, "jid": "bob@localhost", "affiliation": "member"})
	alice.mustCall("muc_affiliation", map[string]any{"room": room, "jid": "carol@localhost", "affiliation": "member"})

	// A stranger is refused; members get in.
	if ev := eve.call("muc_join", map[string]any{"room": room, "nick": "eve"}); ev.boolean("ok") || errCondition(ev) != "registration-required" {
		t.Fatalf("eve joining a members-only room: %s, want registration-required", ev)
	}
	bj := bob.mustCall("muc_join", map[string]any{"room": room, "nick": "bob"})
	if bj.str("affiliation") != "member" || !slices.Contains(bj.strs("occupants"), "alice") {
		t.Fatalf("bob's join: %s", bj)
	}
	pb := mucPresence(alice, "bob", nil)
	if pb.obj("muc").str("jid") == "" || bareJID(pb.obj("muc").str("jid")) != "bob@localhost" {
		t.Errorf("non-anonymous room hides bob's real JID: %s", pb)
	}
	if pb.obj("muc").str("occupant_id") == "" {
		t.Errorf("no XEP-0421 occupant id in %s", pb)
	}

	// Messages reach every occupant with the room's stanza id.
	for i := range 3 {
		alice.mustCall("muc_send", map[string]any{"room": room, "body": fmt.Sprintf("msg %d", i)})
	}
	for i := range 3 {
		m := groupchat(bob, "alice", fmt.Sprintf("msg %d", i))
		if sid := m.obj("stanza_id"); sid == nil || sid.str("by") != room || sid.str("id") == "" {
			t.Errorf("groupchat without the room's stanza id: %s", m)
		}
		groupchat(alice, "alice", fmt.Sprintf("msg %d", i)) // the sender gets its reflection
	}

	// Subject, then carol joins asking for 2 stanzas of history.
	alice.mustCall("muc_subject", map[string]any{"room": room, "subject": "plans"})
	bob.expect("subject change", stepTimeout, func(ev event) bool {
		return ev.str("ev") == "message" && ev.str("subject") == "plans"
	})
	cj := carol.mustCall("muc_join", map[string]any{"room": room, "nick": "carol", "maxstanzas": 2})
	if got := cj.strs("history"); strings.Join(got, "|") != "msg 1|msg 2" {
		t.Errorf("carol's history %q, want the last 2 messages", got)
	}
	if cj.str("subject") != "plans" {
		t.Errorf("carol's subject %q, want plans", cj.str("subject"))
	}
	mucPresence(bob, "carol", nil)

	// Kick (307), then ban (301): a banned member cannot come back.
	alice.mustCall("muc_role", map[string]any{"room": room, "nick": "carol", "role": "none", "reason": "flood"})
	kicked := mucPresence(carol, "carol", func(ev event) bool { return ev.str("type") == "unavailable" })
	if !hasCode(kicked, 307) || !hasCode(kicked, 110) {
		t.Errorf("kick presence %s, want 307 and 110", kicked)
	}
	mucPresence(bob, "carol", func(ev event) bool { return ev.str("type") == "unavailable" && hasCode(ev, 307) })
	if ev := carol.call("muc_join", map[string]any{"room": room, "nick": "carol"}); !ev.boolean("ok") {
		t.Fatalf("a kicked member may rejoin: %s", ev)
	}
	alice.mustCall("muc_affiliation", map[string]any{"room": room, "jid": "carol@localhost", "affiliation": "outcast", "reason": "spam"})
	banned := mucPresence(carol, "carol", func(ev event) bool { return ev.str("type") == "unavailable" && hasCode(ev, 301) })
	if banned.obj("muc").str("affiliation") != "outcast" {
		t.Errorf("ban presence %s", banned)
	}
	if ev := carol.call("muc_join", map[string]any{"room": room, "nick": "carol"}); ev.boolean("ok") || errCondition(ev) != "forbidden" {
		t.Fatalf("banned carol rejoining: %s, want forbidden", ev)
	}

	// The room's archive, paged two at a time.
	pageBodies := func(c *client) []string {
		t.Helper()
		var bodies []string
		after := ""
		for range 10 {
			args := map[string]any{"to": room, "max": 2}
			if after != "" {
				args["after"] = after
			}
			page := c.mustCall("mam_query", args)
			for _, m := range page.objs("messages") {
				if m.str("body") != "" {
					bodies = append(bodies, m.str("body"))
				}
			}
			if page.boolean("complete") {
				return bodies
			}
			after = page.str("last")
		}
		t.Fatal("room archive paging did not complete")
		return nil
	}
	if got := pageBodies(bob); strings.Join(got, "|") != "msg 0|msg 1|msg 2" {
		t.Fatalf("room archive %q", got)
	}
	if ev := eve.call("mam_query", map[string]any{"to": room}); ev.boolean("ok") {
		t.Errorf("a non-member read a members-only room's archive: %s", ev)
	}

	// Restart: the room, its members, outcasts and archive survive.
	for _, c := range []*client{alice, bob, carol, eve} {
		c.quit()
	}
	srv.Stop()
	srv = srv.Restart()
	alice = login(t, srv, "alice@localhost/desk", "pw-a", opts)
	bob = login(t, srv, "bob@localhost/phone", "pw-b", opts)
	carol = login(t, srv, "carol@localhost/pc", "pw-c", opts)
	if got := pageBodies(bob); strings.Join(got, "|") != "msg 0|msg 1|msg 2" {
		t.Fatalf("room archive after restart %q", got)
	}
	if ev := bob.mustCall("muc_join", map[string]any{"room": room, "nick": "bob"}); ev.str("affiliation") != "member" || slices.Contains(codes(ev), 201) {
		t.Fatalf("bob's join after restart: %s (want member, room not created anew)", ev)
	}
	if ev := carol.call("muc_join", map[string]any{"room": room, "nick": "carol"}); ev.boolean("ok") {
		t.Fatalf("the ban did not survive the restart: %s", ev)
	}
	aj := alice.mustCall("muc_join", map[string]any{"room": room, "nick": "alice"})
	if aj.str("affiliation") != "owner" || aj.str("subject") != "plans" {
		t.Fatalf("alice's join after restart: %s", aj)
	}

	// Destroy with an alternate venue.
	alice.mustCall("muc_destroy", map[string]any{"room": room, "reason": "moving", "alt": "team2@conference.localhost"})
	gone := mucPresence(bob, "bob", func(ev event) bool { return ev.str("type") == "unavailable" })
	if gone.obj("muc").str("destroy_alt") != "team2@conference.localhost" {
		t.Errorf("destroy presence %s lacks the alternate venue", gone)
	}
}
