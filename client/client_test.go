package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

const testTimeout = 20 * time.Second

func dial(t *testing.T, s *server, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = s.C2S
	}
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = s.tlsConfig(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial %s as %s: %v", cfg.Addr, cfg.JID, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recvMatching returns the first incoming stanza for which match is true,
// skipping others (presence broadcasts and the like).
func recvMatching(t *testing.T, c *client.Client, what string, match func(*stanza.Element) bool) *stanza.Element {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		el, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s: waiting for %s: %v", c.JID(), what, err)
		}
		if match(el) {
			return el
		}
	}
}

func ping(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", domain).
		Append(stanza.New("ping", "urn:xmpp:ping"))
	reply, err := c.IQ(ctx, iq)
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if reply.Type() != "result" || reply.From() != domain {
		t.Fatalf("ping reply: type %q from %q, want result from %s", reply.Type(), reply.From(), domain)
	}
}

func TestLoginSTARTTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"})
	c := dial(t, s, client.Config{JID: "alice@localhost", Password: "secret", Resource: "laptop"})
	if got := c.JID().String(); got != "alice@localhost/laptop" {
		t.Errorf("JID() = %q, want alice@localhost/laptop", got)
	}
	ping(t, c)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", err)
	}
	if err := c.SendPresence(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if _, ok := <-c.Incoming(); ok {
		t.Error("Incoming still open after Close")
	}
}

func TestLoginDirectTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"})
	// The resource comes from the full JID; the server's name comes from
	// the JID's domain although Addr is an IP address.
	c := dial(t, s, client.Config{Addr: s.C2STLS, DirectTLS: true, JID: "Alice@localhost/phone", Password: "secret"})
	if got := c.JID().String(); got != "alice@localhost/phone" {
		t.Errorf("JID() = %q, want alice@localhost/phone", got)
	}
	ping(t, c)
}

func TestServerChosenResourceAndSCRAMSHA1(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"})
	c := dial(t, s, client.Config{JID: "alice@localhost", Password: "secret", Mechanism: "SCRAM-SHA-1"})
	if c.JID().Resource() == "" || c.JID().Bare().String() != "alice@localhost" {
		t.Errorf("JID() = %q, want alice@localhost/<server-chosen>", c.JID())
	}
}

func TestMessageExchange(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "a-pw", "bob": "b-pw"})
	alice := dial(t, s, client.Config{JID: "alice@localhost", Password: "a-pw", Resource: "a", SendInitialPresence: true})
	bob := dial(t, s, client.Config{Addr: s.C2STLS, DirectTLS: true, JID: "bob@localhost", Password: "b-pw", Resource: "b", SendInitialPresence: true})
	// Initial presence is processed in order with later stanzas on the
	// server, but bob's may still be in flight: a ping round trip makes
	// sure bob is available before alice sends to his bare JID.
	ping(t, bob)

	if err := alice.SendMessage("bob@localhost", "hello <bob> & co"); err != nil {
		t.Fatal(err)
	}
	m := recvMatching(t, bob, "alice's message", func(el *stanza.Element) bool { return el.Name == "message" })
	if got := m.ChildText("body", stanza.NSClient); got != "hello <bob> & co" {
		t.Errorf("body = %q", got)
	}
	if m.From() != "alice@localhost/a" {
		t.Errorf("from = %q, want alice@localhost/a", m.From())
	}

	// And back, to the full JID, with Send and a hand-built stanza.
	reply := stanza.New("message", "").SetAttr("to", m.From()).SetAttr("type", "chat").
		Append(stanza.New("body", stanza.NSClient).AppendText("hi alice"))
	if err := bob.Send(reply); err != nil {
		t.Fatal(err)
	}
	m = recvMatching(t, alice, "bob's reply", func(el *stanza.Element) bool { return el.Name == "message" })
	if got := m.ChildText("body", stanza.NSClient); got != "hi alice" || m.From() != "bob@localhost/b" {
		t.Errorf("reply: body %q from %q", got, m.From())
	}
}

