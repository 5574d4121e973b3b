package c2s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces used during negotiation.
const (
	nsRegisterFeature = "http://jabber.org/features/iq-register"
	nsRegister        = "jabber:iq:register"
	nsRosterVer       = "urn:xmpp:features:rosterver"
	nsPreApproval     = "urn:xmpp:features:pre-approval"
)

// Config is shared by every session of a listener.
type Config struct {
	Domain            string
	TLS               *tls.Config // nil disables STARTTLS
	StartTLSRequired  bool
	AllowRegistration bool
	Router            *router.Router
	Auth              Authenticator
	Presence          Presence
	Register          Registration // nil when registration is off
	Logger            *slog.Logger
	// MaxOutBytes bounds a session's pending output; a client that does not
	// read past it is disconnected and its messages stay queued.
	MaxOutBytes int
	// StanzaRate and StanzaBurst shape a session's inbound stanzas (token
	// bucket): past the burst the reader pauses instead of reading more.
	StanzaRate  float64
	StanzaBurst float64
	// MaxDirected bounds the directed-presence set a session remembers.
	MaxDirected int
	// Resume, if set, makes sessions resumable (XEP-0198).
	Resume *Resumer
	// MaxUnacked bounds stanzas kept for a client that has not
	// acknowledged them (0: DefaultMaxUnacked).
	MaxUnacked int
	// Metrics, if set, counts session events.
	Metrics *Metrics
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Metrics are the session counters a server exposes. The zero value is
// ready to use; counters are atomics so the hot path pays no lock.
type Metrics struct {
	Panics        atomic.Int64
	StanzasIn     atomic.Int64
	StanzasOut    atomic.Int64
	LoginFailures atomic.Int64
	Logins        atomic.Int64
	SlowConsumers atomic.Int64
	// InByKind and OutByKind count stanzas by StanzaKinds.
	InByKind  [3]atomic.Int64
	OutByKind [3]atomic.Int64
	BytesIn   atomic.Int64
	BytesOut  atomic.Int64
	// ObserveRoute, if set, is told how long handling one inbound stanza
	// took: routing, up to where a message is in its recipient's queue and
	// handed to its sessions (its durable append finishes later; the
	// router's ObserveEnqueue times that).
	ObserveRoute func(time.Duration)

	bound sync.Map // transport kind -> *atomic.Int64
}

// StanzaKinds names the indexes of InByKind and OutByKind.
var StanzaKinds = [3]string{"message", "presence", "iq"}

func kindIndex(name string) int {
	switch name {
	case "message":
		return 0
	case "presence":
		return 1
	}
	return 2
}

// BoundByTransport returns the number of bound sessions per
// "transport/encoding" (e.g. "starttls/xml", "tls/binary").
func (m *Metrics) BoundByTransport() map[string]int64 {
	out := map[string]int64{}
	m.bound.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (m *Metrics) boundAdd(kind string, d int64) {
	v, _ := m.bound.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(d)
}

type state uint8

const (
	stateHeader   state = iota // waiting for the stream header
	stateFeatures              // features sent, waiting for starttls/auth
	stateSASL                  // a SASL exchange is in progress
	stateAuthed                // authenticated, waiting for bind
	stateBound                 // resource bound: stanzas flow
	stateClosed
)

// Session is one client connection's XMPP session. Its negotiation state is
// owned by the reader (whoever calls Feed); the outbound path is guarded by
// outMu and may be used from any goroutine. Nothing is buffered while the
// session is idle.
//
// Memory: a session is carried for hours while idle, so what it keeps is
// counted (docs/density.md): the struct fits a 384-byte size class, the
// logger with the session's JID is built only when a line is logged, and
// what only some sessions use (the CSI hold sets, the resumption and backlog
// signals) is allocated when first needed.
type Session struct {
	cfg   *Config
	tr    Transport
	codec Codec

	// Reader-owned state.
	state    state
	secure   bool
	initial  bool // initial presence sent (beside state: no padding)
	mech     Mech
	user     string
	jid      jid.JID
	streamID string
	tokens   float64
	lastTok  int64 // unix nanoseconds of the last token taken; 0: none yet
	directed []jid.JID

	// Published to other goroutines.
	available atomic.Bool
	priority  atomic.Int32
	// lastPresence is the session's current available presence in the
	// router's storage form: about 150 bytes where the element tree with
	// its attributes took ~400, kept by every available session for hours.
	// It is decoded only when a contact's presence probe or a new
	// subscription needs it.
	lastPresence atomic.Pointer[[]byte]
	rosterWanted atomic.Bool
	bound        atomic.Bool
	boundAt      atomic.Int64 // unix nanoseconds of binding, for the admin API

	// Outbound path.
	outMu      sync.Mutex
	out        []byte
	acks       []*router.Ack
	flushing   bool
	inFeed     bool
	closing    bool // no more output accepted
	closeAfter bool // close the transport once out is written
	ended      bool
	noResume   bool  // ended on purpose (stream close, error, kick): no resumption
	broken     bool  // the connection failed: output is kept for resumption
	backlog    uint8 // one of the backlog states (backlog.go)
	// backlogSeen is the highest queue seq the backlog flush has handed
	// to this session (backlog.go): a live delivery of an item at or
	// below it is a duplicate.
	backlogSeen uint64
	// flight tracks the messages whose durable append is still running
	// (flight.go); nil when there are none.
	flight *flight
	// room is signalled when acks or writes free room; made by the first
	// backlog flush that has to wait (backlog.go).
	room      atomic.Pointer[chan struct{}]
	boundKind string // transport kind counted in Metrics while bound
	sm        smState
	csi       *csiState // XEP-0352 (csi.go); nil until the client is first inactive
}

// New creates a session on a transport speaking codec. Call Open first if the
// transport has negotiated anything (direct TLS), then Feed as bytes arrive,
// and End once the transport has no more bytes.
func New(cfg *Config, tr Transport, codec Codec) *Session {
	s := &Session{cfg: cfg, tr: tr, codec: codec}
	s.secure = tr.TLS() != nil
	s.tokens = cfg.StanzaBurst
	return s
}

// ctx is the context of the session's calls into the router and modules.
// Sessions are not cancelled through it (they end by End); it is not kept
// in the struct, to keep idle sessions small.
func (s *Session) ctx() context.Context { return context.Background() }

// log is the session's logger: with its JID once bound. It is built per
// call, since lines are rare and a stored derived logger would cost every
// idle session a few hundred bytes.
func (s *Session) log() *slog.Logger {
	l := s.cfg.logger()
	if !s.jid.IsZero() {
		return l.With("jid", s.jid.String())
	}
	return l
}

// JID returns the bound full JID (zero before binding).
func (s *Session) JID() jid.JID { return s.jid }

// Available reports whether initial presence was sent and not withdrawn.
func (s *Session) Available() bool { return s.available.Load() }

// Priority is the priority of the session's last available presence.
func (s *Session) Priority() int { return int(s.priority.Load()) }

// LastPresence returns the last broadcast presence, or nil.
func (s *Session) LastPresence() *stanza.Element {
	p := s.lastPresence.Load()
	if p == nil {
		return nil
	}
	el, err := s.cfg.Router.Codec().Unmarshal(*p)
	if err != nil {
		// Cannot happen: the router's codec wrote it.
		s.log().Error("c2s: decode last presence", "err", err)
		return nil
	}
	return el
}

// RosterWanted reports whether the client has requested its roster and so
// receives roster pushes (RFC 6121 §2.1.6).
func (s *Session) RosterWanted() bool { return s.rosterWanted.Load() }

// SetRosterWanted records that the client has requested its roster.
func (s *Session) SetRosterWanted() { s.rosterWanted.Store(true) }

// Secure reports whether the stream is encrypted.
func (s *Session) Secure() bool { return s.secure }

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (s *Session) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Feed processes bytes read from the client. It returns an error when the
// session has ended (the transport should then call End and stop reading).
// A panic inside is contained: the session ends with internal-server-error.
func (s *Session) Feed(p []byte) (err error) {
	s.outMu.Lock()
	s.inFeed = true
	s.outMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.Panics.Add(1)
			}
			s.log().Error("c2s: session panic", "jid", s.jid.String(), "panic", r, "stack", string(debug.Stack()))
			s.fail(stanza.NewStreamError(stanza.StreamInternalServerError, ""))
			err = errSessionPanic
		}
		s.outMu.Lock()
		s.inFeed = false
		s.outMu.Unlock()
		s.flushInline()
	}()
	if s.state == stateClosed {
		return errClosed
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.BytesIn.Add(int64(len(p)))
	}
	if err := s.codec.Feed(p); err != nil {
		s.fail(stanza.AsStreamError(err))
		return err
	}
	for s.state != stateClosed {
		ev, ok, err := s.codec.Next()
		if err != nil {
			s.fail(stanza.AsStreamError(err))
			return err
		}
		if !ok {
			return nil
		}
		if err := s.handle(ev); err != nil {
			s.fail(stanza.AsStreamError(err))
			return err
		}
	}
	return errClosed
}

