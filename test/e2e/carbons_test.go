package e2e

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	xmpp "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

const (
	nsCarbons = "urn:xmpp:carbons:2"
	nsForward = "urn:xmpp:forward:0"
)

// TestCarbons is XEP-0280 end to end: alice is online twice with carbons
// on; what bob sends to one resource and what that resource sends to bob
// are copied to the other.
func TestCarbons(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(user, pw, res string) *xmpp.Client {
		c, err := xmpp.Dial(ctx, xmpp.Config{Addr: srv.C2S, JID: user + "@" + domain, Password: pw, Resource: res,
			TLSConfig: &tls.Config{InsecureSkipVerify: true}, SendInitialPresence: true})
		if err != nil {
			t.Fatalf("%s/%s login: %v", user, res, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a1, a2, bob := dial("alice", "pw-a", "one"), dial("alice", "pw-a", "two"), dial("bob", "pw-b", "x")

	// The server and the account announce the feature.
	for _, to := range []string{domain, "alice@" + domain} {
		res, err := a1.IQ(ctx, stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", to).
			Append(stanza.New("query", "http://jabber.org/protocol/disco#info")))
		if err != nil {
			t.Fatalf("disco#info %s: %v", to, err)
		}
		found := false
		for _, f := range res.Child("query", "http://jabber.org/protocol/disco#info").Elements() {
			found = found || (f.Name == "feature" && f.Attr("var") == nsCarbons)
		}
		if !found {
			t.Errorf("disco#info of %s does not list %s", to, nsCarbons)
		}
	}
	for _, c := range []*xmpp.Client{a1, a2} {
		if _, err := c.IQ(ctx, stanza.New("iq", stanza.NSClient).SetAttr("type", "set").
			Append(stanza.New("enable", nsCarbons))); err != nil {
			t.Fatalf("enable carbons for %s: %v", c.JID(), err)
		}
	}
	nextMessage := func(c *xmpp.Client) *stanza.Element {
		t.Helper()
		for {
			el, err := c.Recv(ctx)
			if err != nil {
				t.Fatalf("%s: %v", c.JID(), err)
			}
			if el.Name == "message" {
				return el
			}
		}
	}
	forwarded := func(c *xmpp.Client, kind string) *stanza.Element {
		t.Helper()
		el := nextMessage(c)
		w := el.Child(kind, nsCarbons)
		if el.From() != "alice@"+domain || w == nil || w.Child("forwarded", nsForward) == nil {
			t.Fatalf("%s: got %v (from %q), want a %s carbon from alice@%s", c.JID(), el, el.From(), kind, domain)
		}
		m := w.Child("forwarded", nsForward).Child("message", stanza.NSClient)
		if m == nil {
			t.Fatalf("%s: carbon without a forwarded message", c.JID())
		}
		return m
	}

	// Received: bob writes to alice/one; alice/two gets a copy.
	if err := bob.SendMessage("alice@"+domain+"/one", "hello one"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(a1); m.ChildText("body", stanza.NSClient) != "hello one" {
		t.Fatalf("alice/one got %v", m)
	}
	m := forwarded(a2, "received")
	if m.ChildText("body", stanza.NSClient) != "hello one" || m.From() != "bob@"+domain+"/x" || m.To() != "alice@"+domain+"/one" {
		t.Errorf("received carbon forwards %v", m)
	}

	// Sent: alice/one writes to bob; alice/two gets a copy.
	if err := a1.SendMessage("bob@"+domain, "hello bob"); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(bob); m.ChildText("body", stanza.NSClient) != "hello bob" {
		t.Fatalf("bob got %v", m)
	}
	m = forwarded(a2, "sent")
	if m.ChildText("body", stanza.NSClient) != "hello bob" || m.From() != "alice@"+domain+"/one" || m.To() != "bob@"+domain {
		t.Errorf("sent carbon forwards %v", m)
	}
}
