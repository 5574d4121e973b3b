package listener

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wait bounds every wait so a broken test fails instead of hanging; no
// assertion depends on how long anything takes.
const wait = 10 * time.Second

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeSession records what the listener does with it.
type fakeSession struct {
	c        *Conn
	ip       string
	authed   atomic.Bool
	panicOn  string // Feed panics when it receives exactly this
	mu       sync.Mutex
	fed      []byte
	fedCh    chan struct{}
	ended    chan struct{}
	endOnce  sync.Once
	shutdown atomic.Int32
	ignoreSD bool // Shutdown does nothing
	// onFeed, if set, runs first in Feed (on the reader, as a session's
	// STARTTLS does); an error ends the session.
	onFeed        func(s *fakeSession, p []byte) error
	throttle      atomic.Int64 // Throttle's answer, once
	panicThrottle atomic.Bool
}

func (s *fakeSession) Feed(p []byte) error {
	if s.panicOn != "" && string(p) == s.panicOn {
		panic("session bug")
	}
	if s.onFeed != nil {
		if err := s.onFeed(s, p); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.fed = append(s.fed, p...)
	s.mu.Unlock()
	select {
	case s.fedCh <- struct{}{}:
	default:
	}
	return nil
}

func (s *fakeSession) Throttle() time.Duration {
	if s.panicThrottle.Load() {
		panic("throttle bug")
	}
	return time.Duration(s.throttle.Swap(0))
}

// End closes the transport, as c2s.Session.End does: the listener itself
// does not close the socket when the read loop ends.
func (s *fakeSession) End() {
	s.endOnce.Do(func() {
		_ = s.c.Close()
		close(s.ended)
	})
}
func (s *fakeSession) Authenticated() bool { return s.authed.Load() }

func (s *fakeSession) Shutdown() {
	s.shutdown.Add(1)
	if !s.ignoreSD {
		_ = s.c.Close()
	}
}

func (s *fakeSession) fedString() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.fed)
}

// server is a running listener whose sessions are reported on a channel.
type server struct {
	t        *testing.T
	l        *Listener
	tracker  *Tracker
	sessions chan *fakeSession
	// hooks
	before func(*Conn) error  // runs in NewSession; an error refuses the session
	setup  func(*fakeSession) // configures each new session
}

func startServer(t *testing.T, cfg Config, srv *server) *server {
	t.Helper()
	if srv == nil {
		srv = &server{}
	}
	srv.t = t
	srv.sessions = make(chan *fakeSession, 64)
	if cfg.Tracker == nil {
		cfg.Tracker = NewTracker()
	}
	srv.tracker = cfg.Tracker
	if strings.Contains(t.Name(), "goroutines_") {
		cfg.ReaderGoroutines = true
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = quietLog
	cfg.NewSession = func(c *Conn, alpn string) (Session, error) {
		if srv.before != nil {
			if err := srv.before(c); err != nil {
				return nil, err
			}
		}
		s := &fakeSession{c: c, ip: c.RemoteIP(), fedCh: make(chan struct{}, 1), ended: make(chan struct{})}
		if srv.setup != nil {
			srv.setup(s)
		}
		srv.sessions <- s
		return s, nil
	}
	l, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.l = l
	go l.Serve()
	t.Cleanup(func() {
		_ = l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.tracker.Drain(ctx)
	})
	return srv
}

// dial connects from the given loopback address ("" for any).
func (srv *server) dial(from string) net.Conn {
	srv.t.Helper()
	d := net.Dialer{Timeout: wait}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", srv.l.Addr().String())
	if err != nil {
		srv.t.Fatal(err)
	}
	srv.t.Cleanup(func() { _ = c.Close() })
	return c
}

// session waits for the next session the listener creates.
func (srv *server) session() *fakeSession {
	srv.t.Helper()
	select {
	case s := <-srv.sessions:
		return s
	case <-time.After(wait):
		srv.t.Fatal("no session created")
		return nil
	}
}

// noSession checks that no session was created for a connection the
// server has already closed.
func (srv *server) noSession() {
	srv.t.Helper()
	select {
	case s := <-srv.sessions:
		srv.t.Fatalf("unexpected session from %s", s.ip)
	default:
	}
}

// expectClosed waits until the server closes c (EOF or reset).
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var b [64]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection")
		}
		return
	}
}

