package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/certs"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/web"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// How the admin API's statistics are gathered.
const (
	// rateInterval is the stats sampler's period: the stanza rates are the
	// counter deltas over the last complete interval.
	rateInterval = 5 * time.Second
	// slowStatsTTL is how long the expensive figures (store size on disk:
	// a directory walk; account count: a key scan) are reused.
	slowStatsTTL = 10 * time.Second
)

// apiHandler serves the admin REST API (/api/) over the store and router.
// It also starts the stats sampler, one goroutine that Shutdown stops with
// the other background jobs.
func (s *Server) apiHandler() http.Handler {
	token := s.cfg.AdminToken
	if token == "" {
		// New has ensured the generated token exists; this only reads it.
		t, _, err := certs.EnsureAdminToken(s.cfg.Data)
		if err != nil {
			s.log.Error("admin API disabled: cannot read the admin token", "err", err)
		}
		token = t
	}
	a := &admin{s: s, started: time.Now()}
	a.prev = a.sample()
	s.jobs.Add(1)
	go a.sampleLoop()
	return web.API(web.APIConfig{
		Token:  token,
		Domain: s.cfg.Domain,
		Admin:  a,
		Logger: s.log,
	})
}

// admin implements web.Admin.
type admin struct {
	s       *Server
	started time.Time

	rateMu sync.Mutex
	prev   rateSample  // the older of the two last samples
	last   *rateSample // nil until the first interval has passed

	slowMu     sync.Mutex // held while computing: one walk at a time
	slowAt     time.Time
	storeBytes int64
	accounts   int
}

type rateSample struct {
	at      time.Time
	in, out int64
}

func (a *admin) sample() rateSample {
	m := a.s.metrics
	return rateSample{at: time.Now(), in: m.StanzasIn.Load(), out: m.StanzasOut.Load()}
}

func (a *admin) sampleLoop() {
	defer a.s.jobs.Done()
	t := time.NewTicker(rateInterval)
	defer t.Stop()
	for {
		select {
		case <-a.s.stopJobs:
			return
		case <-t.C:
		}
		cur := a.sample()
		a.rateMu.Lock()
		if a.last != nil {
			a.prev = *a.last
		}
		a.last = &cur
		a.rateMu.Unlock()
	}
}

// rates returns the stanza rates over the last complete sampling interval,
// or, before one has completed, since the server was built.
func (a *admin) rates() (in, out, window float64) {
	a.rateMu.Lock()
	from := a.prev
	var to rateSample
	if a.last != nil {
		to = *a.last
	}
	a.rateMu.Unlock()
	if to.at.IsZero() {
		to = a.sample()
	}
	dt := to.at.Sub(from.at).Seconds()
	if dt <= 0 {
		return 0, 0, 0
	}
	return float64(to.in-from.in) / dt, float64(to.out-from.out) / dt, dt
}

func notFound(user string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("user %s: %w", user, web.ErrNotFound)
	}
	return err
}

func (a *admin) ListUsers(ctx context.Context, after string, limit int) ([]string, error) {
	return a.s.store.ListAccounts(ctx, after, limit)
}

func (a *admin) user(acct store.Account) web.User {
	u := web.User{Username: acct.Username, Exists: true, Created: acct.Created.UTC()}
	if j, err := jid.New(acct.Username, a.s.cfg.Domain, ""); err == nil {
		u.JID = j.String()
	}
	return u
}

func (a *admin) GetUser(ctx context.Context, username string) (web.User, error) {
	acct, err := a.s.store.GetAccount(ctx, username)
	if err != nil {
		return web.User{}, notFound(username, err)
	}
	return a.user(acct), nil
}

// credentials derives the SCRAM credentials like `parley user` does.
func credentials(password string) (sha1, sha256 store.SCRAM, err error) {
	sha1, sha256, err = sasl.NewCredentials(password)
	if err != nil {
		// crypto/rand does not fail: this is the password being refused
		// by PRECIS OpaqueString.
		return sha1, sha256, web.BadInput("password not acceptable: %v", err)
	}
	return sha1, sha256, nil
}

func (a *admin) CreateUser(ctx context.Context, username, password string) (web.User, error) {
	sha1, sha256, err := credentials(password)
	if err != nil {
		return web.User{}, err
	}
	acct := store.Account{Username: username, Created: time.Now(), SHA1: sha1, SHA256: sha256}
	if err := a.s.store.CreateAccount(ctx, acct); err != nil {
		if errors.Is(err, store.ErrExists) {
			return web.User{}, fmt.Errorf("user %s: %w", username, web.ErrExists)
		}
		return web.User{}, err
	}
	return a.user(acct), nil
}

