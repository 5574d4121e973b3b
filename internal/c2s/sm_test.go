package c2s_test

// Stream management (XEP-0198): counting, acknowledgements and the durable
// queue, detaching on connection loss, resumption, expiry.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/xmlcodec"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const (
	smEnable       = `<enable xmlns='urn:xmpp:sm:3'/>`
	smEnableResume = `<enable xmlns='urn:xmpp:sm:3' resume='true'/>`
	smR            = `<r xmlns='urn:xmpp:sm:3'/>`
	rosterGet      = `<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>`
	bobPhone       = "bob@example.com/phone"
	aliceDesk      = "alice@example.com/desk"
)

func smA(h uint32) string { return fmt.Sprintf(`<a xmlns='urn:xmpp:sm:3' h='%d'/>`, h) }

func smResume(previd string, h uint32) string {
	return fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>`, previd, h)
}

func smFailedWith(cond string) string {
	return `<failed xmlns='urn:xmpp:sm:3'><` + cond + ` xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`
}

func chatTo(to, body string) string {
	return `<message to='` + to + `' type='chat'><body>` + body + `</body></message>`
}

// newSMEnv is an environment with alice, bob and carol; resume > 0 makes
// sessions resumable with that timeout, maxUnacked > 0 bounds unacked
// stanzas.
func newSMEnv(t *testing.T, resume time.Duration, maxUnacked int) *env {
	t.Helper()
	e := newEnv(t, envOpts{})
	if resume > 0 {
		e.cfg.Resume = c2s.NewResumer(resume, 0)
	}
	e.cfg.MaxUnacked = maxUnacked
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	e.addUser("carol", "pw")
	return e
}

// endForGood ends c's session at cleanup without leaving it detached (a
// detached session would keep a resumption timer running past the test,
// after the store has closed). Registered after newClient's cleanup, so
// it runs first: Kick ends a detached session at once and makes an
// attached one close without detaching, and the harness's End then
// releases it.
func endForGood(c *client) {
	c.t.Cleanup(func() { c.s.Kick(nil) })
}

func smOnline(e *env, user, pass, resource string, presence bool) *client {
	e.t.Helper()
	c := e.online(user, pass, resource, presence)
	endForGood(c)
	return c
}

// smNewClient is newClient for a client that will resume or bind itself.
func smNewClient(e *env, ip string) *client {
	c := e.newClient(ip, false)
	endForGood(c)
	return c
}

// enableSM enables stream management and returns the resumption id ("" if
// not resumable); wantResume is whether the server must offer resumption.
func enableSM(t *testing.T, c *client, resume, wantResume bool) string {
	t.Helper()
	in := smEnable
	if resume {
		in = smEnableResume
	}
	out := c.feed(in)
	els, err := parseElements(out)
	if err != nil {
		t.Fatalf("enable: %v: %q", err, out)
	}
	for _, el := range els {
		if el.Name != "enabled" || el.NS != c2s.NSSM {
			continue
		}
		id := el.Attr("id")
		if got := el.Attr("resume") == "true"; got != wantResume || (id != "") != wantResume {
			t.Fatalf("enabled %q: resumable = %v with id %q, want %v", out, got, id, wantResume)
		}
		return id
	}
	t.Fatalf("no <enabled/> in %q", out)
	return ""
}

// bodies returns the bodies of the messages in out, in order.
func bodies(t *testing.T, out string) []string {
	t.Helper()
	els, err := parseElements(out)
	if err != nil {
		t.Fatalf("parse %q: %v", out, err)
	}
	var b []string
	for _, el := range els {
		if el.Name == "message" {
			b = append(b, el.ChildText("body", stanza.NSClient))
		}
	}
	return b
}

// countStanzas counts the stanzas (not nonzas) in out.
func countStanzas(t *testing.T, out string) int {
	t.Helper()
	els, err := parseElements(out)
	if err != nil {
		t.Fatalf("parse %q: %v", out, err)
	}
	n := 0
	for _, el := range els {
		if el.IsStanza() {
			n++
		}
	}
	return n
}

// ackBarrier returns once every queue acknowledgement made before it has
// been applied to the store: the router's acker applies batches in order
// on one goroutine, so once an acknowledgement of carol's made after a
// whole earlier batch was taken is applied, that batch is too. Two rounds,
// since the first may share its batch with earlier acknowledgements and
// be applied before them.
func ackBarrier(t *testing.T, e *env, sender, carol *client) {
	t.Helper()
	for i := range 2 {
		body := fmt.Sprintf("barrier-%d", i)
		sender.feed(chatTo(carol.jid, body))
		carol.waitOutput(body + "</body>")
		waitDepth(t, e, "carol", 0)
	}
}

func depth(t *testing.T, e *env, user string) int {
	t.Helper()
	d, err := e.st.Depth(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitUnavailable waits for an unavailable presence and returns its start tag.
func waitUnavailable(c *client) string {
	c.t.Helper()
	got := c.waitOutput("type='unavailable'")
	got += c.waitOutput(">")
	return got[strings.LastIndex(got, "<presence"):]
}

// lose simulates the loss of c's connection: the transport fails and its
// reader ends the session.
func lose(c *client) {
	_ = c.tr.Close()
	c.s.End()
}

// TestSMTable feeds stream management nonzas to sessions in a given state.
func TestSMTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		resume bool // a Resumer is configured
		state  string
		in     string
		want   []string
		not    []string
		closed bool
	}{
		{
			name: "enable before bind is unexpected-request", state: stAuthed,
			in:   smEnable,
			want: []string{smFailedWith("unexpected-request")},
			not:  []string{"<enabled", "stream:error"},
		},
		{
			name: "resumable enable before bind is unexpected-request", resume: true, state: stAuthed,
			in:   smEnableResume,
			want: []string{smFailedWith("unexpected-request")},
			not:  []string{"<enabled", "stream:error"},
		},
		{
			name: "enable twice is refused the second time", state: stBound,
			in:   smEnable + smEnable,
			want: []string{`<enabled xmlns='urn:xmpp:sm:3'/>`, smFailedWith("unexpected-request")},
			not:  []string{"stream:error"},
		},
		{
			name: "enable twice with resumption is refused the second time", resume: true, state: stBound,
			in:   smEnableResume + smEnableResume,
			want: []string{`<enabled xmlns='urn:xmpp:sm:3' id='`, `resume='true'`, `max='60'/>`, smFailedWith("unexpected-request")},
			not:  []string{"stream:error"},
		},
		{
			name: "resume asked without a resumer is plain enabled", state: stBound,
			in:   smEnableResume,
			want: []string{`<enabled xmlns='urn:xmpp:sm:3'/>`},
			not:  []string{"resume=", "id=", "stream:error"},
		},
		{
			name: "r right after enable is h=0", state: stBound,
			in:   rosterGet + smEnable + smR,
			want: []string{`<enabled xmlns='urn:xmpp:sm:3'/>`, smA(0)},
		},
		{
			name: "r counts only stanzas handled after enable", state: stBound,
			in:   rosterGet + rosterGet + smEnable + rosterGet + rosterGet + rosterGet + smR,
			want: []string{`<enabled xmlns='urn:xmpp:sm:3'/>`, smA(3)},
			not:  []string{"stream:error"},
		},
		{
			name: "nonzas are not counted", state: stBound,
			in:   smEnable + rosterGet + smR + smR,
			want: []string{smA(1), smA(1)},
		},
		{
			name: "a write carrying stanzas asks for an ack", state: stBound,
			in:   smEnable + rosterGet,
			want: []string{`<enabled xmlns='urn:xmpp:sm:3'/>`, `</iq>` + smR},
		},
		{
			name: "a write without new stanzas does not ask for an ack", state: stBound,
			in:   smEnable + smR,
			want: []string{smA(0)},
			not:  []string{smR},
		},
		{
			name: "r before enable is a stream error", state: stBound,
			in:     smR,
			want:   []string{streamError("unsupported-stanza-type"), streamEnd},
			closed: true,
		},
		{
			name: "a with h larger than sent is undefined-condition", state: stBound,
			in:     smEnable + smA(1),
			want:   []string{`<enabled xmlns='urn:xmpp:sm:3'/>`, streamError("undefined-condition"), streamEnd},
			closed: true,
		},
		{
			name: "a with h larger than sent after stanzas", state: stBound,
			in:     smEnable + rosterGet + rosterGet + smA(3),
			want:   []string{streamError("undefined-condition"), streamEnd},
			closed: true,
		},
		{
			name: "a with h beyond uint32 is invalid", state: stBound,
			in:     smEnable + `<a xmlns='urn:xmpp:sm:3' h='4294967296'/>`,
			want:   []string{streamError("invalid-xml"), streamEnd},
			closed: true,
		},
		{
			name: "a matching what was sent is fine", state: stBound,
			in:  smEnable + rosterGet + rosterGet + smA(2),
			not: []string{"stream:error"},
		},
		{
			name: "resume after bind is unexpected-request", resume: true, state: stBound,
			in:   smResume("whatever", 0),
			want: []string{smFailedWith("unexpected-request")},
			not:  []string{"<resumed", "stream:error"},
		},
		{
			name: "resume with an unknown id is item-not-found", resume: true, state: stAuthed,
			in:   smResume("no-such-session", 0),
			want: []string{smFailedWith("item-not-found")},
			not:  []string{"<resumed", "stream:error"},
		},
		{
			name: "resume without a resumer is item-not-found", state: stAuthed,
			in:   smResume("no-such-session", 0),
			want: []string{smFailedWith("item-not-found")},
			not:  []string{"<resumed", "stream:error"},
		},
		{
			name: "resume with a bad h is bad-request", resume: true, state: stAuthed,
			in:   `<resume xmlns='urn:xmpp:sm:3' previd='x' h='minus one'/>`,
			want: []string{smFailedWith("bad-request")},
			not:  []string{"<resumed", "stream:error"},
		},
		{
			name: "unknown sm nonza is unsupported-stanza-type", state: stBound,
			in:     `<frobnicate xmlns='urn:xmpp:sm:3'/>`,
			want:   []string{streamError("unsupported-stanza-type"), streamEnd},
			closed: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			if tc.resume {
				e.cfg.Resume = c2s.NewResumer(time.Minute, 0)
			}
			e.addUser("alice", "secret")
			c := e.newClient("192.0.2.1", false)
			endForGood(c)
			reach(t, c, tc.state)
			out := normalize(c.feed(tc.in))
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order)\noutput: %s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q\noutput: %s", n, out)
				}
			}
			if got := c.tr.isClosed(); got != tc.closed {
				t.Errorf("transport closed = %v, want %v\noutput: %s", got, tc.closed, out)
			}
			if tc.closed && c.err == nil {
				t.Errorf("Feed returned nil, want an error for an ended stream")
			}
			if !tc.closed && c.err != nil {
				t.Errorf("Feed: %v", c.err)
			}
			if tc.closed {
				// A stream ended by an error never detaches.
				if s := e.r.Session(mustJID(t, "alice@example.com/desk")); s != nil {
					t.Errorf("session still bound after a stream error: %v", s)
				}
			}
		})
	}
}

