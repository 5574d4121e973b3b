package router_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// iqSession is a fake session that passes every iq it is given to onIQ
// (after recording it), as a client's reader would see it.
type iqSession struct {
	*fakeSession
	onIQ func(iq *stanza.Element)
}

func (s *iqSession) Deliver(el *stanza.Element, ack *router.Ack) bool {
	ok := s.fakeSession.Deliver(el, ack)
	if ok && el.Name == "iq" && s.onIQ != nil {
		s.onIQ(el)
	}
	return ok
}

func (e *env) bindIQ(full string, onIQ func(*stanza.Element)) *iqSession {
	e.t.Helper()
	s := &iqSession{fakeSession: newSession(e.t, full, true, 0), onIQ: onIQ}
	if old, err := e.r.Bind(s); err != nil || old != nil {
		e.t.Fatalf("bind %s: %v %v", full, old, err)
	}
	return s
}

func iqJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func pingIQ() *stanza.Element {
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "get").Append(stanza.New("ping", "urn:xmpp:ping"))
}

// reply builds the client's answer to iq as its session would route it:
// from stamped with the client's full JID, to the server.
func iqReply(from string, iq *stanza.Element, typ string) *stanza.Element {
	r := stanza.New("iq", stanza.NSClient).SetAttr("id", iq.ID()).SetAttr("type", typ).
		SetAttr("from", from).SetAttr("to", iq.From())
	if typ == "error" {
		r.Append(stanza.ErrItemNotFound.Element(stanza.NSClient))
	}
	return r
}

func TestSendIQResult(t *testing.T) {
	e := newEnv(t, opts{}, "ann")
	ctx := context.Background()
	var sent *stanza.Element
	// The answer comes from another goroutine, as from the client's reader.
	var wg sync.WaitGroup
	e.bindIQ("ann@example.com/phone", func(iq *stanza.Element) {
		sent = iq
		wg.Go(func() { e.r.Route(ctx, iqReply("ann@example.com/phone", iq, "result")) })
	})
	orig := pingIQ()
	resp, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/phone"), orig)
	wg.Wait()
	if err != nil {
		t.Fatalf("SendIQ: %v", err)
	}
	if resp.Type() != "result" || resp.ID() != sent.ID() {
		t.Fatalf("response %v to %v", resp, sent)
	}
	if sent.From() != domain || sent.To() != "ann@example.com/phone" || sent.ID() == "" {
		t.Fatalf("sent iq has from %q to %q id %q", sent.From(), sent.To(), sent.ID())
	}
	if orig.ID() != "" || orig.From() != "" {
		t.Fatalf("SendIQ modified its argument: %v", orig.Attrs)
	}
	if n := e.r.PendingIQs(); n != 0 {
		t.Fatalf("%d iqs still pending", n)
	}
}

func TestSendIQIDsUnique(t *testing.T) {
	e := newEnv(t, opts{}, "ann")
	ctx := context.Background()
	seen := map[string]bool{}
	// Answering from inside Deliver works too: the request is registered
	// before it is handed to the session.
	e.bindIQ("ann@example.com/phone", func(iq *stanza.Element) {
		seen[iq.ID()] = true
		e.r.Route(ctx, iqReply("ann@example.com/phone", iq, "result"))
	})
	for range 50 {
		if _, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/phone"), pingIQ()); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct ids for 50 iqs", len(seen))
	}
}

func TestSendIQError(t *testing.T) {
	e := newEnv(t, opts{}, "ann")
	ctx := context.Background()
	e.bindIQ("ann@example.com/phone", func(iq *stanza.Element) {
		e.r.Route(ctx, iqReply("ann@example.com/phone", iq, "error"))
	})
	resp, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/phone"), pingIQ())
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "item-not-found" {
		t.Fatalf("SendIQ error %v, want item-not-found", err)
	}
	if resp == nil || resp.Type() != "error" {
		t.Fatalf("error response not returned: %v", resp)
	}
}

// TestSendIQForgedAnswer: only the addressee can answer. Another user's
// session routing a result with the right id (from stamped with its own
// JID by its session) and the addressee's bare JID are both ignored.
func TestSendIQForgedAnswer(t *testing.T) {
	e := newEnv(t, opts{}, "ann", "eve")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.bind("eve@example.com/x", true, 0)
	e.bindIQ("ann@example.com/phone", func(iq *stanza.Element) {
		// Synchronously: both forgeries are refused before SendIQ waits.
		e.r.Route(ctx, iqReply("eve@example.com/x", iq, "result"))
		e.r.Route(ctx, iqReply("ann@example.com", iq, "result"))
		e.r.Route(ctx, iqReply("ann@example.com/other", iq, "result"))
		cancel()
	})
	resp, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/phone"), pingIQ())
	if !errors.Is(err, context.Canceled) || resp != nil {
		t.Fatalf("SendIQ took a forged answer: %v, %v", resp, err)
	}
	if n := e.r.PendingIQs(); n != 0 {
		t.Fatalf("%d iqs still pending", n)
	}
}

func TestSendIQUndeliverable(t *testing.T) {
	e := newEnv(t, opts{}, "ann")
	ctx := context.Background()
	if _, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/none"), pingIQ()); !errors.Is(err, router.ErrIQUndeliverable) {
		t.Fatalf("no session: %v", err)
	}
	s := e.bind("ann@example.com/full", true, 0)
	s.Refuse(true)
	if _, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/full"), pingIQ()); !errors.Is(err, router.ErrIQUndeliverable) {
		t.Fatalf("refusing session: %v", err)
	}
	for _, to := range []string{"ann@example.com", "example.com", "ann@other.org/x"} {
		if _, err := e.r.SendIQ(ctx, iqJID(t, to), pingIQ()); !errors.Is(err, router.ErrIQUndeliverable) {
			t.Fatalf("SendIQ to %s: %v", to, err)
		}
	}
	res := stanza.New("iq", stanza.NSClient).SetAttr("type", "result")
	if _, err := e.r.SendIQ(ctx, iqJID(t, "ann@example.com/full"), res); err == nil {
		t.Fatal("SendIQ sent an iq result as a request")
	}
	if n := e.r.PendingIQs(); n != 0 {
		t.Fatalf("%d iqs still pending", n)
	}
}

// TestSendIQBounded fills the pending table with iqs nobody answers: the
// next one fails at once, and cancelling frees every slot.
func TestSendIQBounded(t *testing.T) {
	e := newEnv(t, opts{}, "ann")
	ctx, cancel := context.WithCancel(context.Background())
	delivered := make(chan struct{}, router.MaxPendingIQs)
	e.bindIQ("ann@example.com/slow", func(*stanza.Element) { delivered <- struct{}{} })
	to := iqJID(t, "ann@example.com/slow")
	var wg sync.WaitGroup
	errs := make(chan error, router.MaxPendingIQs)
	for range router.MaxPendingIQs {
		wg.Go(func() {
			_, err := e.r.SendIQ(ctx, to, pingIQ())
			errs <- err
		})
	}
	// Each delivery happens after its iq was registered.
	for range router.MaxPendingIQs {
		<-delivered
	}
	if _, err := e.r.SendIQ(context.Background(), to, pingIQ()); !errors.Is(err, router.ErrTooManyPendingIQs) {
		t.Fatalf("SendIQ past the bound: %v", err)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("waiting SendIQ ended with %v", err)
		}
	}
	if n := e.r.PendingIQs(); n != 0 {
		t.Fatalf("%d iqs still pending", n)
	}
}