var (
	errClosed       = errors.New("c2s: session closed")
	errSessionPanic = errors.New("c2s: session panic")
)

// Throttle returns how long the reader should wait before reading again,
// per the stanza rate shaper; zero when it may read at once.
func (s *Session) Throttle() time.Duration {
	if s.cfg.StanzaRate <= 0 || s.tokens >= 0 {
		return 0
	}
	return time.Duration(-s.tokens / s.cfg.StanzaRate * float64(time.Second))
}

// take spends one token of the stanza shaper.
func (s *Session) take() {
	if s.cfg.StanzaRate <= 0 {
		return
	}
	now := s.now().UnixNano()
	if s.lastTok != 0 {
		s.tokens += time.Duration(now-s.lastTok).Seconds() * s.cfg.StanzaRate
		if s.tokens > s.cfg.StanzaBurst {
			s.tokens = s.cfg.StanzaBurst
		}
	}
	s.lastTok = now
	s.tokens--
}

func (s *Session) handle(ev Event) error {
	switch ev.Kind {
	case EventOpen:
		return s.handleOpen(ev.Header)
	case EventClose:
		s.close(nil)
		return nil
	}
	el := ev.Element
	switch s.state {
	case stateHeader:
		return stanza.NewStreamError(stanza.StreamNotWellFormed, "stream header expected")
	case stateFeatures:
		return s.handleNegotiation(el)
	case stateSASL:
		return s.handleSASL(el)
	case stateAuthed:
		if ok, err := s.handleSM(el); ok {
			return err
		}
		if ok, err := s.handleCSI(el); ok {
			return err
		}
		return s.handleBind(el)
	case stateBound:
		if ok, err := s.handleSM(el); ok {
			return err
		}
		if ok, err := s.handleCSI(el); ok {
			return err // a nonza: not counted by stream management
		}
		m := s.cfg.Metrics
		var start time.Time
		if m != nil {
			m.StanzasIn.Add(1)
			m.InByKind[kindIndex(el.Name)].Add(1)
			if m.ObserveRoute != nil {
				start = time.Now()
			}
		}
		s.take()
		if err := s.handleStanza(el); err != nil {
			return err
		}
		if !start.IsZero() {
			m.ObserveRoute(time.Since(start))
		}
		// Counted as read; a message still being made durable is not
		// handled yet, and h stops before it (flight.go), so <a/> means
		// "stored".
		s.countHandled()
		return nil
	}
	return nil
}

