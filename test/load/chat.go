package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// Message states in chatRun.state.
const (
	msgUnsent uint32 = iota
	msgSent
	msgDelivered
	msgBounced
	msgSendFailed
)

// chatRun is the bookkeeping of one chat measurement. Message k carries
// id "<run>-<k>" and the body "<run> <k> <ns>", ns being its send time in
// nanoseconds since start; the receiver takes the latency from the body.
// The run id tells this run's messages from those of an earlier run that
// were still in flight when it stopped and that the server rightly kept
// queued and delivers now (at least once, marked with a delay).
type chatRun struct {
	id     string
	total  int
	start  time.Time
	state  []atomic.Uint32
	lat    []atomic.Int64 // latency in ns, set by the first delivery
	window chan struct{}  // a slot per message in flight

	sent, delivered, dups, bounced, sendFailed, stale, foreign atomic.Int64
	resolved                                                   atomic.Int64
	lastDelivery                                               atomic.Int64 // ns since start
	allDone                                                    chan struct{}
	doneOnce                                                   sync.Once
}

// runChat logs o.users users in and has them send o.messages messages to
// random other users as fast as the in-flight window allows, then reports
// delivery rate and latency. It stops when every message is delivered (or
// bounced) or after o.duration, whichever comes first.
func runChat(ctx context.Context, o *options) error {
	if err := raiseNoFile(o.users + 256); err != nil {
		return err
	}
	r := &chatRun{
		id:      fmt.Sprintf("%08x", rand.Uint32()), // no "-": the id is split at it
		total:   o.messages,
		start:   time.Now(), // the clock's zero, fixed before any receiver runs
		state:   make([]atomic.Uint32, o.messages),
		lat:     make([]atomic.Int64, o.messages),
		window:  make(chan struct{}, o.window),
		allDone: make(chan struct{}),
	}
	fmt.Fprintf(os.Stderr, "logging in %d users …\n", o.users)
	res := loginAll(ctx, o, o.users, "chat", func(_ int, el *stanza.Element) { r.received(el) })
	defer closeAll(o, res.clients)
	fmt.Printf("chat: %d of %d users online in %.1fs (%d failed)\n", res.ok, o.users, res.elapsed.Seconds(), len(res.errs))
	if len(res.errs) > 0 {
		fmt.Printf("  errors: %s\n", firstErrors(res.errs, 5))
	}
	var online []*client.Client
	for _, c := range res.clients {
		if c != nil {
			online = append(online, c)
		}
	}
	if len(online) < 2 {
		return errors.New("fewer than two users online")
	}

	var cpu0 time.Duration
	if o.pid > 0 {
		cpu0, _ = procCPU(o.pid)
	}
	self0 := selfCPU()
	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	sendStart := time.Since(r.start)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range len(online) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.sender(runCtx, online, &next, rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano()))))
		}()
	}
	stopped := "all messages resolved"
	select {
	case <-r.allDone:
	case <-runCtx.Done():
		stopped = "sending stopped by -duration " + o.duration.String()
		if ctx.Err() != nil {
			stopped = "interrupted"
		}
	}
	cancel()
	wg.Wait()
	if ctx.Err() == nil && !r.drain(ctx, drainTimeout) {
		stopped += fmt.Sprintf(", messages still in flight %v later", drainTimeout)
	}
	// The run ends at the last delivery, not when this goroutine noticed.
	elapsed := time.Since(r.start) - sendStart
	if last := time.Duration(r.lastDelivery.Load()); last > 0 {
		elapsed = last - sendStart
	}

	delivered := r.delivered.Load()
	var lats []time.Duration
	for k := range r.total {
		if r.state[k].Load() == msgDelivered {
			lats = append(lats, time.Duration(r.lat[k].Load()))
		}
	}
	sent := r.sent.Load()
	pending := sent - delivered - r.bounced.Load()
	fmt.Printf("  %s; last delivery %.2fs after the first send\n", stopped, elapsed.Seconds())
	fmt.Printf("  messages: %d requested, %d sent, %d delivered, %d bounced, %d send errors, %d lost, %d duplicates\n",
		r.total, sent, delivered, r.bounced.Load(), r.sendFailed.Load(), pending, r.dups.Load())
	if n, m := r.stale.Load(), r.foreign.Load(); n+m > 0 {
		fmt.Printf("  ignored: %d messages of earlier runs (queued while their recipient was offline), %d unrecognised\n", n, m)
	}
	fmt.Printf("  delivered rate: %.0f msgs/s (window %d, %d senders)\n", float64(delivered)/elapsed.Seconds(), o.window, len(online))
	fmt.Printf("  latency (send to receipt): %s\n", percentiles(lats))
	if o.pid > 0 && delivered > 0 {
		if cpu1, err := procCPU(o.pid); err == nil {
			fmt.Printf("  server CPU: %.2fs, %.0f µs per delivered message\n", (cpu1 - cpu0).Seconds(), float64((cpu1-cpu0).Microseconds())/float64(delivered))
		}
	}
	fmt.Printf("  load generator CPU: %.2fs\n", (selfCPU() - self0).Seconds())
	if delivered == 0 {
		return errors.New("no message delivered")
	}
	return nil
}

