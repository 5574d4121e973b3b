package e2e

import (
	"testing"
	"time"
)

// Test 4: offline storage (XEP-0160): a message to an offline user is stored
// and delivered, with a XEP-0203 <delay/>, when the user sends initial
// presence - also across a graceful restart and across a crash.
func TestOfflineMessages(t *testing.T) {
	t.Parallel()
	requirePython(t)

	t.Run("delivered_on_initial_presence", func(t *testing.T) {
		t.Parallel()
		dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
		srv := startServer(t, dir)

		alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
		sent := time.Now()
		alice.send("bob@localhost", "while you were out")
		alice.mustCall("ping", map[string]any{"to": domain}) // the server has processed the message

		// bob connects but is not available yet: nothing may be delivered.
		bob := login(t, srv, "bob@localhost/phone", "hunter2", clientOpts{noPresence: true})
		bob.mustCall("ping", map[string]any{"to": domain})
		bob.expectNoMessage("while you were out", time.Second)

		// Initial presence triggers delivery.
		bob.mustCall("presence", nil)
		m := bob.expectMessage("while you were out")
		assertOfflineMessage(t, m, alice.JID, sent, time.Now())

		// A live message afterwards carries no delay.
		alice.send("bob@localhost", "now you are here")
		live := bob.expectMessage("now you are here")
		assertMessage(t, live, alice.JID, "chat")
		if live.has("delay") {
			t.Errorf("live message carries a delay: %s", live)
		}
		bob.quit()

		// Delivered means removed: a new login does not get it again.
		bob2 := login(t, srv, "bob@localhost/phone", "hunter2", clientOpts{})
		bob2.expectNoMessage("while you were out", 1500*time.Millisecond)
		bob2.quit()
		alice.quit()
		srv.Stop()
	})

	t.Run("survives_graceful_restart", func(t *testing.T) {
		t.Parallel()
		dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
		srv := startServer(t, dir)

		alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
		sent := time.Now()
		alice.send("bob@localhost", "stored before SIGTERM")
		alice.mustCall("ping", map[string]any{"to": domain})

		// SIGTERM with alice still connected: the server closes her
		// session and exits 0.
		srv.Stop()
		alice.expectEv("disconnected", nil)
		alice.expectExit(pyExitDisconnected, 10*time.Second)

		srv2 := srv.Restart()
		bob := login(t, srv2, "bob@localhost/phone", "hunter2", clientOpts{})
		m := bob.expectMessage("stored before SIGTERM")
		assertOfflineMessage(t, m, alice.JID, sent, time.Now())
		bob.quit()
		srv2.Stop()
	})

	t.Run("survives_crash", func(t *testing.T) {
		t.Parallel()
		dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
		srv := startServer(t, dir)

		alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
		sent := time.Now()
		alice.send("bob@localhost", "stored before SIGKILL")
		alice.mustCall("ping", map[string]any{"to": domain})
		// The message was sent more than a second before the crash.
		time.Sleep(time.Until(sent.Add(1500 * time.Millisecond)))
		srv.Kill()
		alice.expectEv("disconnected", nil)

		srv2 := srv.Restart()
		bob := login(t, srv2, "bob@localhost/phone", "hunter2", clientOpts{})
		m := bob.expectMessage("stored before SIGKILL")
		assertOfflineMessage(t, m, alice.JID, sent, time.Now())
		bob.quit()
		srv2.Stop()
	})
}

// assertOfflineMessage checks sender, body and a server-stamped XEP-0203
// delay between the send and the delivery.
func assertOfflineMessage(t *testing.T, m event, from string, sent, received time.Time) {
	t.Helper()
	assertMessage(t, m, from, "chat")
	d := m.obj("delay")
	if d == nil {
		t.Fatalf("offline message without <delay xmlns='urn:xmpp:delay'/>: %s", m)
	}
	stamp, err := time.Parse(time.RFC3339Nano, d.str("stamp"))
	if err != nil {
		t.Fatalf("delay stamp %q is not a XEP-0082 DateTime: %v", d.str("stamp"), err)
	}
	if z := d.str("stamp"); z[len(z)-1] != 'Z' {
		t.Errorf("delay stamp %q must be UTC with the Z suffix (XEP-0203)", z)
	}
	// Stamps may be truncated to whole seconds.
	if stamp.Before(sent.Add(-2*time.Second)) || stamp.After(received.Add(time.Second)) {
		t.Errorf("delay stamp %s is not between send (%s) and delivery (%s)", stamp, sent.UTC(), received.UTC())
	}
	if f := d.str("from"); f != "" && f != domain && bareJID(f) != bareJID(from) {
		t.Errorf("delay from=%q, want the server (%s) or the original sender", f, domain)
	}
}
