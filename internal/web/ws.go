package web

// XMPP over WebSocket (RFC 7395).
//
// # Design
//
// A WebSocket connection carries one c2s session, exactly like a TCP
// connection does in internal/listener: this file provides the session's
// Transport (wsConn) and Codec (wsCodec) and the reader that feeds it. The
// codec reads with xmlstream's framed decoder: every WebSocket message is
// fed whole and must hold exactly one element; <open/> and <close/> in the
// urn:ietf:params:xml:ns:xmpp-framing namespace stand for the stream header
// and footer.
//
// Output. The session's encoder appends several elements into one buffer and
// hands it to Transport.Write once per flush, but RFC 7395 wants every
// element in a WebSocket message of its own. The codec and the transport are
// therefore a pair: wsCodec writes a 4-byte big-endian length before each
// element it appends, and wsConn.Write splits the buffer on those prefixes
// and sends one text message per element. The prefixes never leave the
// process; a wsCodec must only be used with a wsConn. (The session's
// bytes-out counter includes the 4 bytes per element.)
//
// Limits. The subprotocol must be "xmpp" (anything else is refused with 400;
// "parley-bin" is for later). A message larger than the server's maximum
// stanza size ends the session with a policy-violation stream error after
// at most that many bytes were read; a binary message ends it with
// bad-format. A connection that has not bound a resource must send a
// message at least every IdleTimeout; after that only TCP keepalive (on by
// default on the HTTP listener) watches it, as on the c2s port. Pings from
// the client are answered; the server sends none. Connections count toward
// the listener.Tracker limits (total and per address) shared with the TCP
// listeners, and the tracker's Drain shuts their sessions down
// (system-shutdown, <close/>, then a WebSocket close frame).
//
// Origins. AllowedOrigins empty accepts any Origin. XMPP over WebSocket
// authenticates inside the stream (SASL), never with cookies or other
// ambient browser credentials, so a foreign page gains nothing a direct
// client would not have; a list restricts browsers to those origins (exact
// scheme://host[:port], case-insensitive). Requests without an Origin header
// come from non-browser clients and are always accepted.
//
// Security of the channel. WebSocket is served on the plain HTTP port,
// normally behind a TLS-terminating reverse proxy, and STARTTLS is
// impossible on it. The session's TLS() is therefore:
//   - the request's TLS state when the HTTP server itself runs TLS;
//   - an empty, non-nil tls.ConnectionState when the peer is a loopback
//     address: a TLS-terminating proxy on the same host (or a local client;
//     loopback traffic cannot be sniffed off the network). The session then
//     counts as secure: SASL is offered (SCRAM, and PLAIN too); channel
//     binding (-PLUS) is not, since HandshakeComplete is false;
//   - nil otherwise. With starttls-required (the default) such a request is
//     refused with 403 before the upgrade, because the session could never
//     authenticate; without it the session offers SCRAM only.
//
// In production put the TLS terminator on the same host as Parley. The
// X-Forwarded-For header is not honoured: behind a proxy, per-address
// connection limits and login throttling see the proxy's address.
//
// # Memory of an idle connection
//
// The upgrade runs in the HTTP server's goroutine, which then returns: the
// HTTP connection state and its 4 KiB read and write buffers become garbage.
// The reader goroutine started for the WebSocket holds gorilla/websocket's
// Conn with a 512-byte read buffer (gorilla needs one for frame headers and
// control frames; it cannot park without one, unlike listener.Conn); write
// buffers come from a pool only while a message is written (Upgrader
// WriteBufferPool), and message buffers only while a message is fed.
// Measured with 1,000 to 5,000 idle unauthenticated sessions (2026-11): heap
// retained per connection ≈ 2.4 KB (gorilla Conn and read buffer 1.1 KB,
// c2s.Session 0.5 KB, framed decoder 0.7 KB, socket 0.4 KB) plus a 4 KB
// goroutine stack; process RSS ≈ 11 KB per connection, the same as a TCP
// c2s connection measured the same way.

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/listener"
	"github.com/parley-im/parley/internal/xmlcodec"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

// Subprotocol is the WebSocket subprotocol of XMPP (RFC 7395 §3.1).
const Subprotocol = "xmpp"

// SubprotocolBinary is Parley's compact binary encoding over WebSocket
// (docs/binary-protocol.md): binary messages, each carrying one or more
// whole frames of the encoding, which delimits its own frames.
const SubprotocolBinary = "parley-bin"

