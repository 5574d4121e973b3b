// Package version answers Software Version (XEP-0092) for the server.
package version

import (
	"context"
	"runtime"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NS is the XEP-0092 namespace.
const NS = "jabber:iq:version"

// Register installs the handler; name and version are what the server reports.
func Register(r *router.Router, name, version string) {
	r.HandleServerIQ(NS, func(_ context.Context, _, _ jid.JID, iq *stanza.Element) (*stanza.Element, error) {
		if iq.Type() != "get" {
			return nil, stanza.ErrBadRequest
		}
		q := stanza.New("query", NS).
			Append(stanza.New("name", NS).AppendText(name)).
			Append(stanza.New("version", NS).AppendText(version)).
			Append(stanza.New("os", NS).AppendText(runtime.GOOS))
		return stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(q), nil
	})
}