// TestSMEnableBeforeBindThenBind: the refused enable leaves the stream
// usable; binding and enabling then work.
func TestSMEnableBeforeBindThenBind(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	c := smNewClient(e, "192.0.2.1")
	c.login("bob", "hunter2")
	if out := c.feed(smEnableResume); out != smFailedWith("unexpected-request") {
		t.Fatalf("enable before bind: %q", out)
	}
	c.bind("phone")
	enableSM(t, c, true, true)
}

// TestSMAckReleasesQueue: a message delivered to a session with stream
// management stays in the durable queue after it is written, until the
// client acknowledges it; each <a/> releases exactly the stanzas it
// covers.
func TestSMAckReleasesQueue(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 0, 0)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, bob, false, false)
	carol := smOnline(e, "carol", "pw", "pad", true)
	alice := smOnline(e, "alice", "secret", "desk", true)

	alice.feed(chatTo(bobPhone, "one"))
	alice.feed(chatTo(bobPhone, "two"))
	got := bob.waitOutput("two</body>")
	got += bob.waitOutput(smR)
	if b := bodies(t, got); len(b) != 2 || b[0] != "one" || b[1] != "two" {
		t.Fatalf("bob got %q", got)
	}
	if !strings.Contains(got, "</message>"+smR) {
		t.Errorf("no <r/> in the write carrying the messages: %q", got)
	}
	if n := countStanzas(t, got); n != 2 {
		t.Fatalf("bob got %d stanzas since enable, want 2: %q", n, got)
	}
	// Written, not acknowledged: both stay queued.
	waitIdle(t, bob.s)
	ackBarrier(t, e, alice, carol)
	if d := depth(t, e, "bob"); d != 2 {
		t.Fatalf("bob's queue depth = %d after the write, want 2 (nothing acknowledged yet)", d)
	}
	if st := c2s.SMState(bob.s); st.Unacked != 2 || st.Out != 2 {
		t.Fatalf("SM state %+v, want 2 out, 2 unacked", st)
	}

	if out := bob.feed(smA(1)); out != "" {
		t.Fatalf("a h=1: %q", out)
	}
	waitDepth(t, e, "bob", 1)
	ackBarrier(t, e, alice, carol)
	if d := depth(t, e, "bob"); d != 1 {
		t.Fatalf("bob's queue depth = %d after acknowledging one of two, want 1", d)
	}
	if st := c2s.SMState(bob.s); st.Unacked != 1 || st.Acked != 1 {
		t.Fatalf("SM state %+v, want acked 1, 1 unacked", st)
	}
	bob.feed(smA(2))
	waitDepth(t, e, "bob", 0)
	if st := c2s.SMState(bob.s); st.Unacked != 0 || st.Acked != 2 {
		t.Fatalf("SM state %+v, want acked 2, none unacked", st)
	}
	// Acknowledging the same count again is harmless.
	if out := bob.feed(smA(2)); out != "" || bob.err != nil {
		t.Fatalf("repeated a h=2: %q (%v)", out, bob.err)
	}
}