// WebSocketPath is where XMPP over WebSocket is served.
const WebSocketPath = "/xmpp-websocket"

const (
	// wsReadBufferSize is gorilla's per-connection read buffer: frame
	// headers (≤ 14 bytes) and control frames (≤ 125 bytes) are peeked
	// from it; larger payload reads bypass it.
	wsReadBufferSize = 512
	// wsWriteBufferSize is the size of the pooled write buffers; a longer
	// message is sent in several frames.
	wsWriteBufferSize = 4096
	// wsCloseGrace bounds the write of a close frame and how long the
	// reader then waits for the client's close before closing the socket.
	wsCloseGrace = time.Second
	// wsDefaultMaxMessage applies when WebSocketConfig.MaxStanzaSize is 0.
	wsDefaultMaxMessage = 262144
)

// WebSocketConfig configures the XMPP over WebSocket handler.
type WebSocketConfig struct {
	// NewSession builds the session of an accepted connection (in the
	// server: c2s.New with the shared session config).
	NewSession func(tr c2s.Transport, codec c2s.Codec) (listener.Session, error)
	// NewBinaryCodec, when set, offers the parley-bin subprotocol with the
	// codec it returns (the server's binary encoding) for maxStanza.
	NewBinaryCodec func(maxStanza int) c2s.Codec
	// MaxStanzaSize is the largest WebSocket message accepted, in bytes.
	MaxStanzaSize int
	// IdleTimeout closes a connection that sends nothing for this long
	// before it has bound a resource (0: no limit).
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a client (0: no limit).
	WriteTimeout time.Duration
	// AllowedOrigins restricts browser origins; empty allows any.
	AllowedOrigins []string
	// RequireSecure refuses connections whose channel is neither TLS nor
	// loopback (the server passes starttls-required).
	RequireSecure bool
	// Tracker counts and drains connections together with the TCP
	// listeners; MaxConnections and MaxConnectionsPerIP are its limits
	// (0: none).
	Tracker             *listener.Tracker
	MaxConnections      int
	MaxConnectionsPerIP int
	Logger              *slog.Logger
}

type wsHandler struct {
	cfg      WebSocketConfig
	log      *slog.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool
}

// WebSocket returns the handler for /xmpp-websocket.
func WebSocket(cfg WebSocketConfig) http.Handler {
	if cfg.MaxStanzaSize <= 0 {
		cfg.MaxStanzaSize = wsDefaultMaxMessage
	}
	if cfg.Tracker == nil {
		cfg.Tracker = listener.NewTracker()
	}
	h := &wsHandler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	if len(cfg.AllowedOrigins) > 0 {
		h.origins = make(map[string]bool, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			h.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
		}
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   wsReadBufferSize,
		WriteBufferSize:  wsWriteBufferSize,
		WriteBufferPool:  &wsWritePool,
		Subprotocols:     h.subprotocols(),
		CheckOrigin:      h.originAllowed,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return h
}

// wsWritePool holds gorilla's write buffers between messages (gorilla puts
// its own values in it).
var wsWritePool sync.Pool

func (h *wsHandler) subprotocols() []string {
	if h.cfg.NewBinaryCodec != nil {
		return []string{Subprotocol, SubprotocolBinary}
	}
	return []string{Subprotocol}
}

func (h *wsHandler) originAllowed(r *http.Request) bool {
	if h.origins == nil {
		return true
	}
	origin := r.Header.Get("Origin")
	return origin == "" || h.origins[strings.ToLower(origin)]
}

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "XMPP over WebSocket (RFC 7395): connect with a WebSocket client, subprotocol \"xmpp\"", http.StatusBadRequest)
		return
	}
	if !h.offersKnown(r) {
		http.Error(w, "unsupported WebSocket subprotocol: this endpoint speaks \"xmpp\" (RFC 7395)", http.StatusBadRequest)
		return
	}
	if !h.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ip := wsPeerIP(r)
	state := wsChannelState(r, ip)
	if state == nil && h.cfg.RequireSecure {
		http.Error(w, "XMPP over WebSocket needs TLS here: connect with wss:// through a TLS-terminating proxy on the server's host", http.StatusForbidden)
		return
	}
	t := h.cfg.Tracker
	if !t.Admit(ip, h.cfg.MaxConnections, h.cfg.MaxConnectionsPerIP) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			t.Release(ip, nil)
		}
	}()
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.log.Debug("websocket: upgrade failed", "ip", ip, "err", err)
		return // the upgrader has answered
	}
	defer func() {
		if !handedOff { // no session (or a panic making one)
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseInternalServerErr, ""), time.Now().Add(wsCloseGrace))
			_ = ws.Close()
		}
	}()
	c := &wsConn{ws: ws, ip: ip, tls: state, writeTimeout: h.cfg.WriteTimeout, max: h.cfg.MaxStanzaSize}
	var codec c2s.Codec
	if ws.Subprotocol() == SubprotocolBinary {
		bc := &wsBinCodec{inner: h.cfg.NewBinaryCodec(h.cfg.MaxStanzaSize), max: h.cfg.MaxStanzaSize}
		c.binary, c.codec, codec = true, bc, bc
	} else {
		xc := newWSCodec(h.cfg.MaxStanzaSize)
		c.codec, codec = xc, xc
	}
	ws.SetCloseHandler(c.closeHandler)
	sess, err := h.cfg.NewSession(c, codec)
	if err != nil || sess == nil {
		h.log.Warn("websocket: cannot create a session", "ip", ip, "err", err)
		return
	}
	handedOff = true
	// The reader runs in a goroutine of its own so that this handler
	// returns and the HTTP connection's state and buffers are released.
	go h.serve(c, sess)
}

