// Package vcard stores and serves vcard-temp (XEP-0054): a user sets its own
// vCard; anyone on the server may read it.
package vcard

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NS is the vcard-temp namespace.
const NS = "vcard-temp"

// MaxSize bounds a stored vCard (avatars inline make them large).
const MaxSize = 128 << 10

// Codec serialises the vCard element for storage.
type Codec interface {
	Marshal(el *stanza.Element) []byte
	Unmarshal(b []byte) (*stanza.Element, error)
}

// Register installs the handlers.
func Register(r *router.Router, st store.VCards, codec Codec) {
	h := func(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
		v := iq.Child("vCard", NS)
		if v == nil {
			return nil, stanza.ErrBadRequest
		}
		owner := to.Local()
		if owner == "" {
			owner = from.Local() // to the server: the user's own vCard
		}
		res := stanza.New("iq", stanza.NSClient).SetAttr("type", "result")
		if iq.Type() == "set" {
			if owner != from.Local() {
				return nil, stanza.ErrForbidden
			}
			b := codec.Marshal(v)
			if len(b) > MaxSize {
				return nil, stanza.ErrNotAcceptable.WithText("vCard too large")
			}
			if err := st.PutVCard(ctx, owner, b); err != nil {
				return nil, fmt.Errorf("vcard set %s: %w", owner, err)
			}
			return res, nil
		}
		b, err := st.GetVCard(ctx, owner)
		if errors.Is(err, store.ErrNotFound) {
			// XEP-0054 §3.1: an empty vCard when none is stored.
			return res.Append(stanza.New("vCard", NS)), nil
		}
		if err != nil {
			return nil, fmt.Errorf("vcard get %s: %w", owner, err)
		}
		el, err := codec.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("vcard decode %s: %w", owner, err)
		}
		return res.Append(el), nil
	}
	r.HandleUserIQ(NS, h)
	r.HandleServerIQ(NS, h)
}
