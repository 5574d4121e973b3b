package client_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// TestBinaryAndXMLClientsChat: a client speaking the binary encoding and
// one speaking XML exchange messages, receipts and presence through one
// server, neither aware of the other's encoding.
func TestBinaryAndXMLClientsChat(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "a-pw", "bob": "b-pw"})
	alice := dial(t, s, client.Config{Addr: s.C2STLS, DirectTLS: true, Binary: true, JID: "alice@localhost", Password: "a-pw", Resource: "phone", SendInitialPresence: true, StreamManagement: true})
	bob := dial(t, s, client.Config{JID: "bob@localhost", Password: "b-pw", Resource: "desk", SendInitialPresence: true})
	ping(t, alice)
	ping(t, bob)

	// Binary → XML, with a receipt request and an origin-id as real clients send.
	m := stanza.New("message", stanza.NSClient).SetAttr("to", "bob@localhost").SetAttr("type", "chat").SetAttr("id", "m1").
		Append(stanza.New("body", stanza.NSClient).AppendText("hello from binary, <&> ✓")).
		Append(stanza.New("request", "urn:xmpp:receipts")).
		Append(stanza.New("origin-id", "urn:xmpp:sid:0").SetAttr("id", "c6e0f6f4-7c1c-4a8a-9a32-0d9a5e3c1b7e"))
	if err := alice.Send(m); err != nil {
		t.Fatal(err)
	}
	got := recvMatching(t, bob, "alice's message", func(el *stanza.Element) bool { return el.Name == "message" })
	if got.ChildText("body", stanza.NSClient) != "hello from binary, <&> ✓" || got.From() != "alice@localhost/phone" ||
		got.Child("request", "urn:xmpp:receipts") == nil || got.Child("origin-id", "urn:xmpp:sid:0").Attr("id") != "c6e0f6f4-7c1c-4a8a-9a32-0d9a5e3c1b7e" {
		t.Fatalf("bob got %+v", got)
	}
	// XML → binary: the receipt, then a message.
	receipt := stanza.New("message", stanza.NSClient).SetAttr("to", got.From()).SetAttr("id", "r1").
		Append(stanza.New("received", "urn:xmpp:receipts").SetAttr("id", "m1"))
	if err := bob.Send(receipt); err != nil {
		t.Fatal(err)
	}
	r := recvMatching(t, alice, "bob's receipt", func(el *stanza.Element) bool {
		return el.Name == "message" && el.Child("received", "urn:xmpp:receipts") != nil
	})
	if r.Child("received", "urn:xmpp:receipts").Attr("id") != "m1" || r.From() != "bob@localhost/desk" {
		t.Errorf("receipt = %+v", r)
	}
	if err := bob.SendMessage("alice@localhost/phone", "and back in XML"); err != nil {
		t.Fatal(err)
	}
	back := recvMatching(t, alice, "bob's message", func(el *stanza.Element) bool {
		return el.Name == "message" && el.ChildText("body", stanza.NSClient) != ""
	})
	if back.ChildText("body", stanza.NSClient) != "and back in XML" {
		t.Errorf("alice got %+v", back)
	}
	// Presence from the binary side reaches the XML side through directed presence.
	p := stanza.New("presence", stanza.NSClient).SetAttr("to", "bob@localhost/desk").
		Append(stanza.New("show", stanza.NSClient).AppendText("away"))
	if err := alice.Send(p); err != nil {
		t.Fatal(err)
	}
	pr := recvMatching(t, bob, "alice's presence", func(el *stanza.Element) bool {
		return el.Name == "presence" && el.From() == "alice@localhost/phone"
	})
	if pr.ChildText("show", stanza.NSClient) != "away" {
		t.Errorf("presence = %+v", pr)
	}
}

func TestBinaryNeedsDirectTLS(t *testing.T) {
	if _, err := client.Dial(t.Context(), client.Config{JID: "a@localhost", Password: "x", Binary: true}); err == nil {
		t.Fatal("Binary without DirectTLS was accepted")
	}
}

// countingConn counts the bytes a connection moves (TLS records included).
type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// TestWireBytesPerEncoding sends 1,000 chat messages like a real client's
// (id, type, body, receipt request, origin-id) in each encoding and reports
// the bytes on the wire, TLS included, on both ends. The sizes are
// deterministic up to TLS record overhead; the test asserts only that the
// binary encoding is at most half the XML size.
func TestWireBytesPerEncoding(t *testing.T) {
	s := startServer(t, map[string]string{"alice": "a-pw", "bob": "b-pw"})
	measure := func(bin bool) (sent, received int64) {
		var aIn, aOut, bIn, bOut atomic.Int64
		counting := func(in, out *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
			return func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countingConn{Conn: c, in: in, out: out}, nil
			}
		}
		cfg := func(user, pw, res string, in, out *atomic.Int64) client.Config {
			return client.Config{Addr: s.C2STLS, DirectTLS: true, Binary: bin, JID: user + "@localhost/" + res, Password: pw,
				SendInitialPresence: true, DialContext: counting(in, out)}
		}
		alice := dial(t, s, cfg("alice", "a-pw", "phone", &aIn, &aOut))
		bob := dial(t, s, cfg("bob", "b-pw", "desk", &bIn, &bOut))
		ping(t, alice)
		ping(t, bob)
		a0, b0 := aOut.Load(), bIn.Load()
		const n = 1000
		for i := range n {
			m := stanza.New("message", stanza.NSClient).SetAttr("to", "bob@localhost").SetAttr("type", "chat").
				SetAttr("id", fmt.Sprintf("3f2b1c9e-%04d-4e1a-9c55-7d0e8a6b4f21", i)).
				Append(stanza.New("body", stanza.NSClient).AppendText("hello, how are you?")).
				Append(stanza.New("request", "urn:xmpp:receipts")).
				Append(stanza.New("origin-id", "urn:xmpp:sid:0").SetAttr("id", fmt.Sprintf("3f2b1c9e-%04d-4e1a-9c55-7d0e8a6b4f21", i)))
			if err := alice.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		for got := 0; got < n; {
			el := recvMatching(t, bob, "a message", func(el *stanza.Element) bool { return el.Name == "message" })
			if el.ChildText("body", stanza.NSClient) == "hello, how are you?" {
				got++
			}
		}
		sent, received = aOut.Load()-a0, bIn.Load()-b0
		_ = alice.Close()
		_ = bob.Close()
		return sent, received
	}
	xs, xr := measure(false)
	bs, br := measure(true)
	t.Logf("1,000 chat messages, bytes on the wire with TLS: XML sent %d (%.0f/msg) received %d (%.0f/msg); binary sent %d (%.0f/msg) received %d (%.0f/msg); binary/XML %.2f sent, %.2f received",
		xs, float64(xs)/1000, xr, float64(xr)/1000, bs, float64(bs)/1000, br, float64(br)/1000, float64(bs)/float64(xs), float64(br)/float64(xr))
	if bs*2 > xs || br*2 > xr {
		t.Errorf("the binary encoding is not at most half of XML on the wire")
	}
}
