package server

import (
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// DefaultGCPercent is the GOGC this server runs with when the operator set
// neither GOGC nor GOMEMLIMIT.
//
// Why not Go's 100: a server carrying many idle sessions has a large live
// heap made of long-lived session state and allocates mostly short-lived
// garbage (handshakes, stanzas). With GOGC=100 the heap may grow to twice
// the live heap before a cycle, and the process keeps those pages: resident
// memory per idle session is about (1 + GOGC/100) × its live heap. 50 cuts
// that headroom by a quarter of the total; the price is GC cycles twice as
// often, each costing in proportion to the live heap (docs/density.md has
// the measurements: RSS and CPU per login at 15,000 sessions).
const DefaultGCPercent = 50

// DefaultHeapFloor is the least heap goal the server's default GC policy
// lets the collector aim for. GOGC=50 alone, on a small live heap, means a
// collection every few megabytes of garbage: with 2,000 users chatting at
// 12,000 msgs/s (a 12 MB live heap, a 16 MB goal) 15 collections a second,
// each 10-15 ms of marking on a one-core server, which showed in the p99.
// Measured there (docs/benchmarks.md, run 7), p99 in three runs each:
//
//	floor 0:       8.8, 13.7, 14.5 ms; 1,914 B per idle TLS session
//	floor 32 MiB:  6.1,  4.9, 10.1 ms; 1,849 B
//	floor 64 MiB:  5.4,  4.3,  6.7 ms; 2,201 B
//
// The bytes per idle session are after 15,000 TLS logins on one core:
// under a higher floor the login burst spreads its live objects over more
// pages, which stay resident. 32 MiB keeps most of the latency gain at no
// cost in density; above a ~21 MiB live heap GOGC=50 decides anyway.
const DefaultHeapFloor = 32 << 20

// GCSettings is what ApplyGCDefaults decided, for the start-up log.
type GCSettings struct {
	GCPercent   int    // the GOGC in effect
	MemoryLimit int64  // the GOMEMLIMIT in effect (math.MaxInt64: none)
	Source      string // "GOGC", "GOMEMLIMIT" or "default"
	// HeapFloor is the least heap goal kept (DefaultHeapFloor), or 0 when
	// the operator's GOGC or GOMEMLIMIT decides alone.
	HeapFloor uint64
	// Floor keeps it; nil with HeapFloor 0.
	Floor *HeapFloor
}

// ApplyGCDefaults sets the server's GC defaults unless the operator chose:
//   - GOGC set: the runtime already applied it; nothing changes.
//   - GOMEMLIMIT set (GOGC not): the limit makes the collector work harder
//     as memory gets tight, so the runtime's GOGC=100 stays for the CPU it
//     saves while there is room.
//   - neither: GOGC=DefaultGCPercent, raised after each collection as
//     far as needed for a heap goal of DefaultHeapFloor (see HeapFloor).
//
// getenv is os.Getenv (a parameter for tests). Call it once at start,
// before the listeners open.
func ApplyGCDefaults(getenv func(string) string, log *slog.Logger) GCSettings {
	limit := debug.SetMemoryLimit(-1) // reads without changing
	st := GCSettings{MemoryLimit: limit}
	switch {
	case getenv("GOGC") != "":
		st.Source = "GOGC"
		st.GCPercent = currentGCPercent()
	case getenv("GOMEMLIMIT") != "":
		st.Source = "GOMEMLIMIT"
		st.GCPercent = currentGCPercent()
	default:
		st.Source = "default"
		debug.SetGCPercent(DefaultGCPercent)
		st.GCPercent = DefaultGCPercent
		st.HeapFloor = DefaultHeapFloor
		st.Floor = KeepHeapFloor(DefaultHeapFloor, DefaultGCPercent)
	}
	if log != nil {
		attrs := []any{"gogc", st.GCPercent, "source", st.Source}
		if st.HeapFloor > 0 {
			attrs = append(attrs, "heap_floor_bytes", st.HeapFloor)
		}
		if limit != math.MaxInt64 {
			attrs = append(attrs, "gomemlimit_bytes", limit)
		}
		log.Info("garbage collector", attrs...)
	}
	return st
}

// HeapFloor keeps the collector's heap goal at or above a floor while the
// live heap is small, by raising GOGC after each collection (never below
// its base). Go has a ceiling (GOMEMLIMIT) but no floor; this is one,
// computed from what the collection just measured, so that the goal is
// about max(floor, what base alone gives).
type HeapFloor struct {
	floor   uint64
	base    int
	stopped atomic.Bool
	percent atomic.Int32 // last set
}

// KeepHeapFloor starts keeping the heap goal at or above floor, with GOGC
// base once the live heap is large enough. It runs until Stop.
func KeepHeapFloor(floor uint64, base int) *HeapFloor {
	f := &HeapFloor{floor: floor, base: base}
	f.percent.Store(int32(base))
	f.arm()
	return f
}

// Stop ends the adjustments and sets GOGC back to the base.
func (f *HeapFloor) Stop() {
	if !f.stopped.Swap(true) {
		debug.SetGCPercent(f.base)
	}
}

// Percent is the GOGC last set.
func (f *HeapFloor) Percent() int { return int(f.percent.Load()) }

// gcMark is allocated only to be collected: its cleanup runs after each
// cycle. It holds a pointer so that it is not a tiny allocation, whose
// cleanup could wait for its neighbours.
type gcMark struct {
	_ *int
	_ [8]byte
}

func (f *HeapFloor) arm() {
	runtime.AddCleanup(new(gcMark), (*HeapFloor).collected, f)
}

// collected runs after each collection, on the runtime's cleanup goroutine.
func (f *HeapFloor) collected() {
	if f.stopped.Load() {
		return
	}
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}
	metrics.Read(s)
	p := floorPercent(s[0].Value.Uint64(), s[1].Value.Uint64()+s[2].Value.Uint64(), f.floor, f.base)
	if old := int(f.percent.Load()); p != old && (p*10 < old*9 || p*10 > old*11 || p == f.base) {
		// Changes under 10% are not worth a new goal each cycle.
		debug.SetGCPercent(p)
		f.percent.Store(int32(p))
	}
	f.arm()
}