// serve runs one connection's reader; a panic ends this connection only.
func (h *wsHandler) serve(c *wsConn, sess listener.Session) {
	t := h.cfg.Tracker
	defer t.Release(c.ip, sess)
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("websocket: connection panic", "ip", c.ip, "panic", p)
			_ = c.Close()
		}
	}()
	// The reader owns the socket: it closes it once the session has ended.
	defer func() { _ = c.ws.Close() }()
	if !t.Track(sess) {
		sess.Shutdown()
	}
	c.readLoop(sess, h.cfg.IdleTimeout)
}

// offersKnown reports whether the client's Sec-WebSocket-Protocol lists a
// subprotocol this endpoint speaks.
func (h *wsHandler) offersKnown(r *http.Request) bool {
	for _, p := range websocket.Subprotocols(r) {
		if p == Subprotocol || p == SubprotocolBinary && h.cfg.NewBinaryCodec != nil {
			return true
		}
	}
	return false
}

// wsPeerIP is the peer address without port.
func wsPeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return host
}

func wsLoopback(ip string) bool {
	p := net.ParseIP(ip)
	return p != nil && p.IsLoopback()
}

// wsChannelState is what the session's TLS() reports (see the file comment).
func wsChannelState(r *http.Request, ip string) *tls.ConnectionState {
	if r.TLS != nil {
		st := *r.TLS
		return &st
	}
	if wsLoopback(ip) {
		return wsLoopbackState // shared: TLS() hands out copies
	}
	return nil
}

// wsLoopbackState is the channel state of loopback connections.
var wsLoopbackState = &tls.ConnectionState{}

// ---------------------------------------------------------------------------
// Transport

// wsConn is a c2s.Transport over a WebSocket. Reads happen only in the
// reader goroutine; Write only from the session's single flusher; Close
// from anywhere.
//
// Closing is a handshake, not a cut: Close sends a close frame and makes
// the reader linger, discarding input, until the client's close frame, EOF
// or wsCloseGrace; only then does the reader close the socket. Closing a
// socket with unread input makes the kernel send a reset, which can destroy
// the stream error and <close/> still on their way to the client (as after
// an oversized message the client is still sending).
type wsConn struct {
	ws           *websocket.Conn
	ip           string
	tls          *tls.ConnectionState
	writeTimeout time.Duration
	max          int
	codec        rejecter // the session's codec, for framing-level errors
	binary       bool     // parley-bin: binary messages, self-delimiting frames
	closeOnce    sync.Once

	mu        sync.Mutex // orders read-deadline changes
	lingering bool       // no more input is fed; the read deadline is final
}

var _ c2s.Transport = (*wsConn)(nil)

var errWSBadFrame = errors.New("websocket: output not framed by the WebSocket codec")

