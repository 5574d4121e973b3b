package server

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

// The GC percent is process-wide: each case restores it.
func TestApplyGCDefaults(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	st := ApplyGCDefaults(env(nil), nil)
	if st.Floor != nil {
		st.Floor.Stop() // before the check: a collection may have raised it already
	}
	if st.Source != "default" || st.GCPercent != DefaultGCPercent || currentGCPercent() != DefaultGCPercent ||
		st.HeapFloor != DefaultHeapFloor || st.Floor == nil {
		t.Fatalf("no env: %+v, runtime %d", st, currentGCPercent())
	}

	debug.SetGCPercent(80) // as if the runtime had read GOGC=80
	st = ApplyGCDefaults(env(map[string]string{"GOGC": "80"}), nil)
	if st.Source != "GOGC" || st.GCPercent != 80 || currentGCPercent() != 80 || st.Floor != nil {
		t.Fatalf("GOGC=80: %+v, runtime %d", st, currentGCPercent())
	}

	debug.SetGCPercent(100)
	st = ApplyGCDefaults(env(map[string]string{"GOMEMLIMIT": "1GiB"}), nil)
	if st.Source != "GOMEMLIMIT" || st.GCPercent != 100 || currentGCPercent() != 100 || st.Floor != nil {
		t.Fatalf("GOMEMLIMIT: %+v, runtime %d", st, currentGCPercent())
	}
}

func TestFloorPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, roots uint64
		want        int
	}{
		{live: 16 * mib, want: 300},                  // 16 + 16 × 3 = 64
		{live: 32 * mib, want: 100},                  // 32 + 32 × 1 = 64
		{live: 40 * mib, want: 60},                   // 40 + 40 × 0.6 = 64
		{live: 50 * mib, want: 50},                   // 50 × 1.28 < 50 × 1.5: the base decides
		{live: 64 * mib, want: 50},                   // at the floor
		{live: 1 << 30, want: 50},                    // far above it
		{live: 0, want: 1000},                        // an empty heap: bounded
		{live: 1024, roots: 1024, want: 1000},        // bounded too
		{live: 4 * mib, want: 1000},                  // 4 × 16 would be 64: bounded
		{live: 8 * mib, want: 700},                   // 8 + 8 × 7 = 64
		{live: 42 * mib, want: 52},                   // 42 + 42 × 0.52 = 64
		{live: 43*mib + 1, want: 50},                 // just under the base
		{live: 16 * mib, roots: 16 * mib, want: 150}, // 16 + 32 × 1.5 = 64
		{live: 8 * mib, roots: 24 * mib, want: 175},  // 8 + 32 × 1.75 = 64
	} {
		if got := floorPercent(c.live, c.roots, 64*mib, 50); got != c.want {
			t.Errorf("floorPercent(%d MiB, roots %d MiB) = %d, want %d", c.live/mib, c.roots/mib, got, c.want)
		}
	}
}

// TestHeapFloorFollowsCollections: after a collection of a small heap the
// floor raises GOGC so the goal is the floor; Stop sets the base back.
func TestHeapFloorFollowsCollections(t *testing.T) {
	prev := debug.SetGCPercent(50)
	defer debug.SetGCPercent(prev)
	f := KeepHeapFloor(1<<30, 50) // far above this test binary's heap
	defer f.Stop()
	for i := 0; i < 100 && currentGCPercent() == 50; i++ {
		runtime.GC()
		runtime.Gosched() // the cleanup runs on its own goroutine
	}
	if p := currentGCPercent(); p <= 50 || p != f.Percent() {
		t.Fatalf("GOGC %d after collections of a small heap (floor says %d), want it raised", p, f.Percent())
	}
	f.Stop()
	if p := currentGCPercent(); p != 50 {
		t.Fatalf("GOGC %d after Stop, want 50", p)
	}
}

func TestShouldReturn(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		allocated, live, objects, free uint64
		want                           bool
	}{
		{0, 100 * mib, 100 * mib, 50 * mib, true},         // idle, half the live heap free
		{10 * mib, 100 * mib, 100 * mib, 50 * mib, false}, // busy: the room is in use
		{0, 100 * mib, 100 * mib, 10 * mib, false},        // little to return
		{0, 8 * mib, 8 * mib, 3 * mib, false},             // below the minimum
		{mib / 2, 100 * mib, 100 * mib, 20 * mib, true},   // quiet enough
		// A burst's garbage not yet collected (the last collection saw a
		// 5 MiB heap): quiet next to the 200 MiB it holds, and worth it.
		{2 * mib, 5 * mib, 200 * mib, 1 * mib, true},
		// Busy next to the heap it holds.
		{20 * mib, 5 * mib, 200 * mib, 1 * mib, false},
	} {
		if got := shouldReturn(c.allocated, c.live, c.objects, c.free); got != c.want {
			t.Errorf("shouldReturn(%d, %d, %d, %d) = %v", c.allocated, c.live, c.objects, c.free, got)
		}
	}
}

// After a burst of garbage, a quiet interval returns it: the
// released-memory metric grows by about the garbage's size. The collector
// is off while the garbage is made, so none of it is collected (or
// returned by the scavenger) before returnIfIdle looks: it finds the
// garbage uncollected, as after a burst under the heap floor. (Counts
// bytes; nothing here depends on time.)
func TestReturnIfIdle(t *testing.T) {
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	prev := debug.SetGCPercent(-1)
	for range 64 {
		garbage = make([]byte, 1<<20)
	}
	garbage = nil
	before := released()
	start := allocatedBytes()
	debug.SetGCPercent(prev)
	_, freed := returnIfIdle(start)
	if freed < 32<<20 {
		t.Fatalf("returnIfIdle gave back %d bytes after 64 MiB of garbage", freed)
	}
	if got := released(); got < before+freed/2 {
		t.Fatalf("released %d → %d bytes after returning %d free bytes", before, got, freed)
	}
	// A busy interval (everything since counter 0 counts as allocated)
	// returns nothing.
	if _, freed := returnIfIdle(0); freed != 0 {
		t.Errorf("busy interval returned %d bytes", freed)
	}
}

// garbage is a package variable so the compiler keeps the allocations.
var garbage []byte

func TestApplyProcsDefault(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if n := ApplyProcsDefault(env(nil), nil); n != MinProcs || runtime.GOMAXPROCS(0) != MinProcs {
		t.Fatalf("one CPU, no env: %d, runtime %d", n, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(1) // as if the runtime had read GOMAXPROCS=1
	if n := ApplyProcsDefault(env(map[string]string{"GOMAXPROCS": "1"}), nil); n != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("GOMAXPROCS=1: %d, runtime %d", n, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(MinProcs + 2)
	if n := ApplyProcsDefault(env(nil), nil); n != MinProcs+2 {
		t.Fatalf("more CPUs than MinProcs: %d", n)
	}
}