func TestIQError(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "a-pw", "bob": "b-pw"})
	alice := dial(t, s, client.Config{JID: "alice@localhost", Password: "a-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// Pinging another account's bare JID is answered by the server on its
	// behalf with service-unavailable (the account does not answer for others).
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", "bob@localhost").
		Append(stanza.New("ping", "urn:xmpp:ping"))
	reply, err := alice.IQ(ctx, iq)
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "service-unavailable" {
		t.Fatalf("IQ error = %v, want a *stanza.Error service-unavailable", err)
	}
	if reply == nil || reply.Type() != "error" || reply.From() != "bob@localhost" {
		t.Errorf("error reply = %v", reply)
	}
	if iq.ID() != "" {
		t.Error("IQ modified the caller's element")
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"})
	for _, mech := range []string{"", "PLAIN"} {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		c, err := client.Dial(ctx, client.Config{Addr: s.C2S, JID: "alice@localhost", Password: "wrong", Mechanism: mech, TLSConfig: s.tlsConfig(t)})
		cancel()
		if err == nil {
			_ = c.Close()
			t.Fatalf("mechanism %q: Dial with a wrong password succeeded", mech)
		}
		var ae *client.AuthError
		if !errors.As(err, &ae) || ae.Condition != "not-authorized" {
			t.Fatalf("mechanism %q: err = %v, want an *AuthError not-authorized", mech, err)
		}
		if !strings.Contains(err.Error(), "not-authorized") {
			t.Errorf("error text %q does not name the condition", err)
		}
	}
}

func TestStreamErrorConflict(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"})
	first := dial(t, s, client.Config{JID: "alice@localhost/same", Password: "secret"})
	dial(t, s, client.Config{JID: "alice@localhost/same", Password: "secret"})
	// The first session is replaced: a conflict stream error, then the end.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		_, err := first.Recv(ctx)
		if err == nil {
			continue
		}
		var se *stanza.StreamError
		if !errors.As(err, &se) || se.Condition != stanza.StreamConflict {
			t.Fatalf("Recv = %v, want a conflict *stanza.StreamError", err)
		}
		break
	}
	if err := first.Err(); err == nil {
		t.Error("Err() = nil after the stream ended")
	}
	if err := first.SendPresence(); err == nil {
		t.Error("Send succeeded on an ended stream")
	}
	if err := first.Close(); err != nil {
		t.Errorf("Close after the server ended the stream: %v", err)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil, "--allow-registration")
	cfg := client.Config{Addr: s.C2S, JID: "newbie@localhost", Password: "fresh-pw", TLSConfig: s.tlsConfig(t)}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := client.Register(ctx, cfg); err != nil {
		t.Fatalf("Register: %v", err)
	}
	c := dial(t, s, cfg)
	ping(t, c)

	// The same name again, from another address (the server allows one
	// registration per address and 10 s): conflict.
	again := cfg
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	again.DialContext = d.DialContext
	err := client.Register(ctx, again)
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "conflict" {
		t.Fatalf("second Register = %v, want a *stanza.Error conflict", err)
	}
}

// fakeServer accepts one connection and answers with script, for the
// cases the real server cannot be made to produce.
func fakeServer(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		script(c)
	}()
	return ln.Addr().String()
}