// maxFloorPercent bounds the GOGC the floor sets on an almost empty heap:
// the goal then stays under the floor rather than the goal's other terms
// (stacks, globals) being multiplied a hundredfold.
const maxFloorPercent = 1000

// floorPercent is the GOGC for which the runtime's heap goal, live +
// (live + roots) × GOGC/100 with roots the stacks and globals it scans,
// reaches floor; never below base nor above maxFloorPercent.
func floorPercent(live, roots, floor uint64, base int) int {
	if live >= floor {
		return base
	}
	p := (floor - live) * 100 / max(live+roots, 1)
	return max(base, int(min(p, maxFloorPercent)))
}

// currentGCPercent reads GOGC as the runtime has it (-1: off).
func currentGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// Idle memory return: after a burst (a login storm, a reconnect wave) the
// runtime keeps the heap's growth room resident — about 1.1 × the heap
// goal, i.e. 1.1 × (1 + GOGC/100) × the live heap — and lets it go only
// as the goal shrinks. A server whose sessions then sit idle allocates
// almost nothing, so that room is dead weight on every idle session.
// ReturnMemoryWhenIdle gives it back once the server is quiet, at the cost
// of one forced collection per quiet interval in which there is something
// to return (a collection costs in proportion to the live heap: about
// 20 ms at 15,000 idle sessions here).

// idleAllocShare: an interval is quiet when it allocated less than
// 1/idleAllocShare of the live heap.
const idleAllocShare = 64

