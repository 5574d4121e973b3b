package listener

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/certs"
)

var (
	certOnce sync.Once
	testCert tls.Certificate
)

func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	certOnce.Do(func() {
		var err error
		if testCert, _, err = certs.SelfSigned("localhost"); err != nil {
			panic(err)
		}
	})
	return &tls.Config{Certificates: []tls.Certificate{testCert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-client"}}
}

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}}
}

// dialVersion connects over TLS of at most version, or plain TCP (as
// dial("")) for 0.
func (srv *server) dialVersion(version uint16) net.Conn {
	srv.t.Helper()
	if version == 0 {
		return srv.dial("")
	}
	cfg := clientTLS()
	cfg.MaxVersion = version
	c, err := tls.Dial("tcp", srv.l.Addr().String(), cfg)
	if err != nil {
		srv.t.Fatal(err)
	}
	srv.t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFed waits until the session has been fed want in total.
func waitFed(t *testing.T, s *fakeSession, want string) {
	t.Helper()
	deadline := time.After(wait)
	for s.fedString() != want {
		select {
		case <-s.fedCh:
		case <-s.ended:
			if s.fedString() != want {
				t.Fatalf("session ended; fed %q, want %q", s.fedString(), want)
			}
		case <-deadline:
			t.Fatalf("fed %q, want %q", s.fedString(), want)
		}
	}
}

// echo checks both directions on an established connection.
func echo(t *testing.T, c net.Conn, s *fakeSession, before string) {
	t.Helper()
	big := bytes.Repeat([]byte("<m>0123456789</m>"), 4000) // 68 KB: several records
	go func() { _, _ = c.Write(big) }()
	waitFed(t, s, before+string(big))
	go func() { _ = s.c.Write(big) }()
	got := make([]byte, len(big))
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("client read: %v", err)
	}
}

func TestDirectTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		max  uint16
		rec  bool
	}{{"tls13", 0, true}, {"tls12", tls.VersionTLS12, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Config{TLS: serverTLS(t)}, nil)
			cfg := clientTLS()
			cfg.MaxVersion = tc.max
			c, err := tls.Dial("tcp", srv.l.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := srv.session()
			if (s.c.rec != nil) != tc.rec || s.c.Kind() != "tls" || s.c.CanStartTLS() {
				t.Fatalf("record layer %v, kind %q", s.c.rec != nil, s.c.Kind())
			}
			st := s.c.TLS()
			if st == nil || st.NegotiatedProtocol != "xmpp-client" {
				t.Fatalf("state %+v", st)
			}
			if _, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
				t.Fatal(err)
			}
			echo(t, c, s, "")
			// Closing from the server sends close_notify: a clean EOF.
			_ = s.c.Close()
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("client after server close: %v", err)
			}
			waitEnded(t, s)
			waitCount(t, srv.tracker, 0)
		})
	}
}

// TestStartTLS: the session upgrades the connection from inside Feed, as
// c2s does; the client's first bytes after its Finished, sent at once,
// must reach the session.
func TestStartTLS(t *testing.T) {
	t.Parallel()
	scfg := serverTLS(t)
	srv := startServer(t, Config{}, &server{setup: func(s *fakeSession) {
		s.onFeed = func(s *fakeSession, p []byte) error {
			if string(p) != "<starttls/>" {
				return nil
			}
			if err := s.c.Write([]byte("<proceed/>")); err != nil {
				return err
			}
			return s.c.StartTLS(scfg)
		}
	}})
	raw := srv.dial("")
	s := srv.session()
	if _, err := raw.Write([]byte("<starttls/>")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len("<proceed/>"))
	if _, err := io.ReadFull(raw, b); err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, clientTLS())
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("<stream>")); err != nil {
		t.Fatal(err)
	}
	waitFed(t, s, "<starttls/><stream>")
	if s.c.Kind() != "starttls" || s.c.rec == nil || s.c.TLS() == nil {
		t.Fatalf("kind %q rec %v", s.c.Kind(), s.c.rec != nil)
	}
	echo(t, c, s, "<starttls/><stream>")
}

// TestGarbageAfterTLSEndsSession: a corrupt record ends the session (the
// record layer sends its alert) and frees the slot.
func TestGarbageAfterTLSEndsSession(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{TLS: serverTLS(t)}, nil)
	c, err := tls.Dial("tcp", srv.l.Addr().String(), clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := srv.session()
	if _, err := c.NetConn().Write(append([]byte{23, 3, 3, 0, 40}, make([]byte, 40)...)); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("client read succeeded after garbage")
	}
}

// TestThrottleDefersReading: a throttled session is read again later, by
// a timer, without losing bytes.
func TestThrottleDefersReading(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, nil)
	c := srv.dial("")
	s := srv.session()
	s.throttle.Store(int64(20 * time.Millisecond))
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	waitFed(t, s, "a")
	if _, err := c.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	waitFed(t, s, "ab")
}

// TestThrottlePanicContained: a panic outside Feed (here in Throttle) ends
// that connection only.
func TestThrottlePanicContained(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, nil)
	c := srv.dial("")
	s := srv.session()
	s.panicThrottle.Store(true)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
	srv.dial("")
	srv.session()
}

// TestFeedErrorEndsSession: a session that refuses bytes is ended and its
// connection closed.
func TestFeedErrorEndsSession(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Config{}, &server{setup: func(s *fakeSession) {
		s.onFeed = func(s *fakeSession, p []byte) error {
			if string(p) == "bye" {
				return errors.New("stop")
			}
			return nil
		}
	}})
	c := srv.dial("")
	s := srv.session()
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
}

// TestIdleConnectionsHoldNoGoroutine: with the poller, idle connections
// have no goroutine of their own. (A count, not a timing.)
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	srv := startServer(t, Config{TLS: serverTLS(t)}, nil)
	const n = 50
	g0 := runtime.NumGoroutine()
	var conns []net.Conn
	for range n {
		c, err := tls.Dial("tcp", srv.l.Addr().String(), clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		s := srv.session()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		waitFed(t, s, "x")
	}
	// The client side has no goroutines either (crypto/tls clients are
	// passive); allow a few for timers and the runtime.
	deadline := time.Now().Add(wait)
	for {
		g := runtime.NumGoroutine() - g0
		if g < n/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d more goroutines with %d idle connections", g, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = conns
}

// The goroutine-per-connection reader, for systems without epoll, runs the
// same behaviour tests.
func TestReaderGoroutines(t *testing.T) {
	for name, f := range map[string]func(*testing.T){
		"goroutines_feed":          TestFeedsBytesToSession,
		"goroutines_idle":          TestIdleTimeoutBeforeAuth,
		"goroutines_noidle":        TestNoIdleTimeoutAfterAuth,
		"goroutines_rearm":         TestIdleTimeoutRearmedByData,
		"goroutines_drain":         TestDrainShutsDownAndWaits,
		"goroutines_panic":         TestSessionPanicContained,
		"goroutines_directtls":     TestDirectTLS,
		"goroutines_starttls":      TestStartTLS,
		"goroutines_garbage":       TestGarbageAfterTLSEndsSession,
		"goroutines_throttle":      TestThrottleDefersReading,
		"goroutines_feederror":     TestFeedErrorEndsSession,
		"goroutines_throttlepanic": TestThrottlePanicContained,
		"goroutines_newsession":    TestNewSessionError,
	} {
		t.Run(name, f)
	}
}