// TestSMCountersWrap: both counters are modulo 2^32 (XEP-0198 §5).
func TestSMCountersWrap(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 0, 0)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	alice := smOnline(e, "alice", "secret", "desk", true)
	enableSM(t, bob, false, false)
	const start = 1<<32 - 2
	c2s.SetSMCounters(bob.s, start, start)

	// Outbound: four stanzas take the count from 2^32-2 through 0 to 2.
	for i := 1; i <= 4; i++ {
		alice.feed(chatTo(bobPhone, fmt.Sprintf("w%d", i)))
	}
	bob.waitOutput("w4</body>")
	waitIdle(t, bob.s)
	bob.take()
	if st := c2s.SMState(bob.s); st.Out != 2 || st.Unacked != 4 {
		t.Fatalf("after 4 stanzas from 2^32-2: %+v, want out 2 and 4 unacked", st)
	}
	if d := depth(t, e, "bob"); d != 4 {
		t.Fatalf("depth %d, want 4", d)
	}
	// h=0 covers the two sent before and at the wrap.
	if out := bob.feed(smA(0)); out != "" || bob.err != nil {
		t.Fatalf("a h=0 after the wrap: %q (%v)", out, bob.err)
	}
	waitDepth(t, e, "bob", 2)
	if st := c2s.SMState(bob.s); st.Unacked != 2 || st.Acked != 0 {
		t.Fatalf("after a h=0: %+v, want acked 0 and 2 unacked", st)
	}
	bob.feed(smA(2))
	waitDepth(t, e, "bob", 0)

	// Inbound: three stanzas take the handled count to 1.
	for i := range 3 {
		bob.feed(chatTo(aliceDesk, fmt.Sprintf("in%d", i)))
	}
	// Answered once the three are stored: during Feed or just after.
	out := bob.feed(smR)
	if out == "" {
		out = bob.waitOutput("/>")
	}
	if out != smA(1) {
		t.Fatalf("r after 3 stanzas from 2^32-2: %q, want %q", out, smA(1))
	}
	// Past what was sent, across the wrap: an error.
	out = bob.feed(smA(3))
	if !strings.Contains(out, streamError("undefined-condition")) || !bob.tr.isClosed() {
		t.Fatalf("a h=3 with 2 sent: %q", out)
	}
}

