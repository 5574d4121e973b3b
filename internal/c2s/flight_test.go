package c2s_test

// A session reads on while its messages are made durable (flight.go):
// recipients get them at once, while XEP-0198 counts each handled, and
// answers <r/>, only once it is stored.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/store"
)

// heldStore holds back the completions of asynchronous appends while held:
// the items are in the queue, and to the sessions they look like appends
// whose fsync has not returned. fail makes the next completions report an
// error instead, as a failed fsync would.
type heldStore struct {
	store.Store
	mu   sync.Mutex
	hold bool
	fail error
	held []func()
	n    int // completions held so far
}

func (h *heldStore) EnqueueAsync(ctx context.Context, user string, stanza []byte, expires time.Time, max int, visible func(uint64), done func(error)) (uint64, error) {
	return h.Store.EnqueueAsync(ctx, user, stanza, expires, max, visible, func(err error) {
		h.mu.Lock()
		if err == nil {
			err = h.fail
		}
		if h.hold {
			h.held = append(h.held, func() { done(err) })
			h.n++
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		done(err)
	})
}

func (h *heldStore) setHold(on bool) {
	h.mu.Lock()
	h.hold = on
	h.mu.Unlock()
}

// release completes what is held, in order, and stops holding.
func (h *heldStore) release() {
	h.mu.Lock()
	held := h.held
	h.held, h.hold = nil, false
	h.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// releaseOne completes the oldest held completion and keeps holding.
func (h *heldStore) releaseOne() {
	h.mu.Lock()
	f := h.held[0]
	h.held = h.held[1:]
	h.mu.Unlock()
	f()
}

// waitHeld waits until n completions have been held.
func (h *heldStore) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		h.mu.Lock()
		got := h.n
		h.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d completions held, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func newHeldEnv(t *testing.T, resume time.Duration) (*env, *heldStore) {
	t.Helper()
	hs := &heldStore{}
	e := newEnv(t, envOpts{wrapStore: func(s store.Store) store.Store { hs.Store = s; return hs }})
	if resume > 0 {
		e.cfg.Resume = c2s.NewResumer(resume, 0)
	}
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	return e, hs
}

// TestSMCountsStoredOnly: while bob's messages await their durable append
// alice already has them, but bob's <r/> is answered only once they are
// stored, with the count that includes them; two requests with nothing
// between them get one answer. Once nothing is in flight, <r/> is answered
// at once.
func TestSMCountsStoredOnly(t *testing.T) {
	t.Parallel()
	e, hs := newHeldEnv(t, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, bob, false, false)

	hs.setHold(true)
	bob.feed(chatTo(aliceDesk, "m1") + chatTo(aliceDesk, "m2"))
	alice.waitOutput("m2</body>")
	hs.waitHeld(t, 2)
	if out := bob.feed(smR + smR); out != "" {
		t.Fatalf("r with two messages in flight answered at once: %q", out)
	}
	hs.releaseOne()
	waitIdle(t, bob.s)
	if out := bob.take(); out != "" {
		t.Fatalf("r answered with one of the two messages still in flight: %q", out)
	}
	hs.release()
	if out := bob.waitOutput("/>"); out != smA(2) {
		t.Fatalf("answer once stored: %q, want %q", out, smA(2))
	}
	if out := bob.feed(smR); out != smA(2) {
		t.Fatalf("r with nothing in flight: %q, want %q", out, smA(2))
	}
	waitIdle(t, bob.s)
	if extra := bob.take(); extra != "" {
		t.Fatalf("more than one answer to the two requests: %q", extra)
	}
}

// TestSMCountsInOrder: h stops at the oldest message in flight, even when
// a later stanza (a presence, handled at once) is done: a request after
// both is answered only when the message lands.
func TestSMCountsInOrder(t *testing.T) {
	t.Parallel()
	e, hs := newHeldEnv(t, 0)
	smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, bob, false, false)
	// One stanza counted before the hold, so the answers tell apart h=1
	// (stopped at the message) from h=3.
	bob.feed(`<presence/>`)
	bob.take()

	hs.setHold(true)
	bob.feed(chatTo(aliceDesk, "m1"))
	hs.waitHeld(t, 1)
	bob.feed(`<presence><show>away</show></presence>` + smR)
	waitIdle(t, bob.s)
	if out := bob.take(); strings.Contains(out, "<a ") {
		t.Fatalf("answered with the message in flight: %q", out)
	}
	hs.release()
	if out := bob.waitOutput("h="); !strings.HasSuffix(out, "<a xmlns='urn:xmpp:sm:3' h=") {
		t.Fatalf("unexpected output before the answer: %q", out)
	}
	if out := bob.waitOutput("/>"); out != "'3'/>" {
		t.Fatalf("answer: h=%s, want 3", out)
	}
}

// TestFlightBound: a session with MaxInFlight messages awaiting their
// append stops reading on: the next message is routed only once one lands.
func TestFlightBound(t *testing.T) {
	t.Parallel()
	e, hs := newHeldEnv(t, 0)
	alice := smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)

	hs.setHold(true)
	var in strings.Builder
	for i := range c2s.MaxInFlight + 1 {
		in.WriteString(chatTo(aliceDesk, fmt.Sprintf("b%d", i)))
	}
	fed := make(chan error, 1)
	go func() { fed <- bob.s.Feed([]byte(in.String())) }()
	alice.waitOutput(fmt.Sprintf("b%d</body>", c2s.MaxInFlight-1))
	hs.waitHeld(t, c2s.MaxInFlight)
	// The reader is parked: the last message has not been routed. A
	// broken bound routes it at once; give it the time to show.
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-fed:
		t.Fatalf("Feed returned (%v) with %d messages in flight", err, c2s.MaxInFlight)
	default:
	}
	if out := alice.take(); strings.Contains(out, fmt.Sprintf("b%d</body>", c2s.MaxInFlight)) {
		t.Fatal("the message past the bound was routed while the bound was full")
	}
	hs.release()
	if err := <-fed; err != nil {
		t.Fatalf("Feed: %v", err)
	}
	alice.waitOutput(fmt.Sprintf("b%d</body>", c2s.MaxInFlight))
}

