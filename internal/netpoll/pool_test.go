package netpoll

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after a generous
// deadline: a liveness check, not a timing one.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// With the watchdog out of the way, turns that do not block run on at
// most minBusy workers, in the order they were started, each once.
func TestPoolReusesWorkers(t *testing.T) {
	w := newPool(1, 4, time.Hour)
	defer w.close()
	const n = 1000
	var mu sync.Mutex
	var order []int
	batch := make([]Handler, 0, 16)
	for i := 0; i < n; {
		batch = batch[:0]
		for k := rand.IntN(16) + 1; k > 0 && i < n; k-- {
			j := i
			batch = append(batch, task(func() {
				mu.Lock()
				order = append(order, j)
				mu.Unlock()
			}))
			i++
		}
		w.start(batch)
	}
	waitFor(t, "all turns", func() bool { return w.stats().Turns == n })
	if st := w.stats(); st.Started != 1 {
		t.Errorf("started %d workers for %d turns, want 1", st.Started, n)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("turn %d ran in place %d: not in start order", v, i)
		}
	}
}

// Turns blocked in every busy worker do not hold up the queue: the
// watchdog starts another worker, and only as many as it takes.
func TestPoolWatchdogUnblocksQueue(t *testing.T) {
	w := newPool(2, 4, time.Millisecond)
	defer w.close()
	release := make(chan struct{})
	var blocked atomic.Int32
	block := task(func() { blocked.Add(1); <-release })
	ran := make(chan struct{})
	w.start([]Handler{block, block, task(func() { close(ran) })})
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a turn queued behind two blocked workers never ran")
	}
	if blocked.Load() != 2 {
		t.Errorf("%d turns blocked, want 2", blocked.Load())
	}
	st := w.stats()
	if st.Started < 3 {
		t.Errorf("started %d workers, want a third for the queued turn", st.Started)
	}
	close(release)
	waitFor(t, "the blocked turns", func() bool { return w.stats().Turns == 3 })
	// Nothing waits any more: the watchdog stops starting workers.
	started := w.stats().Started
	time.Sleep(20 * time.Millisecond)
	if st := w.stats(); st.Started != started {
		t.Errorf("the watchdog started %d workers with nothing queued", st.Started-started)
	}
}

// After a burst of blocked turns, at most maxIdle workers stay.
func TestPoolIdleBound(t *testing.T) {
	const maxIdle = 3
	w := newPool(16, maxIdle, time.Hour)
	defer w.close()
	release := make(chan struct{})
	var hs []Handler
	var in sync.WaitGroup
	for range 16 {
		in.Add(1)
		hs = append(hs, task(func() { in.Done(); <-release }))
	}
	w.start(hs)
	in.Wait() // all 16 run at once: minBusy allows it
	close(release)
	waitFor(t, "the burst to end", func() bool {
		st := w.stats()
		return st.Turns == 16 && st.Busy == 0
	})
	if st := w.stats(); st.Idle != maxIdle {
		t.Errorf("%d idle workers stayed, want %d", st.Idle, maxIdle)
	}
	// An idle worker takes the next turn: no new one starts.
	started := w.stats().Started
	done := make(chan struct{})
	w.start([]Handler{task(func() { close(done) })})
	<-done
	if st := w.stats(); st.Started != started {
		t.Errorf("started %d workers with %d idle", st.Started-started, maxIdle)
	}
}

// Close lets idle workers go at once and busy ones after the queue.
func TestPoolClose(t *testing.T) {
	w := newPool(1, 4, time.Hour)
	release := make(chan struct{})
	var ran atomic.Int32
	w.start([]Handler{
		task(func() { <-release; ran.Add(1) }),
		task(func() { ran.Add(1) }),
	})
	w.close()
	close(release)
	waitFor(t, "the workers to exit", func() bool {
		st := w.stats()
		return st.Busy == 0 && st.Idle == 0
	})
	if ran.Load() != 2 {
		t.Errorf("%d of 2 queued turns ran before the workers exited", ran.Load())
	}
	w.start([]Handler{task(func() { t.Error("a turn ran after close") })})
	if st := w.stats(); st.Busy != 0 {
		t.Errorf("start after close started %d workers", st.Busy)
	}
}

// Many batches, some turns slow, started while workers drain the queue:
// every turn runs exactly once (the queue's compaction loses none).
func TestPoolStress(t *testing.T) {
	w := newPool(3, 2, time.Millisecond)
	defer w.close()
	const n = 20000
	counts := make([]atomic.Int32, n)
	for i := 0; i < n; {
		var batch []Handler
		for k := rand.IntN(64) + 1; k > 0 && i < n; k-- {
			j := i
			batch = append(batch, task(func() {
				if j%1000 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
				counts[j].Add(1)
			}))
			i++
		}
		w.start(batch)
		if rand.IntN(8) == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	waitFor(t, "all turns", func() bool { return w.stats().Turns == n })
	for i := range counts {
		if c := counts[i].Load(); c != 1 {
			t.Fatalf("turn %d ran %d times", i, c)
		}
	}
}

// One turn blocked while others finish still gets its worker replaced:
// the queue is served by minBusy workers that are not stuck, not by what
// is left beside the blocked one.
func TestPoolReplacesStuckWorker(t *testing.T) {
	w := newPool(2, 4, time.Millisecond)
	defer w.close()
	release := make(chan struct{})
	defer close(release)
	w.start([]Handler{task(func() { <-release })})
	slow := task(func() { time.Sleep(time.Millisecond) })
	deadline := time.Now().Add(10 * time.Second)
	for w.stats().Started < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("one stuck worker of 2, turns queued and finishing: %+v, want a third worker", w.stats())
		}
		w.start([]Handler{slow, slow})
		time.Sleep(time.Millisecond)
	}
}