func (s *Session) handleOpen(h Header) error {
	if s.state != stateHeader {
		return stanza.NewStreamError(stanza.StreamNotWellFormed, "unexpected stream header")
	}
	s.streamID = randomID()
	// RFC 6120 §4.9.1.2: answer with our own header before any error.
	s.send(nil, func(dst []byte) []byte {
		return s.codec.AppendOpen(dst, Header{From: s.cfg.Domain, ID: s.streamID, Version: "1.0", Lang: "en", NS: stanza.NSClient})
	})
	if h.NS != "" && h.NS != stanza.NSClient {
		return stanza.NewStreamError(stanza.StreamInvalidNamespace, "")
	}
	if to, err := jid.Parse(h.To); h.To == "" || err != nil || to.String() != s.cfg.Domain {
		return stanza.NewStreamError(stanza.StreamHostUnknown, "this server serves "+s.cfg.Domain)
	}
	if major, _, _ := cutVersion(h.Version); major != 1 {
		return stanza.NewStreamError(stanza.StreamUnsupportedVersion, "XMPP 1.0 is required")
	}
	feats := stanza.New("features", stanza.NSStream)
	if s.user == "" {
		s.state = stateFeatures
		if !s.secure && s.cfg.TLS != nil && s.tr.CanStartTLS() {
			st := stanza.New("starttls", stanza.NSTLS)
			if s.cfg.StartTLSRequired {
				st.Append(stanza.New("required", stanza.NSTLS))
			}
			feats.Append(st)
		}
		if s.secure || !s.cfg.StartTLSRequired {
			mechs := stanza.New("mechanisms", stanza.NSSASL)
			for _, m := range s.cfg.Auth.Mechanisms(s.tr.TLS()) {
				mechs.Append(stanza.New("mechanism", stanza.NSSASL).AppendText(m))
			}
			feats.Append(mechs)
			if s.cfg.Register != nil {
				feats.Append(stanza.New("register", nsRegisterFeature))
			}
		}
	} else {
		s.state = stateAuthed
		feats.Append(stanza.New("bind", stanza.NSBind))
		feats.Append(stanza.New("session", stanza.NSSession).Append(stanza.New("optional", stanza.NSSession)))
		feats.Append(stanza.New("ver", nsRosterVer))
		feats.Append(stanza.New("sm", NSSM))
		feats.Append(stanza.New("sub", nsPreApproval))
		feats.Append(stanza.New("csi", NSCSI))
	}
	s.sendElement(feats)
	return nil
}