// TestSMDetachAndResume: a resumable session whose connection is lost
// stays bound and keeps what it is sent; a new connection resumes it with
// <resume/>, gets <resumed h/> with the server's inbound count, and every
// stanza the client had not acknowledged, in order; the router then points
// at the new session and nobody saw the old one go unavailable.
func TestSMDetachAndResume(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	// Directed presence: alice would be told if bob's session ended.
	bob.feed(`<presence to='` + aliceDesk + `'/>`)
	alice.waitOutput("<presence")
	id := enableSM(t, bob, true, true)

	// Two stanzas from bob after enable: the inbound count is 2.
	bob.feed(chatTo(aliceDesk, "from bob 1"))
	bob.feed(chatTo(aliceDesk, "from bob 2"))
	alice.waitOutput("from bob 2")

	alice.feed(chatTo(bobPhone, "m1"))
	alice.feed(chatTo(bobPhone, "m2"))
	bob.waitOutput("m2</body>")
	bob.feed(smA(1)) // m1 handled, m2 not
	waitDepth(t, e, "bob", 1)

	lose(bob)
	if st := c2s.SMState(bob.s); !st.Detached || st.Unacked != 1 {
		t.Fatalf("after the connection loss: %+v, want detached with 1 unacked", st)
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != bob.s {
		t.Fatalf("router has %v for bob/phone while detached, want the detached session", s)
	}
	// Sent while detached: kept for the client.
	alice.feed(chatTo(bobPhone, "m3"))
	if st := c2s.SMState(bob.s); st.Unacked != 2 {
		t.Fatalf("detached session keeps %d stanzas, want 2", st.Unacked)
	}
	if d := depth(t, e, "bob"); d != 2 {
		t.Fatalf("depth %d while detached, want 2", d)
	}
	before, _, _ := bob.tr.snapshot()

	nb := smNewClient(e, "192.0.2.9")
	nb.login("bob", "hunter2")
	out := nb.feed(smResume(id, 1))
	wantResumed := `<resumed xmlns='urn:xmpp:sm:3' h='2' previd='` + id + `'/>`
	if !strings.HasPrefix(out, wantResumed) {
		t.Fatalf("resume: %q, want it to start with %q", out, wantResumed)
	}
	if b := bodies(t, out); len(b) != 2 || b[0] != "m2" || b[1] != "m3" {
		t.Fatalf("resent after resumption: %q, want m2 then m3 (m1 was acknowledged)", b)
	}
	if !strings.HasSuffix(out, smR) {
		t.Errorf("resent stanzas without an ack request: %q", out)
	}
	if !nb.s.Authenticated() || nb.s.JID().String() != bobPhone {
		t.Fatalf("resumed session: authenticated %v, JID %q", nb.s.Authenticated(), nb.s.JID())
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != nb.s {
		t.Fatalf("router has %v for bob/phone after resumption, want the new session", s)
	}
	if n := e.r.SessionCount(); n != 2 {
		t.Fatalf("SessionCount = %d, want 2", n)
	}
	if st := c2s.SMState(nb.s); !st.Enabled || !st.Resumable || st.Out != 3 || st.Acked != 1 || st.Unacked != 2 {
		t.Fatalf("resumed session state %+v, want enabled, resumable, out 3, acked 1, 2 unacked", st)
	}
	if st := c2s.SMState(bob.s); st.Detached || st.Unacked != 0 {
		t.Fatalf("old session after resumption: %+v", st)
	}
	if bob.s.Deliver(stanza.New("message", stanza.NSClient), nil) {
		t.Error("Deliver to the old, resumed session returned true")
	}
	if after, _, _ := bob.tr.snapshot(); after != before {
		t.Errorf("the old transport was written to after it was lost: %q", after[len(before):])
	}

	// Counting goes on: the client acknowledges both, the queue empties.
	nb.feed(smA(3))
	waitDepth(t, e, "bob", 0)
	alice.feed(chatTo(bobPhone, "m4"))
	nb.waitOutput("m4</body>")
	nb.waitOutput(smR)
	if out := nb.feed(smR); out != smA(2) {
		t.Fatalf("r after resumption: %q, want %q", out, smA(2))
	}
	nb.feed(smA(4))
	waitDepth(t, e, "bob", 0)

	// Nobody was told bob left: a marker from the resumed session reaches
	// alice with no unavailable presence before it.
	nb.feed(chatTo(aliceDesk, "marker"))
	got := alice.waitOutput("marker")
	if strings.Contains(got, "unavailable") {
		t.Errorf("alice saw bob go unavailable during detach/resume: %q", got)
	}
	if !nb.s.Available() {
		t.Error("resumed session is not available")
	}

	// The resumed session is resumable in turn, under the same id.
	lose(nb)
	nb2 := smNewClient(e, "192.0.2.10")
	nb2.login("bob", "hunter2")
	if out := nb2.feed(smResume(id, 4)); !strings.HasPrefix(out, `<resumed xmlns='urn:xmpp:sm:3' h='3' previd='`+id+`'/>`) {
		t.Fatalf("second resumption: %q", out)
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != nb2.s {
		t.Fatalf("router has %v after the second resumption", s)
	}
}

// TestSMResumeBeforeLossNoticed: the client reconnects before the server
// has noticed that its old connection is dead; <resume/> closes the old
// connection, waits for it to detach and takes it over.
func TestSMResumeBeforeLossNoticed(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	id := enableSM(t, bob, true, true)
	alice.feed(chatTo(bobPhone, "m1"))
	bob.waitOutput("m1</body>")

	// The old connection's reader: it ends the session once the
	// transport is closed.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, closed, ch := bob.tr.snapshot()
			if closed {
				bob.s.End()
				return
			}
			<-ch
		}
	}()
	nb := smNewClient(e, "192.0.2.9")
	nb.login("bob", "hunter2")
	out := nb.feed(smResume(id, 0))
	<-readerDone
	if !strings.HasPrefix(out, `<resumed xmlns='urn:xmpp:sm:3' h='0' previd='`+id+`'/>`) {
		t.Fatalf("resume of an attached session: %q", out)
	}
	if b := bodies(t, out); len(b) != 1 || b[0] != "m1" {
		t.Fatalf("resent: %q, want m1", b)
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != nb.s {
		t.Fatalf("router has %v, want the new session", s)
	}
}

// TestSMResumeRefused: unknown ids and other users' ids are item-not-found;
// the client can then bind normally, and the other user's detached session
// is untouched.
func TestSMResumeRefused(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	aliceID := enableSM(t, alice, true, true)
	carol := smOnline(e, "carol", "pw", "pad", true)
	carol.feed(chatTo(aliceDesk, "for alice"))
	alice.waitOutput("for alice</body>")
	lose(alice)

	// An unknown id.
	{
		c := smNewClient(e, "192.0.2.20")
		c.login("bob", "hunter2")
		if out := c.feed(smResume("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0)); out != smFailedWith("item-not-found") {
			t.Fatalf("unknown previd: %q", out)
		}
		if c.s.Authenticated() || c.tr.isClosed() {
			t.Fatal("failed resumption bound or closed the stream")
		}
		if j := c.bind("phone"); j != bobPhone {
			t.Fatalf("bind after failed resumption: %q", j)
		}
		enableSM(t, c, true, true)
	}
	// Another user's id.
	{
		c := smNewClient(e, "192.0.2.21")
		c.login("bob", "hunter2")
		out := c.feed(smResume(aliceID, 0))
		if out != smFailedWith("item-not-found") {
			t.Fatalf("bob resuming alice's session: %q", out)
		}
		if strings.Contains(out, "for alice") {
			t.Fatal("alice's stanzas were sent to bob")
		}
		if j := c.bind("tablet"); j != "bob@example.com/tablet" {
			t.Fatalf("bind after failed resumption: %q", j)
		}
		if st := c2s.SMState(alice.s); !st.Detached || st.Unacked != 1 {
			t.Fatalf("alice's session after bob's attempt: %+v, want still detached with 1 unacked", st)
		}
	}
	// The owner resumes it.
	{
		c := smNewClient(e, "192.0.2.22")
		c.login("alice", "secret")
		out := c.feed(smResume(aliceID, 0))
		if !strings.HasPrefix(out, `<resumed xmlns='urn:xmpp:sm:3' h='0' previd='`+aliceID+`'/>`) {
			t.Fatalf("alice resuming: %q", out)
		}
		if b := bodies(t, out); len(b) != 1 || b[0] != "for alice" {
			t.Fatalf("resent %q", b)
		}
	}
}

// TestSMDetachedExpiry: a detached session whose client does not come back
// ends when the resumption timeout passes: contacts learn it is
// unavailable, it leaves the router, and the messages it never had
// acknowledged stay queued for the next login.
func TestSMDetachedExpiry(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 50*time.Millisecond, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	carol := smOnline(e, "carol", "pw", "pad", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	bob.feed(`<presence to='` + aliceDesk + `'/>`)
	alice.waitOutput("<presence")
	id := enableSM(t, bob, true, true)
	alice.feed(chatTo(bobPhone, "m1"))
	bob.waitOutput("m1</body>")

	lose(bob)
	// Whether the session is still detached or already gone, this one is
	// queued too.
	alice.feed(chatTo("bob@example.com", "m2"))

	if got := waitUnavailable(alice); !strings.Contains(got, "from='"+bobPhone+"'") {
		t.Fatalf("unavailable not from bob/phone: %q", got)
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != nil {
		t.Fatalf("expired session still bound: %v", s)
	}
	if n := e.r.SessionCount(); n != 2 {
		t.Fatalf("SessionCount = %d after expiry, want 2", n)
	}
	ackBarrier(t, e, alice, carol)
	if d := depth(t, e, "bob"); d != 2 {
		t.Fatalf("bob's queue depth = %d after expiry, want 2 (never acknowledged)", d)
	}
	// Too late to resume.
	c := smNewClient(e, "192.0.2.30")
	c.login("bob", "hunter2")
	if out := c.feed(smResume(id, 1)); out != smFailedWith("item-not-found") {
		t.Fatalf("resume after expiry: %q", out)
	}
	// A fresh login gets both from the queue.
	c.bind("phone")
	// The backlog is flushed beside the reader: wait for it.
	out := c.feed(`<presence/>`)
	if !strings.Contains(out, "m2</body>") {
		out += c.waitOutput("m2</body>") + c.waitOutput("</message>")
	}
	if b := bodies(t, out); len(b) != 2 || b[0] != "m1" || b[1] != "m2" {
		t.Fatalf("after a fresh login: %q, want m1, m2", b)
	}
	waitDepth(t, e, "bob", 0)
}

// TestSMStreamCloseDoesNotDetach: a client that ends its stream, or a
// session the server ends on purpose, does not wait for resumption.
func TestSMStreamCloseDoesNotDetach(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"client closes the stream", "server shutdown", "stream error"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newSMEnv(t, time.Minute, 0)
			alice := smOnline(e, "alice", "secret", "desk", true)
			bob := smOnline(e, "bob", "hunter2", "phone", true)
			bob.feed(`<presence to='` + aliceDesk + `'/>`)
			alice.waitOutput("<presence")
			id := enableSM(t, bob, true, true)
			alice.feed(chatTo(bobPhone, "m1"))
			bob.waitOutput("m1</body>")

			switch how {
			case "client closes the stream":
				if out := bob.feed(`</stream:stream>`); !strings.HasSuffix(out, "</stream:stream>") {
					t.Fatalf("close: %q", out)
				}
			case "server shutdown":
				bob.s.Shutdown()
				bob.waitOutput("</stream:stream>")
			case "stream error":
				bob.feed(smA(7))
			}
			bob.waitClosed()
			bob.s.End() // what the reader does once the transport is closed
			if st := c2s.SMState(bob.s); st.Detached {
				t.Fatalf("session detached after %s: %+v", how, st)
			}
			if s := e.r.Session(mustJID(t, bobPhone)); s != nil {
				t.Fatalf("session still bound after %s", how)
			}
			if got := waitUnavailable(alice); !strings.Contains(got, "from='"+bobPhone+"'") {
				t.Fatalf("unavailable not from bob: %q", got)
			}
			c := smNewClient(e, "192.0.2.40")
			c.login("bob", "hunter2")
			if out := c.feed(smResume(id, 0)); out != smFailedWith("item-not-found") {
				t.Fatalf("resume after %s: %q", how, out)
			}
			if d := depth(t, e, "bob"); d != 1 {
				t.Fatalf("unacknowledged message: depth %d, want 1", d)
			}
		})
	}
}

// TestSMMaxUnacked: a client that never acknowledges is disconnected as a
// slow consumer once MaxUnacked stanzas are waiting for its ack; what it
// was sent stays queued. A client that acknowledges is never cut off.
func TestSMMaxUnacked(t *testing.T) {
	t.Parallel()
	const max = 3
	e := newSMEnv(t, 0, max)
	alice := smOnline(e, "alice", "secret", "desk", true)
	carol := smOnline(e, "carol", "pw", "pad", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, bob, false, false)

	for i := 1; i <= max; i++ {
		alice.feed(chatTo(bobPhone, fmt.Sprintf("m%d", i)))
		if bob.tr.isClosed() {
			t.Fatalf("closed after %d unacknowledged stanzas, bound is %d", i, max)
		}
	}
	alice.feed(chatTo(bobPhone, fmt.Sprintf("m%d", max+1)))
	if !bob.tr.isClosed() {
		t.Fatalf("still open with %d unacknowledged stanzas and a %d-th coming", max, max+1)
	}
	if n := e.metrics.SlowConsumers.Load(); n != 1 {
		t.Errorf("SlowConsumers = %d, want 1", n)
	}
	if bob.s.Deliver(stanza.New("message", stanza.NSClient), nil) {
		t.Error("Deliver to a closed slow consumer returned true")
	}
	bob.s.End()
	if s := e.r.Session(mustJID(t, bobPhone)); s != nil {
		t.Fatal("slow consumer still bound")
	}
	ackBarrier(t, e, alice, carol)
	if d := depth(t, e, "bob"); d != max+1 {
		t.Fatalf("bob's queue depth = %d, want %d (none acknowledged)", d, max+1)
	}

	// Acknowledging keeps a client under the bound however much it gets.
	ok := smOnline(e, "bob", "hunter2", "tablet", false)
	enableSM(t, ok, false, false)
	for i := 1; i <= 4*max; i++ {
		alice.feed(chatTo("bob@example.com/tablet", fmt.Sprintf("t%d", i)))
		ok.waitOutput(fmt.Sprintf("t%d</body>", i))
		ok.feed(smA(uint32(i)))
	}
	if ok.tr.isClosed() {
		t.Fatal("a client that acknowledges everything was disconnected")
	}
	if n := e.metrics.SlowConsumers.Load(); n != 1 {
		t.Errorf("SlowConsumers = %d, want still 1", n)
	}
}

// TestSMResumeKeepsStanzasAfterWriteFailure: a write to the client fails
// (the connection died) before the reader has seen the connection end.
// Stanzas routed to the session in between are owed to the client just as
// those routed after it detaches: resumption must deliver them.
func TestSMResumeKeepsStanzasAfterWriteFailure(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	id := enableSM(t, bob, true, true)

	_ = bob.tr.Close() // the connection is dead; the reader has not noticed yet
	alice.feed(chatTo(bobPhone, "m1"))
	waitIdle(t, bob.s) // the write of m1 failed
	alice.feed(chatTo(bobPhone, "m2"))
	alice.feed(`<presence to='` + bobPhone + `'><status>p3</status></presence>`)
	bob.s.End() // now the reader notices
	if st := c2s.SMState(bob.s); !st.Detached {
		t.Fatalf("not detached: %+v", st)
	}

	nb := smNewClient(e, "192.0.2.9")
	nb.login("bob", "hunter2")
	out := nb.feed(smResume(id, 0))
	if !strings.HasPrefix(out, "<resumed ") {
		t.Fatalf("resume: %q", out)
	}
	b := bodies(t, out)
	if len(b) != 2 || b[0] != "m1" || b[1] != "m2" || !strings.Contains(out, "<status>p3</status>") {
		t.Errorf("resumed session got messages %q and presence p3 = %v; want m1, m2 and p3: "+
			"stanzas routed between the failed write and the reader's End were dropped "+
			"(sendLocked refuses them once closing is set) instead of being kept for resumption; "+
			"m2 is only in the durable queue (depth %d) and p3 is lost", b, strings.Contains(out, "p3"), depth(t, e, "bob"))
	}
}

// slowCodec is the XML codec taking its time over messages with id
// "slow", while it holds the session's output lock: senders queue up on
// the lock, as they do behind a large stanza.
type slowCodec struct{ *xmlcodec.Stream }

func (c slowCodec) AppendElement(dst []byte, el *stanza.Element) []byte {
	if el.ID() == "slow" {
		time.Sleep(2 * time.Millisecond)
	}
	return c.Stream.AppendElement(dst, el)
}

// TestSMEnableCountsEveryStanzaAfterEnabled: stanzas routed to a session
// while it enables stream management are on the wire either before
// <enabled/>, and not counted by either side, or after it, and counted by
// both. The client's count of what follows <enabled/> must be the server's,
// or its acknowledgement of everything it got is "too large" and ends the
// stream. Several senders keep the session's output lock contended while
// the client enables.
func TestSMEnableCountsEveryStanzaAfterEnabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{codec: func() c2s.Codec { return slowCodec{newXMLCodec()} }})
	e.addUser("bob", "hunter2")
	for round := range 5 {
		bob := smOnline(e, "bob", "hunter2", fmt.Sprintf("r%d", round), false)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					bob.s.Deliver(stanza.New("message", stanza.NSClient).SetAttr("type", "headline").SetAttr("id", "slow"), nil)
				}
			}()
		}
		time.Sleep(10 * time.Millisecond) // let the senders contend for the lock (not a timing assertion)
		bob.feed(smEnable)
		close(stop)
		wg.Wait()
		waitIdle(t, bob.s)
		out, _, _ := bob.tr.snapshot()
		i := strings.Index(out, "<enabled")
		if i < 0 {
			t.Fatalf("no <enabled/>: %q", out)
		}
		clientCount := countStanzas(t, out[i:])
		st := c2s.SMState(bob.s)
		bob.take()
		if ack := bob.feed(smA(uint32(clientCount))); bob.err != nil || uint32(clientCount) != st.Out {
			t.Fatalf("round %d: the client got %d stanzas after <enabled/>, the server counted %d; "+
				"acknowledging them all gave %q (%v). handleSM(enable) sends <enabled/> and sets sm.enabled "+
				"in two separate outMu sections: a stanza delivered in between follows <enabled/> uncounted",
				round, clientCount, st.Out, ack, bob.err)
		}
	}
}

