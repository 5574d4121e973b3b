package c2s

import (
	"runtime/debug"
	"sync"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Output buffers come from a pool and go back as soon as they are written,
// so an idle session holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 64 << 10

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBuf {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}

// send appends output produced by enc under the output lock and makes sure
// someone writes it. It returns false if the session no longer takes output.
// ack, if set, is acknowledged once the bytes are written.
func (s *Session) send(ack *router.Ack, enc func([]byte) []byte) bool {
	return s.sendLocked(nil, ack, enc)
}

// sendLocked is the one way output enters the session. With stream
// management on, every stanza is counted and kept until the client
// acknowledges it, and its queue ack waits for that acknowledgement instead
// of the socket write; while the session is detached (waiting for
// resumption) stanzas are only kept.
func (s *Session) sendLocked(el *stanza.Element, ack *router.Ack, enc func([]byte) []byte) bool {
	return s.sendOpts(el, ack, enc, false)
}

// sendOpts is sendLocked; fromBacklog marks the router's backlog flush,
// which alone delivers queued (acked) stanzas while a backlog is pending.
func (s *Session) sendOpts(el *stanza.Element, ack *router.Ack, enc func([]byte) []byte, fromBacklog bool) bool {
	s.outMu.Lock()
	if s.backlog != backlogOff && ack != nil && !fromBacklog && !s.closing {
		// A live message during the backlog flush stays in the queue: the
		// flush reaches it after the older ones, keeping their order.
		if s.backlog == backlogPending || s.backlog == backlogPendingLeft {
			s.backlog = backlogPendingLeft
		} else {
			s.backlog = backlogLeft
		}
		s.outMu.Unlock()
		return true
	}
	if ack != nil {
		if fromBacklog {
			s.backlogSeen = max(s.backlogSeen, ack.Seq())
		} else if ack.Seq() <= s.backlogSeen && !s.closing {
			// The flush has already delivered it: its live delivery came
			// after the flush had read it from the queue (the router
			// queues, archives, then delivers) and after the backlog
			// ended. A flush reads a gap-free prefix of the queue (no
			// item above one not yet visible), so every seq up to
			// backlogSeen went out through it or earlier. The flush's own
			// acknowledgement deletes the item.
			s.outMu.Unlock()
			return true
		}
	}
	counted := s.sm.enabled && el != nil && el.IsStanza()
	if s.sm.detached || s.broken {
		// Detached, or about to be (the connection failed and the reader
		// has not noticed yet): keep what the client will resume with,
		// stanzas held back for an inactive client (CSI) first.
		s.csiReleaseLocked()
		ok := counted && s.sm.keep(el, ack, s.maxUnacked())
		s.outMu.Unlock()
		return ok
	}
	if s.closing {
		s.outMu.Unlock()
		return false
	}
	// Client State Indication (csi.go): an inactive client's presence and
	// chat states wait, counted only once written.
	held, overflow := s.csiHoldLocked(el, ack != nil)
	if held {
		s.outMu.Unlock()
		return true
	}
	if overflow && !s.csiReleaseLocked() {
		s.outMu.Unlock()
		_ = s.tr.Close()
		return false
	}
	max := s.cfg.MaxOutBytes
	if max > 0 && len(s.out) > max || counted && len(s.sm.unacked) >= s.maxUnacked() {
		// A client that does not read (or does not acknowledge): stop
		// taking output and close it; whatever it was owed stays in the
		// durable queue, or in the resumable session.
		ok := false
		if s.resumableLocked() {
			s.broken = true
			s.csiReleaseLocked() // owed before el
			ok = counted && s.sm.keep(el, ack, s.maxUnacked())
		} else {
			s.closing = true
		}
		pending := len(s.out)
		s.outMu.Unlock()
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.SlowConsumers.Add(1)
		}
		s.cfg.logger().Info("c2s: slow consumer disconnected", "jid", s.jid.String(), "pending_bytes", pending)
		_ = s.tr.Close()
		return ok
	}
	if s.out == nil {
		s.out = getBuf()
	}
	if !s.encode(enc) {
		// A stanza this session cannot encode ends this session only.
		s.closing = true
		s.outMu.Unlock()
		_ = s.tr.Close()
		return false
	}
	if counted {
		s.sm.keep(el, ack, 0)
	} else if ack != nil {
		s.acks = append(s.acks, ack)
	}
	start := !s.flushing && !s.inFeed
	if start {
		s.flushing = true
	}
	s.outMu.Unlock()
	if start {
		s.startFlush()
	}
	return true
}

