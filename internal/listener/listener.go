// Package listener owns the client sockets: TCP and direct-TLS accept loops,
// connection limits (total and per address), the event-driven reader that
// feeds a session (no goroutine while a connection is idle), and connection
// tracking so a shutdown can drain.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/netpoll"
)

// Session is what a listener runs on a connection.
type Session interface {
	Feeder
	// Authenticated reports whether the idle timeout no longer applies.
	Authenticated() bool
	// Shutdown asks the session to end for a server stop.
	Shutdown()
}

// NewSession builds the session for a new connection. alpn is the
// protocol negotiated on a direct-TLS connection ("" otherwise).
type NewSession func(c *Conn, alpn string) (Session, error)

// Config configures a Listener.
type Config struct {
	Addr string
	// TLS, when set, makes this a direct-TLS listener (XEP-0368).
	TLS              *tls.Config
	MaxConnections   int
	MaxConnectionsIP int
	IdleTimeout      time.Duration // before authentication
	WriteTimeout     time.Duration
	Logger           *slog.Logger
	NewSession       NewSession
	// Tracker is shared by the server's listeners for global limits and
	// draining.
	Tracker *Tracker
	// ReaderGoroutines gives every connection its own reader goroutine
	// (parked in Go's poller while idle, about 2.7 KB or more of stack)
	// instead of the shared epoll poller; for comparison, and the only
	// mode where epoll is missing.
	ReaderGoroutines bool
}

var (
	pollerOnce sync.Once
	pollerErr  error
	// poller is set once made; an atomic so that PollerStats, which must
	// not start it, can read it outside pollerOnce.
	poller atomic.Pointer[netpoll.Poller]
)

// sharedPoller is the process's one epoll poller, started on first use
// and kept for the life of the process: one goroutine waits for every
// listener's connections.
func sharedPoller() (*netpoll.Poller, error) {
	pollerOnce.Do(func() {
		p, err := netpoll.New()
		poller.Store(p)
		pollerErr = err
	})
	return poller.Load(), pollerErr
}

// PollerStats reports the shared poller's workers; zero before the first
// listener has started it, or without one.
func PollerStats() netpoll.Stats {
	p := poller.Load()
	if p == nil {
		return netpoll.Stats{}
	}
	return p.Stats()
}

// Tracker counts and tracks live connections across listeners.
type Tracker struct {
	mu       sync.Mutex
	sessions map[Session]struct{}
	perIP    map[string]int
	total    atomic.Int64
	wg       sync.WaitGroup
	closed   bool
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{sessions: map[Session]struct{}{}, perIP: map[string]int{}}
}

// Count returns the number of live connections.
func (t *Tracker) Count() int { return int(t.total.Load()) }

func (t *Tracker) admit(ip string, max, maxIP int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if max > 0 && int(t.total.Load()) >= max {
		return false
	}
	if maxIP > 0 && t.perIP[ip] >= maxIP {
		return false
	}
	t.perIP[ip]++
	t.total.Add(1)
	t.wg.Add(1)
	return true
}

func (t *Tracker) release(ip string, s Session) {
	t.mu.Lock()
	if n := t.perIP[ip] - 1; n > 0 {
		t.perIP[ip] = n
	} else {
		delete(t.perIP, ip)
	}
	if s != nil {
		delete(t.sessions, s)
	}
	t.mu.Unlock()
	t.total.Add(-1)
	t.wg.Done()
}

// add tracks a session; false if a drain has begun (the caller shuts the
// session down: it was admitted before the drain but created after it).
func (t *Tracker) add(s Session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sessions[s] = struct{}{}
	return !t.closed
}

// Admit counts a connection from ip accepted outside this package (the
// HTTP server's WebSocket upgrades) against the same limits as the
// listeners': max in total and maxIP per address (0: no limit). It is false
// when a limit is reached or a drain has begun. Every true must be matched
// by exactly one Release.
func (t *Tracker) Admit(ip string, max, maxIP int) bool { return t.admit(ip, max, maxIP) }

// Track registers an admitted connection's session so that Drain shuts it
// down. It is false when a drain has already begun: the caller then shuts
// the session down itself.
func (t *Tracker) Track(s Session) bool { return t.add(s) }

// Release ends what Admit (and Track, when s is not nil) began, once the
// connection is closed and its session has ended.
func (t *Tracker) Release(ip string, s Session) { t.release(ip, s) }

