package listener

import (
	"bytes"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The poller's registrations are edge-triggered: a turn that stops
// reading while bytes wait in the socket (or inside a TLS layer) is never
// told about them again. These tests stop at the places where that can
// happen; each fails by waiting for bytes that never come.

// TestManySmallWritesSlowFeed: many small writes at random moments, a
// session that is sometimes slow and sometimes throttled, on every
// transport: every byte is fed once and in order.
func TestManySmallWritesSlowFeed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tls  uint16 // 0: plain TCP
	}{{"tcp", 0}, {"tls13", tls.VersionTLS13}, {"tls12", tls.VersionTLS12}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{}
			if tc.tls != 0 {
				cfg.TLS = serverTLS(t)
			}
			srv := startServer(t, cfg, &server{setup: func(s *fakeSession) {
				s.onFeed = func(s *fakeSession, p []byte) error {
					switch rand.IntN(16) {
					case 0:
						time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
					case 1:
						s.throttle.Store(int64(time.Duration(rand.IntN(2000)) * time.Microsecond))
					}
					return nil
				}
			}})
			const conns, writes = 8, 200
			var wg sync.WaitGroup
			sessions := make([]*fakeSession, conns)
			wants := make([]string, conns)
			for i := range conns {
				c := srv.dialVersion(tc.tls)
				sessions[i] = srv.session()
				var want bytes.Buffer
				chunks := make([][]byte, writes)
				for j := range chunks {
					start := want.Len()
					for range 1 + rand.IntN(300) {
						want.WriteByte('a' + byte(want.Len()%26))
					}
					chunks[j] = want.Bytes()[start:]
				}
				wants[i] = want.String()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, b := range chunks {
						if _, err := c.Write(b); err != nil {
							t.Error(err)
							return
						}
						if rand.IntN(4) == 0 {
							time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
						}
					}
				}()
			}
			wg.Wait()
			for i, s := range sessions {
				waitFed(t, s, wants[i])
			}
		})
	}
}

// TestEventDuringFeedRereads: bytes that arrive while Feed runs, after the
// read that found the socket dry, are read when Feed returns, with no
// further write from the client.
func TestEventDuringFeedRereads(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	srv := startServer(t, Config{}, &server{setup: func(s *fakeSession) {
		s.onFeed = func(s *fakeSession, p []byte) error {
			if string(p) == "a" {
				close(entered)
				<-release
			}
			return nil
		}
	}})
	c := srv.dial("")
	s := srv.session()
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	<-entered
	if _, err := c.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	// Not a timing assertion: the pause only lets the event for "b" come
	// while Feed still holds "a", the case under test; the result must be
	// the same whenever it comes.
	time.Sleep(20 * time.Millisecond)
	close(release)
	waitFed(t, s, "ab")
}

// TestBytesBehindFullRead: the client's bytes, several read buffers'
// worth, are all in the socket before it is registered: one event for all
// of them. A read that fills its buffer must be followed by another, and
// a throttled turn must read on by itself after its pause: nothing will
// announce the bytes left behind.
func TestBytesBehindFullRead(t *testing.T) {
	t.Parallel()
	for _, throttled := range []bool{false, true} {
		name := "unthrottled"
		if throttled {
			name = "throttled"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			written := make(chan struct{})
			srv := startServer(t, Config{}, &server{
				before: func(*Conn) error { <-written; return nil },
				setup: func(s *fakeSession) {
					if throttled {
						s.onFeed = func(s *fakeSession, p []byte) error {
							s.throttle.Store(int64(2 * time.Millisecond))
							return nil
						}
					}
				},
			})
			c := srv.dial("")
			big := bytes.Repeat([]byte("0123456789abcdef"), (3*readBufSize+10)/16+1)
			if _, err := c.Write(big); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // for the bytes to cross loopback; not an assertion
			close(written)
			waitFed(t, srv.session(), string(big))
		})
	}
}

// TestHalfCloseEndsSession: the client's last bytes and its FIN are both
// in the socket when the turn begins. The read that returns the bytes is
// short and does not return the end; no event comes for the end, so the
// turn must read on to find it.
func TestHalfCloseEndsSession(t *testing.T) {
	t.Parallel()
	written := make(chan struct{})
	srv := startServer(t, Config{}, &server{before: func(*Conn) error { <-written; return nil }})
	c := srv.dial("")
	if _, err := c.Write([]byte("</stream>")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // for the FIN to arrive; not an assertion
	close(written)
	s := srv.session()
	waitFed(t, s, "</stream>")
	waitEnded(t, s)
	waitCount(t, srv.tracker, 0)
}

// TestBlockedTurnsDoNotStallOthers: more sessions than the poller has
// busy workers block inside Feed (as a turn blocked on a full socket or on
// the store does); another connection's bytes are still fed, by a worker
// the poller starts when it finds the busy ones stuck.
func TestBlockedTurnsDoNotStallOthers(t *testing.T) {
	t.Parallel()
	// Each blocked turn holds a worker; the poller is the process's, and
	// starts 4 busy workers per GOMAXPROCS before it waits for a stall.
	blocked := 4*runtime.GOMAXPROCS(0) + 4
	release := make(chan struct{})
	defer close(release)
	var entered atomic.Int32
	srv := startServer(t, Config{}, &server{setup: func(s *fakeSession) {
		s.onFeed = func(s *fakeSession, p []byte) error {
			if string(p) == "block" {
				entered.Add(1)
				<-release
			}
			return nil
		}
	}})
	for range blocked {
		c := srv.dial("")
		srv.session()
		if _, err := c.Write([]byte("block")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(wait)
	for int(entered.Load()) < blocked {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d blocking turns started: turns wait behind blocked ones", entered.Load(), blocked)
		}
		time.Sleep(time.Millisecond)
	}
	c := srv.dial("")
	s := srv.session()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFed(t, s, "hello")
}
