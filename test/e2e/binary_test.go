package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	xmpp "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/internal/binary"
	"github.com/parley-im/parley/stanza"
)

// TestBinaryClientChatsWithSlixmpp: a client speaking the compact binary
// encoding (direct TLS, ALPN parley-bin/1) and slixmpp speaking XML
// exchange messages, receipts and presence through one server.
func TestBinaryClientChatsWithSlixmpp(t *testing.T) {
	requirePython(t)
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-alice", "bob": "pw-bob"})
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bob := login(t, srv, "bob@"+domain+"/desk", "pw-bob", clientOpts{})
	alice, err := xmpp.Dial(ctx, xmpp.Config{Addr: srv.C2STLS, DirectTLS: true, Binary: true,
		JID: "alice@" + domain + "/phone", Password: "pw-alice", TLSConfig: &tls.Config{InsecureSkipVerify: true},
		SendInitialPresence: true, StreamManagement: true})
	if err != nil {
		t.Fatalf("binary login: %v", err)
	}
	defer alice.Close()
	recv := func(desc string, match func(*stanza.Element) bool) *stanza.Element {
		t.Helper()
		for {
			el, err := alice.Recv(ctx)
			if err != nil {
				t.Fatalf("alice waiting for %s: %v", desc, err)
			}
			if match(el) {
				return el
			}
		}
	}

	// Binary → XML with a receipt request; XML answers with a receipt.
	m := stanza.New("message", stanza.NSClient).SetAttr("to", bob.JID).SetAttr("type", "chat").SetAttr("id", "bin-1").
		Append(stanza.New("body", stanza.NSClient).AppendText("hello from the binary side ✓")).
		Append(stanza.New("request", "urn:xmpp:receipts"))
	if err := alice.Send(m); err != nil {
		t.Fatal(err)
	}
	got := bob.expectMessage("hello from the binary side ✓")
	if got.str("from") != "alice@"+domain+"/phone" || !got.boolean("receipt_requested") || got.str("id") != "bin-1" {
		t.Fatalf("slixmpp got %s", got)
	}
	bob.mustCall("send", map[string]any{"to": got.str("from"), "receipt_for": "bin-1"})
	r := recv("the receipt", func(el *stanza.Element) bool { return el.Child("received", "urn:xmpp:receipts") != nil })
	if r.Child("received", "urn:xmpp:receipts").Attr("id") != "bin-1" || r.From() != bob.JID {
		t.Errorf("receipt = %+v", r)
	}

	// XML → binary.
	bob.send("alice@"+domain, "hello from slixmpp <&>")
	back := recv("slixmpp's message", func(el *stanza.Element) bool { return el.ChildText("body", stanza.NSClient) != "" })
	if back.ChildText("body", stanza.NSClient) != "hello from slixmpp <&>" || back.From() != bob.JID {
		t.Errorf("alice got %+v", back)
	}

	// Presence both ways (directed: no roster subscription needed).
	if err := alice.Send(stanza.New("presence", stanza.NSClient).SetAttr("to", bob.JID).
		Append(stanza.New("show", stanza.NSClient).AppendText("away"))); err != nil {
		t.Fatal(err)
	}
	p := bob.expect("alice's presence", 15*time.Second, func(ev event) bool {
		return ev.str("ev") == "presence" && ev.str("from") == "alice@"+domain+"/phone"
	})
	if p.str("show") != "away" {
		t.Errorf("presence at slixmpp: %s", p)
	}
	bob.mustCall("presence", map[string]any{"to": "alice@" + domain + "/phone", "show": "dnd"})
	pr := recv("bob's presence", func(el *stanza.Element) bool { return el.Name == "presence" && el.From() == bob.JID })
	if pr.ChildText("show", stanza.NSClient) != "dnd" {
		t.Errorf("presence at the binary client: %+v", pr)
	}
	bob.quit()
}

