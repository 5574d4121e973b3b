package c2s_test

import (
	"context"
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

// Session states a table case starts from.
const (
	stNew      = "new"      // nothing received
	stFeatures = "features" // stream header answered with features
	stAuthed   = "authed"   // SASL done, stream restarted, not bound
	stBound    = "bound"    // resource alice@example.com/desk bound
)

// reach drives a fresh client to state.
func reach(t *testing.T, c *client, state string) {
	t.Helper()
	switch state {
	case stNew:
	case stFeatures:
		c.feed(header)
	case stAuthed:
		c.login("alice", "secret")
	case stBound:
		c.login("alice", "secret")
		c.bind("desk")
	default:
		t.Fatalf("unknown state %q", state)
	}
	c.take()
}

// streamError is the byte form of a stream error with text, then the end of the stream.
func streamError(cond string) string {
	return `<stream:error><` + cond + ` xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`
}

const streamEnd = `</stream:error></stream:stream>`

// TestSessionTable feeds bytes to a session in a given state and checks
// the bytes it writes: every fragment of want must appear, in order, and
// none of not.
func TestSessionTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		opts   envOpts
		canTLS bool
		state  string
		in     string
		want   []string
		not    []string
		closed bool // the stream ends and the transport is closed
	}{
		// Stream header and features.
		{
			name: "header/starttls required", opts: envOpts{tls: true, startTLSRequired: true}, canTLS: true,
			state: stNew, in: header,
			want: []string{serverHeader, `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`},
			not:  []string{"<mechanisms", "stream:error"},
		},
		{
			name: "header/starttls optional offers SCRAM but not PLAIN in clear", opts: envOpts{tls: true}, canTLS: true,
			state: stNew, in: header,
			want: []string{serverHeader, `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
				`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>`, `</stream:features>`},
			not: []string{"PLAIN", "<required", "stream:error"},
		},
		{
			name: "header/plain TCP without TLS offers no PLAIN and no starttls", state: stNew, in: header,
			want: []string{serverHeader, `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism>`},
			not:  []string{"PLAIN", "starttls"},
		},
		{
			name: "header/XML declaration and header split across feeds are fine", state: stNew,
			in:   header[:20],
			want: nil, not: []string{"<"},
		},
		{
			name: "header/wrong to is host-unknown", state: stNew,
			in:     strings.Replace(header, "to='example.com'", "to='example.org'", 1),
			want:   []string{serverHeader, streamError("host-unknown"), streamEnd},
			not:    []string{"<stream:features"},
			closed: true,
		},
		{
			name: "header/missing to is host-unknown", state: stNew,
			in:     strings.Replace(header, " to='example.com'", "", 1),
			want:   []string{serverHeader, streamError("host-unknown"), streamEnd},
			closed: true,
		},
		{
			name: "header/wrong version is unsupported-version", state: stNew,
			in:     strings.Replace(header, "version='1.0'>", "version='2.0'>", 1),
			want:   []string{serverHeader, streamError("unsupported-version"), streamEnd},
			not:    []string{"<stream:features"},
			closed: true,
		},
		{
			name: "header/wrong content namespace is invalid-namespace", state: stNew,
			in:     strings.Replace(header, "xmlns='jabber:client'", "xmlns='jabber:server'", 1),
			want:   []string{serverHeader, streamError("invalid-namespace"), streamEnd},
			closed: true,
		},
		{
			name: "header/a stanza instead of a header gets our header then an error", state: stNew,
			in:     `<message to='bob@example.com'><body>x</body></message>`,
			want:   []string{serverHeader, "<stream:error>", streamEnd},
			closed: true,
		},
		// Before authentication.
		{
			name: "features/message before auth is not-authorized", state: stFeatures,
			in:     `<message to='bob@example.com' type='chat'><body>let me in</body></message>`,
			want:   []string{streamError("not-authorized"), streamEnd},
			closed: true,
		},
		{
			name: "features/iq before auth is not-authorized", state: stFeatures,
			in:     `<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
			want:   []string{streamError("not-authorized"), streamEnd},
			closed: true,
		},
		{
			name: "features/unknown mechanism", state: stFeatures,
			in:   `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NOPE'>=</auth>`,
			want: []string{`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/>`},
		},
		{
			name: "features/PLAIN refused on plain TCP", state: stFeatures,
			in:   `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`,
			want: []string{`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`},
			not:  []string{"<success"},
		},
		{
			name: "features/bad base64 is incorrect-encoding", state: stFeatures,
			in:   `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>!!!</auth>`,
			want: []string{`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><incorrect-encoding/>`},
		},
		{
			name: "features/auth before required starttls is encryption-required", opts: envOpts{tls: true, startTLSRequired: true}, canTLS: true,
			state: stFeatures,
			in:    `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiYw==</auth>`,
			want:  []string{`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/>`},
			not:   []string{"<challenge"},
		},
		{
			name: "features/starttls when not offered is policy-violation", state: stFeatures,
			in:     `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
			want:   []string{streamError("policy-violation"), streamEnd},
			not:    []string{"<proceed"},
			closed: true,
		},
		{
			name: "features/unknown nonza is unsupported-stanza-type", state: stFeatures,
			in:     `<foo xmlns='urn:example:foo'/>`,
			want:   []string{streamError("unsupported-stanza-type"), streamEnd},
			closed: true,
		},
		{
			name: "features/end of stream is answered with ours", state: stFeatures,
			in:     `</stream:stream>`,
			want:   []string{`</stream:stream>`},
			not:    []string{"stream:error"},
			closed: true,
		},
		{
			name: "features/registration offered and served before auth", opts: envOpts{register: true}, state: stNew,
			in:   header + `<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>`,
			want: []string{`<register xmlns='http://jabber.org/features/iq-register'/>`, `</stream:features>`, `<iq `, `type='result'`, `<query xmlns='jabber:iq:register'>`},
			not:  []string{"stream:error"},
		},
		{
			name: "features/registration iq without registration is not-authorized", state: stFeatures,
			in:     `<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>`,
			want:   []string{streamError("not-authorized"), streamEnd},
			closed: true,
		},
		// Authenticated, not bound.
		{
			name: "authed/message before bind is not-authorized", state: stAuthed,
			in:     `<message to='bob@example.com'><body>x</body></message>`,
			want:   []string{streamError("not-authorized"), streamEnd},
			closed: true,
		},
		{
			name: "authed/non-bind iq before bind is an iq error", state: stAuthed,
			in:   `<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`,
			want: []string{`<iq id='r1' type='error'>`, `<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
			not:  []string{"stream:error"},
		},
		{
			name: "authed/bind with resource", state: stAuthed,
			in:   `<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>`,
			want: []string{`<iq id='b1' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.com/desk</jid></bind></iq>`},
		},
		{
			name: "authed/bind without resource gets a generated one", state: stAuthed,
			in:   `<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`,
			want: []string{`<iq id='b1' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.com/`, `</jid></bind></iq>`},
		},
		{
			name: "authed/bind with an invalid resource is bad-request", state: stAuthed,
			in:   "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + strings.Repeat("r", 1024) + "</resource></bind></iq>",
			want: []string{`<iq id='b1' type='error'>`, `<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
			not:  []string{"type='result'"},
		},
		{
			name: "authed/bind as a get is an error", state: stAuthed,
			in:   `<iq type='get' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`,
			want: []string{`<iq id='b1' type='error'>`, `<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		// Bound.
		{
			name: "bound/iq without payload is bad-request", state: stBound,
			in:   `<iq type='get' id='q1'/>`,
			want: []string{`<iq id='q1' type='error' to='alice@example.com/desk'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		},
		{
			name: "bound/iq with two payloads is bad-request", state: stBound,
			in:   `<iq type='get' id='q2'><ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>`,
			want: []string{`<iq id='q2' type='error' to='alice@example.com/desk'>`, `<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		{
			name: "bound/iq without id is bad-request", state: stBound,
			in:   `<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want: []string{`type='error'`, `<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		{
			name: "bound/iq of unknown type is bad-request", state: stBound,
			in:   `<iq type='fetch' id='q3'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want: []string{`<iq id='q3' type='error'`, `<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		{
			name: "bound/unknown namespace to the server is service-unavailable", state: stBound,
			in:   `<iq type='get' id='q4' to='example.com'><query xmlns='urn:example:nothing'/></iq>`,
			want: []string{`<iq id='q4' type='error' to='alice@example.com/desk' from='example.com'><query xmlns='urn:example:nothing'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		},
		{
			name: "bound/roster get is answered", state: stBound,
			in:   `<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`,
			want: []string{`<iq `, `type='result'`, `<query xmlns='jabber:iq:roster' ver='`, `</iq>`},
			not:  []string{"type='error'"},
		},
		{
			name: "bound/second bind is not-allowed", state: stBound,
			in:   `<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>other</resource></bind></iq>`,
			want: []string{`<iq id='b2' type='error'`, `<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		{
			name: "bound/legacy session establishment is a no-op result", state: stBound,
			in:   `<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`,
			want: []string{`<iq id='s1' type='result' to='alice@example.com/desk'/>`},
		},
		{
			name: "bound/message to unknown user is service-unavailable", state: stBound,
			in:   `<message to='nobody@example.com' id='m1' type='chat'><body>hi</body></message>`,
			want: []string{`<message id='m1' type='error' to='alice@example.com/desk' from='nobody@example.com'><body>hi</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`},
		},
		{
			name: "bound/message to a remote domain is remote-server-not-found", state: stBound,
			in:   `<message to='bob@elsewhere.example' id='m2'><body>hi</body></message>`,
			want: []string{`<message id='m2' type='error'`, `<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		{
			name: "bound/malformed to is jid-malformed", state: stBound,
			in:   `<message to='a@b@c' id='m3'><body>hi</body></message>`,
			want: []string{`<message id='m3' type='error'`, `<jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		},
		{
			name: "bound/malformed XML is not-well-formed and the stream closes", state: stBound,
			in:     `<message to='bob@example.com'><body>x</message>`,
			want:   []string{streamError("not-well-formed"), streamEnd},
			closed: true,
		},
		{
			name: "bound/unknown top-level element is unsupported-stanza-type", state: stBound,
			in:     `<foo/>`,
			want:   []string{streamError("unsupported-stanza-type"), streamEnd},
			closed: true,
		},
		{
			name: "bound/a second stream header is an error", state: stBound,
			in:     header,
			want:   []string{"<stream:error>", streamEnd},
			closed: true,
		},
		{
			name: "bound/end of stream", state: stBound,
			in:     `</stream:stream>`,
			want:   []string{`</stream:stream>`},
			not:    []string{"stream:error"},
			closed: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts)
			e.addUser("alice", "secret")
			c := e.newClient("192.0.2.1", tc.canTLS)
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
			if outNil, flushing := c2s.OutputIdle(c.s); !outNil || flushing {
				t.Errorf("after Feed: out nil = %v, flushing = %v; want an idle output path", outNil, flushing)
			}
		})
	}
}

// TestStartTLSThenSCRAM runs the whole negotiation: STARTTLS with a real
// handshake, PLAIN offered only once encrypted, SCRAM-SHA-256 driven by
// the sasl client, restart, bind features, bind.
func TestStartTLSThenSCRAM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{tls: true, startTLSRequired: true})
	e.addUser("alice", "secret")
	c := e.newClient("192.0.2.1", true)
	c.feed(header)
	if out := c.feed(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); out != `<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` {
		t.Fatalf("starttls: %q", out)
	}
	if !c.s.Secure() || c.tr.TLS() == nil {
		t.Fatal("not secure after STARTTLS")
	}
	out := normalize(c.feed(header))
	if !strings.HasPrefix(out, serverHeader) || strings.Contains(out, "starttls") ||
		!strings.Contains(out, "<mechanism>SCRAM-SHA-256</mechanism>") || !strings.Contains(out, "<mechanism>PLAIN</mechanism>") {
		t.Fatalf("features after TLS: %s", out)
	}
	if c.tr.released != 0 {
		t.Fatal("TLS state released before authentication")
	}
	if out := c.scram("alice", "secret"); !strings.HasPrefix(out, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`) {
		t.Fatalf("SCRAM: %q", out)
	}
	// Channel binding was the last use of the TLS details.
	if c.tr.released != 1 || !c.s.Secure() {
		t.Fatalf("after authentication: TLS state released %d times, secure %v", c.tr.released, c.s.Secure())
	}
	out = normalize(c.feed(header))
	for _, w := range []string{serverHeader, `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>`, `<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>`} {
		if !strings.Contains(out, w) {
			t.Errorf("bind features lack %q: %s", w, out)
		}
	}
	if strings.Contains(out, "<mechanisms") {
		t.Errorf("mechanisms offered again after authentication: %s", out)
	}
	if got := c.bind("desk"); got != "alice@example.com/desk" {
		t.Fatalf("bound %q", got)
	}
	if !c.s.Authenticated() || e.r.SessionCount() != 1 {
		t.Fatalf("authenticated = %v, sessions = %d", c.s.Authenticated(), e.r.SessionCount())
	}
	if n := e.metrics.Logins.Load(); n != 1 {
		t.Errorf("Logins = %d", n)
	}
}

// TestPLAINOverTLS logs in with PLAIN once the stream is encrypted.
func TestPLAINOverTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{tls: true})
	e.addUser("alice", "secret")
	c := e.newClient("192.0.2.1", true)
	c.feed(header)
	c.feed(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	c.feed(header)
	// "\x00alice\x00secret"
	if out := c.feed(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`); out != `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` {
		t.Fatalf("PLAIN: %q", out)
	}
}

// TestBadCredentialsAndThrottle: a wrong password is not-authorized; after
// FailuresPerIP failures the address gets temporary-auth-failure even with
// the right password, while another address still logs in.
func TestBadCredentialsAndThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{failuresPerIP: 2})
	e.addUser("alice", "secret")
	c := e.newClient("198.51.100.7", false)
	c.feed(header)
	for i := range 2 {
		out := c.scram("alice", "wrong")
		if !strings.HasPrefix(out, `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>`) {
			t.Fatalf("attempt %d: %q", i+1, out)
		}
	}
	// Unknown users look exactly like wrong passwords, and also count.
	c2 := e.newClient("198.51.100.8", false)
	c2.feed(header)
	if out := c2.scram("nobody", "x"); !strings.HasPrefix(out, `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>`) {
		t.Fatalf("unknown user: %q", out)
	}
	// Throttled, even with the right password; the stream stays usable.
	out := c.feed(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiY2RlZmdoaWprbG1ub3A=</auth>`)
	if !strings.HasPrefix(out, `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/>`) {
		t.Fatalf("after 2 failures: %q", out)
	}
	if c.tr.isClosed() {
		t.Fatal("a throttled login closed the stream")
	}
	// Another address is not affected.
	ok := e.newClient("203.0.113.9", false)
	ok.login("alice", "secret")
	if n := e.metrics.LoginFailures.Load(); n < 3 {
		t.Errorf("LoginFailures = %d, want >= 3", n)
	}
}

// TestSASLAbort: an aborted exchange fails with aborted and a new one may start.
func TestSASLAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	c := e.newClient("192.0.2.1", false)
	c.feed(header)
	out := c.feed(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiY2RlZmdoaWprbG1ub3A=</auth>`)
	if !strings.HasPrefix(out, `<challenge`) {
		t.Fatalf("auth: %q", out)
	}
	if out := c.feed(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`); out != `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>` {
		t.Fatalf("abort: %q", out)
	}
	if out := c.scram("alice", "secret"); !strings.HasPrefix(out, "<success") {
		t.Fatalf("login after abort: %q", out)
	}
}

// TestRestartErrorSendsNewHeader: after <success/> the client must open a
// new stream; if what comes instead is an error, the server's answer is a
// new stream (header first) carrying the stream error, since the client
// has reset its parser (RFC 6120 §4.9.1.2, §6.4.6).
func TestRestartErrorSendsNewHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	c := e.newClient("192.0.2.1", false)
	c.feed(header)
	if out := c.scram("alice", "secret"); !strings.HasPrefix(out, "<success") {
		t.Fatalf("login: %q", out)
	}
	out := normalize(c.feed(`<message to='bob@example.com'><body>no restart</body></message>`))
	if !c.tr.isClosed() || !strings.Contains(out, "<stream:error>") {
		t.Fatalf("no stream error: %q", out)
	}
	if !strings.HasPrefix(out, serverHeader) {
		t.Errorf("stream error after a stream restart was sent without a new stream header: %q", out)
	}
}

// TestSameResourceConflict: binding a resource already bound kicks the
// old session with a conflict stream error; the new one takes the JID.
func TestSameResourceConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	old := e.online("alice", "secret", "desk", true)
	nu := e.newClient("192.0.2.2", false)
	nu.login("alice", "secret")
	if j := nu.bind("desk"); j != "alice@example.com/desk" {
		t.Fatalf("new bind: %q", j)
	}
	got := old.waitOutput("</stream:stream>")
	if !strings.Contains(got, streamError("conflict")) {
		t.Fatalf("old session got %q, want a conflict stream error", got)
	}
	old.waitClosed()
	old.s.End() // the transport's reader sees the close
	j, _ := jid.Parse("alice@example.com/desk")
	if s := e.r.Session(j); s != nu.s {
		t.Fatalf("router has %v for alice/desk, want the new session", s)
	}
	if n := e.r.SessionCount(); n != 1 {
		t.Fatalf("SessionCount = %d after replace, want 1", n)
	}
	// The new session works.
	if out := nu.feed(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`); !strings.Contains(out, "type='result'") {
		t.Fatalf("new session: %q", out)
	}
}

// TestHandlerPanicIsContainedByRouter: a panicking iq handler answers that
// iq with internal-server-error; the session goes on.
func TestHandlerPanicIsContainedByRouter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	e.r.HandleServerIQ("urn:example:panic", func(context.Context, jid.JID, jid.JID, *stanza.Element) (*stanza.Element, error) {
		panic("handler bug")
	})
	c := e.online("alice", "secret", "desk", false)
	out := c.feed(`<iq type='get' id='p1' to='example.com'><boom xmlns='urn:example:panic'/></iq>`)
	if !strings.Contains(out, `<iq id='p1' type='error'`) || !strings.Contains(out, `<error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`) {
		t.Fatalf("panicking handler: %q", out)
	}
	if c.tr.isClosed() || c.err != nil {
		t.Fatalf("session ended by a handler panic: %v", c.err)
	}
	if out := c.feed(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`); !strings.Contains(out, "type='result'") {
		t.Fatalf("session after handler panic: %q", out)
	}
}

// panicPresence panics inside Broadcast for a presence with status "boom":
// a bug inside the session's own processing.
type panicPresence struct{ c2s.Presence }

func (p panicPresence) Broadcast(ctx context.Context, s router.Session, el *stanza.Element, initial bool) {
	if el.ChildText("status", "") == "boom" {
		panic("presence bug")
	}
	p.Presence.Broadcast(ctx, s, el, initial)
}

// TestSessionPanicIsContained: a panic inside the session ends that
// session with internal-server-error; other sessions are untouched.
func TestSessionPanicIsContained(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{presence: func(p c2s.Presence) c2s.Presence { return panicPresence{p} }})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	bob := e.online("bob", "hunter2", "phone", true)
	alice := e.online("alice", "secret", "desk", false)
	out := alice.feed(`<presence><status>boom</status></presence>`)
	if !strings.Contains(out, streamError("internal-server-error")) || !strings.HasSuffix(out, "</stream:stream>") {
		t.Fatalf("after the panic: %q", out)
	}
	if alice.err == nil || !alice.tr.isClosed() {
		t.Fatalf("session not ended by its panic (err %v)", alice.err)
	}
	if n := e.metrics.Panics.Load(); n != 1 {
		t.Errorf("Panics = %d", n)
	}
	if n := e.r.SessionCount(); n != 1 {
		t.Errorf("SessionCount = %d after the panicked session ended, want 1", n)
	}
	// Bob is unaffected and can still talk to the server and be reached.
	if out := bob.feed(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`); !strings.Contains(out, "type='result'") {
		t.Fatalf("bob after alice's panic: %q", out)
	}
	carol := e.online("alice", "secret", "laptop", true)
	carol.feed(`<message to='bob@example.com/phone' type='chat'><body>still there?</body></message>`)
	if got := bob.waitOutput("</message>"); !strings.Contains(got, "<body>still there?</body>") {
		t.Fatalf("bob got %q", got)
	}
}

// TestSlowConsumerBounded: a client that does not read is disconnected once
// MaxOutBytes are pending; Deliver then reports false and what was owed
// stays in the durable queue.
func TestSlowConsumerBounded(t *testing.T) {
	t.Parallel()
	const max = 4096
	e := newEnv(t, envOpts{maxOutBytes: max})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	bob := e.online("bob", "hunter2", "phone", true)
	alice := e.online("alice", "secret", "desk", true)
	bob.tr.setBlock(true)

	body := strings.Repeat("x", 512)
	sent := 0
	for sent < 100 && !bob.tr.isClosed() {
		alice.feed(`<message to='bob@example.com' type='chat'><body>` + body + `</body></message>`)
		sent++
	}
	if !bob.tr.isClosed() {
		t.Fatalf("bob's transport still open after %d messages of %d bytes with MaxOutBytes %d", sent, len(body), max)
	}
	if sent*len(body) < max/2 {
		t.Fatalf("closed after only %d bytes of bodies (MaxOutBytes %d)", sent*len(body), max)
	}
	if bob.s.Deliver(stanza.New("message", stanza.NSClient), nil) {
		t.Error("Deliver to a closed slow consumer returned true")
	}
	if n := e.metrics.SlowConsumers.Load(); n != 1 {
		t.Errorf("SlowConsumers = %d", n)
	}
	// Nothing was written to bob, so nothing was acknowledged: every
	// message is still queued.
	depth, err := e.st.Depth(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if depth != sent {
		t.Errorf("bob's queue depth = %d, want %d (all unacknowledged)", depth, sent)
	}
	// The blocked write failed when the transport closed: the buffer is released.
	waitIdle(t, bob.s)
}

// waitIdle waits until the session's flusher has stopped and checks that it
// holds no output buffer.
func waitIdle(t *testing.T, s *c2s.Session) {
	t.Helper()
	for i := 0; ; i++ {
		outNil, flushing := c2s.OutputIdle(s)
		if !flushing {
			if !outNil {
				t.Fatal("idle session still holds an output buffer")
			}
			return
		}
		if i > 100000 {
			t.Fatal("flusher never stopped")
		}
		yield()
	}
}

// TestIdleSessionHoldsNoBuffer: after its own replies and after output
// delivered from another goroutine, an idle session holds no buffer.
func TestIdleSessionHoldsNoBuffer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	bob := e.online("bob", "hunter2", "phone", true)
	if outNil, flushing := c2s.OutputIdle(bob.s); !outNil || flushing {
		t.Fatalf("after Feed: out nil %v, flushing %v", outNil, flushing)
	}
	alice := e.online("alice", "secret", "desk", true)
	alice.feed(`<message to='bob@example.com/phone' type='chat'><body>hi</body></message>`)
	if got := bob.waitOutput("</message>"); !strings.Contains(got, "<body>hi</body>") {
		t.Fatalf("bob got %q", got)
	}
	waitIdle(t, bob.s)
	// The queue entry was acknowledged by the write.
	waitDepth(t, e, "bob", 0)
}

// TestFlushOnTransportGoroutines: output delivered from another session is
// written by work handed to the transport (a listener.Conn runs it on the
// poller's workers), while a session's replies to its own input are
// written by its reader, handing nothing over.
func TestFlushOnTransportGoroutines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	bob := e.online("bob", "hunter2", "phone", true)
	alice := e.online("alice", "secret", "desk", true)
	if n := bob.tr.goCalls.Load(); n != 0 {
		t.Fatalf("bob's own replies handed %d flushes to the transport", n)
	}
	alice.feed(`<message to='bob@example.com/phone' type='chat'><body>hi</body></message>`)
	if got := bob.waitOutput("</message>"); !strings.Contains(got, "<body>hi</body>") {
		t.Fatalf("bob got %q", got)
	}
	if n := bob.tr.goCalls.Load(); n == 0 {
		t.Fatal("a delivery to bob was flushed without the transport's Go")
	}
}

// TestUnavailableReachesDirectedPresence: RFC 6121 §4.6.3 — unavailable
// presence the user broadcasts also goes to every entity it sent directed
// presence to (as it does when the session ends without one).
func TestUnavailableReachesDirectedPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	bob := e.online("bob", "hunter2", "phone", true)
	alice := e.online("alice", "secret", "desk", true)
	alice.feed(`<presence to='bob@example.com'/>`)
	if got := bob.waitOutput("<presence"); got == "" {
		t.Fatal("no directed presence")
	}
	bob.waitOutput(">")
	alice.feed(`<presence type='unavailable'/>`)
	// Flush a marker through so that anything before it has arrived.
	alice.feed(`<message to='bob@example.com/phone' type='chat'><body>marker</body></message>`)
	got := bob.waitOutput("marker")
	if !strings.Contains(got, "type='unavailable'") {
		t.Errorf("bob did not get alice's unavailable presence after her directed presence; got %q", got)
	}
}

// TestSessionEndBroadcastsUnavailable: a session that ends while available
// tells its directed-presence recipients it is gone.
func TestSessionEndBroadcastsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	bob := e.online("bob", "hunter2", "phone", true)
	alice := e.online("alice", "secret", "desk", true)
	alice.feed(`<presence to='bob@example.com'/>`)
	bob.waitOutput("<presence")
	alice.s.End()
	got := bob.waitOutput("type='unavailable'")
	if !strings.Contains(got, "from='alice@example.com/desk'") {
		t.Errorf("unavailable not from alice/desk: %q", got)
	}
	if n := e.r.SessionCount(); n != 1 {
		t.Errorf("SessionCount = %d", n)
	}
}

// TestShutdownSendsSystemShutdown: Shutdown ends the stream with system-shutdown.
func TestShutdownSendsSystemShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	c := e.online("alice", "secret", "desk", false)
	c.s.Shutdown()
	got := c.waitOutput("</stream:stream>")
	if !strings.Contains(got, streamError("system-shutdown")) {
		t.Fatalf("shutdown: %q", got)
	}
	c.waitClosed()
}

// TestMaxSessionsPerUser: a bind past the account's session limit is
// refused with resource-constraint and leaves the stream usable.
func TestMaxSessionsPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{maxSessions: 1})
	e.addUser("alice", "secret")
	e.online("alice", "secret", "one", false)
	c := e.newClient("192.0.2.2", false)
	c.login("alice", "secret")
	out := c.feed(`<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>two</resource></bind></iq>`)
	if !strings.Contains(out, `<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`) {
		t.Fatalf("second resource: %q", out)
	}
	if c.s.Authenticated() || c.tr.isClosed() {
		t.Fatal("refused bind left the session bound or closed it")
	}
	// Replacing the existing resource is still allowed.
	if j := c.bind("one"); j != "alice@example.com/one" {
		t.Fatalf("rebind: %q", j)
	}
}

// TestStanzaRateShaping: past the burst, Throttle tells the reader to wait
// for the tokens owed (fake clock).
func TestStanzaRateShaping(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, envOpts{stanzaRate: 2, stanzaBurst: 3, now: clock})
	e.addUser("alice", "secret")
	c := e.online("alice", "secret", "desk", false)
	ping := `<iq type='get' id='p'><query xmlns='jabber:iq:roster'/></iq>`
	for i := range 3 {
		c.feed(ping)
		if d := c.s.Throttle(); d != 0 {
			t.Fatalf("stanza %d within the burst: Throttle %v", i+1, d)
		}
	}
	c.feed(ping + ping) // two over the burst
	if d := c.s.Throttle(); d != time.Second {
		t.Fatalf("two stanzas over at 2/s: Throttle %v, want 1s", d)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	c.feed(ping) // refills 2, spends 1: -1 token
	if d := c.s.Throttle(); d != 500*time.Millisecond {
		t.Fatalf("after 1s: Throttle %v, want 500ms", d)
	}
}

// boomCodec is the XML codec with an encoder that panics on any element
// carrying a child in the urn:example:boom namespace: a bug in an encoder.
type boomCodec struct{ *xmlcodec.Stream }

func (c boomCodec) AppendElement(dst []byte, el *stanza.Element) []byte {
	if el.ChildNS("urn:example:boom") != nil {
		panic("encoder bug")
	}
	return c.Stream.AppendElement(dst, el)
}

// TestEncoderPanicContained: a panic while encoding output for bob (under
// bob's output lock, on the sender's goroutine) must not wedge bob's
// session — nor, through it, every session that later sends to bob — and
// should not end the innocent sender's session.
func TestEncoderPanicContained(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{codec: func() c2s.Codec { return boomCodec{newXMLCodec()} }})
	e.addUser("alice", "secret")
	e.addUser("bob", "hunter2")
	e.addUser("carol", "pw")
	bob := e.online("bob", "hunter2", "phone", true)
	alice := e.online("alice", "secret", "desk", true)
	carol := e.online("carol", "pw", "pad", true)

	alice.feed(`<message to='bob@example.com/phone' type='chat'><body>x</body><b xmlns='urn:example:boom'/></message>`)
	if alice.err != nil {
		t.Errorf("the sender's session was ended by a panic in the recipient's encoder: %v", alice.err)
	}
	// Another sender now delivers to bob: it must not block forever.
	done := make(chan struct{})
	go func() {
		defer close(done)
		carol.feed(`<message to='bob@example.com/phone' type='chat'><body>after</body></message>`)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second): // a hang guard: the delivery takes microseconds
		bob.wedged.Store(true)
		carol.wedged.Store(true)
		t.Fatal("delivery to bob blocked: bob's output lock was left held by the encoder panic, wedging every sender to bob")
	}
	// bob can still be reached and ended.
	bob.s.Shutdown()
	bob.waitClosed()
}

// TestLastPresenceKeptSerialised: the session keeps its available presence
// serialised and hands out a fresh, complete element on every call (a
// caller may change its copy), from the full JID and addressed to nobody;
// unavailable presence clears it.
func TestLastPresenceKeptSerialised(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.addUser("alice", "secret")
	alice := e.online("alice", "secret", "desk", false)
	if p := alice.s.LastPresence(); p != nil {
		t.Fatalf("LastPresence before any presence: %v", p)
	}
	alice.feed(`<presence><show>away</show><status>lunch &amp; more</status><priority>5</priority>` +
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>`)
	for range 2 {
		p := alice.s.LastPresence()
		if p == nil {
			t.Fatal("no last presence after initial presence")
		}
		if p.Attr("from") != "alice@example.com/desk" || p.Attr("to") != "" || p.Type() != "" {
			t.Fatalf("last presence from=%q to=%q type=%q", p.Attr("from"), p.Attr("to"), p.Type())
		}
		if got := p.ChildText("status", stanza.NSClient); got != "lunch & more" {
			t.Fatalf("status %q", got)
		}
		if c := p.Child("c", "http://jabber.org/protocol/caps"); c == nil || c.Attr("ver") != "v=" {
			t.Fatalf("caps child lost: %v", c)
		}
		p.SetAttr("to", "mallory@example.com") // must not reach the next call
	}
	alice.feed(`<presence type='unavailable'/>`)
	if p := alice.s.LastPresence(); p != nil {
		t.Fatalf("LastPresence after unavailable: %v", p)
	}
}