func TestRefusesPlaintextAuth(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='x' version='1.0'>` +
			`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>`))
		n, _ := c.Read(buf)
		if strings.Contains(string(buf[:n]), "<auth") {
			t.Errorf("client sent <auth/> in the clear: %s", buf[:n])
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := client.Dial(ctx, client.Config{Addr: addr, JID: "alice@localhost", Password: "pw"})
	if !errors.Is(err, client.ErrNoTLS) {
		t.Fatalf("Dial = %v, want ErrNoTLS", err)
	}
}

func TestDialTimeout(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		time.Sleep(3 * time.Second) // never answers in time
	})
	start := time.Now()
	_, err := client.Dial(context.Background(), client.Config{Addr: addr, JID: "alice@localhost", Password: "pw", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want a context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v with a 300ms timeout", d)
	}
}

func TestStreamErrorDuringNegotiation(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// A domain the server does not serve: host-unknown.
	_, err := client.Dial(ctx, client.Config{Addr: s.C2S, JID: "alice@elsewhere.example", Password: "pw",
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	var se *stanza.StreamError
	if !errors.As(err, &se) || se.Condition != stanza.StreamHostUnknown {
		t.Fatalf("Dial = %v, want a host-unknown *stanza.StreamError", err)
	}
}

// scripted is the server side of a fake connection: expect reads until
// the client has sent a substring and returns what it sent up to it, send
// writes raw XML.
type scripted struct {
	t   *testing.T
	c   net.Conn
	got string
}

func (s *scripted) expect(sub string) string {
	s.t.Helper()
	buf := make([]byte, 4096)
	_ = s.c.SetReadDeadline(time.Now().Add(testTimeout))
	for !strings.Contains(s.got, sub) {
		n, err := s.c.Read(buf)
		if err != nil {
			s.t.Errorf("fake server: waiting for %q: %v; got %q", sub, err, s.got)
			return ""
		}
		s.got += string(buf[:n])
	}
	end := strings.Index(s.got, sub) + len(sub)
	seen := s.got[:end]
	s.got = s.got[end:]
	return seen
}

func (s *scripted) send(xml string) { _, _ = s.c.Write([]byte(xml)) }

// attrOf returns attribute name of the last <tag ...> in xml.
func attrOf(xml, tag, name string) string {
	i := strings.LastIndex(xml, "<"+tag+" ")
	if i < 0 {
		return ""
	}
	open := xml[i:]
	if k := strings.IndexByte(open, '>'); k >= 0 {
		open = open[:k]
	}
	j := strings.Index(open, " "+name+"='")
	if j < 0 {
		return ""
	}
	v := open[j+len(name)+3:]
	return v[:max(strings.IndexByte(v, '\''), 0)]
}

const fakeHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>`

// fakeLogin plays a server up to a bound session alice@localhost/r: PLAIN
// in the clear (the client must allow that), then bind.
func fakeLogin(s *scripted) {
	s.expect("<stream:stream")
	s.send(fakeHeader + `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`)
	s.expect("</auth>")
	s.send(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
	s.expect("<stream:stream")
	s.send(fakeHeader + `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`)
	id := attrOf(s.expect("</iq>"), "iq", "id")
	s.send(`<iq type='result' id='` + id + `'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r</jid></bind></iq>`)
}

// TestReader checks the reader against a scripted server: pings are
// answered, an iq reply from the wrong sender is not taken for the real
// one, and a stream error ends the session with a *stanza.StreamError.
func TestReader(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(c net.Conn) {
		s := &scripted{t: t, c: c}
		fakeLogin(s)
		s.send(`<iq type='get' id='p1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
		// The ping reply and the client's own iq come in either order.
		got := s.expect("jabber:iq:version'/></iq>")
		if !strings.Contains(got, "id='p1'") {
			got += s.expect("id='p1'") + s.expect("/>")
		} else if tail := got[strings.Index(got, "id='p1'"):]; !strings.Contains(tail, "/>") {
			got += s.expect("/>")
		}
		var pong, req string
		for _, tag := range strings.SplitAfter(got, ">") {
			if strings.HasPrefix(tag, "<iq ") && strings.Contains(tag, "id='p1'") {
				pong = tag
			} else if strings.HasPrefix(tag, "<iq ") {
				req = tag
			}
		}
		if attrOf(pong, "iq", "type") != "result" || attrOf(pong, "iq", "to") != "localhost" {
			t.Errorf("ping answered with %q", pong)
		}
		id := attrOf(req, "iq", "id")
		// A spoofed answer from someone else, then the real one.
		s.send(`<iq type='result' id='` + id + `' from='mallory@localhost/x'/>`)
		s.send(`<iq type='result' id='` + id + `' from='localhost'><query xmlns='jabber:iq:version'><name>fake</name></query></iq>`)
		s.send(`<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text></stream:error></stream:stream>`)
		s.expect("</stream:stream>")
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: addr, JID: "alice@localhost", Password: "pw", AllowPlaintext: true, Mechanism: "PLAIN"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.IQ(ctx, stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", "localhost").
		Append(stanza.New("query", "jabber:iq:version")))
	if err != nil {
		t.Fatalf("IQ: %v", err)
	}
	if reply.From() != "localhost" || reply.Child("query", "jabber:iq:version") == nil {
		t.Errorf("IQ returned %v, want the server's reply", reply)
	}
	spoof, err := c.Recv(ctx)
	if err != nil || spoof.From() != "mallory@localhost/x" {
		t.Errorf("spoofed reply should arrive on Incoming, got %v, %v", spoof, err)
	}
	_, err = c.Recv(ctx)
	var se *stanza.StreamError
	if !errors.As(err, &se) || se.Condition != stanza.StreamSystemShutdown || se.Text != "bye" {
		t.Fatalf("Recv = %v, want system-shutdown stream error", err)
	}
}
