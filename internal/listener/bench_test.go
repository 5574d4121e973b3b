package listener

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/benchutil"
)

// echoSession writes back whatever it is fed, from the reader, as a
// session answering a stanza does.
type echoSession struct{ c *Conn }

func (s *echoSession) Feed(p []byte) error     { return s.c.Write(p) }
func (s *echoSession) Throttle() time.Duration { return 0 }
func (s *echoSession) End()                    { _ = s.c.Close() }
func (s *echoSession) Authenticated() bool     { return true }
func (s *echoSession) Shutdown()               { _ = s.c.Close() }

// BenchmarkPingPong is the cost of one readiness event on a plain TCP
// connection through the shared poller: a client writes a small message,
// the session echoes it from Feed, the client reads the echo. Every round
// trip is one event, one read and one write on the server. With one
// connection it is latency (wake-ups on both sides); with several the two
// sides keep the CPUs busy and ns/op approaches the CPU cost per event.
// cpu-ns/op is the process's CPU time (user and system, client side
// included) per round trip: on a shared machine it moves much less than
// the wall time.
func BenchmarkPingPong(b *testing.B) {
	for _, conns := range []int{1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			benchPingPong(b, conns)
		})
	}
}

func benchPingPong(b *testing.B, conns int) {
	l, err := Listen(Config{
		Addr:       "127.0.0.1:0",
		Logger:     quietLog,
		NewSession: func(c *Conn, _ string) (Session, error) { return &echoSession{c: c}, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	go l.Serve()
	defer func() { _ = l.Close() }()
	clients := make([]net.Conn, conns)
	for i := range clients {
		c, err := net.DialTimeout("tcp", l.Addr().String(), wait)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	benchutil.RunPingPong(b, clients, []byte("<r>0123456789abcdef0123456789</r>"))
}
