package e2e

// Stream management (XEP-0198) with a real client library: slixmpp's
// xep_0198 plugin enables resumption after binding and resumes by itself
// when it reconnects (py/sm_client.py).

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// smLogin starts py/sm_client.py as jid and waits for its session with
// stream management enabled; holdAcks starts it without answering the
// server's <r/>. It returns the client and the <enabled/> observation.
func smLogin(t *testing.T, srv *server, jid, password string, holdAcks bool) (*client, event) {
	t.Helper()
	args := []string{"--jid", jid, "--password", password, "--port", srv.C2SPort()}
	if holdAcks {
		args = append(args, "--hold-acks")
	}
	p := runPy(t, jid, "sm_client.py", args...)
	sess := p.expect("session_start", 25*time.Second, func(ev event) bool {
		return ev.str("ev") == "session_start" || ev.str("ev") == "failed_auth" || ev.str("ev") == "fatal"
	})
	if sess.str("ev") != "session_start" {
		t.Fatalf("%s: login failed: %s", jid, sess)
	}
	c := &client{pyProc: p, JID: sess.str("jid"), Session: sess}
	if r := p.expectEv("roster", nil); !r.boolean("ok") {
		t.Fatalf("%s: initial roster request failed: %s", jid, r)
	}
	p.expectEv("initial_presence_sent", nil)
	en := p.expectEv("sm_enabled", nil)
	if en.str("resume") != "true" || en.str("id") == "" {
		t.Fatalf("%s: stream management enabled without resumption: %s", jid, en)
	}
	return c, en
}

// waitAllAcked asks the server for an acknowledgement (XEP-0198 <r/>)
// until it has acknowledged every stanza c has sent.
func waitAllAcked(t *testing.T, c *client) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mustCall("request_ack", nil)
		st := c.mustCall("sm_state", nil)
		if st.num("last_ack") >= st.num("seq") && st.num("seq") > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the server acknowledged %v of %v stanzas", c.JID, st.num("last_ack"), st.num("seq"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits until the server has logged a line containing substr at
