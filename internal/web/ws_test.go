package web

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-im/parley/internal/auth"
	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/im/roster"
	"github.com/parley-im/parley/internal/listener"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

// These tests run the real WebSocket handler on 127.0.0.1 behind the real
// HTTP mux (web.New), with real c2s sessions over a Pebble store, and drive
// it with gorilla's WebSocket client.

const (
	wsDomain = "example.com"
	// wsWait bounds every wait; nothing asserts on durations.
	wsWait = 10 * time.Second
)

var wsQuietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

type wsEnv struct {
	t       *testing.T
	st      *pebble.Store
	tracker *listener.Tracker
	srv     *httptest.Server
	url     string
	cfg     WebSocketConfig
}

type newSessionFunc = func(c2s.Transport, c2s.Codec) (listener.Session, error)

type wsEnvOpts struct {
	maxStanza int
	idle      time.Duration
	perIP     int
	origins   []string
	// wrap, if set, replaces the real session constructor (given).
	wrap func(real newSessionFunc) newSessionFunc
}

func newWSEnv(t *testing.T, o wsEnvOpts) *wsEnv {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: wsQuietLog})
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{Domain: wsDomain, Store: st, Codec: wsStoreCodec{}, Logger: wsQuietLog})
	if err != nil {
		t.Fatal(err)
	}
	sessCfg := &c2s.Config{
		Domain: wsDomain,
		// The server's default: authentication only on a secure channel.
		// STARTTLS is impossible on a WebSocket, so only the loopback
		// rule lets these clients log in.
		StartTLSRequired: true,
		Router:           r,
		Auth: auth.New(auth.Config{
			Domain:   wsDomain,
			Accounts: st,
			Secret:   []byte("0123456789abcdef0123456789abcdef"),
			Window:   time.Hour,
		}),
		Presence:    roster.New(st, r, wsQuietLog),
		Logger:      wsQuietLog,
		MaxOutBytes: 1 << 20,
	}
	e := &wsEnv{t: t, st: st, tracker: listener.NewTracker()}
	e.cfg = WebSocketConfig{
		NewSession: func(tr c2s.Transport, codec c2s.Codec) (listener.Session, error) {
			return c2s.New(sessCfg, tr, codec), nil
		},
		MaxStanzaSize:       o.maxStanza,
		IdleTimeout:         o.idle,
		WriteTimeout:        5 * time.Second,
		AllowedOrigins:      o.origins,
		RequireSecure:       true,
		Tracker:             e.tracker,
		MaxConnectionsPerIP: o.perIP,
		Logger:              wsQuietLog,
	}
	if o.wrap != nil {
		e.cfg.NewSession = o.wrap(e.cfg.NewSession)
	}
	e.srv = httptest.NewServer(New(Config{Logger: wsQuietLog, WebSocket: WebSocket(e.cfg), HostMeta: HostMeta()}))
	e.url = "ws" + strings.TrimPrefix(e.srv.URL, "http") + WebSocketPath
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wsWait)
		defer cancel()
		if err := e.tracker.Drain(ctx); err != nil {
			t.Errorf("drain at cleanup: %v", err)
		}
		e.srv.Close()
		r.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return e
}

// wsStoreCodec is the router's queue format (self-contained XML).
type wsStoreCodec struct{}

func (wsStoreCodec) Marshal(el *stanza.Element) []byte { return xmlstream.AppendElement(nil, el, "") }

func (wsStoreCodec) Unmarshal(b []byte) (*stanza.Element, error) {
	d := xmlstream.NewFramedDecoder(xmlstream.DefaultLimits())
	if err := d.Feed(b); err != nil {
		return nil, err
	}
	tok, ok, err := d.Next()
	if err != nil || !ok {
		return nil, errors.New("bad stored stanza")
	}
	return tok.Element, nil
}

func (e *wsEnv) addUser(name, pass string) {
	e.t.Helper()
	s1, s256, err := sasl.NewCredentials(pass)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.CreateAccount(context.Background(), store.Account{Username: name, Created: time.Now(), SHA1: s1, SHA256: s256}); err != nil {
		e.t.Fatal(err)
	}
}

// waitCount waits until the tracker counts n connections.
func (e *wsEnv) waitCount(n int) {
	e.t.Helper()
	deadline := time.Now().Add(wsWait)
	for e.tracker.Count() != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("tracker counts %d connections, want %d", e.tracker.Count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Client

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	resp *http.Response
}

// dial connects with the given subprotocols and headers.
func (e *wsEnv) dial(protocols []string, h http.Header) (*wsClient, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: wsWait}
	conn, resp, err := d.Dial(e.url, h)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{t: e.t, conn: conn, resp: resp}
	e.t.Cleanup(func() { _ = conn.Close() })
	return c, resp, nil
}

