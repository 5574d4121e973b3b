package router

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Namespaces of payloads that make a message worth storing (XEP-0160,
// XEP-0334) besides a body.
const (
	nsHints  = "urn:xmpp:hints"
	nsOMEMO  = "eu.siacs.conversations.axolotl"
	nsOMEMO2 = "urn:xmpp:omemo:2"
)

// storable reports whether a message goes through the durable queue: chat and
// normal messages with content a person reads. Chat states, receipts and
// markers without a body are routed only while someone is online
// (XEP-0160 §3, XEP-0334).
func storable(el *stanza.Element) bool {
	switch el.Type() {
	case "", "normal", "chat":
	default:
		return false
	}
	if el.Child("no-store", nsHints) != nil || el.Child("no-permanent-store", nsHints) != nil {
		return false
	}
	if el.Child("store", nsHints) != nil {
		return true
	}
	for _, c := range el.Children {
		if c.Name == "body" || c.NS == nsOMEMO || c.NS == nsOMEMO2 {
			return true
		}
	}
	return false
}

// routeMessage applies RFC 6121 §8.5 for a message to a local JID.
func (r *Router) routeMessage(ctx context.Context, from, to jid.JID, el *stanza.Element) {
	if to.Local() == "" {
		// Messages to the server itself: nothing here consumes them.
		if el.Type() != "error" {
			r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
		}
		return
	}
	r.copySent(from, to, el) // XEP-0280 §9
	typ := el.Type()
	if to.Resource() != "" {
		if s := r.Session(to); s != nil {
			r.deliverMessage(ctx, to, el, func() []Session { return []Session{s} })
			return
		}
		// RFC 6121 §8.5.3.2.1: no such resource.
		switch typ {
		case "", "normal", "chat":
			to = to.Bare()
		case "groupchat":
			r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
			return
		default: // headline, error: silently ignore
			return
		}
	}
	exists, err := r.UserExists(ctx, to.Local())
	if err != nil {
		r.log.Error("router: account lookup", "user", to.Local(), "err", err)
		r.bounce(ctx, from, el, stanza.ErrInternalServerError)
		return
	}
	if !exists {
		// RFC 6121 §8.5.1: no such user.
		r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
		return
	}
	switch typ {
	case "groupchat":
		r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
		return
	case "error":
		return
	}
	r.deliverMessage(ctx, to, el, func() []Session { return r.bareTargets(to.Local(), typ) })
}

// bareTargets chooses the resources a message to a bare JID goes to: the
// available ones with the highest non-negative priority (RFC 6121
// §8.5.2.1.1); every non-negative one for headlines.
func (r *Router) bareTargets(user, typ string) []Session {
	all := r.Sessions(user)
	best := -1
	var out []Session
	for _, s := range all {
		if !s.Available() || s.Priority() < 0 {
			continue
		}
		p := s.Priority()
		if typ == "headline" {
			out = append(out, s)
			continue
		}
		switch {
		case p > best:
			best = p
			out = append(out[:0], s)
		case p == best:
			out = append(out, s)
		}
	}
	return out
}

// deliverMessage stamps a XEP-0359 stanza id and, for storable messages,
// appends the message to the recipient's durable queue and hands it to the
// target sessions as soon as the queue has it (EnqueueVisible), while the
// append is being made durable: the recipient does not wait for the fsync,
// and deliverMessage returns, so the sender is acknowledged, only once it
// is done. The queue entry is deleted once every target has acknowledged
// it. A target that refuses the stanza (closing, or its
// buffer full) or ends before acknowledging leaves the entry queued, and
// the next initial presence of any of the user's devices delivers it again:
// at-least-once, with the stanza id for clients to drop duplicates. With no target the message waits in the queue for the
// recipient's next initial presence (XEP-0160).
//
// targets is evaluated only after the append: a resource that becomes
// available while the append commits either is among the targets or finds
// the message in its initial-presence queue scan. Choosing the targets
// before the append left a window in which it was neither.
func (r *Router) deliverMessage(ctx context.Context, to jid.JID, el *stanza.Element, targetsFn func() []Session) {
	bare := to.Bare().String()
	el = el.ShallowCopy()
	carbons := carbonEligible(el) // XEP-0280 §6, before <private/> goes
	// A sender must not forge the recipient's archive/queue id.
	kept := el.Children[:0]
	for _, c := range el.Children {
		if c.Name == "stanza-id" && c.NS == stanza.NSStanzaID && c.Attr("by") == bare || isPrivate(c) {
			continue
		}
		kept = append(kept, c)
	}
	el.Children = kept
	sid := r.newID()
	el.Append(stanza.New("stanza-id", stanza.NSStanzaID).SetAttr("id", sid).SetAttr("by", bare))

	if !storable(el) {
		targets := targetsFn()
		for _, s := range targets {
			if s.Deliver(el, nil) {
				r.Stats.Delivered.Add(1)
			}
		}
		if carbons {
			r.copyReceived(to, el, targets) // XEP-0280 §8
		}
		return
	}
	now := r.now()
	start := time.Now()
	raw := r.cfg.Codec.Marshal(el)
	var delivering time.Duration
	visible := func(seq uint64) {
		t := time.Now()
		r.Stats.Enqueued.Add(1) // before anyone can see the delivery
		r.archive(ctx, to, sid, el, raw)
		targets := targetsFn()
		if carbons {
			r.copyReceived(to, el, targets) // XEP-0280 §8
		}
		if len(targets) > 0 {
			ack := r.NewAck(to.Local(), seq, len(targets))
			for _, s := range targets {
				if s.Deliver(el, ack) {
					r.Stats.Delivered.Add(1)
				}
			}
		}
		delivering = time.Since(t)
	}
	if c := completionFrom(ctx); c != nil && c.join() {
		_, err := r.cfg.Store.EnqueueAsync(ctx, to.Local(), raw, r.expiresAt(now), r.cfg.MaxOfflineMessages, visible, func(err error) {
			r.enqueued(ctx, to, el, err, time.Since(start)-delivering)
			c.finish()
		})
		if err != nil {
			r.enqueued(ctx, to, el, err, time.Since(start))
			c.finish()
		}
		return
	}
	_, err := r.cfg.Store.EnqueueVisible(ctx, to.Local(), raw, r.expiresAt(now), r.cfg.MaxOfflineMessages, visible)
	r.enqueued(ctx, to, el, err, time.Since(start)-delivering)
}

// enqueued ends the durable append of el to its recipient's queue: took
// is its time, delivery excluded, for ObserveEnqueue; an error goes back
// to the sender.
func (r *Router) enqueued(ctx context.Context, to jid.JID, el *stanza.Element, err error, took time.Duration) {
	if r.cfg.ObserveEnqueue != nil {
		r.cfg.ObserveEnqueue(took)
	}
	if err == nil {
		return
	}
	from, _ := jid.Parse(el.From())
	if errors.Is(err, store.ErrQueueFull) {
		r.Stats.QueueFull.Add(1)
		r.bounce(ctx, from, el, stanza.ErrResourceConstraint.WithText("the recipient's message queue is full"))
		return
	}
	r.log.Error("router: enqueue", "user", to.Local(), "err", err)
	r.bounce(ctx, from, el, stanza.ErrInternalServerError)
}

// expiresAt is when a message queued now expires; OfflineExpiry 0 keeps
// it until delivered.
func (r *Router) expiresAt(now time.Time) time.Time {
	if r.cfg.OfflineExpiry > 0 {
		return now.Add(r.cfg.OfflineExpiry)
	}
	return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
}

// Backlog is implemented by sessions that pace the delivery of a queued
// backlog to what their client acknowledges. A backlog can be far larger
// than what a session may hold unacknowledged, and the acknowledgements
// arrive through the session's own reader, so the flush must run beside
// the reader and wait for room instead of filling the session at once.
type Backlog interface {
	// BeginBacklog makes the session leave live durable deliveries in the
	// queue: the flush delivers them after the older ones, in order.
	BeginBacklog()
	// DeliverBacklog delivers one queued stanza once the session has room;
	// false if the session has ended (the rest stays queued).
	DeliverBacklog(ctx context.Context, el *stanza.Element, ack *Ack) bool
	// EndBacklog returns the session to live delivery and reports true,
	// unless force is false and a live delivery was left in the queue
	// since BeginBacklog or the last EndBacklog: that one may be behind
	// what the flush read, so the session stays in backlog mode and the
	// flush reads the queue again.
	EndBacklog(force bool) bool
}

// FlushQueue delivers the user's queued messages to a session that has just
// sent initial presence, oldest first, each with a XEP-0203 delay stamp of
// when the server stored it. Entries are deleted as the session delivers
// them. A session that implements Backlog is flushed in the background,
// paced by its client's acknowledgements; others synchronously.
func (r *Router) FlushQueue(ctx context.Context, s Session) error {
	if b, ok := s.(Backlog); ok {
		b.BeginBacklog()
		go func() {
			defer func() {
				if p := recover(); p != nil {
					r.log.Error("router: panic in backlog flush", "panic", p)
				}
			}()
			if err := r.flushBacklog(ctx, s, b); err != nil {
				r.log.Error("router: offline delivery", "user", s.JID().Local(), "err", err)
			}
		}()
		return nil
	}
	_, err := r.flushPages(ctx, s, 0, s.Deliver)
	return err
}

// flushBacklog delivers the whole queue, and passes again from where it
// stopped until a pass has left no live delivery in the queue
// (EndBacklog): a live delivery during a pass may be behind what the pass
// read, and must not be overtaken by the live deliveries after it. Once a
// pass has left none, every queued item is either read by a pass or
// delivered live after backlog mode ends, so nothing is stranded.
func (r *Router) flushBacklog(ctx context.Context, s Session, b Backlog) error {
	deliver := func(el *stanza.Element, ack *Ack) bool { return b.DeliverBacklog(ctx, el, ack) }
	var after uint64
	for {
		last, err := r.flushPages(ctx, s, after, deliver)
		if err != nil || last == nil {
			b.EndBacklog(true)
			return err
		}
		after = *last
		if b.EndBacklog(false) {
			return nil
		}
	}
}

// flushPages delivers queue pages after seq until the queue is exhausted.
// It returns the last sequence number seen, or nil when delivery stopped
// because the session ended.
func (r *Router) flushPages(ctx context.Context, s Session, after uint64, deliver func(*stanza.Element, *Ack) bool) (*uint64, error) {
	user := s.JID().Local()
	for {
		items, err := r.cfg.Store.Pending(ctx, user, after, 256)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			after = it.Seq
			el, err := r.cfg.Codec.Unmarshal(it.Stanza)
			if err != nil {
				// A record we cannot read must not block the queue forever.
				r.log.Error("router: undecodable queued stanza dropped", "user", user, "seq", it.Seq, "err", err)
				r.acks.add(user, it.Seq)
				continue
			}
			if el.Child("delay", stanza.NSDelay) == nil {
				el.Append(stanza.New("delay", stanza.NSDelay).
					SetAttr("from", r.domain.String()).
					SetAttr("stamp", it.Stored.UTC().Format("2006-01-02T15:04:05.000Z")).
					AppendText("Offline Storage"))
			}
			if !deliver(el, r.NewAck(user, it.Seq, 1)) {
				return nil, nil // session closing or full: the rest stays queued
			}
			r.Stats.Redelivered.Add(1)
		}
		if len(items) < 256 {
			return &after, nil
		}
	}
}

