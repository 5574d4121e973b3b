package c2s

// OutputIdle reports, under the output lock, whether the session holds no
// output buffer and no flusher is running: the "idle costs nothing" rule.
func OutputIdle(s *Session) (outNil, flushing bool) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.out == nil, s.flushing
}
