package netpoll

import (
	"sync"
	"time"
)

// pool runs turns (Handler.Readable calls) on a few long-lived goroutines
// in the order they were started.
//
// A goroutine per turn started on a small stack and grew it two or three
// times while it decrypted, parsed, routed and stored a message: newstack
// and copystack were 10% of a chat server's CPU at its maximum rate, and 8%
// during a login burst. Handing each turn to an idle worker only helped
// while one was idle: a batch of events found a few, and started a fresh
// goroutine for every other turn. Here a turn that finds no idle worker
// waits in the queue for the next one that finishes, and new workers are
// started only up to minBusy, so a worker runs turn after turn on the
// stack it has grown.
//
// A turn may block: on a full socket until its write deadline (a client
// that sends but does not read), on the store (a session with too many
// messages in flight waits for the oldest). A blocked turn holds its
// worker, so a watchdog, which ticks every stall interval while turns
// wait, counts the workers that have been in one turn since before its
// previous tick as stuck, and starts workers until minBusy are not:
// blocked turns cost a goroutine each, as they did with a goroutine per
// turn, and the others still find minBusy workers within two ticks.
//
// The queue holds at most one entry per registration (a registration's
// turn is started once, until Done), so it is bounded by the poller's
// sockets, and at most one task per session (Poller.Go: a session runs one
// output flush at a time).
type pool struct {
	mu    sync.Mutex
	cond  sync.Cond // idle workers wait here
	queue []Handler // turns waiting for a worker, from head on
	head  int

	busy int // workers not waiting in cond (running turns or about to)
	idle int // workers waiting in cond
	all  []*worker

	minBusy int // workers started without waiting for a stall
	maxIdle int // idle workers kept; others exit
	stall   time.Duration

	finished uint64 // turns done
	started  uint64 // workers ever started
	epoch    uint64 // watchdog ticks
	watching bool
	timer    *time.Timer
	closed   bool
}

func newPool(minBusy, maxIdle int, stall time.Duration) *pool {
	w := &pool{minBusy: max(minBusy, 1), maxIdle: maxIdle, stall: stall}
	w.cond.L = &w.mu
	w.timer = time.AfterFunc(time.Hour, w.watch)
	w.timer.Stop()
	return w
}

// start queues the turns of hs and finds them workers. It is false, and
// queues nothing, once the pool is closed.
func (w *pool) start(hs []Handler) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	if len(hs) == 0 {
		return true
	}
	if w.head > 0 && w.head >= len(w.queue)/2 {
		n := copy(w.queue, w.queue[w.head:])
		clear(w.queue[n:])
		w.queue, w.head = w.queue[:n], 0
	}
	w.queue = append(w.queue, hs...)
	// Workers for what waits: idle ones first, then new ones up to
	// minBusy; the watchdog for the rest.
	waiting := w.waitingLocked()
	for ; waiting > 0 && w.idle > 0; waiting-- {
		w.idle--
		w.busy++
		w.cond.Signal()
	}
	for ; waiting > 0 && w.busy < w.minBusy; waiting-- {
		w.spawn()
	}
	if waiting > 0 && !w.watching {
		w.watching = true
		w.timer.Reset(w.stall)
	}
	return true
}

// waitingLocked is the number of turns and tasks without a worker.
func (w *pool) waitingLocked() int { return len(w.queue) - w.head }

// task is a Handler that runs a function (Poller.Go).
type task func()

// Readable runs the task.
func (f task) Readable() { f() }

// worker is one of the pool's goroutines.
type worker struct {
	index  int    // in pool.all
	inTurn bool   // running a turn
	epoch  uint64 // pool.epoch when the turn began
}

// spawn starts a busy worker. w.mu is held.
func (w *pool) spawn() {
	w.busy++
	w.started++
	k := &worker{index: len(w.all)}
	w.all = append(w.all, k)
	go w.work(k)
}

// work runs queued turns until the queue is empty, then waits for more,
// unless maxIdle workers wait already or the pool is closed.
func (w *pool) work(k *worker) {
	w.mu.Lock()
	for {
		if w.waitingLocked() == 0 {
			if w.closed || w.idle >= w.maxIdle {
				w.busy--
				last := w.all[len(w.all)-1]
				last.index = k.index
				w.all[k.index] = last
				w.all[len(w.all)-1] = nil
				w.all = w.all[:len(w.all)-1]
				w.mu.Unlock()
				return
			}
			// Whoever signals has moved this worker to busy already.
			w.busy--
			w.idle++
			w.cond.Wait()
			continue
		}
		h := w.queue[w.head]
		w.queue[w.head] = nil // no handler kept alive by the queue
		w.head++
		if w.head == len(w.queue) {
			w.queue, w.head = w.queue[:0], 0
		}
		k.inTurn, k.epoch = true, w.epoch
		w.mu.Unlock()
		h.Readable()
		w.mu.Lock()
		k.inTurn = false
		w.finished++
	}
}

// watch is the watchdog: while turns wait, it starts workers until
// minBusy are not stuck, a stuck one being in a turn it began before the
// previous tick.
func (w *pool) watch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.waitingLocked() == 0 {
		w.watching = false
		return
	}
	w.epoch++
	stuck := 0
	for _, k := range w.all {
		if k.inTurn && k.epoch+2 <= w.epoch {
			stuck++
		}
	}
	for n := w.minBusy - (w.busy - stuck); n > 0 && w.idle == 0; n-- {
		w.spawn()
	}
	w.timer.Reset(w.stall)
}

// close lets every worker exit once the queue is empty; idle ones exit at
// once.
func (w *pool) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.timer.Stop()
	w.busy += w.idle
	w.idle = 0
	w.cond.Broadcast()
}

// Stats is a snapshot of a poller's workers.
type Stats struct {
	Busy    int    // workers running a turn or a task, or about to
	Idle    int    // workers waiting for one
	Started uint64 // workers started since the poller was made
	Turns   uint64 // turns and tasks finished
}

func (w *pool) stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{Busy: w.busy, Idle: w.idle, Started: w.started, Turns: w.finished}
}
