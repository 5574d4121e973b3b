package c2s_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"

	"io"
	"log/slog"
	"math/big"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/auth"
	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/im/register"
	"github.com/parley-im/parley/internal/im/roster"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlcodec"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

const (
	domain = "example.com"
	// waitFor bounds waits for output written by other goroutines; it only
	// keeps a broken test from hanging, nothing asserts on durations.
	waitFor = 10 * time.Second
	header  = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>`
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// The session's codec and the router's storage format are the server's own.
func newXMLCodec() *xmlcodec.Stream { return xmlcodec.New(0) }

var storeCodec = xmlstream.Storage{}

var streamOpenRE = regexp.MustCompile(`(<\?xml[^>]*\?>)?<stream:stream[^>]*>`)

// parseElements decodes the top-level elements of server output, ignoring
// stream headers and the closing tag.
func parseElements(out string) ([]*stanza.Element, error) {
	body := streamOpenRE.ReplaceAllString(out, "")
	body = strings.ReplaceAll(body, "</stream:stream>", "")
	d := xmlstream.NewDecoder(xmlstream.DefaultLimits())
	if err := d.Feed([]byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` + body)); err != nil {
		return nil, err
	}
	var els []*stanza.Element
	for {
		tok, ok, err := d.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return els, nil
		}
		if tok.Kind == xmlstream.KindElement {
			els = append(els, tok.Element)
		}
	}
}

// normalize replaces what is random in server output (the stream id) so
// that bytes out can be compared exactly.
var streamIDRE = regexp.MustCompile(`(<stream:stream[^>]*) id='[^']*'`)

func normalize(out string) string { return streamIDRE.ReplaceAllString(out, "$1 id='ID'") }

