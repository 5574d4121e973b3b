//go:build linux

package netpoll

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		clients[i] = c
		e := &echo{fd: fds[0]}
		defer syscall.Close(fds[0])
		defer e.hd.Remove()
		if err := p.Add(fds[0], e, &e.hd); err != nil {
			b.Fatal(err)
		}
	}
	msg := []byte("<r>0123456789abcdef0123456789</r>")
	for _, c := range clients {
		if err := pingPong(c, msg, make([]byte, len(msg))); err != nil {
			b.Fatal(err)
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, pairs)
	cpu0 := cpuTime()
	b.ResetTimer()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(msg))
			for left.Add(-1) >= 0 {
				if err := pingPong(c, msg, buf); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func pingPong(c net.Conn, msg, buf []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != string(msg) {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
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

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
