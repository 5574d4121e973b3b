package c2s_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/stanza"
)

const (
	csiInactive = `<inactive xmlns='urn:xmpp:csi:0'/>`
	csiActive   = `<active xmlns='urn:xmpp:csi:0'/>`
	carolPad    = "carol@example.com/pad"
)

func presenceTo(to, status string) string {
	return `<presence to='` + to + `'><status>` + status + `</status></presence>`
}

func chatStateTo(to, state string) string {
	return `<message to='` + to + `' type='chat'><` + state + ` xmlns='http://jabber.org/protocol/chatstates'/></message>`
}

// csiStanzas returns the stanzas in out, in order.
func csiStanzas(t *testing.T, out string) []*stanza.Element {
	t.Helper()
	els, err := parseElements(out)
	if err != nil {
		t.Fatalf("parse %q: %v", out, err)
	}
	var st []*stanza.Element
	for _, el := range els {
		if el.IsStanza() {
			st = append(st, el)
		}
	}
	return st
}

// describe names stanzas for failure messages and comparisons:
// "presence bob@example.com/phone s3", "message bob@... composing".
func describe(els []*stanza.Element) []string {
	var d []string
	for _, el := range els {
		what := el.ChildText("status", stanza.NSClient)
		if el.Name == "message" {
			what = el.ChildText("body", stanza.NSClient)
			for _, c := range el.Elements() {
				if c.NS == "http://jabber.org/protocol/chatstates" {
					what = c.Name
				}
			}
		}
		d = append(d, el.Name+" "+el.From()+" "+what)
	}
	return d
}

// csiSetup has alice (stream management on, inactive) and bob and carol
// online.
func csiSetup(t *testing.T) (e *env, alice, bob, carol *client) {
	t.Helper()
	e = newSMEnv(t, 0, 0)
	alice = smOnline(e, "alice", "secret", "desk", false)
	bob = smOnline(e, "bob", "hunter2", "phone", false)
	carol = smOnline(e, "carol", "pw", "pad", false)
	enableSM(t, alice, false, false)
	if out := alice.feed(csiInactive); out != "" {
		t.Fatalf("<inactive/> answered with %q, want nothing", out)
	}
	return e, alice, bob, carol
}

// ackAll acknowledges n stanzas for alice and checks that the server
// agrees that is all it sent.
func ackAll(t *testing.T, c *client, n int) {
	t.Helper()
	if out := c.feed(smA(uint32(n))); strings.Contains(out, "stream:error") {
		t.Fatalf("acknowledging the %d stanzas received: %q", n, out)
	}
	if st := c2s.SMState(c.s); st.Out != uint32(n) || st.Acked != uint32(n) || st.Unacked != 0 {
		t.Fatalf("after acknowledging %d stanzas: %+v", n, st)
	}
}

func TestCSIFeatureAdvertised(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, 0, 0)
	c := e.newClient("192.0.2.1", false)
	if out := c.feed(header); strings.Contains(out, "urn:xmpp:csi:0") {
		t.Fatalf("CSI offered before authentication: %q", out)
	}
	c.scram("alice", "secret")
	if out := c.feed(header); !strings.Contains(out, `<csi xmlns='urn:xmpp:csi:0'/>`) {
		t.Fatalf("features after authentication: %q, want <csi/>", out)
	}
}

func TestCSIHoldsPresenceLatestPerContact(t *testing.T) {
	t.Parallel()
	_, alice, bob, carol := csiSetup(t)
	bob.feed(presenceTo(aliceDesk, "b1"))
	carol.feed(presenceTo(aliceDesk, "c1"))
	bob.feed(presenceTo(aliceDesk, "b2"))
	bob.feed(presenceTo(aliceDesk, "b3"))
	carol.feed(presenceTo(aliceDesk, "c2"))
	// A message with a body goes at once, ahead of the held presence.
	bob.feed(chatTo(aliceDesk, "wake up"))
	got := describe(csiStanzas(t, alice.waitOutput("</message>")))
	if want := []string{"message " + bobPhone + " wake up"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("while inactive alice got %q, want only %q", got, want)
	}
	if st := c2s.SMState(alice.s); st.Out != 1 {
		t.Fatalf("held stanzas counted before they were sent: %+v", st)
	}

	out := alice.feed(csiActive)
	got = describe(csiStanzas(t, out))
	want := []string{"presence " + bobPhone + " b3", "presence " + carolPad + " c2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after <active/> alice got %q, want %q", got, want)
	}
	if !strings.HasSuffix(out, smR) {
		t.Errorf("flushed stanzas without an ack request: %q", out)
	}
	ackAll(t, alice, 3)

	// Active again: presence goes at once.
	bob.feed(presenceTo(aliceDesk, "b4"))
	got = describe(csiStanzas(t, alice.waitOutput("b4</status></presence>")))
	if want := []string{"presence " + bobPhone + " b4"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("active alice got %q, want %q", got, want)
	}
	ackAll(t, alice, 4)
}

