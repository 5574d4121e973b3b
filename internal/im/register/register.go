// Package register is in-band registration (XEP-0077): account creation
// before authentication when the operator allows it, and password change and
// account removal for authenticated users (always available).
package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// NS is the XEP-0077 namespace.
const NS = "jabber:iq:register"

// Limits on registration.
const (
	maxPasswordLen = 1024
	minPasswordLen = 1
	// perIPInterval is the minimum time between two registrations from one
	// address: account creation costs PBKDF2 work and storage.
	perIPInterval = 10 * time.Second
	maxTrackedIPs = 10000
)

// Module handles jabber:iq:register.
type Module struct {
	store  store.Accounts
	router *router.Router
	domain string
	open   bool
	log    *slog.Logger

	mu   sync.Mutex
	last map[string]time.Time // last registration per IP
	now  func() time.Time

	// onRemove are told of each account a user removed (XEP-0077 §3.2), so
	// other modules drop what they hold for it.
	onRemove []func(ctx context.Context, user string)
}

// OnRemove registers f to run after a user removed their own account.
// Register before the server starts.
func (m *Module) OnRemove(f func(ctx context.Context, user string)) {
	m.onRemove = append(m.onRemove, f)
}

// New creates the module; open enables account creation by anyone. It
// registers the authenticated-user handler (password change, removal).
func New(st store.Accounts, r *router.Router, domain string, open bool, log *slog.Logger) *Module {
	if log == nil {
		log = slog.Default()
	}
	m := &Module{store: st, router: r, domain: domain, open: open, log: log, last: map[string]time.Time{}, now: time.Now}
	r.HandleServerIQ(NS, m.handleAuthed)
	r.HandleUserIQ(NS, m.handleAuthed)
	return m
}

func form(instructions string) *stanza.Element {
	return stanza.New("query", NS).
		Append(stanza.New("instructions", NS).AppendText(instructions)).
		Append(stanza.New("username", NS)).
		Append(stanza.New("password", NS))
}

func result() *stanza.Element { return stanza.New("iq", stanza.NSClient).SetAttr("type", "result") }

// HandleIQ answers registration iqs on an unauthenticated stream
// (c2s.Registration).
func (m *Module) HandleIQ(ctx context.Context, ip string, iq *stanza.Element) *stanza.Element {
	reply, err := m.unauthed(ctx, ip, iq)
	if err != nil {
		r := stanza.ErrorReply(iq, stanza.AsError(err))
		if r != nil {
			r.SetAttr("to", "")
			r.SetAttr("from", "")
		}
		return r
	}
	reply.SetAttr("id", iq.ID())
	return reply
}

func (m *Module) unauthed(ctx context.Context, ip string, iq *stanza.Element) (*stanza.Element, error) {
	if !m.open {
		return nil, stanza.ErrServiceUnavailable
	}
	q := iq.Child("query", NS)
	if q == nil {
		return nil, stanza.ErrBadRequest
	}
	switch iq.Type() {
	case "get":
		return result().Append(form("Choose a username and password for use with this service.")), nil
	case "set":
	default:
		return nil, stanza.ErrBadRequest
	}
	if q.Child("remove", NS) != nil {
		return nil, stanza.ErrNotAuthorized
	}
	user, pass, err := m.fields(q)
	if err != nil {
		return nil, err
	}
	if !m.allow(ip) {
		return nil, stanza.ErrResourceConstraint.WithText("too many registrations from this address; try again later")
	}
	sha1, sha256, err := sasl.NewCredentials(pass)
	if err != nil {
		return nil, stanza.ErrNotAcceptable.WithText("unacceptable password")
	}
	err = m.store.CreateAccount(ctx, store.Account{Username: user, Created: m.now(), SHA1: sha1, SHA256: sha256})
	if errors.Is(err, store.ErrExists) {
		return nil, stanza.ErrConflict.WithText("that username is taken")
	}
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", user, err)
	}
	m.log.Info("register: account created", "user", user, "ip", ip)
	return result(), nil
}

// fields validates username and password of a registration form.
func (m *Module) fields(q *stanza.Element) (user, pass string, err error) {
	rawUser := q.ChildText("username", NS)
	pass = q.ChildText("password", NS)
	if rawUser == "" || pass == "" {
		return "", "", stanza.ErrNotAcceptable.WithText("username and password are required")
	}
	if len(pass) < minPasswordLen || len(pass) > maxPasswordLen {
		return "", "", stanza.ErrNotAcceptable.WithText("password length out of range")
	}
	j, err := jid.New(rawUser, m.domain, "")
	if err != nil {
		return "", "", stanza.ErrJIDMalformed.WithText("invalid username")
	}
	return j.Local(), pass, nil
}

// allow rate-limits registrations per address.
func (m *Module) allow(ip string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if t, ok := m.last[ip]; ok && now.Sub(t) < perIPInterval {
		return false
	}
	if len(m.last) >= maxTrackedIPs {
		for k, t := range m.last {
			if now.Sub(t) >= perIPInterval {
				delete(m.last, k)
			}
		}
		if len(m.last) >= maxTrackedIPs {
			return false
		}
	}
	m.last[ip] = now
	return true
}

// handleAuthed serves an authenticated user: the form, password change
// (XEP-0077 §3.3) and account removal (§3.2).
func (m *Module) handleAuthed(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	if to.Local() != "" && to.Local() != from.Local() {
		return nil, stanza.ErrForbidden
	}
	q := iq.Child("query", NS)
	if q == nil {
		return nil, stanza.ErrBadRequest
	}
	user := from.Local()
	if iq.Type() == "get" {
		f := stanza.New("query", NS).
			Append(stanza.New("registered", NS)).
			Append(stanza.New("username", NS).AppendText(user)).
			Append(stanza.New("password", NS))
		return result().Append(f), nil
	}
	if q.Child("remove", NS) != nil {
		if err := m.store.DeleteAccount(ctx, user); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("unregister %s: %w", user, err)
		}
		m.log.Info("register: account removed", "user", user)
		for _, f := range m.onRemove {
			f(ctx, user)
		}
		// The reply goes out before the sessions close (XEP-0077 §3.2).
		m.router.DeliverTo(ctx, from, result().SetAttr("id", iq.ID()).SetAttr("to", from.String()))
		for _, s := range m.router.Sessions(user) {
			s.Kick(stanza.NewStreamError(stanza.StreamNotAuthorized, "account removed"))
		}
		return nil, nil
	}
	u, pass, err := m.fields(q)
	if err != nil {
		return nil, err
	}
	if u != user {
		return nil, stanza.ErrNotAuthorized.WithText("you can only change your own password")
	}
	sha1, sha256, err := sasl.NewCredentials(pass)
	if err != nil {
		return nil, stanza.ErrNotAcceptable.WithText("unacceptable password")
	}
	if err := m.store.SetCredentials(ctx, user, sha1, sha256); err != nil {
		return nil, fmt.Errorf("password change %s: %w", user, err)
	}
	m.log.Info("register: password changed", "user", user)
	return result(), nil
}
