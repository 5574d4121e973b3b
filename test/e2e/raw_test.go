package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A deliberately small XMPP client on a raw socket, written with the
// standard library only, for sending bytes no real client library would
// send. Every byte in both directions is kept in a transcript that is
// printed when the test fails.

const (
	nsStreams   = "http://etherx.jabber.org/streams"
	nsStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind      = "urn:ietf:params:xml:ns:xmpp-bind"
	nsRegFeat   = "http://jabber.org/features/iq-register"
	nsRegister  = "jabber:iq:register"
	nsClient    = "jabber:client"
)

// errStreamClosed is returned by next when the server closed its stream
// (</stream:stream>).
var errStreamClosed = errors.New("server closed the XML stream (</stream:stream>)")

// node is a generic XML element.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []node     `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *node) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (n *node) child(space, local string) *node {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

func (n *node) is(space, local string) bool {
	return n != nil && n.XMLName.Space == space && n.XMLName.Local == local
}

func (n *node) String() string {
	if n == nil {
		return "<nil>"
	}
	b, err := xml.Marshal(n)
	if err != nil {
		return fmt.Sprintf("{%s}%s (unmarshalable: %v)", n.XMLName.Space, n.XMLName.Local, err)
	}
	return string(b)
}

// transcript records the raw conversation.
type transcript struct {
	mu sync.Mutex
	b  strings.Builder
}

func (tr *transcript) add(dir string, p []byte) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Fprintf(&tr.b, "%s %s\n", dir, p)
}

func (tr *transcript) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.b.String()
}

type tapConn struct {
	net.Conn
	tr    *transcript
	layer string
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.tr.add("S"+c.layer+":", p[:n])
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.tr.add("C"+c.layer+":", p)
	return c.Conn.Write(p)
}

type rawConn struct {
	t    *testing.T
	tcp  net.Conn
	conn net.Conn // tcp, or the TLS conn on top of it
	dec  *xml.Decoder
	tr   *transcript
	TLS  *tls.ConnectionState
}

// dialRaw opens a plain TCP connection to addr.
func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	rc := &rawConn{t: t, tcp: c, tr: &transcript{}}
	rc.conn = &tapConn{Conn: c, tr: rc.tr, layer: ""}
	t.Cleanup(func() {
		_ = c.Close()
		if t.Failed() || dumpAlways {
			t.Logf("---- raw connection to %s transcript (C=client, S=server; [tls] = inside TLS) ----\n%s", addr, rc.tr.String())
		}
	})
	return rc
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// openStream sends a client stream header and returns the server's
// <stream:features/>.
func (c *rawConn) openStream() *node {
	c.t.Helper()
	c.send(streamHeader)
	return c.readStreamStart(stepTimeout)
}

