// Package server is the composition root: it builds the store, router,
// protocol modules, sessions and listeners from a config, and owns start and
// graceful stop. Nothing below it knows how the pieces are wired.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/auth"
	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/certs"
	"github.com/parley-im/parley/internal/config"
	"github.com/parley-im/parley/internal/im/blocking"
	"github.com/parley-im/parley/internal/im/caps"
	"github.com/parley-im/parley/internal/im/carbons"
	"github.com/parley-im/parley/internal/im/disco"
	"github.com/parley-im/parley/internal/im/mam"
	"github.com/parley-im/parley/internal/im/muc"
	"github.com/parley-im/parley/internal/im/pep"
	"github.com/parley-im/parley/internal/im/ping"
	"github.com/parley-im/parley/internal/im/register"
	"github.com/parley-im/parley/internal/im/roster"
	"github.com/parley-im/parley/internal/im/vcard"
	"github.com/parley-im/parley/internal/im/version"
	"github.com/parley-im/parley/internal/listener"
	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlcodec"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/jid"
)

// Name is what the server calls itself (XEP-0092, disco identity).
const Name = "Parley"

// Version is set at build time (-ldflags "-X …server.Version=…").
var Version = "0.1.0-dev"

// ALPN protocol identifiers on the direct-TLS port.
const (
	ALPNXMPP   = "xmpp-client"
	ALPNBinary = "parley-bin/1"
)

// Server is a running Parley node.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	store    *pebble.Store
	router   *router.Router
	blocking *blocking.Module
	mam      *mam.Module
	caps     *caps.Cache
	muc      *muc.Service // nil when group chat is off
	tracker  *listener.Tracker
	c2s      *listener.Listener
	c2sTLS   *listener.Listener
	http     *http.Server
	httpLn   net.Listener
	sessCfg  *c2s.Config
	metrics  *c2s.Metrics
	prom     *promMetrics
	stopJobs chan struct{}
	jobs     sync.WaitGroup
	ready    atomic.Bool
	started  time.Time
}

