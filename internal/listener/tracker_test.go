package listener

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// trackedSession is a Session that only records Shutdown calls.
type trackedSession struct{ shutdowns atomic.Int32 }

func (s *trackedSession) Feed([]byte) error       { return nil }
func (s *trackedSession) Throttle() time.Duration { return 0 }
func (s *trackedSession) End()                    {}
func (s *trackedSession) Authenticated() bool     { return false }
func (s *trackedSession) Shutdown()               { s.shutdowns.Add(1) }

// The exported Admit/Track/Release let connections accepted elsewhere (the
// HTTP server's WebSocket upgrades) share the listeners' limits and drain.
func TestTrackerExportedLifecycle(t *testing.T) {
	tr := NewTracker()
	if !tr.Admit("10.0.0.1", 2, 1) {
		t.Fatal("first connection refused")
	}
	if tr.Admit("10.0.0.1", 2, 1) {
		t.Fatal("per-address limit not applied")
	}
	if !tr.Admit("10.0.0.2", 2, 1) {
		t.Fatal("second address refused")
	}
	if tr.Admit("10.0.0.3", 2, 1) {
		t.Fatal("total limit not applied")
	}
	if got := tr.Count(); got != 2 {
		t.Fatalf("Count = %d, want 2", got)
	}
	a, b := &trackedSession{}, &trackedSession{}
	if !tr.Track(a) || !tr.Track(b) {
		t.Fatal("Track refused before a drain")
	}
	tr.Release("10.0.0.2", b)
	if !tr.Admit("10.0.0.2", 2, 1) {
		t.Fatal("released slot not reusable")
	}
	tr.Release("10.0.0.2", nil) // admitted but never tracked (failed upgrade)

	// Drain shuts down what is tracked and waits for its Release.
	done := make(chan error, 1)
	go func() { done <- tr.Drain(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for a.shutdowns.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Drain did not shut the tracked session down")
		}
		time.Sleep(time.Millisecond)
	}
	if b.shutdowns.Load() != 0 {
		t.Error("a released session was shut down")
	}
	select {
	case err := <-done:
		t.Fatalf("Drain returned %v before the session was released", err)
	case <-time.After(20 * time.Millisecond):
	}
	tr.Release("10.0.0.1", a)
	if err := <-done; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if tr.Admit("10.0.0.9", 0, 0) {
		t.Error("Admit accepted a connection after Drain began")
	}
	if tr.Track(&trackedSession{}) {
		t.Error("Track reported success after Drain began")
	}
	if got := tr.Count(); got != 0 {
		t.Errorf("Count after drain = %d, want 0", got)
	}
}
