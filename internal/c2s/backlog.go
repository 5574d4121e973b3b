package c2s

import (
	"context"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/stanza"
)

// The queued backlog of a session that has just come online is flushed by
// the router beside the session's reader, paced by the client: a backlog may
// be far larger than what a session may hold unacknowledged, and the
// client's acknowledgements arrive through the reader, which therefore must
// not be the one waiting.

var _ router.Backlog = (*Session)(nil)

// Backlog states (Session.backlog).
const (
	backlogOff         uint8 = iota // live delivery
	backlogOn                       // the router is flushing the queued backlog
	backlogLeft                     // ... and a live delivery was left in the queue since its last pass
	backlogPending                  // initial presence made the session available; no flush has begun
	backlogPendingLeft              // ... and a live delivery was left in the queue meanwhile
)

// BeginBacklog implements router.Backlog. A live delivery left in the
// queue since initial presence stays noted: the first pass normally reads
// it, but not past an item still being committed (a store without the
// queue journal), so it costs a second pass.
func (s *Session) BeginBacklog() {
	s.outMu.Lock()
	if s.backlog == backlogPendingLeft || s.backlog == backlogLeft {
		s.backlog = backlogLeft
	} else {
		s.backlog = backlogOn
	}
	s.outMu.Unlock()
}

// EndBacklog implements router.Backlog. A live delivery left in the queue
// during the flush's last pass may be behind what that pass read: ending
// backlog mode then would let the live deliveries after it overtake it
// (and deliver twice what the next pass reads again), so the flush passes
// once more.
func (s *Session) EndBacklog(force bool) bool {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.backlog == backlogLeft && !force {
		s.backlog = backlogOn
		return false
	}
	s.backlog = backlogOff
	return true
}

// backlogWait bounds one wait for room, so a flush notices a session that
// ended without signalling.
const backlogWait = 5 * time.Second

// DeliverBacklog implements router.Backlog: it waits until the client has
// acknowledged enough (and the output buffer has drained enough) to take
// one more stanza without tripping the slow-consumer bounds.
func (s *Session) DeliverBacklog(ctx context.Context, el *stanza.Element, ack *router.Ack) bool {
	for {
		s.outMu.Lock()
		if s.closing || s.ended || s.sm.detached || s.broken {
			s.outMu.Unlock()
			return false
		}
		room := len(s.sm.unacked) < s.maxUnacked()/2 && (s.cfg.MaxOutBytes <= 0 || len(s.out) < s.cfg.MaxOutBytes/2)
		signal := s.room.Load()
		if !room && signal == nil {
			// Made in the same critical section as the check, so any
			// change after it signals this channel.
			c := make(chan struct{}, 1)
			signal = &c
			s.room.Store(signal)
		}
		s.outMu.Unlock()
		if room {
			break
		}
		t := time.NewTimer(backlogWait)
		select {
		case <-*signal:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
	ok := s.sendOpts(el, ack, func(dst []byte) []byte { return s.codec.AppendElement(dst, el) }, true)
	if ok && s.cfg.Metrics != nil {
		s.cfg.Metrics.StanzasOut.Add(1)
		s.cfg.Metrics.OutByKind[kindIndex(el.Name)].Add(1)
	}
	return ok
}

// signalRoom wakes a waiting backlog flush; never blocks.
func (s *Session) signalRoom() {
	p := s.room.Load()
	if p == nil {
		return // no flush has waited yet: it checks the room before waiting
	}
	select {
	case *p <- struct{}{}:
	default:
	}
}