// New builds a server from a validated config: data directory, store,
// certificate and listeners. It binds the ports but accepts nothing until Start.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log, tracker: listener.NewTracker(), metrics: &c2s.Metrics{}, prom: newPromMetrics(), stopJobs: make(chan struct{})}
	s.metrics.ObserveRoute = s.prom.observeRoute
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.Data, err)
	}
	ok := false
	defer func() {
		if !ok {
			s.closeAll()
		}
	}()

	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken == "" {
		if _, _, err := certs.EnsureAdminToken(cfg.Data); err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
	}
	secret, err := ensureSecret(cfg.Data)
	if err != nil {
		return nil, err
	}

	st, err := pebble.Open(filepath.Join(cfg.Data, "store"), pebble.Options{
		Durability: cfg.Durability, Logger: log, DisableQueueJournal: !cfg.QueueJournal,
		ObserveJournalSync: s.prom.observeJournalSync,
	})
	if err != nil {
		if errors.Is(err, pebble.ErrLocked) {
			return nil, fmt.Errorf("the data directory %s is in use by another Parley process: %w", cfg.Data, err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.store = st

	codec := xmlstream.NewStorage(cfg.MaxStanzaSize)
	r, err := router.New(router.Config{
		Domain:             cfg.Domain,
		Store:              st,
		Codec:              codec,
		Logger:             log,
		MaxOfflineMessages: cfg.MaxOfflineMessages,
		OfflineExpiry:      cfg.OfflineExpiry,
		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
		ObserveEnqueue:     s.prom.observeEnqueue,
	})
	if err != nil {
		return nil, err
	}
	s.router = r

	// Protocol modules.
	ros := roster.New(st, r, log)
	d := disco.New(r, Name)
	ping.Register(r)
	version.Register(r, Name, Version)
	vcard.Register(r, st, codec)
	reg := register.New(st, r, cfg.Domain, cfg.AllowRegistration, log)
	d.AddServerFeature(ping.NS, version.NS, vcard.NS, "urn:xmpp:sid:0", "msgoffline")
	d.AddAccountFeature(ping.NS, vcard.NS)
	carbons.Register(r)
	d.AddServerFeature(carbons.NS)
	d.AddAccountFeature(carbons.NS)
	if cfg.AllowRegistration {
		d.AddServerFeature(register.NS)
	}
	blk, err := blocking.New(blocking.Config{Store: st, Router: r, Presence: ros.SendPresence, Logger: log})
	if err != nil {
		return nil, err
	}
	s.blocking = blk
	ros.SetBlocker(blk)
	r.OnUnbind(blk.SessionEnded)
	reg.OnRemove(func(_ context.Context, user string) { blk.Forget(user) })
	d.AddServerFeature(blocking.NS)
	d.AddAccountFeature(blocking.NS)

	// History and end-to-end keys for several devices (XEP-0313, XEP-0163).
	s.mam = mam.New(mam.Config{Archive: st, Roster: st, Router: r, Codec: codec, Logger: log, Retention: cfg.ArchiveRetention})
	if s.mam.Enabled() {
		r.SetArchiver(s.mam)
		d.AddAccountFeature(s.mam.Features()...)
	}
	reg.OnRemove(func(_ context.Context, user string) { s.mam.Forget(user) })
	s.caps = caps.New(caps.Config{Sender: r, Logger: log})
	pepSvc, err := pep.New(pep.Config{Store: st, Router: r, Codec: codec, Caps: s.caps, Logger: log})
	if err != nil {
		return nil, err
	}
	d.AddAccountFeature(pep.AccountFeatures()...)
	d.AddAccountIdentity(disco.Identity{Category: pep.IdentityCategory, Type: pep.IdentityType})
	r.OnUnbind(pepSvc.SessionEnded)

	// Group chat (XEP-0045) at conference.<domain>.
	if m := cfg.MUC(); m != "" {
		mcfg := muc.Config{
			Domain: m, ServerDomain: cfg.Domain, Router: r, Store: st, Codec: codec, Logger: log,
			MaxRooms: cfg.MUCMaxRooms, MaxOccupantsPerRoom: cfg.MUCMaxOccupants,
		}
		if cfg.ArchiveRetention == 0 {
			// With the archive off, rooms do not archive either (room
			// history on join then lasts as long as the room's goroutine).
			def := muc.DefaultRoomConfig()
			def.Logging = false
			mcfg.Defaults = &def
		}
		if s.muc, err = muc.New(mcfg); err != nil {
			return nil, fmt.Errorf("group chat: %w", err)
		}
		if err := s.muc.Start(context.Background()); err != nil {
			return nil, fmt.Errorf("group chat: %w", err)
		}
		r.HandleDomain(s.muc.Domain().String(), s.muc.Handle)
		mucSvc := s.muc
		r.OnUnbind(func(full jid.JID) { mucSvc.SessionEnded(context.Background(), full) })
		_, _, name := s.muc.Identity()
		d.AddItem(disco.Item{JID: s.muc.Domain().String(), Name: name})
		reg.OnRemove(func(ctx context.Context, user string) { s.forgetInRooms(ctx, user) })
	}

	s.sessCfg = &c2s.Config{
		Domain:            cfg.Domain,
		TLS:               tlsCfg,
		StartTLSRequired:  cfg.StartTLSRequired,
		AllowRegistration: cfg.AllowRegistration,
		Router:            r,
		Auth: auth.New(auth.Config{
			Domain:             cfg.Domain,
			Accounts:           st,
			Secret:             secret,
			FailuresPerIP:      cfg.LoginRatePerIP,
			FailuresPerAccount: cfg.LoginRatePerIP,
			Window:             time.Minute,
		}),
		Presence:    presenceChain{Module: ros, pep: pepSvc},
		Logger:      log,
		MaxOutBytes: 4 << 20,
		StanzaRate:  float64(cfg.StanzaRate),
		StanzaBurst: float64(cfg.StanzaBurst),
		Metrics:     s.metrics,
	}
	if cfg.ResumeTimeout > 0 {
		s.sessCfg.Resume = c2s.NewResumer(cfg.ResumeTimeout, 100_000)
	}
	if cfg.AllowRegistration {
		s.sessCfg.Register = reg
	}

	lcfg := listener.Config{
		MaxConnections:   cfg.MaxConnections,
		MaxConnectionsIP: cfg.MaxConnectionsPerIP,
		IdleTimeout:      cfg.IdleTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		Logger:           log,
		Tracker:          s.tracker,
	}
	plain := lcfg
	plain.Addr = cfg.C2S
	plain.NewSession = s.newSession
	if s.c2s, err = listener.Listen(plain); err != nil {
		return nil, err
	}
	direct := lcfg
	direct.Addr = cfg.C2STLS
	direct.TLS = tlsCfg.Clone()
	direct.TLS.NextProtos = []string{ALPNXMPP, ALPNBinary}
	direct.NewSession = s.newSession
	if s.c2sTLS, err = listener.Listen(direct); err != nil {
		return nil, err
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTP); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTP, err)
	}
	s.http = &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ok = true
	return s, nil
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	certFile, keyFile := s.cfg.TLSCert, s.cfg.TLSKey
	if certFile == "" {
		var created bool
		var err error
		certFile, keyFile, created, err = certs.EnsureSelfSigned(s.cfg.Data, s.cfg.Domain)
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		if created {
			s.log.Info("generated a self-signed certificate", "cert", certFile, "domain", s.cfg.Domain)
		}
	}
	cert, err := certs.Load(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return certs.ServerTLSConfig(cert), nil
}

// ensureSecret keeps the server secret (fake SCRAM salts) stable across
// restarts, so probing for accounts sees the same salt every time.
func ensureSecret(dir string) ([]byte, error) {
	p := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(p); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	return b, nil
}

func (s *Server) newSession(c *listener.Conn, alpn string) (listener.Session, error) {
	switch alpn {
	case "", ALPNXMPP:
		return c2s.New(s.sessCfg, c, xmlcodec.New(s.cfg.MaxStanzaSize)), nil
	case ALPNBinary:
		return c2s.New(s.sessCfg, c, newBinCodec(s.cfg.MaxStanzaSize)), nil
	}
	return nil, fmt.Errorf("unsupported ALPN protocol %q", alpn)
}

// Addrs returns the bound addresses.
func (s *Server) Addrs() (c2sAddr, c2sTLS, httpAddr string) {
	return s.c2s.Addr().String(), s.c2sTLS.Addr().String(), s.httpLn.Addr().String()
}

// Router exposes the router (tests, admin).
func (s *Server) Router() *router.Router { return s.router }

// Start begins accepting and runs background jobs.
func (s *Server) Start() {
	s.started = time.Now() // before any goroutine may read it
	go s.c2s.Serve()
	go s.c2sTLS.Serve()
	go func() {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	s.jobs.Add(1)
	go s.expireLoop()
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		ReturnMemoryWhenIdle(s.stopJobs, 10*time.Second, s.log)
	}()
	s.ready.Store(true)
	if err := s.writeRunFile(); err != nil {
		s.log.Warn("cannot write the run file; parley user commands will not find this server", "err", err)
	}
	c, t, h := s.Addrs()
	s.log.Info("listening", "c2s", c, "c2s_tls", t, "http", h, "domain", s.cfg.Domain, "data", s.cfg.Data, "version", Version)
}

// expireLoop deletes expired queued messages; one timer for the server.
func (s *Server) expireLoop() {
	defer s.jobs.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.store.Expire(context.Background(), time.Now()); err != nil {
			s.log.Error("offline expiry", "err", err)
		} else if n > 0 {
			s.log.Info("offline messages expired", "count", n)
		}
		if s.mam.Enabled() {
			if n, err := s.mam.Expire(context.Background(), time.Now()); err != nil {
				s.log.Error("archive expiry", "err", err)
			} else if n > 0 {
				s.log.Info("archived messages expired", "count", n)
			}
		}
		select {
		case <-s.stopJobs:
			return
		case <-t.C:
		}
	}
}

