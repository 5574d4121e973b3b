package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// chatRun is one worker's share of a chat measurement. Message k carries
// id "RUN-k" and a body "RUN k SENDNS xxx…", SENDNS being the wall-clock
// send time in Unix nanoseconds; the receiver takes the latency from it.
// The run id tells this run's messages from those of an earlier run that a
// server kept queued (offline storage) and delivers now.
type chatRun struct {
	id     string
	window chan struct{} // a slot per message in flight

	sent, delivered, bounced, sendErrors, stale atomic.Int64
	firstSend, lastDelivery                     atomic.Int64 // Unix ns

	mu       sync.Mutex
	hist     Hist
	timeline map[int64]*Hist // by the Unix second of the send
}

// drainTimeout bounds the wait for messages in flight once sending has
// stopped, so that the unresolved ones are really lost, not just late.
const drainTimeout = 5 * time.Second

// senders is the number of goroutines sending; each send is one write on
// one session, so a few dozen keep a server busy without a goroutine per
// user.
const senders = 32

func (w *worker) runChat(ctx context.Context, p *chatParams) (*phaseResult, error) {
	var online []*client.Client
	for _, c := range w.sessions {
		if c != nil && c.Err() == nil {
			online = append(online, c)
		}
	}
	if len(online) < 2 {
		return nil, errors.New("chat: fewer than two sessions online in this worker")
	}
	peers := make([]string, len(online))
	for i, c := range online {
		// The full JID: the message goes to that very session, never to
		// offline storage or to another resource.
		peers[i] = c.JID().String()
	}
	r := &chatRun{id: p.RunID, window: make(chan struct{}, max(p.Window, 1)), timeline: map[int64]*Hist{}}
	w.chat.Store(r)
	defer w.chat.Store(nil)

	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = w.send(event{Ev: evProgress, Progress: &counters{Sent: r.sent.Load(), Delivered: r.delivered.Load()}})
			case <-stop:
				return
			}
		}
	}()
	defer close(stop)

	sctx := ctx
	if p.Duration > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, p.Duration)
		defer cancel()
	}
	filler := strings.Repeat("x", max(p.BodySize, 1))
	var next atomic.Int64
	jobs := make(chan int64, senders)
	if p.Rate > 0 {
		go pace(sctx, p.Rate, p.Messages, jobs)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for {
				var k int64
				if p.Rate > 0 {
					var ok bool
					select {
					case k, ok = <-jobs:
					case <-sctx.Done():
					}
					if !ok {
						return
					}
				}
				select {
				case r.window <- struct{}{}:
				case <-sctx.Done():
					return
				}
				if p.Rate <= 0 {
					k = next.Add(1) - 1
					if p.Messages > 0 && k >= int64(p.Messages) {
						<-r.window
						return
					}
				}
				from := rnd.IntN(len(online))
				to := rnd.IntN(len(online) - 1)
				if to >= from {
					to++
				}
				r.sendOne(online[from], peers[to], k, filler, p.BodySize)
			}
		}()
	}
	wg.Wait()
	// Drain: wait for the messages still in flight, at most drainTimeout.
	deadline := time.Now().Add(drainTimeout)
	for len(r.window) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	hist, timeline := r.hist, r.timeline
	r.timeline = map[int64]*Hist{} // a straggler's late delivery must not race the report
	r.mu.Unlock()
	res := &phaseResult{
		Sent:         r.sent.Load(),
		Delivered:    r.delivered.Load(),
		Bounced:      r.bounced.Load(),
		SendErrors:   r.sendErrors.Load(),
		Stale:        r.stale.Load(),
		FirstSend:    r.firstSend.Load(),
		LastDelivery: r.lastDelivery.Load(),
		Latency:      &hist,
		Timeline:     timeline,
		Seconds:      time.Since(start).Seconds(),
		Online:       w.online(),
	}
	return w.footprint(res), nil
}

// pace hands out message numbers at rate per second, on schedule: message
// k is due at start + k/rate. When the senders fall behind (window full,
// server slow) it does not make up by bursting later beyond the channel:
// the achieved rate is what the report shows.
func pace(ctx context.Context, rate float64, limit int, jobs chan<- int64) {
	defer close(jobs)
	start := time.Now()
	for k := int64(0); limit <= 0 || k < int64(limit); k++ {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		select {
		case jobs <- k:
		case <-ctx.Done():
			return
		}
	}
}

func (r *chatRun) sendOne(from *client.Client, to string, k int64, filler string, size int) {
	ks := strconv.FormatInt(k, 10)
	now := time.Now().UnixNano()
	body := r.id + " " + ks + " " + strconv.FormatInt(now, 10) + " "
	if pad := size - len(body); pad > 0 {
		body += filler[:pad]
	}
	r.firstSend.CompareAndSwap(0, now)
	m := stanza.New("message", stanza.NSClient).
		SetAttr("to", to).
		SetAttr("type", "chat").
		SetAttr("id", r.id+"-"+ks).
		Append(stanza.New("body", stanza.NSClient).AppendText(body))
	// Counted before the write: the delivery may beat Send's return.
	r.sent.Add(1)
	if err := from.Send(m); err != nil {
		r.sent.Add(-1)
		r.sendErrors.Add(1)
		<-r.window
	}
}

// received is called for every stanza of every session of the worker
// while the run lasts.
func (r *chatRun) received(el *stanza.Element) {
	if el.Name != "message" {
		return
	}
	now := time.Now().UnixNano()
	if el.Type() == "error" {
		if run, _, _ := strings.Cut(el.ID(), "-"); run == r.id {
			r.bounced.Add(1)
			r.release()
		}
		return
	}
	f := strings.Fields(el.ChildText("body", stanza.NSClient))
	if len(f) < 3 || f[0] != r.id {
		r.stale.Add(1)
		return
	}
	sent, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		r.stale.Add(1)
		return
	}
	r.mu.Lock()
	r.hist.Add(time.Duration(now - sent))
	sec := sent / int64(time.Second)
	h := r.timeline[sec]
	if h == nil {
		h = &Hist{}
		r.timeline[sec] = h
	}
	h.Add(time.Duration(now - sent))
	r.mu.Unlock()
	for {
		last := r.lastDelivery.Load()
		if now <= last || r.lastDelivery.CompareAndSwap(last, now) {
			break
		}
	}
	r.delivered.Add(1)
	r.release()
}

// release frees one window slot; a stray extra delivery (a duplicate)
// finds none and must not block the session's reader.
func (r *chatRun) release() {
	select {
	case <-r.window:
	default:
	}
}