func cutVersion(v string) (major, minor int, ok bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '.' {
			a, err1 := strconv.Atoi(v[:i])
			b, err2 := strconv.Atoi(v[i+1:])
			return a, b, err1 == nil && err2 == nil
		}
	}
	return 0, 0, false
}

func (s *Session) handleNegotiation(el *stanza.Element) error {
	switch {
	case el.Name == "starttls" && el.NS == stanza.NSTLS:
		if s.secure || s.cfg.TLS == nil || !s.tr.CanStartTLS() {
			return stanza.NewStreamError(stanza.StreamPolicyViolation, "STARTTLS is not available")
		}
		return s.startTLS()
	case el.Name == "auth" && el.NS == stanza.NSSASL:
		if !s.secure && s.cfg.StartTLSRequired {
			s.sendElement(saslFailure("encryption-required", "STARTTLS first"))
			return nil
		}
		return s.startSASL(el)
	case el.Name == "iq" && s.cfg.Register != nil && el.ChildNS(nsRegister) != nil:
		if !s.secure && s.cfg.StartTLSRequired {
			return stanza.NewStreamError(stanza.StreamPolicyViolation, "STARTTLS first")
		}
		if reply := s.cfg.Register.HandleIQ(s.ctx(), s.tr.RemoteIP(), el); reply != nil {
			s.sendElement(reply)
		}
		return nil
	case el.IsStanza():
		return stanza.NewStreamError(stanza.StreamNotAuthorized, "authenticate first")
	}
	return stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "")
}

func (s *Session) startTLS() error {
	// <proceed/> must reach the client before the handshake starts, so it
	// is written synchronously; any bytes pipelined after <starttls/> are
	// a protocol violation and are dropped with the decoder state.
	s.sendElement(stanza.New("proceed", stanza.NSTLS))
	if err := s.flushSync(); err != nil {
		return err
	}
	if err := s.tr.StartTLS(s.cfg.TLS); err != nil {
		s.log().Debug("c2s: TLS handshake failed", "ip", s.tr.RemoteIP(), "err", err)
		s.state = stateClosed
		s.markClosing()
		_ = s.tr.Close()
		return nil
	}
	s.secure = true
	s.codec.Reset()
	s.state = stateHeader
	s.streamID = "" // a restarted stream gets a new header and id
	return nil
}

func (s *Session) startSASL(el *stanza.Element) error {
	name := el.Attr("mechanism")
	mech, err := s.cfg.Auth.Start(name, s.tr.RemoteIP(), s.tr.TLS())
	if err != nil {
		cond, text := s.cfg.Auth.Condition(err)
		s.loginFailed(name, cond)
		s.sendElement(saslFailure(cond, text))
		return nil
	}
	s.mech = mech
	s.state = stateSASL
	data, err := sasl.DecodeData(el.TextContent())
	if err != nil {
		return s.saslAbort("incorrect-encoding", "")
	}
	return s.saslStep(data)
}

func (s *Session) handleSASL(el *stanza.Element) error {
	if el.NS != stanza.NSSASL {
		return stanza.NewStreamError(stanza.StreamNotAuthorized, "SASL exchange in progress")
	}
	switch el.Name {
	case "response":
		data, err := sasl.DecodeData(el.TextContent())
		if err != nil {
			return s.saslAbort("incorrect-encoding", "")
		}
		return s.saslStep(data)
	case "abort":
		return s.saslAbort("aborted", "")
	}
	return stanza.NewStreamError(stanza.StreamNotAuthorized, "SASL exchange in progress")
}

func (s *Session) saslAbort(cond, text string) error {
	s.loginFailed("", cond)
	s.mech = nil
	s.state = stateFeatures
	s.sendElement(saslFailure(cond, text))
	return nil
}