// Drain refuses new connections, asks every session to shut down and
// waits until they are gone or ctx ends.
func (t *Tracker) Drain(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	all := make([]Session, 0, len(t.sessions))
	for s := range t.sessions {
		all = append(all, s)
	}
	t.mu.Unlock()
	for _, s := range all {
		s.Shutdown()
	}
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("listener: %d connections still open: %w", t.Count(), ctx.Err())
	}
}

// Listener accepts client connections on one address.
type Listener struct {
	cfg    Config
	ln     net.Listener
	log    *slog.Logger
	poller *netpoll.Poller // nil: a reader goroutine per connection
	done   chan struct{}   // closed when Serve returns
	// state is listenerNew until Serve or Close claims the listener: a
	// Close before any Serve (a server whose start-up failed after this
	// listener opened) must not wait for a Serve that will never run.
	state atomic.Int32
}

const (
	listenerNew int32 = iota
	listenerServing
	listenerClosed
)

// Listen binds the address; Serve starts accepting.
func Listen(cfg Config) (*Listener, error) {
	if cfg.Tracker == nil {
		cfg.Tracker = NewTracker()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var p *netpoll.Poller
	if !cfg.ReaderGoroutines {
		var err error
		if p, err = sharedPoller(); err != nil {
			cfg.Logger.Warn("listener: no epoll poller; one reader goroutine per connection", "err", err)
			p = nil
		}
	}
	lc := listenConfig()
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	return &Listener{cfg: cfg, ln: ln, log: cfg.Logger, poller: p, done: make(chan struct{})}, nil
}

// Addr is the bound address (with the chosen port for ":0").
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting; live connections are untouched (see Tracker.Drain).
func (l *Listener) Close() error {
	err := l.ln.Close()
	if l.state.CompareAndSwap(listenerNew, listenerClosed) {
		return err // never served: nothing to wait for
	}
	<-l.done
	return err
}

// TCP keepalive: a peer that vanished without a FIN (a phone that lost
// coverage, a NAT that dropped the mapping) is found within idle +
// interval × count of silence, about five minutes, so its session ends and
// its messages go to the queue instead of into a dead socket.
const (
	keepAliveIdle     = 3 * time.Minute
	keepAliveInterval = 30 * time.Second
	keepAliveCount    = 4
)

// Serve accepts until Close. Temporary accept errors (out of file
// descriptors) back off instead of spinning.
func (l *Listener) Serve() {
	if !l.state.CompareAndSwap(listenerNew, listenerServing) {
		return // closed before it served, or served already
	}
	defer close(l.done)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			l.log.Warn("listener: accept", "addr", l.cfg.Addr, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go l.handle(c.(*net.TCPConn))
	}
}

// handle sets a connection up on its own goroutine (the TLS handshake of
// a direct-TLS listener blocks) and hands it to its reader.
func (l *Listener) handle(tcp *net.TCPConn) {
	c, err := newConn(l, tcp)
	if err != nil {
		_ = tcp.Close()
		return
	}
	t := l.cfg.Tracker
	if !t.admit(c.ip, l.cfg.MaxConnections, l.cfg.MaxConnectionsIP) {
		_ = tcp.Close()
		return
	}
	var sess Session
	started := false
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("listener: connection panic", "ip", c.ip, "panic", p)
		}
		if !started {
			// The reader never owned the connection: end it here.
			_ = c.Close()
			_ = tcp.Close()
			t.release(c.ip, sess)
		}
	}()
	if perConnKeepAlive {
		_ = tcp.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		})
	}
	alpn := ""
	if l.cfg.TLS != nil {
		_ = tcp.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := c.handshake(l.cfg.TLS); err != nil {
			l.log.Debug("listener: TLS handshake", "ip", c.ip, "err", err)
			return
		}
		_ = tcp.SetDeadline(time.Time{})
		c.kind = kindTLS
		alpn = c.state.NegotiatedProtocol
	}
	sess, err = l.cfg.NewSession(c, alpn)
	if err != nil {
		l.log.Debug("listener: session", "ip", c.ip, "err", err)
		sess = nil
		return
	}
	c.sess = sess
	if !t.add(sess) {
		sess.Shutdown()
	}
	started = true
	c.start()
}