// idleReturnMin: memory retained beyond the live heap below this is not
// worth a forced collection.
const idleReturnMin = 4 << 20

// ReturnMemoryWhenIdle checks every interval whether the server was quiet
// and holds free heap memory worth returning, and if so returns it to the
// OS (debug.FreeOSMemory). It runs until stop is closed.
func ReturnMemoryWhenIdle(stop <-chan struct{}, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := allocatedBytes()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var freed uint64
		prev, freed = returnIfIdle(prev)
		if freed > 0 && log != nil {
			log.Debug("returned idle heap memory to the OS", "free_bytes", freed)
		}
	}
}

// returnIfIdle is one interval of ReturnMemoryWhenIdle: prev is the
// allocation counter at the interval's start. It returns the counter for
// the next interval and how much free memory it found and gave back (0:
// none, because the interval was busy or there was too little).
func returnIfIdle(prev uint64) (next, freed uint64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(samples)
	allocs, live, objects, free := samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64(), samples[3].Value.Uint64()
	if !shouldReturn(allocs-prev, live, objects, free) {
		return allocs, 0
	}
	debug.FreeOSMemory()
	// The forced collection's own allocations must not count as activity
	// in the next interval.
	return allocatedBytes(), free + objects - min(live, objects)
}

func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// shouldReturn decides, for one interval, whether to return free heap
// memory: the interval was quiet (it allocated less than 1/idleAllocShare
// of the heap) and what a collection would give back is worth it (an
// eighth of the live heap, and at least idleReturnMin). live is what the
// last collection marked; objects is live plus the garbage since, which a
// collection frees: under the heap floor the last collection may be long
// past (the burst that ended did not reach the goal), its live figure an
// early, small one, and the burst's garbage is in objects, not in free.
func shouldReturn(allocated, live, objects, free uint64) bool {
	garbage := objects - min(live, objects)
	return allocated < max(live, objects)/idleAllocShare && free+garbage >= max(live/8, idleReturnMin)
}

// MinProcs is the least GOMAXPROCS the server runs with when the operator
// did not set GOMAXPROCS.
//
// Why more Ps than cores: the store's journal and write-ahead log are made
// durable by fdatasync. On a process limited to one core (taskset, a
// one-CPU container) the runtime gives it one P, and while that thread
// sits in the syscall nothing else runs until the runtime's monitor hands
// the P off. Measured with 2,000 chatting users on one core when every
// sender waited for its fsync (docs/benchmarks.md): GOMAXPROCS=1 delivered
// 4,865 msgs/s with the core 46% idle, GOMAXPROCS=4 15,814 msgs/s with it
// saturated.
//
// Why 2 and not 4 since sessions read on while their messages are fsynced
// (the journal's completer goroutine alone waits): with no sender parked,
// four busy Ps on one core left the collector's mark worker a quarter of
// it, and marks took 108 ms instead of 31-47. Alternating max-rate runs on
// one core (docs/benchmarks.md, run 7): GOMAXPROCS=2 20,030-26,718 msgs/s
// (median 24,738) at 36-48 µs, GOMAXPROCS=4 19,610-22,841 (median 20,982)
// at 43-50 µs; TLS logins 1,334 and 1,526/s against 1,227 and 1,401/s.
// Extra Ps cost a per-P cache each, not memory per session.
const MinProcs = 2

// ApplyProcsDefault raises GOMAXPROCS to MinProcs unless the operator set
// GOMAXPROCS. It returns the value in effect. getenv is os.Getenv.
func ApplyProcsDefault(getenv func(string) string, log *slog.Logger) int {
	n := runtime.GOMAXPROCS(0)
	if getenv("GOMAXPROCS") == "" && n < MinProcs {
		runtime.GOMAXPROCS(MinProcs)
		if log != nil {
			log.Info("scheduler", "gomaxprocs", MinProcs, "cpus", n, "source", "default")
		}
		return MinProcs
	}
	return n
}