func (s *Session) saslStep(data []byte) error {
	out, done, err := s.mech.Next(data)
	if err != nil {
		cond, text := s.cfg.Auth.Condition(err)
		return s.saslAbort(cond, text)
	}
	if !done {
		s.sendElement(stanza.New("challenge", stanza.NSSASL).AppendText(sasl.EncodeData(out)))
		return nil
	}
	s.user = s.mech.Username()
	s.mech = nil
	if r, ok := s.tr.(tlsStateReleaser); ok {
		r.ReleaseTLSState()
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Logins.Add(1)
	}
	succ := stanza.New("success", stanza.NSSASL)
	if len(out) > 0 {
		succ.AppendText(sasl.EncodeData(out))
	}
	s.sendElement(succ)
	s.codec.Reset()
	s.state = stateHeader
	s.streamID = ""
	return nil
}

func (s *Session) loginFailed(mech, cond string) {
	s.cfg.Auth.Failed(s.tr.RemoteIP(), s.mech)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.LoginFailures.Add(1)
	}
	s.log().Info("c2s: login failed", "ip", s.tr.RemoteIP(), "mechanism", mech, "condition", cond)
}

func saslFailure(cond, text string) *stanza.Element {
	f := stanza.New("failure", stanza.NSSASL).Append(stanza.New(cond, stanza.NSSASL))
	if text != "" {
		f.Append(stanza.New("text", stanza.NSSASL).SetAttr("xml:lang", "en").AppendText(text))
	}
	return f
}

func (s *Session) handleBind(el *stanza.Element) error {
	if el.Name != "iq" {
		return stanza.NewStreamError(stanza.StreamNotAuthorized, "bind a resource first")
	}
	b := el.Child("bind", stanza.NSBind)
	if b == nil || el.Type() != "set" {
		if el.Type() == "get" || el.Type() == "set" {
			s.sendError(el, stanza.ErrNotAuthorized.WithText("bind a resource first"))
		}
		return nil
	}
	res := b.ChildText("resource", "")
	if res == "" {
		res = "parley-" + randomID()[:10]
	}
	full, err := jid.New(s.user, s.cfg.Domain, res)
	if err != nil {
		s.sendError(el, stanza.ErrBadRequest.WithText("invalid resource"))
		return nil
	}
	s.jid = full // set before the router publishes the session to other goroutines
	replaced, err := s.cfg.Router.Bind(s)
	if err != nil {
		s.jid = jid.JID{}
		s.sendError(el, stanza.ErrResourceConstraint.WithText("too many sessions for this account"))
		return nil
	}
	if replaced != nil {
		replaced.Kick(stanza.NewStreamError(stanza.StreamConflict, "replaced by a new session"))
	}
	s.bound.Store(true)
	s.boundAt.Store(s.now().UnixNano())
	s.countBound(1)
	s.state = stateBound
	res2 := stanza.New("iq", stanza.NSClient).SetAttr("id", el.ID()).SetAttr("type", "result").
		Append(stanza.New("bind", stanza.NSBind).Append(stanza.New("jid", stanza.NSBind).AppendText(full.String())))
	s.sendElement(res2)
	return nil
}

func (s *Session) handleStanza(el *stanza.Element) error {
	if !el.IsStanza() {
		return stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "")
	}
	// RFC 6120 §8.1.2.1: the server stamps from; a client cannot speak as
	// anyone else.
	el.SetAttr("from", s.jid.String())
	var to jid.JID
	if t := el.To(); t != "" {
		var err error
		to, err = jid.Parse(t)
		if err != nil {
			s.sendError(el, stanza.ErrJIDMalformed)
			return nil
		}
		el.SetAttr("to", to.String())
	}
	switch el.Name {
	case "iq":
		return s.handleIQ(el, to)
	case "presence":
		s.handlePresence(el, to)
		return nil
	}
	s.routeMessage(el)
	return nil
}

func (s *Session) handleIQ(el *stanza.Element, to jid.JID) error {
	switch el.Type() {
	case "get", "set":
		if len(el.Elements()) != 1 {
			// RFC 6120 §8.2.3: exactly one payload.
			s.sendError(el, stanza.ErrBadRequest)
			return nil
		}
	case "result", "error":
	default:
		s.sendError(el, stanza.ErrBadRequest)
		return nil
	}
	if el.ID() == "" {
		s.sendError(el, stanza.ErrBadRequest.WithText("iq without id"))
		return nil
	}
	if to.IsZero() || to.String() == s.cfg.Domain {
		if el.Child("session", stanza.NSSession) != nil && el.Type() == "set" {
			s.sendElement(stanza.Result(el).SetAttr("to", s.jid.String()))
			return nil
		}
		if el.Child("bind", stanza.NSBind) != nil {
			s.sendError(el, stanza.ErrNotAllowed.WithText("resource already bound"))
			return nil
		}
	}
	s.cfg.Router.Route(s.ctx(), el)
	return nil
}