// least n times.
func waitLog(t *testing.T, srv *server, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for strings.Count(srv.stderr.String(), substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log %q %d time(s) within %v", substr, n, stepTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// messagesWithPrefix returns, in arrival order, the message events whose
// body starts with prefix among evs.
func messagesWithPrefix(evs []event, prefix string) []event {
	var out []event
	for _, ev := range evs {
		if ev.str("ev") == "message" && strings.HasPrefix(ev.str("body"), prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// checkExactlyOnceInOrder compares the bodies received with want and
// reports losses, duplicates and reordering.
func checkExactlyOnceInOrder(t *testing.T, who string, got []event, want []string) {
	t.Helper()
	var bodies []string
	count := map[string]int{}
	for _, ev := range got {
		bodies = append(bodies, ev.str("body"))
		count[ev.str("body")]++
	}
	var missing, dup []string
	for _, w := range want {
		switch n := count[w]; {
		case n == 0:
			missing = append(missing, w)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s ×%d", w, n))
		}
	}
	if len(missing) > 0 || len(dup) > 0 || strings.Join(bodies, ",") != strings.Join(want, ",") {
		t.Errorf("%s received %v\nwant exactly once, in order: %v\nmissing: %v\nduplicates: %v", who, bodies, want, missing, dup)
	}
}

// TestSMResumeAfterConnectionLoss: bob's TCP connection dies without a
// stream close while he has not acknowledged what he got; alice keeps
// sending while bob's session is detached; bob reconnects and slixmpp
// resumes. Bob ends up with every message exactly once, in order, and
// alice never sees him go offline.
func TestSMResumeAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	// Debug logging shows when the session detaches.
	srv := startServer(t, dir, "--log-level", "debug", "--resume-timeout", "120s")

	alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})
	bob, enabled := smLogin(t, srv, "bob@localhost/phone", "hunter2", true)
	// Directed presence: alice would be told if bob's session ended.
	bob.mustCall("presence", map[string]any{"to": alice.JID})
	alice.expectEv("presence", map[string]string{"from": bob.JID, "type": "available"})

	const total, beforeLoss = 10, 5
	var want []string
	for i := 1; i <= total; i++ {
		want = append(want, fmt.Sprintf("sm-%02d", i))
	}
	for _, body := range want[:beforeLoss] {
		alice.send("bob@localhost", body)
	}
	bob.expectMessage(want[beforeLoss-1])
	// The server asked for an ack and got none: what bob has is still
	// unacknowledged on the server when the connection dies.
	bob.expectEv("ack_withheld", nil)

	bob.mustCall("abort", nil)
	bob.expectEv("disconnected", nil)
	waitLog(t, srv, "session detached", 1)

	for _, body := range want[beforeLoss:] {
		alice.send("bob@localhost", body)
	}
	alice.mustCall("ping", map[string]any{"to": domain}) // the server has routed them

	bob.mustCall("hold_acks", map[string]any{"hold": false})
	bob.mustCall("reconnect", nil)
	res := bob.expect("session_resumed", stepTimeout, func(ev event) bool {
		switch ev.str("ev") {
		case "session_resumed", "sm_failed", "session_start":
			return true
		}
		return false
	})
	if res.str("ev") != "session_resumed" {
		t.Fatalf("bob did not resume: %s", res)
	}
	if res.str("previd") != enabled.str("id") {
		t.Errorf("resumed previd %q, want %q", res.str("previd"), enabled.str("id"))
	}
	bob.expectMessage(want[total-1])

	// Bob's session still works both ways.
	bob.send(alice.JID, "bob is back")
	alice.expectMessage("bob is back")
	// A ping round trip: anything the resumption sent twice would have
	// arrived before its answer.
	bob.mustCall("ping", map[string]any{"to": domain})

	checkExactlyOnceInOrder(t, "bob", messagesWithPrefix(bob.all(func(event) bool { return true }), "sm-"), want)
	if evs := bob.all(evMatch("session_start", nil)); len(evs) != 1 {
		t.Errorf("bob started %d sessions, want 1 (resumed, not rebound)", len(evs))
	}
	if evs := alice.all(evMatch("presence", map[string]string{"from": bob.JID, "type": "unavailable"})); len(evs) > 0 {
		t.Errorf("alice saw bob go unavailable while his session was detached: %v", evs)
	}
	if strings.Contains(srv.stderr.String(), "slow consumer") {
		t.Error("the server treated bob as a slow consumer")
	}

	bob.quit()
	alice.quit()
	srv.Stop()
}

// TestSMUnackedSurviveCrash: the server is killed while bob has messages
// he has not acknowledged; after the restart his resumption fails (the
// session died with the process), slixmpp binds a new session, and the
// unacknowledged messages come from the durable queue.
func TestSMUnackedSurviveCrash(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	srv := startServer(t, dir)

	// Alice uses stream management too: the server acknowledges her
	// messages once they are stored durably (recipients may have them
	// earlier), and only what it has acknowledged must survive the crash.
	alice, _ := smLogin(t, srv, "alice@localhost/desk", "secret", false)
	bob, enabled := smLogin(t, srv, "bob@localhost/phone", "hunter2", true)

	want := []string{"crash-1", "crash-2", "crash-3"}
	for _, body := range want {
		alice.send("bob@localhost", body)
	}
	bob.expectMessage(want[len(want)-1])
	bob.expectEv("ack_withheld", nil)
	before := messagesWithPrefix(bob.all(func(event) bool { return true }), "crash-")
	checkExactlyOnceInOrder(t, "bob before the crash", before, want)
	waitAllAcked(t, alice)

	srv.Kill()
	bob.expectEv("disconnected", nil)
	alice.expectEv("disconnected", nil)

	srv2 := srv.Restart()
	bob.mustCall("hold_acks", map[string]any{"hold": false})
	bob.mustCall("reconnect", map[string]any{"port": srv2.C2SPort()})
	failed := bob.expectEv("sm_failed", nil)
	if c := failed.str("condition"); c != "item-not-found" {
		t.Errorf("resumption after the crash failed with %q, want item-not-found", c)
	}
	sess := bob.expectEv("session_start", nil)
	if bareJID(sess.str("jid")) != "bob@localhost" {
		t.Fatalf("new session bound %q", sess.str("jid"))
	}
	bob.expectEv("initial_presence_sent", nil)
	en := bob.expectEv("sm_enabled", nil)
	if en.str("id") == "" || en.str("id") == enabled.str("id") {
		t.Errorf("new session's stream management id %q (old %q)", en.str("id"), enabled.str("id"))
	}
	bob.expectMessage(want[len(want)-1])
	bob.mustCall("ping", map[string]any{"to": domain})

	all := bob.all(func(event) bool { return true })
	restart := -1
	starts := 0
	for i, ev := range all {
		if ev.str("ev") == "session_start" {
			starts++
			if starts == 2 {
				restart = i
			}
		}
	}
	if restart < 0 {
		t.Fatal("no second session_start")
	}
	after := messagesWithPrefix(all[restart:], "crash-")
	checkExactlyOnceInOrder(t, "bob after the restart", after, want)
	for i, ev := range after {
		if !ev.has("delay") {
			t.Errorf("redelivered %s has no delay (not from the queue?): %s", ev.str("body"), ev)
		}
		if i < len(before) && ev.str("id") != before[i].str("id") {
			t.Errorf("redelivered %s has id %q, the original %q", ev.str("body"), ev.str("id"), before[i].str("id"))
		}
	}

	bob.quit()
	srv2.Stop()
}