// Write sends every length-prefixed element of p as a text message of its
// own, all within the write timeout.
func (c *wsConn) Write(p []byte) error {
	if c.writeTimeout > 0 {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if c.binary {
		// The binary encoding delimits its own frames: one message
		// carries all of this flush.
		return c.ws.WriteMessage(websocket.BinaryMessage, p)
	}
	for len(p) > 0 {
		if len(p) < 4 {
			return errWSBadFrame
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return errWSBadFrame
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, p[4:4+n]); err != nil {
			return err
		}
		p = p[4+n:]
	}
	return nil
}

// StartTLS is impossible on a WebSocket (TLS is the HTTP layer's business).
func (c *wsConn) StartTLS(*tls.Config) error {
	return errors.New("websocket: STARTTLS is not available")
}

// CanStartTLS is always false.
func (c *wsConn) CanStartTLS() bool { return false }

// TLS reports the channel's security (see the file comment).
func (c *wsConn) TLS() *tls.ConnectionState {
	if c.tls == nil {
		return nil
	}
	st := *c.tls
	return &st
}

// Close sends a normal-closure close frame; the reader then closes the
// socket within wsCloseGrace (see wsConn). It returns at once: the frame is
// written in the background, since Close may be called by another
// session's goroutine, which must not wait on this client's socket.
func (c *wsConn) Close() error {
	c.closeWith(websocket.CloseNormalClosure, "")
	return nil
}

func (c *wsConn) closeWith(code int, text string) {
	c.closeOnce.Do(func() {
		c.linger()
		var msg []byte
		if code != websocket.CloseNoStatusReceived {
			msg = websocket.FormatCloseMessage(code, text)
		}
		go func() {
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(wsCloseGrace))
		}()
	})
}

// closeHandler answers the client's close frame (once); the reader then
// gets the close as an error and ends.
func (c *wsConn) closeHandler(code int, _ string) error {
	c.closeWith(code, "")
	return nil
}

// linger stops feeding input and bounds the reader's remaining wait.
func (c *wsConn) linger() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lingering {
		c.lingering = true
		_ = c.ws.SetReadDeadline(time.Now().Add(wsCloseGrace))
	}
}

// readDeadline sets the deadline of the next read unless lingering; it
// reports whether input is still to be fed.
func (c *wsConn) readDeadline(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lingering {
		return false
	}
	_ = c.ws.SetReadDeadline(t)
	return true
}

// RemoteIP is the peer's address.
func (c *wsConn) RemoteIP() string { return c.ip }

// Kind is "ws".
func (c *wsConn) Kind() string { return "ws" }

// Message buffers: pooled, held only while one message is fed.
const (
	wsMessageBufSize   = 4096
	wsMaxPooledMessage = 64 << 10
)

var wsMessagePool = sync.Pool{New: func() any { b := make([]byte, 0, wsMessageBufSize); return &b }}

// readLoop feeds the session one message at a time until the connection
// ends. idle bounds the silence allowed before the session is bound.
func (c *wsConn) readLoop(s listener.Session, idle time.Duration) {
	defer s.End()
	for {
		deadline := time.Time{}
		if idle > 0 && !s.Authenticated() {
			deadline = time.Now().Add(idle)
		}
		feeding := c.readDeadline(deadline)
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		if !feeding {
			continue // closing: the next NextReader discards this message
		}
		bp := wsMessagePool.Get().(*[]byte)
		msg, err := wsReadMessage((*bp)[:0], r, c.max+1)
		if err != nil {
			wsPutMessage(bp, msg)
			return
		}
		if c.binary && typ == websocket.TextMessage {
			c.codec.reject(stanza.NewStreamError(stanza.StreamBadFormat, "text WebSocket messages are not parley-bin: it uses binary messages"))
		}
		if !c.binary && typ == websocket.BinaryMessage {
			// RFC 7395 §3.2: the xmpp subprotocol uses text messages
			// only. The codec reports it, so the session ends with a
			// stream error like for any other bad input.
			c.codec.reject(stanza.NewStreamError(stanza.StreamBadFormat, "binary WebSocket messages are not XMPP: the xmpp subprotocol uses text messages (RFC 7395)"))
		}
		err = s.Feed(msg)
		wsPutMessage(bp, msg)
		if err != nil {
			// The session has ended and closes (or has closed) the
			// transport: wait for the client's close, bounded.
			c.linger()
			continue
		}
		if d := s.Throttle(); d > 0 {
			time.Sleep(d)
		}
	}
}