// TestSMMaxUnackedResumable: a resumable slow consumer is disconnected
// the same way, but its session detaches; resuming gets back what it had
// not acknowledged, in order, and nothing is lost: what did not fit is
// either resent too or still queued for the next login.
func TestSMMaxUnackedResumable(t *testing.T) {
	t.Parallel()
	const max = 3
	e := newSMEnv(t, time.Minute, max)
	alice := smOnline(e, "alice", "secret", "desk", true)
	carol := smOnline(e, "carol", "pw", "pad", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	id := enableSM(t, bob, true, true)
	for i := 1; i <= max+1; i++ {
		alice.feed(chatTo(bobPhone, fmt.Sprintf("m%d", i)))
	}
	if !bob.tr.isClosed() {
		t.Fatalf("still open with %d unacknowledged stanzas and one more coming", max)
	}
	if n := e.metrics.SlowConsumers.Load(); n != 1 {
		t.Errorf("SlowConsumers = %d, want 1", n)
	}
	bob.s.End()
	if st := c2s.SMState(bob.s); !st.Detached {
		t.Fatalf("resumable slow consumer not detached: %+v", st)
	}
	nb := smNewClient(e, "192.0.2.9")
	nb.login("bob", "hunter2")
	out := nb.feed(smResume(id, 0))
	if !strings.HasPrefix(out, `<resumed xmlns='urn:xmpp:sm:3' h='0' previd='`+id+`'/>`) {
		t.Fatalf("resume: %q", out)
	}
	b := bodies(t, out)
	if len(b) < max || b[0] != "m1" || b[1] != "m2" || b[2] != "m3" || len(b) > max+1 || len(b) == max+1 && b[max] != "m4" {
		t.Fatalf("resent %q, want m1..m3 (and m4 if it was kept)", b)
	}
	nb.feed(smA(uint32(len(b))))
	ackBarrier(t, e, alice, carol)
	if d := depth(t, e, "bob"); d != max+1-len(b) {
		t.Fatalf("after acknowledging %d resent messages, depth %d, want %d (m4 lost?)", len(b), d, max+1-len(b))
	}
}

// TestSMNewBindReplacesDetached: a fresh login binding the resource of a
// detached session ends that session for good (it cannot be resumed
// anymore), without telling contacts the resource went offline; what it
// kept for its client comes to the new session from the queue.
func TestSMNewBindReplacesDetached(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	bob.feed(`<presence to='` + aliceDesk + `'/>`)
	alice.waitOutput("<presence")
	id := enableSM(t, bob, true, true)
	alice.feed(chatTo(bobPhone, "m1"))
	bob.waitOutput("m1</body>")
	lose(bob)

	nb := smNewClient(e, "192.0.2.9")
	nb.login("bob", "hunter2")
	nb.bind("phone")
	if st := c2s.SMState(bob.s); st.Detached {
		t.Fatalf("replaced session still detached: %+v", st)
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != nb.s {
		t.Fatalf("router has %v, want the new session", s)
	}
	out := nb.feed(`<presence/>`)
	if !strings.Contains(out, "m1</body>") {
		out += nb.waitOutput("m1</body>") + nb.waitOutput("</message>")
	}
	if b := bodies(t, out); len(b) != 1 || b[0] != "m1" {
		t.Fatalf("new session got %q, want m1 from the queue", b)
	}
	nb.feed(chatTo(aliceDesk, "marker"))
	if got := alice.waitOutput("marker"); strings.Contains(got, "unavailable") {
		t.Errorf("alice was told bob/phone went unavailable when a new login took the resource: %q", got)
	}
	c := smNewClient(e, "192.0.2.10")
	c.login("bob", "hunter2")
	if out := c.feed(smResume(id, 0)); out != smFailedWith("item-not-found") {
		t.Fatalf("resuming the replaced session: %q", out)
	}
}

// TestSMMaxDetached: past the Resumer's MaxDetached, a lost connection
// ends its session at once.
func TestSMMaxDetached(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 0, 0)
	e.cfg.Resume = c2s.NewResumer(time.Minute, 1)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, alice, true, true)
	bobID := enableSM(t, bob, true, true)
	lose(alice)
	if st := c2s.SMState(alice.s); !st.Detached {
		t.Fatalf("first lost session not detached: %+v", st)
	}
	lose(bob)
	if st := c2s.SMState(bob.s); st.Detached {
		t.Fatalf("second lost session detached past MaxDetached 1: %+v", st)
	}
	if s := e.r.Session(mustJID(t, bobPhone)); s != nil {
		t.Fatal("second lost session still bound")
	}
	c := smNewClient(e, "192.0.2.9")
	c.login("bob", "hunter2")
	if out := c.feed(smResume(bobID, 0)); out != smFailedWith("item-not-found") {
		t.Fatalf("resuming a session that could not detach: %q", out)
	}
}

