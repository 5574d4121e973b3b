//go:build linux

package netpoll

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/parley-im/parley/internal/benchutil"
)

// BenchmarkPingPong is the poller's cost per readiness event, with as
// little else as can be: over AF_UNIX socket pairs, a client writes a
// small message, the handler reads it and writes it back with plain
// system calls, the client reads the echo. With one pair it is latency;
// with several the CPUs are busy and ns/op approaches the CPU cost per
// event. cpu-ns/op is the process's CPU time (user and system, client
// side included) per round trip: on a shared machine it moves much less
// than the wall time.
func BenchmarkPingPong(b *testing.B) {
	for _, pairs := range []int{1, 16} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			benchPingPong(b, pairs)
		})
	}
}

func benchPingPong(b *testing.B, pairs int) {
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	clients := make([]net.Conn, pairs)
	for i := range clients {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		f := os.NewFile(uintptr(fds[1]), "client")
		c, err := net.FileConn(f) // a dup, in Go's poller
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
		e := &echo{fd: fds[0]}
		defer syscall.Close(fds[0])
		defer e.hd.Remove()
		if err := p.Add(fds[0], e, &e.hd); err != nil {
			b.Fatal(err)
		}
	}
	benchutil.RunPingPong(b, clients, []byte("<r>0123456789abcdef0123456789</r>"))
}

// echo writes back what it reads, by the Handler rules.
type echo struct {
	fd  int
	hd  Handle
	buf [512]byte
}

func (e *echo) Readable() {
	for {
		for {
			n, err := syscall.Read(e.fd, e.buf[:])
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				break
			}
			if err != nil || n == 0 || writeAll(e.fd, e.buf[:n]) != nil {
				return // the benchmark is over
			}
			if n < len(e.buf) && !e.hd.Closing() {
				break
			}
		}
		if !e.hd.Done() {
			return
		}
	}
}

// writeAll writes b to a non-blocking socket whose buffer has room for
// it (a benchmark's small echoes).
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch {
		case err == syscall.EINTR || err == syscall.EAGAIN:
			continue
		case err != nil:
			return err
		}
		b = b[n:]
	}
	return nil
}
