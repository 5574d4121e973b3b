// Package carbons lets a client session turn Message Carbons (XEP-0280) on
// and off. The copying itself happens in the router, which owns delivery;
// the state is per session and ends with it.
package carbons

import (
	"context"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NS is the XEP-0280 namespace, also the disco feature.
const NS = router.NSCarbons

// Register installs the enable/disable handlers for iqs to the server and to
// the user's own bare JID (or with no 'to').
func Register(r *router.Router) {
	h := func(_ context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
		return handle(r, from, to, iq)
	}
	r.HandleServerIQ(NS, h)
	r.HandleUserIQ(NS, h)
}

func handle(r *router.Router, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if to.Local() != "" && to.Local() != from.Local() {
		// XEP-0280 §5: one cannot toggle another account's carbons.
		return nil, stanza.ErrNotAllowed
	}
	if iq.Type() != "set" {
		return nil, stanza.ErrBadRequest
	}
	var on bool
	switch {
	case iq.Child("enable", NS) != nil:
		on = true
	case iq.Child("disable", NS) != nil:
	default:
		return nil, stanza.ErrBadRequest
	}
	if from.Local() == "" || from.Resource() == "" || !r.IsLocal(from) || !r.SetCarbons(from, on) {
		// XEP-0280 §4.1: not a client hosted here (or no longer bound).
		return nil, stanza.ErrNotAllowed
	}
	// Repeated enable or disable requests are not errors (§10.1).
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result"), nil
}