func (e *wsEnv) mustDial() *wsClient {
	e.t.Helper()
	c, resp, err := e.dial([]string{Subprotocol}, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	if got := c.conn.Subprotocol(); got != Subprotocol {
		e.t.Fatalf("negotiated subprotocol %q, want %q", got, Subprotocol)
	}
	return c
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wsWait))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// frame is one message from the server, decoded.
type frame struct {
	raw  string
	kind xmlstream.Kind
	el   *stanza.Element
}

func (f frame) is(name, ns string) bool {
	return f.kind == xmlstream.KindElement && f.el.Name == name && f.el.NS == ns
}

// recv reads one message, checks that it is one complete element (the
// framed decoder refuses anything else) and decodes it.
func (c *wsClient) recv() frame {
	c.t.Helper()
	f, err := c.tryRecv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return f
}

func (c *wsClient) tryRecv() (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(wsWait))
	typ, p, err := c.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.TextMessage {
		return frame{}, errors.New("server sent a non-text message")
	}
	d := xmlstream.NewFramedDecoder(xmlstream.DefaultLimits())
	if err := d.Feed(p); err != nil {
		return frame{}, err
	}
	tok, ok, err := d.Next()
	if err != nil {
		return frame{}, errors.New("message " + string(p) + ": " + err.Error())
	}
	if !ok {
		return frame{}, errors.New("incomplete message " + string(p))
	}
	if _, more, err := d.Next(); more || err != nil {
		return frame{}, errors.New("more than one element in message " + string(p))
	}
	return frame{raw: string(p), kind: tok.Kind, el: tok.Element}, nil
}

// expect reads messages until one matches, failing on the way if the
// connection ends.
func (c *wsClient) expect(desc string, match func(frame) bool) frame {
	c.t.Helper()
	for {
		f, err := c.tryRecv()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", desc, err)
		}
		if match(f) {
			return f
		}
	}
}

// expectClosed reads until the WebSocket is closed and returns the close
// error (a *websocket.CloseError when a close frame came).
func (c *wsClient) expectClosed() error {
	c.t.Helper()
	for {
		_, err := c.tryRecv()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection not closed within %v", wsWait)
			}
			return err
		}
	}
}

