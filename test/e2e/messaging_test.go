package e2e

import (
	"testing"
	"time"
)

// Test 2: two online users exchange messages both ways; each arrives with
// the body intact and from = the sender's full JID.
func TestMessageExchange(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	srv := startServer(t, dir)

	alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
	bob := login(t, srv, "bob@localhost/phone", "hunter2", clientOpts{})

	// To the bare JID (routed to the available resource) ...
	alice.send("bob@localhost", "hello bob <&> ✓")
	m := bob.expectMessage("hello bob <&> ✓")
	assertMessage(t, m, alice.JID, "chat")

	// ... and to the full JID.
	bob.send(alice.JID, "hi alice, got it")
	m = alice.expectMessage("hi alice, got it")
	assertMessage(t, m, bob.JID, "chat")

	// Several in a row keep their order.
	bodies := []string{"one", "two", "three"}
	for _, b := range bodies {
		alice.send(bob.JID, b)
	}
	var last float64
	for _, b := range bodies {
		m := bob.expectMessage(b)
		assertMessage(t, m, alice.JID, "chat")
		ts, _ := m["t"].(float64)
		if ts < last {
			t.Errorf("message %q arrived out of order", b)
		}
		last = ts
	}

	// Nothing was bounced to either sender.
	for _, c := range []*client{alice, bob} {
		if errs := c.all(func(ev event) bool { return ev.str("ev") == "message" && ev.str("type") == "error" }); len(errs) > 0 {
			t.Errorf("%s received message errors: %v", c.name, errs)
		}
	}
	alice.quit()
	bob.quit()
	srv.Stop()
}

func assertMessage(t *testing.T, m event, from, typ string) {
	t.Helper()
	if m.str("from") != from {
		t.Errorf("message %q: from=%q, want sender's full JID %q", m.str("body"), m.str("from"), from)
	}
	if typ != "" && m.str("type") != typ {
		t.Errorf("message %q: type=%q, want %q", m.str("body"), m.str("type"), typ)
	}
	if m.has("error") {
		t.Errorf("message %q carries an error: %s", m.str("body"), m)
	}
}

// Test 8: a second login with the same full JID replaces the first: the
// first session gets a <conflict/> stream error and is disconnected, the
// second one works.
func TestResourceConflict(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	srv := startServer(t, dir)

	bob := login(t, srv, "bob@localhost/laptop", "hunter2", clientOpts{})
	first := login(t, srv, "alice@localhost/same", "secret", clientOpts{})
	if first.JID != "alice@localhost/same" {
		t.Fatalf("first session bound %q, want alice@localhost/same", first.JID)
	}
	second := login(t, srv, "alice@localhost/same", "secret", clientOpts{})
	if second.JID != "alice@localhost/same" {
		t.Fatalf("second session bound %q, want alice@localhost/same (the server must replace the old session, not rename the new one)", second.JID)
	}

	se := first.expectEv("stream_error", nil)
	if se.str("condition") != "conflict" {
		t.Errorf("first session got stream error %q, want conflict", se.str("condition"))
	}
	first.expectEv("disconnected", nil)
	first.expectExit(pyExitDisconnected, 10*time.Second)

	// The new session is fully functional in both directions.
	second.send("bob@localhost", "from the new session")
	m := bob.expectMessage("from the new session")
	assertMessage(t, m, "alice@localhost/same", "chat")
	bob.send("alice@localhost/same", "to the new session")
	assertMessage(t, second.expectMessage("to the new session"), bob.JID, "chat")
	second.mustCall("ping", map[string]any{"to": domain})

	if got := second.all(evMatch("stream_error", nil)); len(got) != 0 {
		t.Errorf("second session got a stream error: %v", got)
	}
	second.quit()
	bob.quit()
}
