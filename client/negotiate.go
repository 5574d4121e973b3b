package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces used only during negotiation.
const (
	nsRegister = "jabber:iq:register"
	nsSASLCB   = "urn:xmpp:sasl-cb:0" // XEP-0440
)

// Dial connects to the server, secures the connection (STARTTLS or direct
// TLS), authenticates with SASL, binds a resource and returns the ready
// session. Everything up to the bound session is bounded by ctx and
// Config.Timeout; the returned Client is independent of ctx.
//
// A failed login returns an *AuthError naming the SASL condition, a stream
// error from the server a *stanza.StreamError (errors.As finds both).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	r, err := cfg.resolve(true)
	if err != nil {
		return nil, err
	}
	if r.Password == "" {
		return nil, errors.New("client: Config.Password is required")
	}
	c := newClient(r)
	err = c.negotiate(ctx, func(ctx context.Context) error {
		feats, err := c.openStream(ctx)
		if err != nil {
			return err
		}
		if err := c.authenticate(feats); err != nil {
			return err
		}
		// RFC 6120 §6.4.6: a new stream over the authenticated connection.
		c.codec.reset()
		if feats, err = c.startStream(); err != nil {
			return err
		}
		if err := c.bind(feats); err != nil {
			return err
		}
		if r.StreamManagement {
			return c.enableSM(feats)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	go c.readLoop()
	if r.SendInitialPresence {
		if err := c.SendPresence(); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Register creates the account cfg.JID with cfg.Password by in-band
// registration (XEP-0077) on a fresh connection, then closes it; log in
// with Dial afterwards. The connection is secured as for Dial. A refusal is
// a *stanza.Error: conflict when the name is taken, not-acceptable for a
// bad username or password, resource-constraint when the server limits
// registrations from this address, service-unavailable when it allows none.
func Register(ctx context.Context, cfg Config) error {
	r, err := cfg.resolve(true)
	if err != nil {
		return err
	}
	if r.Password == "" {
		return errors.New("client: Config.Password is required")
	}
	c := newClient(r)
	err = c.negotiate(ctx, func(ctx context.Context) error {
		if _, err := c.openStream(ctx); err != nil {
			return err
		}
		q := stanza.New("query", nsRegister).
			Append(stanza.New("username", nsRegister).AppendText(r.jid.Local())).
			Append(stanza.New("password", nsRegister).AppendText(r.Password))
		reply, err := c.syncIQ(stanza.New("iq", stanza.NSClient).SetAttr("type", "set").Append(q))
		if err != nil {
			return err
		}
		if reply.Type() != "result" {
			return fmt.Errorf("client: register %s: %w", r.jid, stanzaError(reply))
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.closeNegotiated()
	return nil
}

func newClient(r *resolved) *Client {
	return &Client{
		cfg:      r,
		codec:    newCodec(r),
		incoming: make(chan *stanza.Element, r.IncomingBuffer),
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		pending:  map[string]pendingIQ{},
	}
}

// negotiate connects and runs steps with every read and write bounded by
// ctx and Config.Timeout. On failure the connection is closed, after
// telling the server why when that is possible.
func (c *Client) negotiate(ctx context.Context, steps func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	raw, err := c.cfg.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return fmt.Errorf("client: dial %s: %w", c.cfg.Addr, err)
	}
	// The socket's deadline carries ctx's: set for its deadline, expired
	// at once on cancellation. It is the TCP socket's, so it keeps applying
	// after a TLS upgrade.
	if d, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) error {
		stop()
		if cerr := ctxErr(ctx); cerr != nil {
			err = fmt.Errorf("client: negotiating with %s: %w (%v)", c.cfg.Addr, cerr, err)
		}
		c.abort(err)
		return err
	}
	var tr net.Conn = raw
	if c.cfg.DirectTLS {
		tc := tls.Client(raw, c.cfg.tlsConfig(true))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return fmt.Errorf("client: TLS with %s: %w", c.cfg.Addr, err)
		}
		tr = tc
		if c.cfg.Binary && tc.ConnectionState().NegotiatedProtocol != alpnBinary {
			_ = tc.Close()
			return fmt.Errorf("client: %s does not speak the binary encoding (ALPN %s not selected)", c.cfg.Addr, alpnBinary)
		}
	}
	c.tr = newTCPTransport(tr)
	if err := steps(ctx); err != nil {
		return fail(err)
	}
	if !stop() {
		// ctx ended just now and may have expired the deadline under us.
		return fail(fmt.Errorf("client: negotiating with %s: %w", c.cfg.Addr, ctx.Err()))
	}
	_ = raw.SetDeadline(time.Time{})
	return nil
}

// ctxErr is ctx.Err(), also when the socket deadline (which is ctx's) has
// fired a moment before ctx's own timer.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// abort ends a failed negotiation: a stream error of ours if the server's
// stream was at fault, our closing tag, then the connection. Best effort.
func (c *Client) abort(err error) {
	var pe *protocolError
	var buf []byte
	if errors.As(err, &pe) {
		buf = c.codec.appendElement(buf, pe.se.Element())
	}
	buf = c.codec.appendClose(buf)
	_ = c.tr.setDeadline(time.Now().Add(time.Second))
	_ = c.tr.write(buf)
	_ = c.tr.close()
}

// closeNegotiated ends a stream that never got a reader (Register).
func (c *Client) closeNegotiated() {
	_ = c.tr.setDeadline(time.Now().Add(closeWait))
	if c.tr.write(c.codec.appendClose(nil)) == nil {
		// Wait for the server's close so that it sees an orderly end.
		for {
			ev, err := c.nextEvent()
			if err != nil || ev.kind == eventClose {
				break
			}
		}
	}
	_ = c.tr.close()
}

// nextEvent reads until the decoder has a complete event.
func (c *Client) nextEvent() (event, error) {
	var buf []byte
	for {
		ev, ok, err := c.codec.next()
		if err != nil {
			return event{}, &protocolError{stanza.AsStreamError(err)}
		}
		if ok {
			return ev, nil
		}
		if buf == nil {
			buf = make([]byte, readBufSize)
		}
		p, err := c.tr.read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return event{}, fmt.Errorf("client: connection closed by the server during negotiation: %w", io.ErrUnexpectedEOF)
			}
			return event{}, fmt.Errorf("client: read: %w", err)
		}
		if err := c.codec.feed(p); err != nil {
			return event{}, &protocolError{stanza.AsStreamError(err)}
		}
	}
}

// nextElement reads the next top-level element; a stream error or the
// end of the stream is returned as an error.
func (c *Client) nextElement() (*stanza.Element, error) {
	ev, err := c.nextEvent()
	if err != nil {
		return nil, err
	}
	switch ev.kind {
	case eventClose:
		return nil, ErrServerClosed
	case eventOpen:
		return nil, &protocolError{stanza.NewStreamError(stanza.StreamNotWellFormed, "unexpected stream header")}
	}
	if isStreamError(ev.element) {
		return nil, parseStreamError(ev.element)
	}
	return ev.element, nil
}

func (c *Client) writeNegotiation(buf []byte) error {
	if err := c.tr.write(buf); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

func (c *Client) sendNegotiation(el *stanza.Element) error {
	return c.writeNegotiation(c.codec.appendElement(nil, el))
}

// startStream sends our stream header and reads the server's header and
// features (RFC 6120 §4.2, §4.3.2).
func (c *Client) startStream() (*stanza.Element, error) {
	h := header{To: c.cfg.jid.Domain(), Version: "1.0", Lang: "en"}
	if c.tr.tlsState() != nil {
		// RFC 6120 §4.7.1: name ourselves only once the stream is private.
		h.From = c.cfg.jid.String()
	}
	if err := c.writeNegotiation(c.codec.appendOpen(nil, h)); err != nil {
		return nil, err
	}
	ev, err := c.nextEvent()
	if err != nil {
		return nil, err
	}
	if ev.kind != eventOpen {
		return nil, &protocolError{stanza.NewStreamError(stanza.StreamNotWellFormed, "stream header expected")}
	}
	if major, _, _ := strings.Cut(ev.header.Version, "."); major != "1" {
		return nil, fmt.Errorf("client: server does not speak XMPP 1.0 (stream version %q)", ev.header.Version)
	}
	feats, err := c.nextElement()
	if err != nil {
		return nil, err
	}
	if feats.Name != "features" || feats.NS != stanza.NSStream {
		return nil, &protocolError{stanza.NewStreamError(stanza.StreamNotWellFormed, "stream features expected")}
	}
	return feats, nil
}

// openStream starts the stream and secures it: STARTTLS when the
// connection is in the clear and the server offers it (unless NoStartTLS
// and the server lets us stay in the clear), refusal (ErrNoTLS) when it
// does not, unless plaintext is allowed. It returns the features of the
// secured stream.
func (c *Client) openStream(ctx context.Context) (*stanza.Element, error) {
	feats, err := c.startStream()
	if err != nil {
		return nil, err
	}
	if c.tr.tlsState() != nil {
		return feats, nil
	}
	st := feats.Child("starttls", stanza.NSTLS)
	if st == nil || c.cfg.NoStartTLS {
		if !c.cfg.AllowPlaintext {
			return nil, ErrNoTLS
		}
		if st != nil && st.Child("required", stanza.NSTLS) != nil {
			return nil, ErrStartTLSRequired
		}
		return feats, nil
	}
	if err := c.sendNegotiation(stanza.New("starttls", stanza.NSTLS)); err != nil {
		return nil, err
	}
	el, err := c.nextElement()
	if err != nil {
		return nil, err
	}
	if el.NS != stanza.NSTLS || el.Name != "proceed" {
		return nil, fmt.Errorf("client: server refused STARTTLS (<%s/>)", el.Name)
	}
	up, ok := c.tr.(tlsUpgrader)
	if !ok {
		return nil, errors.New("client: transport cannot start TLS")
	}
	if err := up.startTLS(ctx, c.cfg.tlsConfig(false)); err != nil {
		return nil, fmt.Errorf("client: STARTTLS with %s: %w", c.cfg.Addr, err)
	}
	// RFC 6120 §5.4.3.3: a fresh stream, and nothing read in the clear
	// is carried over.
	c.codec.reset()
	return c.startStream()
}

// authenticate runs the SASL exchange (RFC 6120 §6.4).
func (c *Client) authenticate(feats *stanza.Element) error {
	mechsEl := feats.Child("mechanisms", stanza.NSSASL)
	if mechsEl == nil {
		if c.tr.tlsState() == nil && feats.Child("starttls", stanza.NSTLS) != nil {
			// Only NoStartTLS gets here: a server that requires STARTTLS
			// without saying <required/> shows its mechanisms after it.
			return fmt.Errorf("%w (no SASL mechanism offered before it)", ErrStartTLSRequired)
		}
		return errors.New("client: server offers no SASL mechanisms")
	}
	var offered []string
	for _, m := range mechsEl.Elements() {
		if m.Name == "mechanism" {
			offered = append(offered, strings.TrimSpace(m.TextContent()))
		}
	}
	cs := c.tr.tlsState()
	var cb sasl.ChannelBinding
	if cs != nil {
		if typ, ok := channelBindingType(feats, cs); ok {
			if b, err := sasl.ClientChannelBinding(*cs, typ); err == nil {
				cb = b
			}
		}
	}
	mech := c.cfg.Mechanism
	switch {
	case mech == "":
		mech = sasl.ChooseMechanism(offered, cb, cs != nil)
		if mech == "" {
			return fmt.Errorf("client: no usable SASL mechanism among %v", offered)
		}
	case !slices.Contains(offered, mech):
		return fmt.Errorf("client: server does not offer %s (offers %v)", mech, offered)
	case mech == sasl.MechPLAIN && cs == nil && !c.cfg.AllowPlaintext:
		return errors.New("client: refusing PLAIN without TLS")
	case !strings.HasSuffix(mech, "-PLUS"):
		// A forced non-PLUS mechanism sends 'n' (no binding support)
		// rather than 'y', which a server offering -PLUS would reject as
		// a downgrade.
		cb = sasl.ChannelBinding{}
	}
	var cache *sasl.KeyCache
	if c.cfg.SCRAMKeyCache != nil {
		cache = c.cfg.SCRAMKeyCache.c
	}
	m, err := sasl.NewClientWithKeyCache(mech, c.cfg.jid.Local(), c.cfg.Password, cb, cache)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ir, err := m.Start()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	data := sasl.EncodeData(ir)
	if data == "" {
		data = "=" // RFC 6120 §6.4.2: an empty initial response
	}
	auth := stanza.New("auth", stanza.NSSASL).SetAttr("mechanism", mech).AppendText(data)
	if err := c.sendNegotiation(auth); err != nil {
		return err
	}
	for {
		el, err := c.nextElement()
		if err != nil {
			return err
		}
		if el.NS != stanza.NSSASL {
			return &protocolError{stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "SASL exchange in progress")}
		}
		switch el.Name {
		case "challenge":
			ch, err := sasl.DecodeData(el.TextContent())
			if err != nil {
				return c.saslAbort(fmt.Errorf("client: bad SASL challenge: %w", err))
			}
			resp, err := m.Next(ch)
			if err != nil {
				return c.saslAbort(fmt.Errorf("client: SASL %s: %w", mech, err))
			}
			if err := c.sendNegotiation(stanza.New("response", stanza.NSSASL).AppendText(sasl.EncodeData(resp))); err != nil {
				return err
			}
		case "success":
			extra, err := sasl.DecodeData(el.TextContent())
			if err == nil {
				err = m.Verify(extra)
			}
			if err != nil {
				// The server did not prove it knows our credentials: it
				// may be an impostor claiming success. Do not go on.
				return fmt.Errorf("client: SASL %s: server not verified: %w", mech, err)
			}
			return nil
		case "failure":
			return parseSASLFailure(mech, el)
		default:
			return &protocolError{stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "unexpected SASL element")}
		}
	}
}

// saslAbort tells the server we give up the exchange and returns err.
func (c *Client) saslAbort(err error) error {
	_ = c.sendNegotiation(stanza.New("abort", stanza.NSSASL))
	return err
}

// channelBindingType picks the channel-binding type: from the server's
// XEP-0440 list when it sends one, else the default for the TLS version.
// ok is false when the server lists none we can compute.
func channelBindingType(feats *stanza.Element, cs *tls.ConnectionState) (string, bool) {
	list := feats.Child("sasl-channel-binding", nsSASLCB)
	if list == nil {
		return "", true
	}
	var types []string
	for _, e := range list.Elements() {
		if e.Name == "channel-binding" {
			types = append(types, e.Attr("type"))
		}
	}
	if cs.Version == tls.VersionTLS13 && slices.Contains(types, sasl.CBTLSExporter) {
		return sasl.CBTLSExporter, true
	}
	if slices.Contains(types, sasl.CBTLSServerEndPoint) {
		return sasl.CBTLSServerEndPoint, true
	}
	return "", false
}

// bind binds a resource (RFC 6120 §7) and, for old servers that require
// it, establishes the session (RFC 3921).
func (c *Client) bind(feats *stanza.Element) error {
	if feats.Child("bind", stanza.NSBind) == nil {
		return errors.New("client: server offers no resource binding")
	}
	b := stanza.New("bind", stanza.NSBind)
	if c.cfg.Resource != "" {
		b.Append(stanza.New("resource", stanza.NSBind).AppendText(c.cfg.Resource))
	}
	reply, err := c.syncIQ(stanza.New("iq", stanza.NSClient).SetAttr("type", "set").Append(b))
	if err != nil {
		return err
	}
	if reply.Type() != "result" {
		return fmt.Errorf("client: bind: %w", stanzaError(reply))
	}
	var s string
	if rb := reply.Child("bind", stanza.NSBind); rb != nil {
		s = strings.TrimSpace(rb.ChildText("jid", stanza.NSBind))
	}
	full, err := jid.Parse(s)
	if err != nil || full.Resource() == "" {
		return fmt.Errorf("client: bind: server returned an invalid JID %q", s)
	}
	if full.Bare() != c.cfg.jid {
		return fmt.Errorf("client: bind: server bound %s, not an address of %s", full, c.cfg.jid)
	}
	c.jid = full
	if sess := feats.Child("session", stanza.NSSession); sess != nil && sess.Child("optional", stanza.NSSession) == nil {
		reply, err := c.syncIQ(stanza.New("iq", stanza.NSClient).SetAttr("type", "set").Append(stanza.New("session", stanza.NSSession)))
		if err != nil {
			return err
		}
		if reply.Type() != "result" {
			return fmt.Errorf("client: session: %w", stanzaError(reply))
		}
	}
	return nil
}

// syncIQ sends an iq during negotiation and reads its reply; nothing else
// may arrive before it at this stage.
func (c *Client) syncIQ(iq *stanza.Element) (*stanza.Element, error) {
	id := NewID()
	iq.SetAttr("id", id)
	if err := c.sendNegotiation(iq); err != nil {
		return nil, err
	}
	reply, err := c.nextElement()
	if err != nil {
		return nil, err
	}
	if reply.Name != "iq" || reply.ID() != id || (reply.Type() != "result" && reply.Type() != "error") {
		return nil, fmt.Errorf("client: expected the reply to iq %s, got <%s type=%q id=%q>", id, reply.Name, reply.Type(), reply.ID())
	}
	return reply, nil
}

// NewID returns a random identifier for stanza id attributes: 16 random
// bytes, so that replies cannot be guessed by other entities and ids from
// different clients never collide.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// normJID normalises a JID string for comparisons; strings that are not
// JIDs are compared as they are.
func normJID(s string) string {
	if s == "" {
		return ""
	}
	j, err := jid.Parse(s)
	if err != nil {
		return s
	}
	return j.String()
}
