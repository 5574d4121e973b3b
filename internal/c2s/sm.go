package c2s

import (
	"strconv"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/stanza"
)

// NSSM is the XEP-0198 stream management namespace.
const NSSM = "urn:xmpp:sm:3"

// smRequest is <r/>, appended to each write that carries new stanzas.
var smRequest = stanza.New("r", NSSM)

// DefaultMaxUnacked bounds the stanzas a session keeps for a client that
// has not acknowledged them; past it the client is treated as a slow
// consumer (disconnected; resumable).
const DefaultMaxUnacked = 4096

// smState is a session's stream management state. in is owned by the
// reader; everything else is guarded by the session's output lock.
type smState struct {
	enabled   bool
	resumable bool
	detached  bool // connection lost, waiting for resumption
	// Guarded by the Resumer's lock (beside the other flags: one word
	// less per session than after unacked).
	resumed   bool
	id        string
	in        uint32 // stanzas received from the client and handled
	out       uint32 // stanzas sent to the client
	acked     uint32 // the client's last acknowledged count
	requested uint32 // out when we last sent <r/>
	unacked   []unacked
	// Guarded by the Resumer's lock.
	timer *time.Timer
	gone  chan struct{} // closed when the session detaches or ends; made by Resumer.register
}

type unacked struct {
	el  *stanza.Element
	ack *router.Ack
}

// keep records a stanza sent (or, detached, owed) to the client; max > 0
// refuses it once that many are kept.
func (m *smState) keep(el *stanza.Element, ack *router.Ack, max int) bool {
	if max > 0 && len(m.unacked) >= max {
		return false
	}
	m.out++
	m.unacked = append(m.unacked, unacked{el: el, ack: ack})
	return true
}

// ackUpTo releases the stanzas the client says it has handled. h counts
// modulo 2^32 (XEP-0198 §5), so the difference is taken in uint32.
func (m *smState) ackUpTo(h uint32) ([]*router.Ack, bool) {
	n := h - m.acked
	if int64(n) > int64(len(m.unacked)) {
		return nil, false
	}
	var acks []*router.Ack
	for _, u := range m.unacked[:n] {
		if u.ack != nil {
			acks = append(acks, u.ack)
		}
	}
	clear(m.unacked[:n])
	m.unacked = m.unacked[n:]
	if len(m.unacked) == 0 {
		m.unacked = nil // give the backing array back
	}
	m.acked = h
	return acks, true
}

func (s *Session) maxUnacked() int {
	if s.cfg.MaxUnacked > 0 {
		return s.cfg.MaxUnacked
	}
	return DefaultMaxUnacked
}