const streamHeader = `<?xml version='1.0'?><stream:stream to='` + domain + `' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// readStreamStart reads the server's stream header and first features
// with a fresh decoder (a new stream starts after every restart).
func (c *rawConn) readStreamStart(timeout time.Duration) *node {
	c.t.Helper()
	c.dec = xml.NewDecoder(c.conn)
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("no stream header from the server within %v: %v", timeout, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsStreams || se.Name.Local != "stream" {
				c.t.Fatalf("server opened with <%s xmlns=%q>, want <stream:stream>", se.Name.Local, se.Name.Space)
			}
			break
		}
	}
	f, err := c.next(timeout)
	if err != nil {
		c.t.Fatalf("waiting for stream features: %v", err)
	}
	if !f.is(nsStreams, "features") {
		c.t.Fatalf("expected <stream:features/>, got %s", f)
	}
	return f
}

// next reads the next top-level element, errStreamClosed at </stream:stream>,
// or the read error (io.EOF when the TCP connection was closed).
func (c *rawConn) next(timeout time.Duration) (*node, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			var n node
			if err := c.dec.DecodeElement(&n, &tok); err != nil {
				return nil, err
			}
			return &n, nil
		case xml.EndElement:
			return nil, errStreamClosed
		}
	}
}

func (c *rawConn) mustNext(what string) *node {
	c.t.Helper()
	n, err := c.next(stepTimeout)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
	return n
}

// startTLS negotiates STARTTLS and opens the new stream; returns its features.
func (c *rawConn) startTLS() *node {
	c.t.Helper()
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if n := c.mustNext("<proceed/>"); !n.is(nsTLS, "proceed") {
		c.t.Fatalf("STARTTLS: expected <proceed/>, got %s", n)
	}
	tc := tls.Client(c.tcp, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
	_ = tc.SetDeadline(time.Now().Add(stepTimeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.TLS = &st
	c.conn = &tapConn{Conn: tc, tr: c.tr, layer: "[tls]"}
	return c.openStream()
}

// corkConn lets a test send the end of a TLS handshake and the first
// application data in one TCP segment, as asyncio-based clients such as
// slixmpp do: once corked (after the first read, i.e. after the
// ServerHello flight) writes are buffered until flush.
type corkConn struct {
	net.Conn
	mu      sync.Mutex
	corked  bool
	flushed bool
	buf     []byte
}

func (c *corkConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if n > 0 && !c.flushed {
		c.corked = true
	}
	c.mu.Unlock()
	return n, err
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.corked {
		c.buf = append(c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *corkConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked, c.flushed = false, true
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	return err
}

// tlsCoalesced performs a TLS 1.3 client handshake on c.tcp, then sends the
// client Finished and a new stream header in a single TCP write, and
// returns the server's features (read with a short deadline).
func (c *rawConn) tlsCoalesced() *node {
	c.t.Helper()
	cork := &corkConn{Conn: c.tcp}
	tc := tls.Client(cork, &tls.Config{ServerName: domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	_ = tc.SetDeadline(time.Now().Add(stepTimeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.TLS = &st
	c.conn = &tapConn{Conn: tc, tr: c.tr, layer: "[tls]"}
	c.send(streamHeader)
	if err := cork.flush(); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
	c.tr.add("--", []byte("(client Finished and the stream header above went out in one TCP write)"))
	return c.readStreamStart(5 * time.Second)
}

// authPlain authenticates with SASL PLAIN and restarts the stream.
func (c *rawConn) authPlain(user, password string) *node {
	c.t.Helper()
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + cred + `</auth>`)
	if n := c.mustNext("SASL outcome"); !n.is(nsSASL, "success") {
		c.t.Fatalf("SASL PLAIN as %s: expected <success/>, got %s", user, n)
	}
	return c.openStream()
}

// bind binds resource and returns the full JID.
func (c *rawConn) bind(resource string) string {
	c.t.Helper()
	c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	n := c.mustNext("bind result")
	if !n.is(nsClient, "iq") || n.attr("type") != "result" || n.attr("id") != "bind1" {
		c.t.Fatalf("bind: expected iq result, got %s", n)
	}
	b := n.child(nsBind, "bind")
	if b == nil || b.child(nsBind, "jid") == nil {
		c.t.Fatalf("bind: result without <jid/>: %s", n)
	}
	return strings.TrimSpace(b.child(nsBind, "jid").Text)
}

// loginRaw returns a raw connection that is past STARTTLS, PLAIN and bind.
func loginRaw(t *testing.T, srv *server, user, password, resource string) (*rawConn, string) {
	t.Helper()
	c := dialRaw(t, srv.C2S)
	c.openStream()
	c.startTLS()
	c.authPlain(user, password)
	return c, c.bind(resource)
}

// expectStreamError reads until a <stream:error/> arrives and asserts its
// condition, then asserts that the server also closes the stream
// (</stream:stream>) and the TCP connection, as RFC 6120 4.9.1.1 requires.
func (c *rawConn) expectStreamError(condition string) {
	c.t.Helper()
	got, err := c.next(stepTimeout)
	if err != nil {
		c.t.Fatalf("expected <stream:error><%s/></stream:error>, got %v instead", condition, err)
	}
	if !got.is(nsStreams, "error") {
		c.t.Fatalf("expected <stream:error><%s/></stream:error>, server answered %s instead", condition, got)
	}
	var conds []string
	for _, ch := range got.Nodes {
		if ch.XMLName.Space == nsStreamErr && ch.XMLName.Local != "text" {
			conds = append(conds, ch.XMLName.Local)
		}
	}
	if len(conds) != 1 || conds[0] != condition {
		c.t.Fatalf("stream error conditions %v, want exactly [%s]; element: %s", conds, condition, got)
	}
	// Then </stream:stream> and EOF.
	sawClose := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.next(time.Until(deadline))
		switch {
		case err == nil:
			c.t.Fatalf("server sent %s after the stream error", n)
		case errors.Is(err, errStreamClosed):
			sawClose = true
			continue
		case errors.Is(err, io.EOF) || isConnReset(err):
			if !sawClose {
				c.t.Fatalf("server closed the TCP connection without closing the XML stream (no </stream:stream> after <stream:error/>)")
			}
			return
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("server did not close the connection within 10s of the stream error (saw </stream:stream>: %v)", sawClose)
			}
			if !sawClose {
				c.t.Fatalf("after stream error: %v (no </stream:stream> seen)", err)
			}
			// Anything else after a clean close (e.g. TLS close_notify
			// missing) still means the connection is gone.
			return
		}
	}
}

func isConnReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "reset")
}

// mechanisms lists the SASL mechanisms offered in features.
func mechanisms(features *node) []string {
	var out []string
	if m := features.child(nsSASL, "mechanisms"); m != nil {
		for _, ch := range m.Nodes {
			if ch.XMLName.Local == "mechanism" {
				out = append(out, strings.TrimSpace(ch.Text))
			}
		}
	}
	return out
}