func waitEnded(t *testing.T, s *fakeSession) {
	t.Helper()
	select {
	case <-s.ended:
	case <-time.After(wait):
		t.Fatal("session End not called")
	}
}

func waitCount(t *testing.T, tr *Tracker, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for tr.Count() != n {
		if time.Now().After(deadline) {
			t.Fatalf("tracker count %d, want %d", tr.Count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFeedsBytesToSession(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, nil)
	c := srv.dial("")
	s := srv.session()
	if s.ip != "127.0.0.1" || s.c.Kind() != "tcp" || s.c.TLS() != nil || !s.c.CanStartTLS() {
		t.Errorf("conn: ip %q kind %q", s.ip, s.c.Kind())
	}
	if _, err := c.Write([]byte("<stream:stream>")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(wait)
	for s.fedString() != "<stream:stream>" {
		select {
		case <-s.fedCh:
		case <-deadline:
			t.Fatalf("fed %q", s.fedString())
		}
	}
	// Writes reach the client.
	if err := s.c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q %v", b, err)
	}
	// The client leaving ends the session and releases the slot.
	_ = c.Close()
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
}

func TestPerIPLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{MaxConnectionsIP: 2}, nil)
	c1 := srv.dial("127.0.0.1")
	s1 := srv.session()
	srv.dial("127.0.0.1")
	srv.session()
	c3 := srv.dial("127.0.0.1")
	expectClosed(t, c3)
	srv.noSession()
	// Another address is not limited by this one's count.
	srv.dial("127.0.0.2")
	if s := srv.session(); s.ip != "127.0.0.2" {
		t.Fatalf("session from %s", s.ip)
	}
	// A slot freed is a slot available again.
	_ = c1.Close()
	waitEnded(t, s1)
	waitCount(t, srv.tracker, 2)
	srv.dial("127.0.0.1")
	srv.session()
}

func TestTotalLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{MaxConnections: 2}, nil)
	srv.dial("127.0.0.1")
	srv.session()
	c2 := srv.dial("127.0.0.2")
	s2 := srv.session()
	c3 := srv.dial("127.0.0.3")
	expectClosed(t, c3)
	srv.noSession()
	_ = c2.Close()
	waitEnded(t, s2)
	waitCount(t, srv.tracker, 1)
	srv.dial("127.0.0.3")
	srv.session()
}

// TestTotalLimitSharedTracker: the limit is global across listeners that
// share a tracker.
func TestTotalLimitSharedTracker(t *testing.T) {
	t.Parallel()
	tr := NewTracker()
	a := startServer(t, Config{MaxConnections: 1, Tracker: tr}, nil)
	b := startServer(t, Config{MaxConnections: 1, Tracker: tr}, nil)
	a.dial("")
	a.session()
	c := b.dial("")
	expectClosed(t, c)
	b.noSession()
}

func TestIdleTimeoutBeforeAuth(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{IdleTimeout: 50 * time.Millisecond}, nil)
	c := srv.dial("")
	s := srv.session()
	expectClosed(t, c)
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
}

// TestNoIdleTimeoutAfterAuth: an authenticated session may stay silent.
// (If the idle timeout wrongly applied, the connection would be closed
// long before the bytes below are sent.)
func TestNoIdleTimeoutAfterAuth(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{IdleTimeout: 20 * time.Millisecond}, &server{setup: func(s *fakeSession) { s.authed.Store(true) }})
	c := srv.dial("")
	s := srv.session()
	time.Sleep(200 * time.Millisecond)
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.fedCh:
	case <-s.ended:
		t.Fatal("authenticated session ended by the idle timeout")
	case <-time.After(wait):
		t.Fatal("bytes not fed")
	}
	if got := s.fedString(); got != "late" {
		t.Fatalf("fed %q", got)
	}
}