func (s *Session) handlePresence(el *stanza.Element, to jid.JID) {
	typ := el.Type()
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if to.IsZero() {
			return
		}
		s.cfg.Presence.Subscription(s.ctx(), s.jid, el)
		return
	case "probe":
		return // RFC 6121 §4.3: clients do not send probes
	case "", "unavailable", "error":
	default:
		return
	}
	if to.IsZero() || to == s.jid.Bare() {
		if typ == "error" {
			return
		}
		initial := !s.initial && typ == ""
		if typ == "" {
			s.initial = true
			s.priority.Store(int32(priorityOf(el)))
		}
		el.SetAttr("to", "")
		if initial {
			// From the moment the session is available until the offline
			// delivery's first pass has read the queue, live durable
			// deliveries stay in the queue: one delivered live before the
			// pass began would be read by it and delivered again, ahead
			// of older ones.
			s.outMu.Lock()
			s.backlog = backlogPending
			s.outMu.Unlock()
		}
		if typ == "" {
			b := bytes.Clone(s.cfg.Router.Codec().Marshal(el))
			s.lastPresence.Store(&b)
			s.available.Store(true)
		} else {
			s.available.Store(false)
			s.lastPresence.Store(nil)
		}
		s.cfg.Presence.Broadcast(s.ctx(), s, el, initial)
		if initial {
			s.outMu.Lock()
			pending := s.backlog == backlogPending || s.backlog == backlogPendingLeft
			s.outMu.Unlock()
			if pending {
				// The presence handler made no offline delivery: what
				// stayed in the queue meanwhile goes out now.
				if err := s.cfg.Router.FlushQueue(s.ctx(), s); err != nil {
					s.log().Error("c2s: offline delivery", "jid", s.jid.String(), "err", err)
				}
			}
		}
		if typ == "unavailable" {
			// RFC 6121 §4.6.3: those we sent directed presence to learn
			// we are gone too.
			for _, d := range s.directed {
				out := el.ShallowCopy()
				out.SetAttr("to", d.String())
				s.cfg.Router.Route(s.ctx(), out)
			}
			s.initial = false
			s.directed = nil
		}
		return
	}
	// Directed presence (RFC 6121 §4.6): remembered so that the contact
	// learns of our unavailability when the session ends.
	if typ == "" {
		s.rememberDirected(to)
	}
	s.cfg.Router.Route(s.ctx(), el)
}

func (s *Session) rememberDirected(to jid.JID) {
	for _, j := range s.directed {
		if j == to {
			return
		}
	}
	max := s.cfg.MaxDirected
	if max <= 0 {
		max = 100
	}
	if len(s.directed) >= max {
		return
	}
	s.directed = append(s.directed, to)
}

func priorityOf(p *stanza.Element) int {
	v := p.ChildText("priority", "")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// sendError answers a stanza from this client with a stanza error.
func (s *Session) sendError(el *stanza.Element, e *stanza.Error) {
	reply := stanza.ErrorReply(el, e)
	if reply == nil {
		return
	}
	reply.SetAttr("from", "")
	if s.bound.Load() {
		reply.SetAttr("to", s.jid.String())
	} else {
		reply.SetAttr("to", "")
	}
	if to := el.To(); to != "" {
		reply.SetAttr("from", to)
	}
	s.sendElement(reply)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// String describes the session for logs.
func (s *Session) String() string {
	return fmt.Sprintf("c2s[%s %s %s]", s.tr.Kind(), s.tr.RemoteIP(), s.jid.String())
}

// countBound keeps the gauge of bound sessions by transport and encoding.
func (s *Session) countBound(d int64) {
	if s.cfg.Metrics == nil {
		return
	}
	if d > 0 {
		enc := "xml"
		if e, ok := s.codec.(interface{ Encoding() string }); ok {
			enc = e.Encoding()
		}
		s.boundKind = s.tr.Kind() + "/" + enc
	}
	s.cfg.Metrics.boundAdd(s.boundKind, d)
}

// Authenticated reports whether the session has bound a resource; until
// then the transport applies its idle timeout.
func (s *Session) Authenticated() bool { return s.bound.Load() }