// TestSMConcurrentResume: two connections resume the same session at
// once. Either the second finds nothing to resume, or it takes the session
// over from the first (closing the first's connection, as for a client
// that reconnects before the server noticed the loss); in the end exactly
// one open connection holds the session, and the message owed is resent.
func TestSMConcurrentResume(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	id := enableSM(t, bob, true, true)
	alice.feed(chatTo(bobPhone, "m1"))
	bob.waitOutput("m1</body>")
	lose(bob)

	var cs [2]*client
	for i := range cs {
		cs[i] = smNewClient(e, fmt.Sprintf("192.0.2.%d", 50+i))
		cs[i].login("bob", "hunter2")
	}
	// One reader per connection: it feeds the resumption, then ends the
	// session once its transport is closed, as the listener does on EOF.
	stop := make(chan struct{})
	var fed, readers sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		fed.Add(1)
		readers.Add(1)
		go func() {
			defer readers.Done()
			errs[i] = c.s.Feed([]byte(smResume(id, 0)))
			fed.Done()
			for {
				_, closed, ch := c.tr.snapshot()
				if closed {
					c.s.End()
					return
				}
				select {
				case <-ch:
				case <-stop:
					return
				}
			}
		}()
	}
	// Registered after the clients': runs before the harness ends them.
	t.Cleanup(func() { close(stop); readers.Wait() })
	fed.Wait()

	holder := e.r.Session(mustJID(t, bobPhone))
	open := 0
	for i, c := range cs {
		out := c.take()
		if c.tr.isClosed() {
			continue // taken over by the other connection: this one is gone
		}
		if errs[i] != nil {
			t.Fatalf("resume %d: %v", i, errs[i])
		}
		switch {
		case strings.HasPrefix(out, "<resumed "):
			open++
			if b := bodies(t, out); len(b) != 1 || b[0] != "m1" {
				t.Errorf("resume %d resent %q, want m1", i, b)
			}
			if holder != c.s {
				t.Errorf("router has %v, want the open resumed session %d", holder, i)
			}
		case out == smFailedWith("item-not-found"):
		default:
			t.Errorf("resume %d: %q", i, out)
		}
	}
	if open != 1 {
		t.Fatalf("%d open connections hold the resumed session, want exactly 1", open)
	}
}