const openTo = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>`

// open sends <open/> and returns the features.
func (c *wsClient) open() *stanza.Element {
	c.t.Helper()
	c.send(openTo)
	f := c.recv()
	if f.kind != xmlstream.KindStreamOpen || !strings.HasPrefix(f.raw, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'") {
		c.t.Fatalf("want <open/> first, got %q", f.raw)
	}
	feats := c.recv()
	if !feats.is("features", stanza.NSStream) {
		c.t.Fatalf("want features, got %q", feats.raw)
	}
	return feats.el
}

func mechanisms(feats *stanza.Element) []string {
	var out []string
	if m := feats.Child("mechanisms", stanza.NSSASL); m != nil {
		for _, k := range m.Elements() {
			out = append(out, k.TextContent())
		}
	}
	return out
}

// login runs SCRAM (mech), restarts the stream and binds resource; it
// returns the bound JID.
func (c *wsClient) login(mech, user, pass, resource string) string {
	c.t.Helper()
	feats := c.open()
	if !contains(mechanisms(feats), mech) {
		c.t.Fatalf("%s not offered: %q", mech, mechanisms(feats))
	}
	cm, err := sasl.NewClient(mech, user, pass, sasl.ChannelBinding{})
	if err != nil {
		c.t.Fatal(err)
	}
	first, err := cm.Start()
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech + `'>` + sasl.EncodeData(first) + `</auth>`)
	for {
		f := c.recv()
		switch {
		case f.is("challenge", stanza.NSSASL):
			data, err := sasl.DecodeData(f.el.TextContent())
			if err != nil {
				c.t.Fatal(err)
			}
			resp, err := cm.Next(data)
			if err != nil {
				c.t.Fatalf("SCRAM step: %v", err)
			}
			c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + sasl.EncodeData(resp) + `</response>`)
			continue
		case f.is("success", stanza.NSSASL):
			data, err := sasl.DecodeData(f.el.TextContent())
			if err != nil {
				c.t.Fatal(err)
			}
			if err := cm.Verify(data); err != nil {
				c.t.Fatalf("server signature: %v", err)
			}
		default:
			c.t.Fatalf("SASL: unexpected %q", f.raw)
		}
		break
	}
	if feats := c.open(); feats.Child("bind", stanza.NSBind) == nil {
		c.t.Fatalf("no bind feature after login")
	}
	c.send(`<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	res := c.expect("bind result", func(f frame) bool { return f.is("iq", stanza.NSClient) && f.el.ID() == "b1" })
	if res.el.Type() != "result" {
		c.t.Fatalf("bind: %q", res.raw)
	}
	return res.el.Child("bind", stanza.NSBind).ChildText("jid", stanza.NSBind)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// expectStreamError waits for <stream:error/> with cond, then <close/>,
// then the WebSocket close.
func (c *wsClient) expectStreamError(cond string) {
	c.t.Helper()
	f := c.expect("stream error", func(f frame) bool { return f.is("error", stanza.NSStream) })
	if f.el.Child(cond, stanza.NSStreams) == nil {
		c.t.Fatalf("stream error %q, want %s", f.raw, cond)
	}
	if !strings.Contains(f.raw, "xmlns:stream='http://etherx.jabber.org/streams'") {
		c.t.Errorf("stream error does not declare its prefix (RFC 7395 §3.6.2): %q", f.raw)
	}
	cl := c.recv()
	if cl.kind != xmlstream.KindStreamClose {
		c.t.Fatalf("want <close/> after the stream error, got %q", cl.raw)
	}
	err := c.expectClosed()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		c.t.Fatalf("want a normal WebSocket close frame, got %v", err)
	}
}

// ---------------------------------------------------------------------------
// Tests

// Two WebSocket clients log in with SCRAM (SHA-1 and SHA-256) on loopback,
// where the default starttls-required policy still lets them authenticate,
// and exchange messages; every server message is one element.
func TestWebSocketLoginAndChat(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")

	probe := e.mustDial()
	feats := probe.open()
	mechs := mechanisms(feats)
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
		if !contains(mechs, m) {
			t.Errorf("mechanism %s not offered on loopback: %q", m, mechs)
		}
	}
	for _, m := range mechs {
		if strings.HasSuffix(m, "-PLUS") {
			t.Errorf("channel binding offered without TLS: %s", m)
		}
	}
	if feats.Child("starttls", stanza.NSTLS) != nil {
		t.Error("STARTTLS offered on a WebSocket")
	}
	probe.send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	if f := probe.recv(); f.kind != xmlstream.KindStreamClose {
		t.Fatalf("want <close/> in answer to <close/>, got %q", f.raw)
	}
	_ = probe.expectClosed()

	alice := e.mustDial()
	aliceJID := alice.login(sasl.MechSCRAMSHA256, "alice", "secret", "web")
	bob := e.mustDial()
	bobJID := bob.login(sasl.MechSCRAMSHA1, "bob", "hunter2", "tab")
	if aliceJID != "alice@example.com/web" || bobJID != "bob@example.com/tab" {
		t.Fatalf("bound %q and %q", aliceJID, bobJID)
	}
	for _, c := range []*wsClient{alice, bob} {
		c.send(`<presence xmlns='jabber:client'/>`)
	}
	alice.send(`<message xmlns='jabber:client' to='bob@example.com/tab' type='chat' id='m1'><body>hi bob &lt;3</body></message>`)
	m := bob.expect("message", func(f frame) bool { return f.is("message", stanza.NSClient) })
	if m.el.From() != aliceJID || m.el.ChildText("body", stanza.NSClient) != "hi bob <3" {
		t.Fatalf("bob got %q", m.raw)
	}
	// Messages without a namespace declaration are read as jabber:client.
	bob.send(`<message to='alice@example.com/web' type='chat'><body>hello alice</body></message>`)
	m = alice.expect("message", func(f frame) bool { return f.is("message", stanza.NSClient) })
	if m.el.From() != bobJID || m.el.ChildText("body", stanza.NSClient) != "hello alice" {
		t.Fatalf("alice got %q", m.raw)
	}
	e.waitCount(2)
	// The client closes: <close/> is answered and the connection goes.
	alice.send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	alice.expect("close", func(f frame) bool { return f.kind == xmlstream.KindStreamClose })
	_ = alice.expectClosed()
	e.waitCount(1)
}

// The subprotocol must be xmpp; anything else is refused with 400 before
// the upgrade, and so are plain HTTP requests.
func TestWebSocketSubprotocol(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{})
	for _, protos := range [][]string{nil, {"parley-bin"}, {"chat", "XMPP"}} {
		_, resp, err := e.dial(protos, nil)
		if err == nil {
			t.Errorf("subprotocols %q: upgrade succeeded", protos)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("subprotocols %q: %v, want HTTP 400", protos, err)
		}
	}
	c, _, err := e.dial([]string{"parley-bin", "xmpp"}, nil)
	if err != nil {
		t.Fatalf("xmpp among others refused: %v", err)
	}
	if c.conn.Subprotocol() != Subprotocol {
		t.Errorf("negotiated %q", c.conn.Subprotocol())
	}
	resp, err := http.Get(e.srv.URL + WebSocketPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET: HTTP %d, want 400", resp.StatusCode)
	}
	e.waitCount(1)
}

// Malformed XML ends the stream with a stream error and <close/>, then a
// WebSocket close frame.
func TestWebSocketMalformedXML(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{})
	for _, bad := range []string{
		`<message><body>x</message>`,
		// Two elements in one message. (The framed decoder hands over the
		// first before it sees the second: make the first harmless.)
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'/><message/>`,
		`<message>`, // an element spread over messages
		`not xml`,
	} {
		c := e.mustDial()
		c.open()
		c.send(bad)
		c.expectStreamError(stanza.StreamNotWellFormed)
	}
	// Before <open/>: the server opens its side first, then the error.
	c := e.mustDial()
	c.send(`<message/>`)
	if f := c.recv(); f.kind != xmlstream.KindStreamOpen {
		t.Fatalf("want <open/> before the error, got %q", f.raw)
	}
	c.expectStreamError(stanza.StreamNotWellFormed)
	e.waitCount(0)
}