func parseH(v string) (uint32, bool) {
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

func smFailed(cond string) *stanza.Element {
	return stanza.New("failed", NSSM).Append(stanza.New(cond, stanza.NSStanzas))
}

// handleSM handles stream management nonzas; ok is false if el is not one.
func (s *Session) handleSM(el *stanza.Element) (bool, error) {
	if el.NS != NSSM {
		return false, nil
	}
	switch el.Name {
	case "enable":
		if s.state != stateBound {
			s.sendElement(smFailed("unexpected-request"))
			return true, nil
		}
		s.outMu.Lock()
		already := s.sm.enabled
		s.outMu.Unlock()
		if already {
			s.sendElement(smFailed("unexpected-request"))
			return true, nil
		}
		en := stanza.New("enabled", NSSM)
		wantResume := el.Attr("resume") == "true" || el.Attr("resume") == "1"
		resumable := wantResume && s.cfg.Resume != nil
		if resumable {
			s.sm.id = randomID() + randomID()
			en.SetAttr("id", s.sm.id).SetAttr("resume", "true").
				SetAttr("max", strconv.Itoa(max(1, int((s.cfg.Resume.Timeout+time.Second-1)/time.Second))))
		}
		// <enabled/> is not counted, and every stanza after it is, both
		// ways. Encoding it and switching counting on happen under one
		// lock, so no stanza delivered meanwhile can slip between them
		// uncounted; the reader writes the output when Feed returns.
		// Messages still in flight would land at positions of the old
		// count: they land first.
		s.waitLanded()
		s.outMu.Lock()
		s.sm.in = 0
		if !s.closing {
			if s.out == nil {
				s.out = getBuf()
			}
			s.encode(func(dst []byte) []byte { return s.codec.AppendElement(dst, en) })
		}
		s.sm.enabled, s.sm.resumable = true, resumable
		s.outMu.Unlock()
		if resumable {
			s.cfg.Resume.register(s)
		}
		return true, nil
	case "r":
		if !s.smOn() {
			return true, stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "stream management is not enabled")
		}
		s.answerRequest()
		return true, nil
	case "a":
		if !s.smOn() {
			return true, stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "stream management is not enabled")
		}
		h, ok := parseH(el.Attr("h"))
		if !ok {
			return true, stanza.NewStreamError(stanza.StreamInvalidXML, "invalid h")
		}
		s.outMu.Lock()
		acks, ok := s.sm.ackUpTo(h)
		out := s.sm.out
		s.outMu.Unlock()
		if !ok {
			return true, stanza.NewStreamError(stanza.StreamUndefinedCondition,
				"handled count "+strconv.FormatUint(uint64(h), 10)+" exceeds sent count "+strconv.FormatUint(uint64(out), 10))
		}
		s.signalRoom()
		for _, a := range acks {
			a.Done()
		}
		return true, nil
	case "resume":
		if s.state != stateAuthed {
			s.sendElement(smFailed("unexpected-request"))
			return true, nil
		}
		return true, s.resume(el)
	}
	return true, stanza.NewStreamError(stanza.StreamUnsupportedStanzaType, "")
}

func (s *Session) smOn() bool {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.sm.enabled
}

// resume takes over a detached (or still attached, if the client noticed
// the dead connection first) session: its JID, presence, counters and the
// stanzas the client has not acknowledged, which are sent again.
func (s *Session) resume(el *stanza.Element) error {
	h, ok := parseH(el.Attr("h"))
	if !ok {
		s.sendElement(smFailed("bad-request"))
		return nil
	}
	r := s.cfg.Resume
	var old *Session
	if r != nil {
		old = r.lookup(el.Attr("previd"), s.user)
	}
	if old == nil {
		s.sendElement(smFailed("item-not-found"))
		return nil
	}
	// A client may reconnect before the server has noticed its old
	// connection died: close it and wait until it has detached.
	_ = old.tr.Close()
	select {
	case <-old.sm.gone:
	case <-time.After(10 * time.Second):
	}
	if !r.claim(old) {
		s.sendElement(smFailed("item-not-found"))
		return nil
	}
	s.jid = old.jid
	s.available.Store(old.available.Load())
	s.priority.Store(old.priority.Load())
	s.lastPresence.Store(old.lastPresence.Load())
	s.rosterWanted.Store(old.rosterWanted.Load())
	s.initial = old.initial
	s.directed = old.directed
	// The old session's last messages may still be in flight: the count
	// the client resumes from must include them, or it would send them
	// again.
	old.waitLanded()
	s.sm.in = old.sm.in
	s.sm.id = old.sm.id

	s.outMu.Lock()
	if _, err := s.cfg.Router.Bind(s); err != nil {
		s.outMu.Unlock()
		s.jid = s.jid.Bare()
		s.sendElement(smFailed("resource-constraint"))
		return nil
	}
	old.outMu.Lock()
	acks, valid := old.sm.ackUpTo(h)
	if !valid {
		acks = nil // a bad count: resend everything rather than lose anything
	}
	rest := old.sm.unacked
	s.sm.out, s.sm.acked = old.sm.out, old.sm.acked
	old.sm.unacked = nil
	old.sm.detached = false
	old.closing, old.ended = true, true
	old.outMu.Unlock()
	old.countBound(-1) // the old session is gone without finish()

	s.sm.enabled, s.sm.resumable = true, true
	s.sm.unacked = rest
	if s.out == nil {
		s.out = getBuf()
	}
	resumed := stanza.New("resumed", NSSM).
		SetAttr("h", strconv.FormatUint(uint64(s.sm.in), 10)).SetAttr("previd", s.sm.id)
	s.encode(func(dst []byte) []byte { return s.codec.AppendElement(dst, resumed) })
	for _, u := range rest {
		s.encode(func(dst []byte) []byte { return s.codec.AppendElement(dst, u.el) })
	}
	s.outMu.Unlock()
	r.adopt(s)
	for _, a := range acks {
		a.Done()
	}
	s.bound.Store(true)
	s.boundAt.Store(s.now().UnixNano())
	s.countBound(1)
	s.state = stateBound
	return nil
}

