package router

import (
	"context"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// routePresence handles a presence stanza directed at a local JID. Presence
// without a to (broadcast) never reaches the router: the session hands it to
// the roster module.
func (r *Router) routePresence(ctx context.Context, from, to jid.JID, el *stanza.Element) {
	if to.Local() == "" {
		return // presence to the server itself carries nothing for us
	}
	r.mu.RLock()
	h := r.presence
	r.mu.RUnlock()
	if h != nil && h(ctx, from, to, el) {
		return
	}
	switch el.Type() {
	case "", "unavailable", "error":
	default:
		return // subscription types without a handler: nothing to do
	}
	if to.Resource() != "" {
		if s := r.Session(to); s != nil {
			s.Deliver(el, nil)
		}
		return
	}
	// RFC 6121 §4.6: directed presence to a bare JID goes to every
	// available resource.
	for _, s := range r.Sessions(to.Local()) {
		if s.Available() {
			s.Deliver(el, nil)
		}
	}
}

// routeIQ delivers an iq to a full JID or answers it on behalf of the server
// or of a user's account (RFC 6120 §10.5, RFC 6121 §8.5).
func (r *Router) routeIQ(ctx context.Context, from, to jid.JID, el *stanza.Element) {
	typ := el.Type()
	request := typ == "get" || typ == "set"
	if to.Local() != "" && to.Resource() != "" {
		if s := r.Session(to); s != nil {
			s.Deliver(el, nil)
			return
		}
		if request {
			r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
		}
		return
	}
	if !request {
		if to.Local() == "" {
			r.resolveIQ(from, el) // a response to Router.SendIQ
		}
		return // results and errors to the server or a bare JID end here
	}
	payload := firstElement(el)
	if payload == nil {
		r.bounce(ctx, from, el, stanza.ErrBadRequest)
		return
	}
	r.mu.RLock()
	var h IQHandler
	if to.Local() == "" {
		h = r.serverIQ[payload.NS]
	} else {
		h = r.userIQ[payload.NS]
	}
	r.mu.RUnlock()
	if h == nil {
		r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
		return
	}
	if to.Local() != "" && to.Local() != from.Local() {
		exists, err := r.UserExists(ctx, to.Local())
		if err != nil || !exists {
			r.bounce(ctx, from, el, stanza.ErrServiceUnavailable)
			return
		}
	}
	reply, err := r.callIQ(ctx, h, from, to, el)
	if err != nil {
		r.bounce(ctx, from, el, stanza.AsError(err))
		return
	}
	if reply == nil {
		return // the handler answered asynchronously
	}
	reply.SetAttr("id", el.ID())
	reply.SetAttr("to", from.String())
	if el.To() != "" {
		reply.SetAttr("from", el.To())
	} else {
		reply.SetAttr("from", "")
	}
	r.deliverDirect(ctx, from, reply)
}

// callIQ runs a handler, turning a panic into internal-server-error so a bug
// in one module answers one iq with an error instead of ending the session.
func (r *Router) callIQ(ctx context.Context, h IQHandler, from, to jid.JID, el *stanza.Element) (reply *stanza.Element, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("router: iq handler panic", "ns", firstElement(el).NS, "panic", p)
			reply, err = nil, stanza.ErrInternalServerError
		}
	}()
	return h(ctx, from, to, el)
}

func firstElement(el *stanza.Element) *stanza.Element {
	for _, c := range el.Children {
		if c.Name != "" {
			return c
		}
	}
	return nil
}