// TestIdleTimeoutRearmedByData: bytes before the timeout keep an
// unauthenticated connection open only for another idle period.
func TestIdleTimeoutRearmedByData(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{IdleTimeout: 100 * time.Millisecond}, nil)
	c := srv.dial("")
	s := srv.session()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	<-s.fedCh
	expectClosed(t, c)
	waitEnded(t, s)
}

func TestDrainShutsDownAndWaits(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, nil)
	var ss []*fakeSession
	for range 3 {
		srv.dial("")
		ss = append(ss, srv.session())
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.tracker.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		if s.shutdown.Load() != 1 {
			t.Errorf("session %d: Shutdown called %d times", i, s.shutdown.Load())
		}
		select {
		case <-s.ended:
		default:
			t.Errorf("session %d not ended when Drain returned", i)
		}
	}
	if n := srv.tracker.Count(); n != 0 {
		t.Errorf("count %d after Drain", n)
	}
	// After Drain, new connections are refused.
	c := srv.dial("")
	expectClosed(t, c)
	srv.noSession()
}

// TestDrainTimesOut: a session that does not go away makes Drain return
// the context's error instead of hanging.
func TestDrainTimesOut(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, &server{setup: func(s *fakeSession) { s.ignoreSD = true }})
	srv.dial("")
	s := srv.session()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := srv.tracker.Drain(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: %v", err)
	}
	if s.shutdown.Load() != 1 {
		t.Fatal("Shutdown not called")
	}
	_ = s.c.Close() // let cleanup finish
}

// TestDrainShutsDownLateSession: a connection admitted before Drain but
// whose session is created after Drain took its snapshot (a slow direct-TLS
// handshake, say) must still be shut down, or Drain waits for it until
// its context ends.
func TestDrainShutsDownLateSession(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := startServer(t, Config{}, &server{before: func(*Conn) error {
		close(entered)
		<-release
		return nil
	}})
	srv.dial("")
	<-entered // admitted, session not yet registered
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.tracker.Drain(ctx) }()
	// Wait until Drain has refused new connections (and so taken its snapshot).
	deadline := time.Now().Add(wait)
	for {
		srv.tracker.mu.Lock()
		closed := srv.tracker.closed
		srv.tracker.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Drain did not start")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	s := srv.session()
	if err := <-done; err != nil {
		t.Errorf("Drain: %v; the session created during the drain was never shut down (Shutdown calls: %d)", err, s.shutdown.Load())
	}
	_ = s.c.Close()
}

// TestSessionPanicContained: a panic in a session's Feed closes that
// connection, ends the session and releases its slot; the listener goes on.
func TestSessionPanicContained(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, &server{setup: func(s *fakeSession) { s.panicOn = "boom" }})
	c := srv.dial("")
	s := srv.session()
	if _, err := c.Write([]byte("boom")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
	srv.dial("")
	srv.session()
}

// TestNewSessionError: a refused session closes the connection and frees the slot.
func TestNewSessionError(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{MaxConnections: 1}, &server{before: func(*Conn) error { return errors.New("no") }})
	c := srv.dial("")
	expectClosed(t, c)
	waitCount(t, srv.tracker, 0)
}

// TestCloseStopsAccepting: after Close the address refuses connections;
// live connections stay.
func TestCloseStopsAccepting(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, nil)
	c := srv.dial("")
	s := srv.session()
	if err := srv.l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", srv.l.Addr().String(), wait); err == nil {
		t.Error("dial succeeded after Close")
	}
	if _, err := c.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	<-s.fedCh
	if got := s.fedString(); got != "still" {
		t.Fatalf("fed %q", got)
	}
}

// TestCloseBeforeServe: a listener closed before it ever served (its
// server's start-up failed later) closes without waiting for an accept
// loop, frees its port, and a Serve after that returns at once.
func TestCloseBeforeServe(t *testing.T) {
	ln, err := Listen(Config{Addr: "127.0.0.1:0", NewSession: func(*Conn, string) (Session, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	ln.Serve()
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port not freed: %v", err)
	}
	again.Close()
}