func (a *admin) DeleteUser(ctx context.Context, username string) error {
	if _, err := a.s.store.GetAccount(ctx, username); err != nil {
		return notFound(username, err)
	}
	a.s.forgetInRooms(ctx, username)
	if err := a.s.store.DeleteAccount(ctx, username); err != nil {
		return notFound(username, err)
	}
	a.s.blocking.Forget(username)
	a.s.mam.Forget(username)
	// After the delete, so the client cannot log in again.
	kick(a.s.router.Sessions(username), "the account was deleted by an administrator")
	return nil
}

func (a *admin) SetPassword(ctx context.Context, username, password string) error {
	sha1, sha256, err := credentials(password)
	if err != nil {
		return err
	}
	return notFound(username, a.s.store.SetCredentials(ctx, username, sha1, sha256))
}

// boundSince is implemented by sessions that know when they were bound.
type boundSince interface{ BoundSince() time.Time }

func (a *admin) Sessions(_ context.Context, user string) ([]web.Session, error) {
	var list []web.Session
	add := func(rs router.Session) {
		ws := web.Session{JID: rs.JID().String(), Available: rs.Available(), Priority: rs.Priority()}
		if cs, ok := rs.(*c2s.Session); ok {
			info := cs.AdminInfo()
			ws.Transport, ws.RemoteIP, ws.Secure, ws.Detached = info.Transport, info.RemoteIP, info.Secure, info.Detached
		}
		if b, ok := rs.(boundSince); ok {
			ws.BoundSince = b.BoundSince().UTC()
		}
		list = append(list, ws)
	}
	if user != "" {
		for _, rs := range a.s.router.Sessions(user) {
			add(rs)
		}
	} else {
		a.s.router.AllSessions(add)
	}
	return list, nil
}

func (a *admin) Kick(_ context.Context, target jid.JID) (int, error) {
	var victims []router.Session
	if target.Resource() != "" {
		if rs := a.s.router.Session(target); rs != nil {
			victims = append(victims, rs)
		}
	} else {
		victims = a.s.router.Sessions(target.Local())
	}
	kick(victims, "kicked by an administrator")
	return len(victims), nil
}

// kick ends sessions with a policy-violation stream error.
func kick(sessions []router.Session, text string) {
	for _, rs := range sessions {
		rs.Kick(stanza.NewStreamError(stanza.StreamPolicyViolation, text))
	}
}

func (a *admin) Stats(ctx context.Context) (web.Stats, error) {
	storeBytes, accounts, err := a.slowStats(ctx)
	if err != nil {
		return web.Stats{}, err
	}
	m := a.s.metrics
	in, out, window := a.rates()
	return web.Stats{
		Version:           Version,
		Started:           a.started.UTC(),
		UptimeSeconds:     time.Since(a.started).Seconds(),
		Sessions:          a.s.router.SessionCount(),
		Connections:       a.s.tracker.Count(),
		Accounts:          accounts,
		StanzasIn:         m.StanzasIn.Load(),
		StanzasOut:        m.StanzasOut.Load(),
		StanzasInRate:     in,
		StanzasOutRate:    out,
		RateWindowSeconds: window,
		QueueDepth:        a.s.store.QueueTotal(),
		StoreBytes:        storeBytes,
	}, nil
}

// slowStats returns the store's size on disk and the account count,
// recomputed at most every slowStatsTTL.
func (a *admin) slowStats(ctx context.Context) (int64, int, error) {
	a.slowMu.Lock()
	defer a.slowMu.Unlock()
	if !a.slowAt.IsZero() && time.Since(a.slowAt) < slowStatsTTL {
		return a.storeBytes, a.accounts, nil
	}
	n, err := a.s.store.CountAccounts(ctx)
	if err != nil {
		return 0, 0, err
	}
	a.storeBytes, a.accounts, a.slowAt = dirSize(filepath.Join(a.s.cfg.Data, "store")), n, time.Now()
	return a.storeBytes, a.accounts, nil
}

// dirSize sums the sizes of the regular files under dir. Files that vanish
// during the walk (compactions) are skipped.
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: count what we can
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