// TestBacklogLeftDeliveryKeepsBacklog: a live delivery left in the queue
// during a backlog pass keeps the session in backlog mode for another
// pass. Ending it instead let the next live message overtake the left one,
// and the next pass deliver that one again (test/e2e
// TestSMUnackedSurviveCrash saw crash-2, crash-1, crash-2, crash-3).
func TestBacklogLeftDeliveryKeepsBacklog(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 0, 0)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	waitIdle(t, bob.s)
	bob.take()
	msg := func(body string) *stanza.Element {
		return stanza.New("message", stanza.NSClient).SetAttr("to", bobPhone).SetAttr("from", "alice@example.com/desk").
			SetAttr("type", "chat").Append(stanza.New("body", stanza.NSClient).AppendText(body))
	}
	bob.s.BeginBacklog()
	if !bob.s.Deliver(msg("left"), e.r.NewAck("bob", 7, 1)) {
		t.Fatal("a live delivery during the backlog reported failure")
	}
	if !bob.s.EndBacklog(true) || c2s.InBacklog(bob.s) {
		t.Fatal("a forced end (failed flush, ended session) left backlog mode on")
	}
	bob.s.BeginBacklog()
	if !bob.s.Deliver(msg("left"), e.r.NewAck("bob", 8, 1)) {
		t.Fatal("a live delivery during the backlog reported failure")
	}
	if bob.s.EndBacklog(false) {
		t.Fatal("backlog mode ended with a live delivery left in the queue since the last pass")
	}
	if !c2s.InBacklog(bob.s) {
		t.Fatal("not in backlog mode after the refused end")
	}
	// Another live message is still left for the flush, behind the first.
	if !bob.s.Deliver(msg("next"), e.r.NewAck("bob", 9, 1)) {
		t.Fatal("a live delivery during the backlog reported failure")
	}
	waitIdle(t, bob.s)
	if out := bob.take(); out != "" {
		t.Fatalf("live deliveries during the backlog were written: %q", out)
	}
	if bob.s.EndBacklog(false) {
		t.Fatal("backlog mode ended with a live delivery left since the previous EndBacklog")
	}
	// A pass that left nothing ends it.
	if !bob.s.EndBacklog(false) {
		t.Fatal("backlog mode did not end after a pass that left nothing")
	}
	bob.s.Deliver(msg("live"), e.r.NewAck("bob", 10, 1))
	if got := bob.waitOutput("<body>live</body>"); !strings.Contains(got, "live") {
		t.Fatalf("live delivery after the backlog: %q", got)
	}
}