// A message over the stanza size limit is a policy violation; a binary
// message is bad-format.
func TestWebSocketLimits(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{maxStanza: 10000})
	c := e.mustDial()
	c.open()
	c.send(`<message xmlns='jabber:client'><body>` + strings.Repeat("x", 20000) + `</body></message>`)
	c.expectStreamError(stanza.StreamPolicyViolation)

	// Exactly at the limit is fine.
	c = e.mustDial()
	c.open()
	pad := 10000 - len(`<message xmlns='jabber:client'><body></body></message>`)
	c.send(`<message xmlns='jabber:client'><body>` + strings.Repeat("x", pad) + `</body></message>`)
	c.expectStreamError(stanza.StreamNotAuthorized) // reached the session: not authenticated

	c = e.mustDial()
	c.open()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte(`<presence/>`)); err != nil {
		t.Fatal(err)
	}
	c.expectStreamError(stanza.StreamBadFormat)
	e.waitCount(0)
}

// A connection that does not authenticate within the idle timeout is
// closed.
func TestWebSocketIdleTimeout(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{idle: 200 * time.Millisecond})
	c := e.mustDial()
	c.open()
	_ = c.expectClosed()
	e.waitCount(0)
}

// Connections count toward the tracker's limits, are released when they
// end, and are drained (system-shutdown, <close/>, close frame).
func TestWebSocketConnectionLimitAndDrain(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{perIP: 1})
	first := e.mustDial()
	first.open()
	e.waitCount(1)
	_, resp, err := e.dial([]string{Subprotocol}, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection from the address: %v, want HTTP 503", err)
	}
	e.waitCount(1)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wsWait)
		defer cancel()
		done <- e.tracker.Drain(ctx)
	}()
	first.expectStreamError(stanza.StreamSystemShutdown)
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	e.waitCount(0)
	if _, resp, err := e.dial([]string{Subprotocol}, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connection during a drain: %v, want HTTP 503", err)
	}
}

// Allowed origins restrict browsers; no Origin header (non-browser
// clients) is always accepted.
func TestWebSocketOrigins(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{origins: []string{"https://chat.example.com"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"", true}, {"https://chat.example.com", true}, {"HTTPS://Chat.Example.com", true}, {"https://evil.example", false}} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := e.dial([]string{Subprotocol}, h)
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", tc.origin, err)
				continue
			}
			_ = c.conn.Close()
		} else if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v, want HTTP 403", tc.origin, err)
		}
	}
	e.waitCount(0)
}

// panicSession panics in Feed, outside c2s's own recovery.
type panicSession struct{ ended atomic.Bool }

func (p *panicSession) Feed([]byte) error       { panic("boom") }
func (p *panicSession) Throttle() time.Duration { return 0 }
func (p *panicSession) End()                    { p.ended.Store(true) }
func (p *panicSession) Authenticated() bool     { return false }
func (p *panicSession) Shutdown()               {}

