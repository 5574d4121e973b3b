// Package ping answers XMPP Ping (XEP-0199) addressed to the server or to
// the client's own account.
package ping

import (
	"context"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NS is the XEP-0199 namespace.
const NS = "urn:xmpp:ping"

// Register installs the ping handlers.
func Register(r *router.Router) {
	r.HandleServerIQ(NS, handle)
	r.HandleUserIQ(NS, handle)
}

func handle(_ context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if iq.Type() != "get" {
		return nil, stanza.ErrBadRequest
	}
	if to.Local() != "" && to.Local() != from.Local() {
		// Pinging someone else's bare JID: the account answers only for itself.
		return nil, stanza.ErrServiceUnavailable
	}
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result"), nil
}
