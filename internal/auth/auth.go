// Package auth is client login: SASL mechanisms over the account store, and
// throttling of failed logins per address and per account so that password
// guessing is slow and cheap for the server to refuse.
package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
)

// Config configures an Authenticator.
type Config struct {
	Domain   string
	Accounts store.Accounts
	// Secret keys the fake salts shown for unknown users; keep it stable.
	Secret []byte
	// FailuresPerIP and FailuresPerAccount are the failed logins allowed per
	// Window before further attempts are refused with
	// temporary-auth-failure. Zero disables that limit.
	FailuresPerIP      int
	FailuresPerAccount int
	Window             time.Duration
	Now                func() time.Time
}

// Authenticator implements c2s.Authenticator.
type Authenticator struct {
	cfg   Config
	ips   *Throttle
	accts *Throttle
}

// New returns an Authenticator.
func New(cfg Config) *Authenticator {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authenticator{
		cfg:   cfg,
		ips:   NewThrottle(cfg.FailuresPerIP, cfg.Window, cfg.Now),
		accts: NewThrottle(cfg.FailuresPerAccount, cfg.Window, cfg.Now),
	}
}

func (a *Authenticator) serverConfig(cs *tls.ConnectionState, attempt *mech) sasl.ServerConfig {
	return sasl.ServerConfig{
		Lookup: func(h sasl.Hash, username string) (store.SCRAM, error) {
			attempt.tried = username
			if a.accts.Blocked(username) {
				return store.SCRAM{}, &sasl.Failure{Condition: sasl.TemporaryAuthFailure, Text: "too many failed logins; try again later"}
			}
			acc, err := a.cfg.Accounts.GetAccount(context.Background(), username)
			if err != nil {
				return store.SCRAM{}, err
			}
			if h == sasl.SHA1 {
				return acc.SHA1, nil
			}
			return acc.SHA256, nil
		},
		Normalize: func(u string) (string, error) {
			j, err := jid.New(u, a.cfg.Domain, "")
			if err != nil {
				return "", err
			}
			return j.Local(), nil
		},
		Domain:         a.cfg.Domain,
		AllowPLAIN:     cs != nil,
		FakeSaltSecret: a.cfg.Secret,
	}
}

// Mechanisms lists what is offered: SCRAM always, PLAIN only under TLS.
func (a *Authenticator) Mechanisms(cs *tls.ConnectionState) []string {
	return a.serverConfig(cs, &mech{}).Mechanisms()
}

// mech wraps a sasl server mechanism to remember which account was tried.
type mech struct {
	sasl.ServerMech
	tried string
}

// Start begins an exchange, unless the address is throttled.
func (a *Authenticator) Start(name, ip string, cs *tls.ConnectionState) (c2s.Mech, error) {
	if a.ips.Blocked(ip) {
		return nil, &sasl.Failure{Condition: sasl.TemporaryAuthFailure, Text: "too many failed logins; try again later"}
	}
	m := &mech{}
	sm, err := sasl.NewServer(name, a.serverConfig(cs, m))
	if err != nil {
		return nil, err
	}
	m.ServerMech = sm
	return m, nil
}

// Failed records a failed login from ip (m is nil when the exchange never started).
func (a *Authenticator) Failed(ip string, m c2s.Mech) {
	a.ips.Add(ip)
	if mm, ok := m.(*mech); ok && mm.tried != "" {
		a.accts.Add(mm.tried)
	}
}

// Condition maps an error to its RFC 6120 §6.5 condition.
func (a *Authenticator) Condition(err error) (string, string) {
	var f *sasl.Failure
	if errors.As(err, &f) {
		return f.Condition, f.Text
	}
	return sasl.TemporaryAuthFailure, ""
}

// Throttle counts events per key in fixed windows. Its memory is bounded:
// past maxKeys, expired keys are dropped and, if none are, new keys are
// counted as blocked (an attacker spraying keys cannot grow it).
type Throttle struct {
	limit     int
	window    time.Duration
	now       func() time.Time
	mu        sync.Mutex
	keys      map[string]*window
	lastSweep time.Time
}

type window struct {
	start time.Time
	n     int
}

const maxKeys = 100_000

// NewThrottle returns a throttle allowing limit events per window (0: never blocks).
func NewThrottle(limit int, w time.Duration, now func() time.Time) *Throttle {
	return &Throttle{limit: limit, window: w, now: now, keys: map[string]*window{}}
}

// Blocked reports whether key has reached the limit in its current window.
func (t *Throttle) Blocked(key string) bool {
	if t.limit <= 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.keys[key]
	if w == nil {
		// Full: an unknown key may be part of a spray; refuse rather than
		// stop counting.
		return len(t.keys) >= maxKeys
	}
	if t.now().Sub(w.start) >= t.window {
		delete(t.keys, key)
		return false
	}
	return w.n >= t.limit
}

// Add counts one event for key.
func (t *Throttle) Add(key string) {
	if t.limit <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	w := t.keys[key]
	if w == nil || now.Sub(w.start) >= t.window {
		if w == nil && len(t.keys) >= maxKeys {
			// Sweep expired keys at most a few times per window, so a
			// full map does not make every Add a full scan.
			if now.Sub(t.lastSweep) >= t.window/4 {
				t.lastSweep = now
				for k, o := range t.keys {
					if now.Sub(o.start) >= t.window {
						delete(t.keys, k)
					}
				}
			}
			if len(t.keys) >= maxKeys {
				return
			}
		}
		w = &window{start: now}
		t.keys[key] = w
	}
	w.n++
}
