package c2s

// SetSMCounters moves a session's stream management counters, e.g. close
// to 2^32 to test wrap-around: in is the inbound (handled) count, out the
// outbound count, which becomes the acknowledged count too. Call it from
// the reader's goroutine (no Feed in progress) with nothing unacknowledged.
func SetSMCounters(s *Session, in, out uint32) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.sm.in = in
	if len(s.sm.unacked) != 0 {
		panic("SetSMCounters with unacknowledged stanzas")
	}
	s.sm.out, s.sm.acked, s.sm.requested = out, out, out
}

// SMSnapshot is a session's stream management state, read under the
// output lock.
type SMSnapshot struct {
	Enabled, Resumable, Detached bool
	Out, Acked                   uint32
	Unacked                      int
}

// SMState returns the session's stream management state.
func SMState(s *Session) SMSnapshot {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return SMSnapshot{
		Enabled: s.sm.enabled, Resumable: s.sm.resumable, Detached: s.sm.detached,
		Out: s.sm.out, Acked: s.sm.acked, Unacked: len(s.sm.unacked),
	}
}

// InBacklog reports whether the router's backlog flush still holds back
// live deliveries to the session.
func InBacklog(s *Session) bool {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.backlog != backlogOff
}

// MaxInFlight is how many messages of one session may await their durable
// append before its reader waits.
const MaxInFlight = maxInFlight

// MaxAsks bounds the <r/> requests waiting for h.
const MaxAsks = maxAsks

// FlightAsks returns how many <r/> requests wait for messages in flight.
func FlightAsks(s *Session) int {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.flight == nil {
		return 0
	}
	return len(s.flight.asks)
}
