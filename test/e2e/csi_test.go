package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	xmpp "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// TestCSIHoldsPresence: an inactive client (XEP-0352) gets messages at
// once, contacts' presence only on <active/>, and then only the latest;
// stream management counts stay consistent throughout.
func TestCSIHoldsPresence(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(user, pw string) *xmpp.Client {
		c, err := xmpp.Dial(ctx, xmpp.Config{Addr: srv.C2S, JID: user + "@" + domain, Password: pw,
			TLSConfig: &tls.Config{InsecureSkipVerify: true}, StreamManagement: true})
		if err != nil {
			t.Fatalf("%s login: %v", user, err)
		}
		return c
	}
	alice, bob := dial("alice", "pw-a"), dial("bob", "pw-b")
	defer alice.Close()
	defer bob.Close()
	// ping returns once the server has handled everything c sent before.
	ping := func(c *xmpp.Client) {
		t.Helper()
		iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").
			Append(stanza.New("ping", "urn:xmpp:ping"))
		if _, err := c.IQ(ctx, iq); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	csi := func(state string) {
		t.Helper()
		if err := alice.Send(stanza.New(state, "urn:xmpp:csi:0")); err != nil {
			t.Fatal(err)
		}
		ping(alice)
	}
	// next returns alice's stanzas up to and including the message with
	// body want, described as "presence <status>" / "message <body>".
	next := func(want string) []string {
		t.Helper()
		var got []string
		for {
			el, err := alice.Recv(ctx)
			if err != nil {
				t.Fatalf("alice, waiting for %q after %q: %v", want, got, err)
			}
			switch el.Name {
			case "presence":
				got = append(got, "presence "+el.ChildText("status", stanza.NSClient))
			case "message":
				b := el.ChildText("body", stanza.NSClient)
				got = append(got, "message "+b)
				if b == want {
					return got
				}
			}
		}
	}
	presence := func(status string) {
		t.Helper()
		p := stanza.New("presence", stanza.NSClient).SetAttr("to", alice.JID().String()).
			Append(stanza.New("status", stanza.NSClient).AppendText(status))
		if err := bob.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	message := func(body string) {
		t.Helper()
		if err := bob.SendMessage(alice.JID().String(), body); err != nil {
			t.Fatal(err)
		}
	}

	csi("inactive")
	for i := 1; i <= 3; i++ {
		presence(fmt.Sprintf("b%d", i))
	}
	message("urgent")
	if got := fmt.Sprint(next("urgent")); got != "[message urgent]" {
		t.Fatalf("inactive alice got %s, want only the message", got)
	}
	csi("active")
	message("after")
	if got := fmt.Sprint(next("after")); got != "[presence b3 message after]" {
		t.Fatalf("after <active/> alice got %s, want the latest presence, then the new message", got)
	}
	// Active: presence is no longer held.
	presence("b4")
	message("last")
	if got := fmt.Sprint(next("last")); got != "[presence b4 message last]" {
		t.Fatalf("active alice got %s", got)
	}
	// Alice's client has acknowledged what it handled (on the server's
	// <r/>); a count the server disagreed with would have ended the stream.
	ping(alice)
	if err := alice.Err(); err != nil {
		t.Fatalf("alice's stream: %v", err)
	}
}