// A panic in one connection's reader ends that connection only.
func TestWebSocketPanicContained(t *testing.T) {
	var mu sync.Mutex
	var sessions []*panicSession
	// The first connection gets a panicking session, later ones real ones.
	e := newWSEnv(t, wsEnvOpts{wrap: func(real newSessionFunc) newSessionFunc {
		return func(tr c2s.Transport, codec c2s.Codec) (listener.Session, error) {
			mu.Lock()
			defer mu.Unlock()
			if len(sessions) == 0 {
				p := &panicSession{}
				sessions = append(sessions, p)
				return p, nil
			}
			return real(tr, codec)
		}
	}})

	bad := e.mustDial()
	// The server makes the session after answering the upgrade: wait until
	// the first (panicking) one belongs to bad before dialing good.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(sessions)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no session was made for the first connection")
		}
	}
	good := e.mustDial()
	bad.send(`<anything/>`)
	_ = bad.expectClosed()
	if !sessions[0].ended.Load() {
		t.Error("the panicking session was not ended")
	}
	good.open() // still served
	e.waitCount(1)
}

// Without TLS, a non-loopback peer is refused when secure channels are
// required; a loopback peer counts as a TLS terminator on this host.
func TestWebSocketChannelSecurity(t *testing.T) {
	r := httptest.NewRequest("GET", WebSocketPath, nil)
	r.RemoteAddr = "203.0.113.7:4444"
	if st := wsChannelState(r, wsPeerIP(r)); st != nil {
		t.Errorf("remote plain request counted as secure")
	}
	r.RemoteAddr = "[::1]:4444"
	if st := wsChannelState(r, wsPeerIP(r)); st == nil || st.HandshakeComplete {
		t.Errorf("loopback: %+v, want a non-nil state without a handshake", st)
	}
	r.RemoteAddr = "203.0.113.7:4444"
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
	if st := wsChannelState(r, wsPeerIP(r)); st == nil || st.Version != tls.VersionTLS13 {
		t.Errorf("TLS request: %+v", st)
	}

	// The handler refuses a remote plain request before upgrading.
	h := WebSocket(WebSocketConfig{RequireSecure: true, NewSession: func(c2s.Transport, c2s.Codec) (listener.Session, error) {
		t.Error("session created for a refused request")
		return nil, errors.New("no")
	}})
	req := httptest.NewRequest("GET", WebSocketPath, nil)
	req.RemoteAddr = "203.0.113.7:4444"
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "xmpp")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Errorf("remote plain upgrade: HTTP %d, want 403", w.Code)
	}
}

// The codec/transport pair: elements appended together are written as one
// message each, and the prefixes never reach the wire.
func TestWebSocketCodecFraming(t *testing.T) {
	codec := newWSCodec(1000)
	var buf []byte
	buf = codec.AppendOpen(buf, c2s.Header{From: wsDomain, ID: "abc", Version: "1.0", Lang: "en"})
	buf = codec.AppendElement(buf, stanza.New("features", stanza.NSStream))
	buf = codec.AppendElement(buf, stanza.New("message", stanza.NSClient).SetAttr("to", "a@b"))
	buf = codec.AppendClose(buf)
	var got []string
	for p := buf; len(p) > 0; {
		n := int(p[0])<<24 | int(p[1])<<16 | int(p[2])<<8 | int(p[3])
		got = append(got, string(p[4:4+n]))
		p = p[4+n:]
	}
	want := []string{
		`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' from='example.com' version='1.0' xml:lang='en'/>`,
		`<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>`,
		`<message xmlns='jabber:client' to='a@b'/>`,
		`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("framed output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := (&wsConn{}).Write([]byte{0, 0, 0, 9, 'x'}); !errors.Is(err, errWSBadFrame) {
		t.Errorf("truncated frame: %v", err)
	}
}

// A session that cannot be created closes the upgraded connection with
// 1011 and releases its slot.
func TestWebSocketSessionError(t *testing.T) {
	e := newWSEnv(t, wsEnvOpts{wrap: func(newSessionFunc) newSessionFunc {
		return func(c2s.Transport, c2s.Codec) (listener.Session, error) { return nil, errors.New("no sessions today") }
	}})
	c := e.mustDial()
	err := c.expectClosed()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr {
		t.Fatalf("want close 1011, got %v", err)
	}
	e.waitCount(0)
}