// Shutdown stops accepting, asks sessions to end (system-shutdown), waits
// for them up to the configured timeout, then flushes and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.removeRunFile()
	_ = s.c2s.Close()
	_ = s.c2sTLS.Close()
	drainErr := s.tracker.Drain(ctx)
	if drainErr != nil {
		s.log.Warn("shutdown: drain incomplete", "err", drainErr)
	}
	_ = s.http.Shutdown(ctx)
	close(s.stopJobs)
	s.jobs.Wait()
	if s.muc != nil {
		s.muc.Close() // before the router and the store: rooms save on the way out
	}
	s.caps.Close()
	s.router.Close()
	err := s.store.Close()
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// closeAll releases what New opened when it fails halfway.
func (s *Server) closeAll() {
	if s.c2s != nil {
		_ = s.c2s.Close()
	}
	if s.c2sTLS != nil {
		_ = s.c2sTLS.Close()
	}
	if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	if s.muc != nil {
		s.muc.Close()
	}
	if s.caps != nil {
		s.caps.Close()
	}
	if s.router != nil {
		s.router.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
}

// forgetInRooms removes a deleted account's room affiliations, so a later
// account of the same name inherits no ownership, membership or ban.
func (s *Server) forgetInRooms(ctx context.Context, user string) {
	if s.muc == nil {
		return
	}
	bare, err := jid.New(user, s.cfg.Domain, "")
	if err != nil {
		return
	}
	if err := s.muc.ForgetUser(ctx, bare); err != nil {
		s.log.Error("group chat: forget deleted account", "user", user, "err", err)
	}
}
