package c2s

import (
	"slices"
	"strconv"

	"github.com/parley-im/parley/stanza"
)

// maxInFlight bounds the messages of one session whose durable append has
// not finished: past it the reader waits for the oldest instead of reading
// on, so a slow disk slows the sender down rather than growing the store's
// pending writes without bound.
const maxInFlight = 32

// maxAsks bounds the <r/> requests a session keeps waiting for h.
const maxAsks = 64

// flight is what a session tracks of the messages it has routed whose
// durable append is still running (router.RouteAsync). The reader reads on
// meanwhile, but XEP-0198 counts a stanza handled only once it is stored
// and every stanza before it is handled: h is the stream position of the
// oldest message in flight, and an <r/> is answered once h has reached the
// position at which the client asked. A session holds a flight only while
// something is in it, so an idle session pays one nil pointer.
type flight struct {
	// pos are the stream positions (sm.in before the stanza) of the
	// messages in flight, ascending.
	pos []uint32
	// asks are the positions at which <r/> requests wait for h, ascending.
	asks []uint32
	// wake, if set, is closed at the next landing: the reader waits on it
	// for room, or for the flight to land entirely.
	wake chan struct{}
}

// handledLocked is the XEP-0198 count of handled stanzas. outMu held.
func (s *Session) handledLocked() uint32 {
	if f := s.flight; f != nil && len(f.pos) > 0 {
		return f.pos[0]
	}
	return s.sm.in
}

// countHandled counts one more stanza read and handled, or in flight.
func (s *Session) countHandled() {
	s.outMu.Lock()
	s.sm.in++
	s.outMu.Unlock()
}

// routeMessage routes a message from the client without waiting for its
// durable append: the stanza at the current stream position is recorded
// in flight first, since the store may complete it before RouteAsync
// returns.
func (s *Session) routeMessage(el *stanza.Element) {
	s.outMu.Lock()
	for s.flight != nil && len(s.flight.pos) >= maxInFlight {
		s.waitLandingLocked()
	}
	f := s.flight
	if f == nil {
		f = &flight{}
		s.flight = f
	}
	pos := s.sm.in
	f.pos = append(f.pos, pos)
	s.outMu.Unlock()
	if !s.cfg.Router.RouteAsync(s.ctx(), el, func() { s.landed(pos) }) {
		s.landed(pos)
	}
}

// waitLandingLocked waits, with outMu released meanwhile, until a message
// in flight lands. outMu held, and s.flight set.
func (s *Session) waitLandingLocked() {
	f := s.flight
	if f.wake == nil {
		f.wake = make(chan struct{})
	}
	ch := f.wake
	s.outMu.Unlock()
	<-ch
	s.outMu.Lock()
}

// waitLanded waits until no message of the session is in flight, so that
// sm.in is h: before stream management starts counting from zero, and
// before a resumed session takes over the count.
func (s *Session) waitLanded() {
	s.outMu.Lock()
	for s.flight != nil && len(s.flight.pos) > 0 {
		s.waitLandingLocked()
	}
	s.outMu.Unlock()
}

// landed ends the flight of the message at stream position pos: its
// durable append has finished (or failed, and the sender has its error).
// It answers the <r/> requests that h now satisfies. It runs on the store's
// completion goroutine, or on the reader's.
func (s *Session) landed(pos uint32) {
	s.outMu.Lock()
	f := s.flight
	if i := slices.Index(f.pos, pos); i >= 0 {
		f.pos = slices.Delete(f.pos, i, i+1)
	}
	h := s.handledLocked()
	answers := 0
	for len(f.asks) > 0 && int32(h-f.asks[0]) >= 0 {
		f.asks = f.asks[1:]
		answers++
	}
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
	if len(f.pos) == 0 && len(f.asks) == 0 {
		s.flight = nil
	}
	s.outMu.Unlock()
	for range answers {
		s.sendElement(smAnswer(h))
	}
}

// answerRequest answers an <r/> now, or once the messages read before it
// have landed.
func (s *Session) answerRequest() {
	s.outMu.Lock()
	if f := s.flight; f != nil && len(f.pos) > 0 {
		// Several requests with nothing read between them wait for the
		// same count: one answer serves them. Past maxAsks the newest
		// request takes over the last one's place: answered later (with
		// an h that covers both), so that a client sending stanza, <r/>,
		// stanza, <r/> … during a long fsync cannot grow the list.
		switch n := len(f.asks); {
		case n > 0 && f.asks[n-1] == s.sm.in:
		case n >= maxAsks:
			f.asks[n-1] = s.sm.in
		default:
			f.asks = append(f.asks, s.sm.in)
		}
		s.outMu.Unlock()
		return
	}
	h := s.sm.in
	s.outMu.Unlock()
	s.sendElement(smAnswer(h))
}

func smAnswer(h uint32) *stanza.Element {
	return stanza.New("a", NSSM).SetAttr("h", strconv.FormatUint(uint64(h), 10))
}