// Resumer keeps resumable sessions by id and ends detached ones whose
// client did not come back in time. One timer per detached session; none
// for attached ones.
type Resumer struct {
	// Timeout is how long a detached session waits (advertised as max).
	Timeout time.Duration
	// MaxDetached bounds detached sessions; past it a lost connection ends
	// its session at once.
	MaxDetached int

	mu       sync.Mutex
	byID     map[string]*Session
	detached int
}

// NewResumer returns a registry with the given timeout.
func NewResumer(timeout time.Duration, maxDetached int) *Resumer {
	return &Resumer{Timeout: timeout, MaxDetached: maxDetached, byID: map[string]*Session{}}
}

// register makes s findable for resumption. Only registered sessions are
// ever waited for (handleResume), so only they get the gone signal.
func (r *Resumer) register(s *Session) {
	if s.sm.gone == nil {
		s.sm.gone = make(chan struct{})
	}
	r.mu.Lock()
	r.byID[s.sm.id] = s
	r.mu.Unlock()
}

func (r *Resumer) adopt(s *Session) { r.register(s) }

func (r *Resumer) lookup(id, user string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.byID[id]
	if s == nil || s.user != user || s.sm.resumed {
		return nil
	}
	return s
}

// claim marks a detached session as resumed so its timer cannot end it.
func (r *Resumer) claim(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[s.sm.id] != s || s.sm.resumed || !s.isDetached() {
		return false
	}
	s.sm.resumed = true
	if s.sm.timer != nil {
		s.sm.timer.Stop()
		r.detached--
	}
	delete(r.byID, s.sm.id)
	return true
}

// detach starts the session's resumption timer; false if too many are
// waiting already (the caller then ends the session).
func (r *Resumer) detach(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[s.sm.id] != s || r.MaxDetached > 0 && r.detached >= r.MaxDetached {
		delete(r.byID, s.sm.id)
		return false
	}
	r.detached++
	s.sm.timer = time.AfterFunc(r.Timeout, func() { r.expire(s) })
	return true
}

func (r *Resumer) expire(s *Session) {
	r.mu.Lock()
	if s.sm.resumed {
		r.mu.Unlock()
		return
	}
	if r.byID[s.sm.id] == s {
		delete(r.byID, s.sm.id)
	}
	r.detached--
	s.sm.resumed = true // nobody can claim it now
	r.mu.Unlock()
	s.finish()
}

// forget drops a session that ended for good.
func (r *Resumer) forget(s *Session) {
	r.mu.Lock()
	if s.sm.id != "" && r.byID[s.sm.id] == s {
		delete(r.byID, s.sm.id)
	}
	r.mu.Unlock()
}

func (s *Session) isDetached() bool {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.sm.detached
}

// closeGone signals that the session has detached or ended, to a resuming
// session waiting for it.
func (sm *smState) closeGone() {
	if sm.gone != nil {
		close(sm.gone)
	}
}