func wsPutMessage(bp *[]byte, msg []byte) {
	if cap(msg) > wsMaxPooledMessage {
		return // a rare large buffer is left to the collector
	}
	*bp = msg[:0]
	wsMessagePool.Put(bp)
}

// wsReadMessage appends up to limit bytes of a message to dst.
func wsReadMessage(dst []byte, r io.Reader, limit int) ([]byte, error) {
	for len(dst) < limit {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		end := min(cap(dst), limit)
		n, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// ---------------------------------------------------------------------------
// Codec

// rejecter is a codec the reader can make fail its next Feed.
type rejecter interface{ reject(err error) }

// wsBinCodec wraps the binary encoding for WebSocket: the message size
// bound and framing-level rejections; everything else is the encoding's.
type wsBinCodec struct {
	inner    c2s.Codec
	max      int
	rejected error
}

func (c *wsBinCodec) Feed(p []byte) error {
	if err := c.rejected; err != nil {
		return err
	}
	if len(p) > c.max {
		return stanza.NewStreamError(stanza.StreamPolicyViolation, "stanza too large")
	}
	return c.inner.Feed(p)
}

func (c *wsBinCodec) reject(err error)                         { c.rejected = err }
func (c *wsBinCodec) Reset()                                   { c.inner.Reset() }
func (c *wsBinCodec) Next() (c2s.Event, bool, error)           { return c.inner.Next() }
func (c *wsBinCodec) AppendOpen(d []byte, h c2s.Header) []byte { return c.inner.AppendOpen(d, h) }
func (c *wsBinCodec) AppendElement(d []byte, el *stanza.Element) []byte {
	return c.inner.AppendElement(d, el)
}
func (c *wsBinCodec) AppendClose(d []byte) []byte { return c.inner.AppendClose(d) }

// Encoding names the encoding for metrics.
func (c *wsBinCodec) Encoding() string { return "binary" }

// wsCodec is the RFC 7395 codec: the framed XML decoder, and an encoder
// whose output only wsConn.Write understands (length-prefixed elements).
type wsCodec struct {
	dec *xmlstream.Decoder
	max int
	// rejected, when set by the reader, is what the next Feed returns:
	// how a framing-level error becomes the session's stream error.
	rejected error
}

var _ c2s.Codec = (*wsCodec)(nil)

func newWSCodec(maxStanza int) *wsCodec {
	lim := xmlstream.DefaultLimits()
	lim.MaxStanzaBytes = maxStanza
	return &wsCodec{dec: xmlstream.NewFramedDecoder(lim), max: maxStanza}
}

// Feed takes one whole WebSocket message (the reader passes at most one
// byte more than the limit of a longer one).
func (c *wsCodec) Feed(p []byte) error {
	if err := c.rejected; err != nil {
		return err
	}
	if len(p) > c.max {
		return stanza.NewStreamError(stanza.StreamPolicyViolation, "stanza too large")
	}
	return c.dec.Feed(p)
}

// reject makes the next Feed fail with err (called by the reader only).
func (c *wsCodec) reject(err error) { c.rejected = err }

func (c *wsCodec) Reset() { c.dec.Reset() }

func (c *wsCodec) Next() (c2s.Event, bool, error) {
	tok, ok, err := c.dec.Next()
	if err != nil || !ok {
		return c2s.Event{}, ok, err
	}
	return xmlcodec.Event(tok), true, nil
}

// wsBeginFrame reserves the length prefix of one element; wsEndFrame fills it.
func wsBeginFrame(dst []byte) ([]byte, int) { return append(dst, 0, 0, 0, 0), len(dst) }

func wsEndFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

func (c *wsCodec) AppendOpen(dst []byte, h c2s.Header) []byte {
	dst, start := wsBeginFrame(dst)
	dst = xmlstream.AppendFramedOpen(dst, xmlstream.Header{
		To: h.To, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang,
	})
	return wsEndFrame(dst, start)
}

func (c *wsCodec) AppendElement(dst []byte, el *stanza.Element) []byte {
	dst, start := wsBeginFrame(dst)
	dst = xmlstream.AppendFramedElement(dst, el)
	return wsEndFrame(dst, start)
}

func (c *wsCodec) AppendClose(dst []byte) []byte {
	dst, start := wsBeginFrame(dst)
	dst = xmlstream.AppendFramedClose(dst)
	return wsEndFrame(dst, start)
}
