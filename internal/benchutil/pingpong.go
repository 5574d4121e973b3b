package benchutil

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// PingPong writes msg on c and reads the echo into buf (len(msg) bytes).
func PingPong(c net.Conn, msg, buf []byte) error {
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

// RunPingPong runs b.N echo round trips of msg spread over clients, one
// goroutine per client, after one unmeasured round trip on each, and
// reports the process's CPU time per round trip as cpu-ns/op. Each client
// gets a one-minute read deadline, once: a lost echo fails the run instead
// of hanging it, at no cost to the loop.
func RunPingPong(b *testing.B, clients []net.Conn, msg []byte) {
	b.Helper()
	for _, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	}
	for _, c := range clients {
		if err := PingPong(c, msg, make([]byte, len(msg))); err != nil {
			b.Fatal(err)
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	cpu0 := CPUTime()
	b.ResetTimer()
	for _, c := range clients {
		wg.Go(func() {
			buf := make([]byte, len(msg))
			for left.Add(-1) >= 0 {
				if err := PingPong(c, msg, buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
