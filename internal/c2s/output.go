package c2s

import (
	"sync"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
	"github.com/parley-im/parley/internal/router"
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
	s.outMu.Lock()
	if s.closing {
		s.outMu.Unlock()
		return false
	}
	max := s.cfg.MaxOutBytes
	if max > 0 && len(s.out) > max {
		// A client that does not read: stop taking output and close it;
		// whatever it was owed stays in the durable queue.
		s.closing = true
		s.outMu.Unlock()
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.SlowConsumers.Add(1)
		}
		s.log.Info("c2s: slow consumer disconnected", "pending_bytes", len(s.out))
		_ = s.tr.Close()
		return false
	}
	if s.out == nil {
		s.out = getBuf()
	}
	s.out = enc(s.out)
	if ack != nil {
		s.acks = append(s.acks, ack)
	}
	start := !s.flushing && !s.inFeed
	if start {
		s.flushing = true
	}
	s.outMu.Unlock()
	if start {
		go s.flushLoop()
	}
	return true
}

func (s *Session) sendElement(el *stanza.Element) bool {
	return s.send(nil, func(dst []byte) []byte { return s.codec.AppendElement(dst, el) })
}

// Deliver implements router.Session: it encodes the stanza into the output
// buffer without blocking on the socket.
func (s *Session) Deliver(el *stanza.Element, ack *router.Ack) bool {
	ok := s.send(ack, func(dst []byte) []byte { return s.codec.AppendElement(dst, el) })
	if ok && s.cfg.Metrics != nil {
		s.cfg.Metrics.StanzasOut.Add(1)
	}
	return ok
}

// Kick ends the session from another goroutine with a stream error.
func (s *Session) Kick(err *stanza.StreamError) {
	s.outMu.Lock()
	if s.closing {
		s.outMu.Unlock()
		return
	}
	if s.out == nil {
		s.out = getBuf()
	}
	if err != nil {
		s.out = s.codec.AppendElement(s.out, err.Element())
	}
	s.out = s.codec.AppendClose(s.out)
	s.closing = true
	s.closeAfter = true
	start := !s.flushing && !s.inFeed
	if start {
		s.flushing = true
	}
	s.outMu.Unlock()
	if start {
		go s.flushLoop()
	}
}

// flushLoop writes pending output until none is left. Only one runs at a
// time (flushing); it ends holding no buffer.
func (s *Session) flushLoop() {
	for {
		s.outMu.Lock()
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
		putBuf(buf)
		if err != nil {
			s.outMu.Lock()
			s.closing = true
			s.flushing = false
			s.out, s.acks = nil, nil
			s.outMu.Unlock()
			_ = s.tr.Close()
			return
		}
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
	s.log.Debug("c2s: stream error", "ip", s.tr.RemoteIP(), "condition", err.Condition, "text", err.Text)
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
// or after Feed failed). It releases the session's registrations and tells
// contacts it is gone.
func (s *Session) End() {
	s.outMu.Lock()
	if s.ended {
		s.outMu.Unlock()
		return
	}
	s.ended = true
	s.closing = true
	s.outMu.Unlock()
	s.state = stateClosed
	if s.bound.Load() {
		s.cfg.Router.Unbind(s)
		if s.available.Swap(false) {
			var directed []jid.JID
			directed = append(directed, s.directed...)
			s.safeEnded(directed)
		}
	}
	_ = s.tr.Close()
}

func (s *Session) safeEnded(directed []jid.JID) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("c2s: panic in end-of-session presence", "panic", r)
		}
	}()
	s.cfg.Presence.Ended(s.ctx, s, directed)
}

// Shutdown ends the session for a server stop (system-shutdown).
func (s *Session) Shutdown() {
	s.Kick(stanza.NewStreamError(stanza.StreamSystemShutdown, "the server is restarting"))
}