// serverHeader is the response stream header, normalised.
const serverHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='ID' from='example.com' version='1.0' xml:lang='en'>`

// fakeTransport records what the session writes. StartTLS performs a real
// TLS handshake over net.Pipe so the session sees a real ConnectionState;
// the session's bytes themselves are recorded in clear.
type fakeTransport struct {
	ip     string
	canTLS bool

	mu       sync.Mutex
	buf      []byte
	closed   bool
	changed  chan struct{} // closed and replaced on every write or close
	closeCh  chan struct{}
	block    bool // Write blocks until Close
	tlsState *tls.ConnectionState
	conns    []net.Conn
	writes   int
	released int // ReleaseTLSState calls that dropped a state

	// goCalls counts Go calls: work the session handed to the transport's
	// goroutines, as it does to a listener.Conn's poller workers.
	goCalls atomic.Int32
}

// Go runs f as a listener.Conn with a poller would, on another goroutine.
func (f *fakeTransport) Go(fn func()) {
	f.goCalls.Add(1)
	go fn()
}

func newTransport(ip string) *fakeTransport {
	return &fakeTransport{ip: ip, changed: make(chan struct{}), closeCh: make(chan struct{})}
}

func (f *fakeTransport) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTransport) Write(p []byte) error {
	f.mu.Lock()
	block, closeCh := f.block, f.closeCh
	f.mu.Unlock()
	if block {
		<-closeCh
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return net.ErrClosed
	}
	f.buf = append(f.buf, p...)
	f.writes++
	f.notifyLocked()
	return nil
}

func (f *fakeTransport) StartTLS(cfg *tls.Config) error {
	a, b := net.Pipe()
	srv := tls.Server(a, cfg)
	cli := tls.Client(b, clientTLS)
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	err := srv.Handshake()
	if cerr := <-errc; err == nil {
		err = cerr
	}
	if err != nil {
		_ = a.Close()
		_ = b.Close()
		return err
	}
	st := srv.ConnectionState()
	f.mu.Lock()
	f.tlsState = &st
	f.conns = append(f.conns, a, b)
	f.mu.Unlock()
	return nil
}

func (f *fakeTransport) CanStartTLS() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.canTLS && f.tlsState == nil
}

func (f *fakeTransport) TLS() *tls.ConnectionState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tlsState
}

// ReleaseTLSState mimics listener.Conn: the state shrinks to a marker.
func (f *fakeTransport) ReleaseTLSState() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tlsState != nil {
		f.tlsState = &tls.ConnectionState{HandshakeComplete: true}
		f.released++
	}
}

func (f *fakeTransport) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	close(f.closeCh)
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.notifyLocked()
	return nil
}

func (f *fakeTransport) RemoteIP() string { return f.ip }
func (f *fakeTransport) Kind() string     { return "fake" }

func (f *fakeTransport) setBlock(b bool) {
	f.mu.Lock()
	f.block = b
	f.mu.Unlock()
}

func (f *fakeTransport) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// snapshot returns the bytes written so far and a channel closed on the next change.
func (f *fakeTransport) snapshot() (string, bool, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.buf), f.closed, f.changed
}

// TLS material: one self-signed certificate for the test binary.
var (
	serverTLS *tls.Config
	clientTLS *tls.Config
)

func init() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	serverTLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, MinVersion: tls.VersionTLS12}
	clientTLS = &tls.Config{RootCAs: pool, ServerName: domain, MinVersion: tls.VersionTLS12}
}

// env is one server's worth of real components over a pebble store.
type env struct {
	t       *testing.T
	st      *pebble.Store
	r       *router.Router
	auth    *auth.Authenticator
	roster  *roster.Module
	cfg     *c2s.Config
	metrics *c2s.Metrics
	codec   func() c2s.Codec
}

type envOpts struct {
	tls              bool
	startTLSRequired bool
	failuresPerIP    int
	maxOutBytes      int
	presence         func(c2s.Presence) c2s.Presence // wraps the roster module
	maxSessions      int
	register         bool
	stanzaRate       float64
	stanzaBurst      float64
	now              func() time.Time
	codec            func() c2s.Codec // nil: the XML codec
	// wrapStore, if set, wraps the store the router uses.
	wrapStore func(store.Store) store.Store
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var rs store.Store = st
	if o.wrapStore != nil {
		rs = o.wrapStore(st)
	}
	r, err := router.New(router.Config{Domain: domain, Store: rs, Codec: storeCodec, Logger: quietLog, MaxSessionsPerUser: o.maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	a := auth.New(auth.Config{
		Domain:        domain,
		Accounts:      st,
		Secret:        []byte("0123456789abcdef0123456789abcdef"),
		FailuresPerIP: o.failuresPerIP,
		Window:        time.Hour,
	})
	ros := roster.New(st, r, quietLog)
	var pres c2s.Presence = ros
	if o.presence != nil {
		pres = o.presence(ros)
	}
	m := &c2s.Metrics{}
	cfg := &c2s.Config{
		Domain:      domain,
		Router:      r,
		Auth:        a,
		Presence:    pres,
		Logger:      quietLog,
		MaxOutBytes: o.maxOutBytes,
		Metrics:     m,
		StanzaRate:  o.stanzaRate,
		StanzaBurst: o.stanzaBurst,
		Now:         o.now,
	}
	if o.register {
		cfg.Register = register.New(st, r, domain, true, quietLog)
	}
	if o.tls {
		cfg.TLS = serverTLS
		cfg.StartTLSRequired = o.startTLSRequired
	}
	return &env{t: t, st: st, r: r, auth: a, roster: ros, cfg: cfg, metrics: m, codec: o.codec}
}

// credentials are derived once per password: PBKDF2 is not free.
var (
	credMu    sync.Mutex
	credCache = map[string][2]store.SCRAM{}
)

func (e *env) addUser(name, pass string) {
	e.t.Helper()
	credMu.Lock()
	c, ok := credCache[pass]
	if !ok {
		s1, s256, err := sasl.NewCredentials(pass)
		if err != nil {
			credMu.Unlock()
			e.t.Fatal(err)
		}
		c = [2]store.SCRAM{s1, s256}
		credCache[pass] = c
	}
	credMu.Unlock()
	err := e.st.CreateAccount(context.Background(), store.Account{Username: name, Created: time.Now(), SHA1: c[0], SHA256: c[1]})
	if err != nil {
		e.t.Fatal(err)
	}
}

// client drives one session the way a transport's reader would.
type client struct {
	t    *testing.T
	e    *env
	s    *c2s.Session
	tr   *fakeTransport
	seen int // bytes of output already returned
	err  error
	jid  string
	// wedged sessions (a known-bug test) are not ended at cleanup.
	wedged atomic.Bool
}

func (e *env) newClient(ip string, canTLS bool) *client {
	tr := newTransport(ip)
	tr.canTLS = canTLS
	c := &client{t: e.t, e: e, tr: tr}
	var codec c2s.Codec = newXMLCodec()
	if e.codec != nil {
		codec = e.codec()
	}
	c.s = c2s.New(e.cfg, tr, codec)
	t := e.t
	t.Cleanup(func() {
		if c.wedged.Load() {
			return
		}
		// End must not hang; if it does, report it instead of hanging the run.
		done := make(chan struct{})
		go func() { c.s.End(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("End of %s hung", c.s)
		}
	})
	return c
}

// feed hands bytes to the session and returns the output written since
// the last call. Replies to the session's own input are written before
// Feed returns. A failed Feed ends the session, as the transport would.
func (c *client) feed(in string) string {
	c.t.Helper()
	if c.err != nil {
		c.t.Fatalf("feed after the session ended (%v)", c.err)
	}
	if err := c.s.Feed([]byte(in)); err != nil {
		c.err = err
		c.s.End()
	}
	return c.take()
}

// take returns output not returned before.
func (c *client) take() string {
	out, _, _ := c.tr.snapshot()
	n := c.seen
	c.seen = len(out)
	return out[n:]
}

// waitOutput waits until the unread output contains want (written by
// another goroutine) and returns the unread output up to that point.
func (c *client) waitOutput(want string) string {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		out, _, ch := c.tr.snapshot()
		if i := strings.Index(out[c.seen:], want); i >= 0 {
			end := c.seen + i + len(want)
			got := out[c.seen:end]
			c.seen = end
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			c.t.Fatalf("timed out waiting for %q; unread output: %q", want, out[c.seen:])
		}
	}
}

// waitClosed waits until the transport is closed.
func (c *client) waitClosed() {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		_, closed, ch := c.tr.snapshot()
		if closed {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			c.t.Fatal("timed out waiting for the transport to close")
		}
	}
}

// between returns the text between open and close in s.
func between(s, open, close string) (string, bool) {
	i := strings.Index(s, open)
	if i < 0 {
		return "", false
	}
	s = s[i+len(open):]
	j := strings.Index(s, close)
	if j < 0 {
		return "", false
	}
	return s[:j], true
}

// scram runs a SCRAM-SHA-256 exchange and returns the last output (the
// <success/> or <failure/>).
func (c *client) scram(user, pass string) string {
	c.t.Helper()
	cm, err := sasl.NewClient(sasl.MechSCRAMSHA256, user, pass, sasl.ChannelBinding{})
	if err != nil {
		c.t.Fatal(err)
	}
	first, err := cm.Start()
	if err != nil {
		c.t.Fatal(err)
	}
	out := c.feed(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + sasl.EncodeData(first) + `</auth>`)
	for {
		ch, ok := between(out, `<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`, `</challenge>`)
		if !ok {
			break
		}
		data, err := sasl.DecodeData(ch)
		if err != nil {
			c.t.Fatal(err)
		}
		resp, err := cm.Next(data)
		if err != nil {
			c.t.Fatalf("client SCRAM step: %v", err)
		}
		out = c.feed(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + sasl.EncodeData(resp) + `</response>`)
	}
	if add, ok := between(out, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`, `</success>`); ok {
		data, err := sasl.DecodeData(add)
		if err != nil {
			c.t.Fatal(err)
		}
		if err := cm.Verify(data); err != nil {
			c.t.Fatalf("server signature: %v", err)
		}
	}
	return out
}