// drainTimeout bounds the wait for messages in flight when sending stopped
// early, so that "lost" means lost and not "not arrived yet".
const drainTimeout = 5 * time.Second

// drain waits until every message sent has been delivered or bounced, at
// most d; it reports whether none is left in flight.
func (r *chatRun) drain(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if r.resolved.Load() == r.sent.Load()+r.sendFailed.Load() {
			return true
		}
		if time.Now().After(deadline) || !sleep(ctx, 10*time.Millisecond) {
			return false
		}
	}
}

// sender sends messages until all are taken or ctx ends.
func (r *chatRun) sender(ctx context.Context, online []*client.Client, next *atomic.Int64, rnd *rand.Rand) {
	for {
		select {
		case r.window <- struct{}{}:
		case <-ctx.Done():
			return
		}
		k := int(next.Add(1) - 1)
		if k >= r.total {
			<-r.window
			return
		}
		from := rnd.IntN(len(online))
		to := rnd.IntN(len(online) - 1)
		if to >= from {
			to++
		}
		// Sent before the bytes go out: the reply may beat Send's return.
		r.state[k].Store(msgSent)
		ns := time.Since(r.start).Nanoseconds()
		m := stanza.New("message", stanza.NSClient).
			SetAttr("to", online[to].JID().Bare().String()).
			SetAttr("type", "chat").
			SetAttr("id", r.id+"-"+strconv.Itoa(k)).
			Append(stanza.New("body", stanza.NSClient).AppendText(r.id + " " + strconv.Itoa(k) + " " + strconv.FormatInt(ns, 10)))
		if err := online[from].Send(m); err != nil {
			if r.state[k].CompareAndSwap(msgSent, msgSendFailed) {
				r.sendFailed.Add(1)
				r.resolve()
			}
			continue
		}
		r.sent.Add(1)
	}
}

// received is called for every incoming stanza of every user.
func (r *chatRun) received(el *stanza.Element) {
	if el.Name != "message" {
		return
	}
	now := time.Since(r.start)
	if el.Type() == "error" {
		run, ks, _ := strings.Cut(el.ID(), "-")
		k, ok := r.index(ks)
		if run != r.id {
			r.stale.Add(1)
			return
		}
		if ok && r.state[k].CompareAndSwap(msgSent, msgBounced) {
			r.bounced.Add(1)
			r.resolve()
			return
		}
		r.foreign.Add(1)
		return
	}
	f := strings.Fields(el.ChildText("body", stanza.NSClient))
	if len(f) != 3 {
		r.foreign.Add(1)
		return
	}
	if f[0] != r.id {
		r.stale.Add(1)
		return
	}
	ks, nss := f[1], f[2]
	k, ok := r.index(ks)
	ns, err := strconv.ParseInt(nss, 10, 64)
	if !ok || err != nil {
		r.foreign.Add(1)
		return
	}
	if r.state[k].Load() != msgSent {
		r.dups.Add(1)
		return
	}
	// Stored before the state changes, so whoever sees "delivered" sees it.
	r.lat[k].Store(int64(now) - ns)
	if !r.state[k].CompareAndSwap(msgSent, msgDelivered) {
		r.dups.Add(1)
		return
	}
	for {
		last := r.lastDelivery.Load()
		if int64(now) <= last || r.lastDelivery.CompareAndSwap(last, int64(now)) {
			break
		}
	}
	r.delivered.Add(1)
	r.resolve()
}

func (r *chatRun) index(s string) (int, bool) {
	k, err := strconv.Atoi(s)
	return k, err == nil && k >= 0 && k < r.total
}

// resolve frees the message's window slot and notices the last one.
func (r *chatRun) resolve() {
	<-r.window
	if r.resolved.Add(1) == int64(r.total) {
		r.doneOnce.Do(func() { close(r.allDone) })
	}
}