// TestBacklogThenLateLiveDelivery: the router queues a message, archives
// it, then delivers it live. If the recipient's session comes online in
// between, its backlog flush reads the message from the queue and, once
// the backlog has ended, the live delivery arrives too: the session must
// not write it twice (seen as a duplicate by slixmpp in
// test/e2e TestSMUnackedSurviveCrash). A later message still goes out live.
func TestBacklogThenLateLiveDelivery(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 0, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	// Bob is offline: the message is queued (seq 1), as if its live
	// delivery were still on its way.
	alice.feed(chatTo("bob@example.com", "early"))
	waitDepth(t, e, "bob", 1)

	// Not smOnline: its presence step takes the output, and the backlog
	// flush can write the message before that returns.
	bob := smNewClient(e, "192.0.2.1")
	bob.login("bob", "hunter2")
	bob.bind("phone")
	if err := bob.s.Feed([]byte(`<presence/>`)); err != nil {
		t.Fatal(err)
	}
	got := bob.waitOutput("Offline Storage</delay></message>")
	if !strings.Contains(got, "<body>early</body>") {
		t.Fatalf("the backlog flush did not deliver the queued message: %q", got)
	}
	bob.waitBacklogEnd()
	waitIdle(t, bob.s)
	// The backlog has ended. The late live delivery of the same queue
	// item:
	late := stanza.New("message", stanza.NSClient).SetAttr("to", bobPhone).SetAttr("from", "alice@example.com/desk").
		SetAttr("type", "chat").Append(stanza.New("body", stanza.NSClient).AppendText("early"))
	if !bob.s.Deliver(late, e.r.NewAck("bob", 1, 1)) {
		t.Fatal("Deliver of a message the backlog delivered reported failure")
	}
	// A newer live message goes out; the late duplicate must not be
	// before it.
	alice.feed(chatTo(bobPhone, "later"))
	got = bob.waitOutput("<body>later</body>")
	if strings.Contains(got, "early</body>") {
		t.Fatalf("after the backlog bob got %q, want only the newer message", got)
	}
}

// windowPresence runs hook on a session's initial presence, after the
// session has become available and before the roster module's offline
// delivery, which silent leaves out altogether.
type windowPresence struct {
	c2s.Presence
	hook   func(s router.Session)
	silent bool
}

func (p windowPresence) Broadcast(ctx context.Context, s router.Session, el *stanza.Element, initial bool) {
	if initial {
		p.hook(s)
	}
	if !p.silent {
		p.Presence.Broadcast(ctx, s, el, initial)
	}
}

// presenceWindow queues a message from alice to bob ("queued") while bob
// is offline, then brings bob online; during his initial presence, once he
// is available, alice sends him "window". It returns bob's client after
// his presence, and alice's.
func presenceWindow(t *testing.T, silent bool) (alice, bob *client) {
	t.Helper()
	e := newEnv(t, envOpts{presence: func(p c2s.Presence) c2s.Presence {
		return windowPresence{Presence: p, silent: silent, hook: func(s router.Session) {
			if s.JID().Local() == "bob" {
				alice.feed(chatTo(bobPhone, "window"))
			}
		}}
	}})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	alice = e.online("alice", "secret", "desk", true)
	alice.feed(chatTo("bob@example.com", "queued")) // bob is offline: queued
	waitDepth(t, e, "bob", 1)

	bob = e.newClient("192.0.2.1", false)
	bob.login("bob", "hunter2")
	bob.bind("phone")
	if err := bob.s.Feed([]byte(`<presence/>`)); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// TestLiveDeliveryBeforeOfflineFlush: a message routed after the session
// has become available but before its offline delivery has read the queue
// is delivered once, after the older queued one. Delivered live, it was
// then read from the queue and delivered again, ahead of the older one
// (internal/bench TestChatWindow saw 401 deliveries of 400 messages).
func TestLiveDeliveryBeforeOfflineFlush(t *testing.T) {
	t.Parallel()
	_, bob := presenceWindow(t, false)
	got := bob.waitOutput("<body>window</body>")
	bob.waitBacklogEnd()
	waitIdle(t, bob.s)
	got += bob.take()
	queued, window := strings.Index(got, "<body>queued</body>"), strings.Index(got, "<body>window</body>")
	if queued < 0 || window < queued {
		t.Fatalf("bob got the newer message before the queued one: %q", got)
	}
	if n := strings.Count(got, "<body>window</body>"); n != 1 {
		t.Fatalf("bob got the message routed during his initial presence %d times: %q", n, got)
	}
}

// TestOfflineDeliveryWithoutPresenceHandler: a presence handler that makes
// no offline delivery leaves it to the session, which holds live
// deliveries back from its initial presence on and must not strand them.
func TestOfflineDeliveryWithoutPresenceHandler(t *testing.T) {
	t.Parallel()
	alice, bob := presenceWindow(t, true)
	got := bob.waitOutput("<body>window</body>")
	bob.waitBacklogEnd()
	if q, w := strings.Index(got, "<body>queued</body>"), strings.Index(got, "<body>window</body>"); q < 0 || w < q {
		t.Fatalf("bob got %q, want the queued message, then the one left during his presence", got)
	}
	alice.feed(chatTo(bobPhone, "live"))
	got = bob.waitOutput("<body>live</body>")
	if strings.Contains(got, "window") {
		t.Fatalf("the message left during the presence came twice: %q", got)
	}
}
