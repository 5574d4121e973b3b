package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// befriend makes a and b share presence both ways through the RFC 6121
// handshake, and waits until both rosters say "both".
func befriend(t *testing.T, a, b *client) {
	t.Helper()
	aj, bj := bareJID(a.JID), bareJID(b.JID)
	a.mustCall("presence", map[string]any{"to": bj, "type": "subscribe"})
	b.expectEv("presence", map[string]string{"from": aj, "type": "subscribe"})
	b.mustCall("presence", map[string]any{"to": aj, "type": "subscribed"})
	b.mustCall("presence", map[string]any{"to": aj, "type": "subscribe"})
	a.expectEv("presence", map[string]string{"from": bj, "type": "subscribe"})
	a.mustCall("presence", map[string]any{"to": bj, "type": "subscribed"})
	for _, c := range []*client{a, b} {
		other := bj
		if c == b {
			other = aj
		}
		c.expect("roster both with "+other, stepTimeout, func(ev event) bool {
			if ev.str("ev") != "roster_push" {
				return false
			}
			for _, it := range ev.objs("items") {
				if it.str("jid") == other && it.str("subscription") == "both" {
					return true
				}
			}
			return false
		})
	}
}

// errCondition is the condition of a failed command's error.
func errCondition(ev event) string { return ev.obj("error").str("condition") }

// TestBlockedContactCannotReachUser is XEP-0191 end to end with slixmpp:
// alice blocks eve; eve's messages bounce with service-unavailable and
// never arrive, alice's to eve are refused with not-acceptable, and both
// flow again after unblocking.
func TestBlockedContactCannotReachUser(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "eve": "pw-e", "bob": "pw-b"})
	srv := startServer(t, dir)
	alice := login(t, srv, "alice@localhost/phone", "pw-a", clientOpts{extras: true})
	eve := login(t, srv, "eve@localhost/x", "pw-e", clientOpts{extras: true})
	bob := login(t, srv, "bob@localhost/y", "pw-b", clientOpts{extras: true})

	if got := alice.mustCall("blocklist", nil).strs("jids"); len(got) != 0 {
		t.Fatalf("fresh blocklist %q", got)
	}
	alice.mustCall("block", map[string]any{"jids": []string{"eve@localhost"}})
	if got := alice.mustCall("blocklist", nil).strs("jids"); len(got) != 1 || got[0] != "eve@localhost" {
		t.Fatalf("blocklist after block %q", got)
	}

	eve.send("alice@localhost", "let me in")
	bounce := eve.expect("error reply from alice", stepTimeout, func(ev event) bool {
		return ev.str("ev") == "message" && ev.str("type") == "error" && bareJID(ev.str("from")) == "alice@localhost"
	})
	if errs := bounce.strs("error"); len(errs) == 0 || errs[0] != "service-unavailable" {
		t.Errorf("eve's bounce carries %q, want service-unavailable", errs)
	}
	alice.mustCall("send", map[string]any{"to": "eve@localhost", "body": "go away"})
	refused := alice.expect("refusal to message a blocked JID", stepTimeout, func(ev event) bool {
		return ev.str("ev") == "message" && ev.str("type") == "error"
	})
	if errs := refused.strs("error"); len(errs) == 0 || errs[0] != "not-acceptable" {
		t.Errorf("alice's refusal carries %q, want not-acceptable (+blocked)", errs)
	}
	// Others still reach alice, and eve's message was not delivered late.
	bob.send("alice@localhost", "hello from bob")
	alice.expectMessage("hello from bob")
	alice.expectNoMessage("let me in", 300*time.Millisecond)
	eve.expectNoMessage("go away", 10*time.Millisecond)

	alice.mustCall("unblock", map[string]any{"jids": []string{}})
	eve.send("alice@localhost", "friends again")
	alice.expectMessage("friends again")
}

// TestMultiDeviceHistory is issue #3's multi-device story with slixmpp:
// two resources of alice see carbons of each other's conversations, a
// third logs in later and pages the whole conversation out of the archive.
func TestMultiDeviceHistory(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	srv := startServer(t, dir)
	phone := login(t, srv, "alice@localhost/phone", "pw-a", clientOpts{extras: true})
	desk := login(t, srv, "alice@localhost/desk", "pw-a", clientOpts{extras: true})
	bob := login(t, srv, "bob@localhost/laptop", "pw-b", clientOpts{extras: true})
	phone.mustCall("carbons_enable", nil)
	desk.mustCall("carbons_enable", nil)

	// bob writes to alice's phone: the desk gets a received carbon.
	bob.send(phone.JID, "to your phone")
	phone.expectMessage("to your phone")
	rc := desk.expectEv("carbon", map[string]string{"kind": "received", "body": "to your phone"})
	if rc.str("from") != "alice@localhost" || rc.str("inner_from") != bob.JID {
		t.Errorf("received carbon %s: want from alice's bare JID, forwarding bob's message", rc)
	}
	// The phone answers: the desk gets a sent carbon.
	phone.send("bob@localhost", "reply from phone")
	bob.expectMessage("reply from phone")
	sc := desk.expectEv("carbon", map[string]string{"kind": "sent", "body": "reply from phone"})
	if sc.str("inner_to") != "bob@localhost" {
		t.Errorf("sent carbon %s: want the message to bob", sc)
	}

	// A conversation of 2 + 25 messages, then a third device appears.
	const n = 25
	for i := range n {
		bob.send("alice@localhost", fmt.Sprintf("history %02d", i))
	}
	for i := range n {
		phone.expectMessage(fmt.Sprintf("history %02d", i))
	}
	tablet := login(t, srv, "alice@localhost/tablet", "pw-a", clientOpts{extras: true, noPresence: true})
	var bodies []string
	after := ""
	pages := 0
	for {
		args := map[string]any{"with": "bob@localhost", "max": 10}
		if after != "" {
			args["after"] = after
		}
		page := tablet.mustCall("mam_query", args)
		pages++
		for _, m := range page.objs("messages") {
			if m.str("id") == "" || m.str("stamp") == "" {
				t.Errorf("archived message without id or delay stamp: %s", m)
			}
			bodies = append(bodies, m.str("body"))
		}
		if page.boolean("complete") {
			if page.str("count") != "" && page.str("count") != fmt.Sprint(n+2) {
				t.Errorf("RSM count %s, want %d", page.str("count"), n+2)
			}
			break
		}
		after = page.str("last")
		if after == "" || pages > 10 {
			t.Fatalf("paging stuck: %s", page)
		}
	}
	want := []string{"to your phone", "reply from phone"}
	for i := range n {
		want = append(want, fmt.Sprintf("history %02d", i))
	}
	if strings.Join(bodies, "|") != strings.Join(want, "|") {
		t.Fatalf("archive pages gave %q\nwant %q", bodies, want)
	}
	if pages != 3 {
		t.Errorf("%d pages of max 10 for %d messages, want 3", pages, n+2)
	}
	// The last page, newest first from the end (RSM <before/>).
	last := tablet.mustCall("mam_query", map[string]any{"max": 5, "before": ""})
	var lastBodies []string
	for _, m := range last.objs("messages") {
		lastBodies = append(lastBodies, m.str("body"))
	}
	if strings.Join(lastBodies, "|") != strings.Join(want[len(want)-5:], "|") {
		t.Errorf("last page %q, want %q", lastBodies, want[len(want)-5:])
	}
}