// TestFlightFailureBounces: a message whose durable write fails after
// delivery is bounced to its sender, and counted as handled.
func TestFlightFailureBounces(t *testing.T) {
	t.Parallel()
	e, hs := newHeldEnv(t, 0)
	smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, bob, false, false)
	hs.mu.Lock()
	hs.fail = errors.New("disk on fire")
	hs.mu.Unlock()
	// The failure may be reported before Feed returns (the write was
	// already done when the callback was registered) or after it.
	out := bob.feed(chatTo(aliceDesk, "doomed"))
	if !strings.Contains(out, "</message>") {
		out = bob.waitOutput("</message>")
	}
	if !strings.Contains(out, "type='error'") || !strings.Contains(out, "internal-server-error") {
		t.Fatalf("no error bounce: %q", out)
	}
	if out := bob.feed(smR); !strings.Contains(out, smA(1)) {
		bob.waitOutput(smA(1))
	}
}

// TestResumeWaitsForFlight: a session resumed while its last message is
// still awaiting its append reports h only once the message is stored, and
// then counts it: the client must neither lose it nor send it again.
func TestResumeWaitsForFlight(t *testing.T) {
	t.Parallel()
	e, hs := newHeldEnv(t, time.Minute)
	smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	id := enableSM(t, bob, true, true)

	hs.setHold(true)
	bob.feed(chatTo(aliceDesk, "last words"))
	hs.waitHeld(t, 1)
	lose(bob)

	nb := smNewClient(e, "192.0.2.9")
	nb.login("bob", "hunter2")
	resumed := make(chan string, 1)
	go func() {
		if err := nb.s.Feed([]byte(smResume(id, 0))); err != nil {
			resumed <- "error: " + err.Error()
			return
		}
		resumed <- ""
	}()
	// A resumption that does not wait answers at once with h='1' for a
	// message not yet stored; give it the time to show.
	time.Sleep(50 * time.Millisecond)
	if out := nb.take(); strings.Contains(out, "resumed") {
		t.Fatalf("resumed with the message in flight: %q", out)
	}
	hs.release()
	if r := <-resumed; r != "" {
		t.Fatal(r)
	}
	if out := nb.waitOutput("/>"); out != `<resumed xmlns='urn:xmpp:sm:3' h='1' previd='`+id+`'/>` {
		t.Fatalf("resumed: %q", out)
	}
}

// TestFlightAsksBounded: a client alternating stanzas and <r/> while a
// message is in flight keeps at most MaxAsks requests waiting; once the
// message lands, the answers are at most that many and the last one counts
// everything.
func TestFlightAsksBounded(t *testing.T) {
	t.Parallel()
	e, hs := newHeldEnv(t, 0)
	smOnline(e, "alice", "secret", "desk", true)
	bob := smOnline(e, "bob", "hunter2", "phone", true)
	enableSM(t, bob, false, false)
	hs.setHold(true)
	bob.feed(chatTo(aliceDesk, "stuck"))
	hs.waitHeld(t, 1)
	const n = 3 * c2s.MaxAsks
	var in strings.Builder
	for range n {
		// A chat state: routed at once, never stored, yet counted.
		in.WriteString(`<message to='` + aliceDesk + `' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>` + smR)
	}
	if out := bob.feed(in.String()); strings.Contains(out, "<a ") {
		t.Fatalf("answered with a message in flight: %q", out)
	}
	if got := c2s.FlightAsks(bob.s); got > c2s.MaxAsks {
		t.Fatalf("%d requests kept, want at most %d", got, c2s.MaxAsks)
	}
	hs.release()
	last := smA(n + 1)
	out := bob.waitOutput(last)
	if got := strings.Count(out, "<a "); got > c2s.MaxAsks || got == 0 {
		t.Fatalf("%d answers to %d requests, want 1 to %d", got, n, c2s.MaxAsks)
	}
}