func (s *Session) sendElement(el *stanza.Element) bool {
	return s.sendLocked(el, nil, func(dst []byte) []byte { return s.codec.AppendElement(dst, el) })
}

// Deliver implements router.Session: it encodes the stanza into the output
// buffer without blocking on the socket.
func (s *Session) Deliver(el *stanza.Element, ack *router.Ack) bool {
	ok := s.sendLocked(el, ack, func(dst []byte) []byte { return s.codec.AppendElement(dst, el) })
	if ok && s.cfg.Metrics != nil {
		s.cfg.Metrics.StanzasOut.Add(1)
		s.cfg.Metrics.OutByKind[kindIndex(el.Name)].Add(1)
	}
	return ok
}

// resumableLocked reports whether a lost connection detaches this session
// instead of ending it. outMu must be held.
func (s *Session) resumableLocked() bool {
	return s.sm.enabled && s.sm.resumable && !s.noResume && s.cfg.Resume != nil
}

// encode appends enc's output under the output lock; a panic inside is
// contained (the lock stays consistent and s.out unchanged) so one bad
// stanza cannot wedge the recipient or crash the sender.
func (s *Session) encode(enc func([]byte) []byte) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.Panics.Add(1)
			}
			s.cfg.logger().Error("c2s: encoder panic", "jid", s.jid.String(), "panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	s.out = enc(s.out)
	return true
}

// Kick ends the session from another goroutine with a stream error.
func (s *Session) Kick(err *stanza.StreamError) {
	s.outMu.Lock()
	if s.sm.detached {
		// Nobody to tell: end the waiting session now.
		s.outMu.Unlock()
		if s.cfg.Resume != nil && s.cfg.Resume.claim(s) {
			s.finish()
		}
		return
	}
	if s.closing {
		s.outMu.Unlock()
		return
	}
	if s.out == nil {
		s.out = getBuf()
	}
	s.encode(func(dst []byte) []byte {
		if err != nil {
			dst = s.codec.AppendElement(dst, err.Element())
		}
		return s.codec.AppendClose(dst)
	})
	s.closing = true
	s.closeAfter = true
	s.noResume = true
	start := !s.flushing && !s.inFeed
	if start {
		s.flushing = true
	}
	s.outMu.Unlock()
	if start {
		s.startFlush()
	}
}

// goer is a transport that runs short work on goroutines it keeps
// (listener.Conn: the poller's workers).
type goer interface{ Go(f func()) }

// startFlush runs flushLoop on the transport's goroutines if it has them,
// else on a goroutine of its own.
func (s *Session) startFlush() {
	if g, ok := s.tr.(goer); ok {
		g.Go(s.flushLoop)
		return
	}
	go s.flushLoop()
}

// flushLoop writes pending output until none is left. Only one runs at a
// time (flushing); it ends holding no buffer.
func (s *Session) flushLoop() {
	for {
		s.outMu.Lock()
		if len(s.out) > 0 && s.sm.enabled && !s.closing && s.sm.out != s.sm.requested {
			// Ask for an acknowledgement in the same write as the
			// stanzas: no extra packet, no timer.
			s.encode(func(dst []byte) []byte { return s.codec.AppendElement(dst, smRequest) })
			s.sm.requested = s.sm.out
		}
		buf, acks := s.out, s.acks
		s.out, s.acks = nil, nil
		if len(buf) == 0 {
			s.flushing = false
			closeNow := s.closeAfter
			s.outMu.Unlock()
			putBuf(buf)
			if closeNow {
				_ = s.tr.Close()
			}
			return
		}
		s.outMu.Unlock()
		err := s.tr.Write(buf)
		if err == nil && s.cfg.Metrics != nil {
			s.cfg.Metrics.BytesOut.Add(int64(len(buf)))
		}
		putBuf(buf)
		if err != nil {
			s.outMu.Lock()
			if s.resumableLocked() {
				s.broken = true // what was in buf is in sm.unacked: resent on resume
			} else {
				s.closing = true
			}
			s.flushing = false
			s.out, s.acks = nil, nil
			s.outMu.Unlock()
			_ = s.tr.Close()
			return
		}
		s.signalRoom()
		for _, a := range acks {
			a.Done()
		}
	}
}