// TestBinaryOverWebSocket: the parley-bin WebSocket subprotocol carries the
// binary encoding; a client on it logs in (SASL PLAIN, resource binding)
// and chats with an XML client on TCP.
func TestBinaryOverWebSocket(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-alice", "bob": "pw-bob"})
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bob, err := xmpp.Dial(ctx, xmpp.Config{Addr: srv.C2S, JID: "bob@" + domain + "/desk", Password: "pw-bob",
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, SendInitialPresence: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	d := websocket.Dialer{Subprotocols: []string{"parley-bin"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.DialContext(ctx, "ws://"+srv.HTTP+"/xmpp-websocket", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	defer ws.Close()
	if ws.Subprotocol() != "parley-bin" {
		t.Fatalf("subprotocol %q, want parley-bin", ws.Subprotocol())
	}
	codec := binary.NewCodec(binary.Options{Role: binary.Client})
	write := func(b []byte) {
		t.Helper()
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	next := func(desc string) binary.Event {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			ev, ok, err := codec.Next()
			if err != nil {
				t.Fatalf("%s: decode: %v", desc, err)
			}
			if ok {
				return ev
			}
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("%s: read: %v", desc, err)
			}
			if typ != websocket.BinaryMessage {
				t.Fatalf("%s: got a text message on parley-bin", desc)
			}
			if err := codec.Feed(msg); err != nil {
				t.Fatalf("%s: feed: %v", desc, err)
			}
		}
	}
	element := func(desc string) *stanza.Element {
		t.Helper()
		ev := next(desc)
		if ev.Kind != binary.EventElement {
			t.Fatalf("%s: got event %v, want an element", desc, ev.Kind)
		}
		return ev.Element
	}
	open := func() {
		write(codec.AppendOpen(nil, binary.Header{To: domain, Version: "1.0", NS: stanza.NSClient}))
		if ev := next("stream open"); ev.Kind != binary.EventOpen || ev.Header.From != domain {
			t.Fatalf("stream open: %+v", ev)
		}
	}
	open()
	feats := element("features")
	if mechs := feats.Child("mechanisms", stanza.NSSASL); mechs == nil {
		t.Fatalf("features without mechanisms: %+v", feats)
	}
	auth := stanza.New("auth", stanza.NSSASL).SetAttr("mechanism", "PLAIN").
		AppendText(base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw-alice")))
	write(codec.AppendElement(nil, auth))
	if el := element("SASL result"); el.Name != "success" {
		t.Fatalf("SASL: %+v", el)
	}
	codec.Reset()
	open()
	if feats := element("features after auth"); feats.Child("bind", stanza.NSBind) == nil {
		t.Fatalf("no bind feature: %+v", feats)
	}
	bind := stanza.New("iq", stanza.NSClient).SetAttr("type", "set").SetAttr("id", "b1").
		Append(stanza.New("bind", stanza.NSBind).Append(stanza.New("resource", stanza.NSBind).AppendText("ws")))
	write(codec.AppendElement(nil, bind))
	if el := element("bind result"); el.Type() != "result" {
		t.Fatalf("bind: %+v", el)
	}
	msg := stanza.New("message", stanza.NSClient).SetAttr("to", "bob@"+domain+"/desk").SetAttr("type", "chat").
		Append(stanza.New("body", stanza.NSClient).AppendText("binary over websocket"))
	write(append(codec.AppendElement(nil, stanza.New("presence", stanza.NSClient)), codec.AppendElement(nil, msg)...))
	for {
		el, err := bob.Recv(ctx)
		if err != nil {
			t.Fatalf("bob: %v", err)
		}
		if el.Name == "message" {
			if el.ChildText("body", stanza.NSClient) != "binary over websocket" || el.From() != "alice@"+domain+"/ws" {
				t.Fatalf("bob got %+v", el)
			}
			break
		}
	}
	if err := bob.SendMessage("alice@"+domain+"/ws", "and back to the binary side"); err != nil {
		t.Fatal(err)
	}
	for {
		el := element("bob's reply")
		if el.Name == "message" {
			if el.ChildText("body", stanza.NSClient) != "and back to the binary side" {
				t.Fatalf("alice got %+v", el)
			}
			break
		}
	}
}