// TestPEPDeviceList: alice publishes her OMEMO device list (open access);
// bob, her contact, announces devicelist+notify and is notified, and also
// fetches it; a stranger can fetch it because the node is open.
func TestPEPDeviceList(t *testing.T) {
	t.Parallel()
	requirePython(t)
	const node = "eu.siacs.conversations.axolotl.devicelist"
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"})
	srv := startServer(t, dir)
	alice := login(t, srv, "alice@localhost/phone", "pw-a", clientOpts{extras: true, notify: []string{node}})
	bob := login(t, srv, "bob@localhost/laptop", "pw-b", clientOpts{extras: true, notify: []string{node}})
	carol := login(t, srv, "carol@localhost/x", "pw-c", clientOpts{extras: true})
	befriend(t, alice, bob)

	list := `<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/></list>`
	alice.mustCall("pep_publish", map[string]any{"node": node, "item_id": "current", "payload": list,
		"options": map[string]string{"pubsub#access_model": "open"}})
	ev := bob.expectEv("pep_event", map[string]string{"from": "alice@localhost", "node": node})
	items := ev.objs("items")
	if len(items) != 1 || items[0].str("id") != "current" || !strings.Contains(strings.Join(items[0].strs("xml"), ""), "12345") {
		t.Fatalf("bob's notification %s", ev)
	}
	for _, c := range []*client{bob, carol} {
		got := c.mustCall("pep_items", map[string]any{"jid": "alice@localhost", "node": node}).objs("items")
		if len(got) != 1 || !strings.Contains(strings.Join(got[0].strs("xml"), ""), "12345") {
			t.Errorf("%s fetched %v", c.name, got)
		}
	}
	// carol announced no interest and is no contact: no notification.
	if _, ok := carol.find(300*time.Millisecond, evMatch("pep_event", nil)); ok {
		t.Error("carol got a PEP notification without +notify or a subscription")
	}
	// A device that logs in later with +notify gets the last item at once.
	bob2 := login(t, srv, "bob@localhost/tablet", "pw-b", clientOpts{extras: true, notify: []string{node}})
	bob2.expectEv("pep_event", map[string]string{"from": "alice@localhost", "node": node})
}

// TestCSIHoldsPresenceSlixmpp: with slixmpp, an inactive client gets a
// contact's messages at once but the contact's presence only when active.
func TestCSIHoldsPresenceSlixmpp(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	srv := startServer(t, dir)
	alice := login(t, srv, "alice@localhost/phone", "pw-a", clientOpts{extras: true})
	bob := login(t, srv, "bob@localhost/laptop", "pw-b", clientOpts{extras: true})
	befriend(t, alice, bob)

	bob.mustCall("csi", map[string]any{"state": "inactive"})
	bob.mustCall("ping", nil) // the server has taken <inactive/> before what follows
	alice.mustCall("presence", map[string]any{"show": "away", "status": "first"})
	alice.mustCall("presence", map[string]any{"show": "dnd", "status": "latest"})
	alice.send("bob@localhost", "urgent")
	bob.expectMessage("urgent")
	if ev, ok := bob.find(300*time.Millisecond, func(ev event) bool {
		return ev.str("ev") == "presence" && bareJID(ev.str("from")) == "alice@localhost" && ev.str("status") != ""
	}); ok {
		t.Fatalf("inactive client got presence %s", ev)
	}
	bob.mustCall("csi", map[string]any{"state": "active"})
	got := bob.expect("held presence", stepTimeout, func(ev event) bool {
		return ev.str("ev") == "presence" && bareJID(ev.str("from")) == "alice@localhost" && ev.str("status") != ""
	})
	if got.str("status") != "latest" || got.str("show") != "dnd" {
		t.Errorf("after <active/> bob got %s, want only the latest presence", got)
	}
	if ev, ok := bob.find(300*time.Millisecond, func(ev event) bool {
		return ev.str("ev") == "presence" && ev.str("status") == "first"
	}); ok {
		t.Errorf("superseded presence delivered: %s", ev)
	}
}