// flushInline lets the reader write its own replies at the end of Feed
// instead of starting a goroutine for them.
func (s *Session) flushInline() {
	s.outMu.Lock()
	if s.flushing || len(s.out) == 0 && !s.closeAfter {
		s.outMu.Unlock()
		return
	}
	s.flushing = true
	s.outMu.Unlock()
	s.flushLoop()
}

// flushSync writes pending output now; used before a TLS handshake.
func (s *Session) flushSync() error {
	s.outMu.Lock()
	buf := s.out
	s.out = nil
	s.outMu.Unlock()
	if len(buf) == 0 {
		return nil
	}
	err := s.tr.Write(buf)
	putBuf(buf)
	return err
}

func (s *Session) markClosing() {
	s.outMu.Lock()
	s.closing = true
	s.outMu.Unlock()
}

// fail ends the stream with a stream error (RFC 6120 §4.9).
func (s *Session) fail(err *stanza.StreamError) {
	if s.state == stateClosed {
		return
	}
	if s.state == stateHeader && s.streamID == "" {
		// The client's header was never answered: open ours first.
		s.streamID = randomID()
		s.send(nil, func(dst []byte) []byte {
			return s.codec.AppendOpen(dst, Header{From: s.cfg.Domain, ID: s.streamID, Version: "1.0", Lang: "en", NS: stanza.NSClient})
		})
	}
	s.log().Debug("c2s: stream error", "ip", s.tr.RemoteIP(), "condition", err.Condition, "text", err.Text)
	s.close(err)
}

// close ends the stream from the reader: optional error, closing tag, then
// the transport closes once the output is written.
func (s *Session) close(err *stanza.StreamError) {
	if s.state == stateClosed {
		return
	}
	s.state = stateClosed
	s.Kick(err)
}

// End is called by the transport once, when it stops reading (EOF, error,
// or after Feed failed). A resumable session whose connection was lost
// detaches and waits for its client; any other session is released: its
// registrations go and contacts learn it is gone.
func (s *Session) End() {
	s.outMu.Lock()
	if s.ended || s.sm.detached {
		s.outMu.Unlock()
		return
	}
	if s.sm.enabled && s.sm.resumable && !s.noResume && s.cfg.Resume != nil && s.bound.Load() {
		s.sm.detached = true
		s.csiReleaseLocked() // held stanzas are owed to the resumed session
		putBuf(s.out)
		s.out, s.acks = nil, nil
		s.outMu.Unlock()
		_ = s.tr.Close()
		if s.cfg.Resume.detach(s) {
			s.log().Debug("c2s: session detached, waiting for resumption")
			s.sm.closeGone()
			return
		}
		s.outMu.Lock()
	}
	s.ended, s.closing = true, true
	s.outMu.Unlock()
	s.state = stateClosed
	s.sm.closeGone()
	s.finish()
	_ = s.tr.Close()
}

// finish releases a session for good: queue entries it had not had
// acknowledged stay in the store for the next login.
func (s *Session) finish() {
	s.outMu.Lock()
	s.ended, s.closing = true, true
	s.sm.detached = false
	s.sm.unacked = nil
	s.outMu.Unlock()
	if s.cfg.Resume != nil {
		s.cfg.Resume.forget(s)
	}
	if s.bound.Load() {
		s.countBound(-1)
		s.cfg.Router.Unbind(s)
		// A session replaced by a new login with the same full JID must
		// not announce that JID as gone.
		replaced := s.cfg.Router.Session(s.jid) != nil
		if s.available.Swap(false) && !replaced {
			directed := append([]jid.JID(nil), s.directed...)
			s.safeEnded(directed)
		}
	}
}

func (s *Session) safeEnded(directed []jid.JID) {
	defer func() {
		if r := recover(); r != nil {
			s.log().Error("c2s: panic in end-of-session presence", "panic", r)
		}
	}()
	s.cfg.Presence.Ended(s.ctx(), s, directed)
}

// Shutdown ends the session for a server stop (system-shutdown).
func (s *Session) Shutdown() {
	s.Kick(stanza.NewStreamError(stanza.StreamSystemShutdown, "the server is restarting"))
}