func TestCSIHoldsChatStatesLatestOnly(t *testing.T) {
	t.Parallel()
	_, alice, bob, carol := csiSetup(t)
	bob.feed(chatStateTo(aliceDesk, "composing"))
	carol.feed(chatStateTo(aliceDesk, "composing"))
	bob.feed(presenceTo(aliceDesk, "b1"))
	bob.feed(chatStateTo(aliceDesk, "paused"))
	carol.feed(chatStateTo(aliceDesk, "composing"))
	// carol's message supersedes her held chat state; bob's stays.
	carol.feed(`<message to='` + aliceDesk + `' type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	got := describe(csiStanzas(t, alice.waitOutput("</message>")))
	if want := []string{"message " + carolPad + " active"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("while inactive alice got %q, want only carol's message", got)
	}
	// Receipts and iqs are not held.
	bob.feed(`<message to='` + aliceDesk + `'><received xmlns='urn:xmpp:receipts' id='x'/></message>`)
	alice.waitOutput("urn:xmpp:receipts")
	alice.waitOutput("</message>")

	out := alice.feed(csiActive)
	got = describe(csiStanzas(t, out))
	want := []string{"presence " + bobPhone + " b1", "message " + bobPhone + " paused"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after <active/> alice got %q, want %q", got, want)
	}
	ackAll(t, alice, 4)
}

// Held stanzas are not counted until written: the client, acknowledging
// everything it received at every point, never exceeds the server's count.
func TestCSIStreamManagementCounts(t *testing.T) {
	t.Parallel()
	_, alice, bob, _ := csiSetup(t)
	received := 0
	for round := range 3 {
		for i := range 5 {
			bob.feed(presenceTo(aliceDesk, fmt.Sprintf("r%d-%d", round, i)))
			bob.feed(chatStateTo(aliceDesk, "composing"))
		}
		bob.feed(chatTo(aliceDesk, fmt.Sprintf("m%d", round)))
		received += len(csiStanzas(t, alice.waitOutput(fmt.Sprintf("m%d</body>", round))+alice.waitOutput("</message>")))
		bob.feed(chatStateTo(aliceDesk, "active")) // the message dropped the held ones
		ackAll(t, alice, received)
		received += len(csiStanzas(t, alice.feed(csiActive)))
		ackAll(t, alice, received)
		alice.feed(csiInactive)
	}
	// Per round: the message, then one presence and one chat state.
	if received != 9 {
		t.Fatalf("alice received %d stanzas, want 9", received)
	}
	// The nonzas were not counted as stanzas from alice either.
	if out := alice.feed(smR); !strings.Contains(out, smA(0)) {
		t.Fatalf("<r/> after CSI nonzas only: %q, want h=0", out)
	}
}

// Past the bound a new sender makes the session write what it holds.
func TestCSIBoundFlushes(t *testing.T) {
	t.Parallel()
	_, alice, _, _ := csiSetup(t)
	const n = 1000 // csiMaxHeld
	deliver := func(i int) {
		p := stanza.New("presence", stanza.NSClient).
			SetAttr("from", fmt.Sprintf("u%d@example.com/r", i)).SetAttr("to", aliceDesk)
		if !alice.s.Deliver(p, nil) {
			t.Fatalf("presence %d refused", i)
		}
	}
	for i := range n {
		deliver(i)
	}
	deliver(0) // a known sender still fits
	if st := c2s.SMState(alice.s); st.Out != 0 {
		t.Fatalf("%d held presences: %+v, want none sent", n, st)
	}
	deliver(n)
	alice.waitOutput(fmt.Sprintf("from='u%d@example.com/r' to='%s'/>", n, aliceDesk))
	if st := c2s.SMState(alice.s); st.Out != n+1 {
		t.Fatalf("after the bound: %+v, want all %d written", st, n+1)
	}
	if out := alice.feed(csiActive); len(csiStanzas(t, out)) != 0 {
		t.Fatalf("<active/> after the overflow flush wrote %q, want nothing", out)
	}
}

// A resumable session that loses its connection owes what it held.
func TestCSIHeldOwedOnResumption(t *testing.T) {
	t.Parallel()
	e := newSMEnv(t, time.Minute, 0)
	alice := smOnline(e, "alice", "secret", "desk", false)
	bob := smOnline(e, "bob", "hunter2", "phone", false)
	id := enableSM(t, alice, true, true)
	alice.feed(csiInactive)
	bob.feed(presenceTo(aliceDesk, "b1"))
	bob.feed(presenceTo(aliceDesk, "b2"))
	lose(alice)
	if st := c2s.SMState(alice.s); !st.Detached || st.Unacked != 1 || st.Out != 1 {
		t.Fatalf("detached: %+v, want the held presence owed", st)
	}
	na := smNewClient(e, "192.0.2.9")
	na.login("alice", "secret")
	out := na.feed(smResume(id, 0))
	got := describe(csiStanzas(t, out))
	if want := []string{"presence " + bobPhone + " b2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resent after resumption: %q, want %q", got, want)
	}
	// The new stream starts active.
	bob.feed(presenceTo(aliceDesk, "b3"))
	na.waitOutput("b3</status>")
}

func TestCSIUnknownNonza(t *testing.T) {
	t.Parallel()
	_, alice, _, _ := csiSetup(t)
	if out := alice.feed(`<idle xmlns='urn:xmpp:csi:0'/>`); !strings.Contains(out, "unsupported-stanza-type") {
		t.Fatalf("unknown CSI element: %q, want a stream error", out)
	}
}