// login authenticates and restarts the stream: the session is then in
// the "authenticated, waiting for bind" state.
func (c *client) login(user, pass string) {
	c.t.Helper()
	c.feed(header)
	if out := c.scram(user, pass); !strings.Contains(out, "<success") {
		c.t.Fatalf("login %s: %q", user, out)
	}
	if out := c.feed(header); !strings.Contains(out, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>") {
		c.t.Fatalf("after restart: %q", out)
	}
}

// bind binds resource (empty: server-generated) and returns the full JID.
func (c *client) bind(resource string) string {
	c.t.Helper()
	req := `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`
	if resource != "" {
		req = `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`
	}
	out := c.feed(req)
	j, ok := between(out, "<jid>", "</jid>")
	if !ok {
		c.t.Fatalf("bind %q: %q", resource, out)
	}
	c.jid = j
	return j
}

// online logs in, binds and optionally sends initial presence.
func (e *env) online(user, pass, resource string, presence bool) *client {
	e.t.Helper()
	c := e.newClient("192.0.2.1", false)
	c.login(user, pass)
	c.bind(resource)
	if presence {
		c.feed(`<presence/>`)
		// The queued backlog is flushed beside the reader; tests start
		// once live delivery has resumed.
		c.waitBacklogEnd()
	}
	return c
}

// waitBacklogEnd waits until the router's backlog flush no longer holds
// live deliveries to c back.
func (c *client) waitBacklogEnd() {
	c.t.Helper()
	for deadline := time.Now().Add(waitFor); c2s.InBacklog(c.s); yield() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the backlog flush did not end", c.s)
		}
	}
}

// yield lets other goroutines run while polling.
func yield() { time.Sleep(time.Millisecond) }

// waitDepth waits until the user's queue holds n items (acks are applied
// by a background writer).
func waitDepth(t *testing.T, e *env, user string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		d, err := e.st.Depth(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		if d == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue depth of %s = %d, want %d", user, d, n)
		}
		yield()
	}
}
