package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// MaxPendingIQs bounds the server-originated iqs waiting for their
// response at any one time (SendIQ). Each costs a map entry and a parked
// goroutine of the caller; past the bound SendIQ fails at once instead of
// letting a flood of, say, unknown entity capabilities grow memory.
const MaxPendingIQs = 4096

// Errors returned (wrapped) by SendIQ.
var (
	// ErrTooManyPendingIQs means MaxPendingIQs iqs are already waiting.
	ErrTooManyPendingIQs = errors.New("router: too many pending server iqs")
	// ErrIQUndeliverable means no session is bound to the addressee, or it
	// refused the iq (closing, or its output buffer is full).
	ErrIQUndeliverable = errors.New("router: iq undeliverable")
)

// iqClient keeps the server-originated iqs that wait for a response, by id.
// Its zero value is ready to use.
type iqClient struct {
	mu      sync.Mutex
	pending map[string]*pendingIQ
	prefix  string // random per router: ids are not guessable across restarts
	next    uint64
}

type pendingIQ struct {
	to jid.JID              // the full JID the request went to; only it may answer
	ch chan *stanza.Element // buffered (1): the resolver never blocks
}

// add registers a new pending iq to the full JID and returns its id.
func (c *iqClient) add(to jid.JID) (string, *pendingIQ, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = make(map[string]*pendingIQ)
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.prefix = "parley-" + hex.EncodeToString(b[:]) + "-"
	}
	if len(c.pending) >= MaxPendingIQs {
		return "", nil, ErrTooManyPendingIQs
	}
	c.next++
	id := c.prefix + strconv.FormatUint(c.next, 36)
	p := &pendingIQ{to: to, ch: make(chan *stanza.Element, 1)}
	c.pending[id] = p
	return id, p, nil
}

func (c *iqClient) remove(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// resolve hands a response to its waiting SendIQ. Only the entity the
// request went to can answer it: from is stamped by the responder's own
// session, so another client cannot forge an answer by guessing an id.
func (c *iqClient) resolve(from jid.JID, el *stanza.Element) bool {
	c.mu.Lock()
	p := c.pending[el.ID()]
	if p == nil || p.to != from {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, el.ID())
	c.mu.Unlock()
	p.ch <- el // buffered and resolved once: never blocks
	return true
}

// SendIQ sends an iq get or set from the server (from is the served domain)
// to the session bound to the local full JID to, and waits for its result
// or error, or for ctx to end. A response of type error is returned along
// with an error wrapping its *stanza.Error. iq itself is not modified; the
// router sets to, from and a unique id on a copy.
//
// A session that ends without answering is not noticed: callers bound the
// wait with ctx.
func (r *Router) SendIQ(ctx context.Context, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if iq == nil || iq.Name != "iq" || (iq.Type() != "get" && iq.Type() != "set") {
		return nil, errors.New("router: SendIQ needs an iq of type get or set")
	}
	if !r.IsLocal(to) || to.Local() == "" || to.Resource() == "" {
		return nil, fmt.Errorf("router: SendIQ to %s: not a local full JID: %w", to, ErrIQUndeliverable)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := r.Session(to)
	if s == nil {
		return nil, fmt.Errorf("router: SendIQ to %s: no session: %w", to, ErrIQUndeliverable)
	}
	id, p, err := r.iqs.add(to)
	if err != nil {
		return nil, fmt.Errorf("router: SendIQ to %s: %w", to, err)
	}
	defer r.iqs.remove(id)
	out := iq.ShallowCopy()
	out.SetAttr("id", id)
	out.SetAttr("to", to.String())
	out.SetAttr("from", r.domain.String())
	// Registered before delivery: a session may answer from inside Deliver.
	if !s.Deliver(out, nil) {
		return nil, fmt.Errorf("router: SendIQ to %s: refused: %w", to, ErrIQUndeliverable)
	}
	select {
	case resp := <-p.ch:
		if resp.Type() == "error" {
			e := stanza.ParseError(resp)
			if e == nil || e.Condition == "" {
				e = stanza.ErrUndefinedCondition
			}
			return resp, fmt.Errorf("router: iq to %s: %w", to, e)
		}
		return resp, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("router: iq to %s: %w", to, ctx.Err())
	}
}

// PendingIQs returns the number of server-originated iqs waiting for a
// response.
func (r *Router) PendingIQs() int {
	r.iqs.mu.Lock()
	defer r.iqs.mu.Unlock()
	return len(r.iqs.pending)
}

// resolveIQ offers a result or error addressed to the server to SendIQ and
// reports whether a pending request took it.
func (r *Router) resolveIQ(from jid.JID, el *stanza.Element) bool {
	if t := el.Type(); t != "result" && t != "error" {
		return false
	}
	return r.iqs.resolve(from, el)
}