// acker batches queue deletions: sessions acknowledge from their flush
// goroutines, and one background writer turns the acknowledgements into
// batched deletes so delivery never waits on the store.
type acker struct {
	q       store.Queue
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string][]uint64
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

func newAcker(q store.Queue, log *slog.Logger) *acker {
	a := &acker{q: q, log: log, pending: map[string][]uint64{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) add(user string, seq uint64) {
	a.mu.Lock()
	if a.closed {
		// After Close (a straggling session at shutdown): delete now.
		a.mu.Unlock()
		if err := a.q.Ack(context.Background(), user, seq); err != nil {
			a.log.Error("router: queue ack after close", "user", user, "err", err)
		}
		return
	}
	a.pending[user] = append(a.pending[user], seq)
	// Under a.mu: close closes wake only after setting closed under it,
	// so this never sends on a closed channel.
	select {
	case a.wake <- struct{}{}:
	default:
	}
	a.mu.Unlock()
}

func (a *acker) run() {
	defer close(a.done)
	for range a.wake {
		a.flush()
	}
	a.flush()
}

func (a *acker) flush() {
	a.mu.Lock()
	batch := a.pending
	a.pending = map[string][]uint64{}
	a.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	var refs []store.QueueRef
	for user, seqs := range batch {
		for _, seq := range seqs {
			refs = append(refs, store.QueueRef{User: user, Seq: seq})
		}
	}
	// One write for everything acknowledged since the last flush, whoever
	// the recipients: under load that is hundreds of users per batch.
	if err := a.q.AckBatch(context.Background(), refs); err != nil {
		// The entries stay queued and are delivered again: duplicates
		// are dropped by clients through the stanza id.
		a.log.Error("router: queue ack", "items", len(refs), "err", err)
	}
}

func (a *acker) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	close(a.wake)
	<-a.done
}
