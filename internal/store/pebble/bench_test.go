package pebble

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// benchUsers is the number of recipients the benchmarks spread messages over.
const benchUsers = 10000

func benchStore(b *testing.B, durability string) (*Store, []string) {
	b.Helper()
	s := openTest(b, Options{Durability: durability})
	b.Cleanup(func() { _ = s.Close() })
	users := make([]string, benchUsers)
	for i := range users {
		users[i] = fmt.Sprintf("user%05d", i)
	}
	return s, users
}

// stanza200 is a typical small chat message.
var stanza200 = func() []byte {
	const head = "<message to='user00001@example.org' from='peer@example.org/res' type='chat' id='"
	b := []byte(head)
	for len(b) < 180 {
		b = append(b, 'x')
	}
	b = append(b, "'><body>hi</body></message>"...)
	return b[:200]
}()

// BenchmarkEnqueueParallel measures Enqueue throughput with many senders
// (SetParallelism(64): 64 goroutines per GOMAXPROCS) spread over 10,000
// recipients: the group-commit case.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, d := range []string{DurabilityFsync, DurabilityOS} {
		b.Run(d, func(b *testing.B) {
			s, users := benchStore(b, d)
			ctx := b.Context()
			expires := time.Now().Add(time.Hour)
			var next atomic.Uint64
			b.SetBytes(int64(len(stanza200)))
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := users[next.Add(1)%benchUsers]
					if _, err := s.Enqueue(ctx, u, stanza200, expires, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEnqueueAck measures the online delivery path: enqueue a message,
// then acknowledge it, from 64 goroutines per GOMAXPROCS.
func BenchmarkEnqueueAck(b *testing.B) {
	for _, d := range []string{DurabilityFsync, DurabilityOS} {
		b.Run(d, func(b *testing.B) {
			s, users := benchStore(b, d)
			ctx := b.Context()
			expires := time.Now().Add(time.Hour)
			var next atomic.Uint64
			b.SetBytes(int64(len(stanza200)))
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := users[next.Add(1)%benchUsers]
					seq, err := s.Enqueue(ctx, u, stanza200, expires, 0)
					if err != nil {
						b.Error(err)
						return
					}
					if err := s.Ack(ctx, u, seq); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEnqueueSerial is the single-sender baseline: one fsync per
// message in DurabilityFsync mode.
func BenchmarkEnqueueSerial(b *testing.B) {
	for _, d := range []string{DurabilityFsync, DurabilityOS} {
		b.Run(d, func(b *testing.B) {
			s, users := benchStore(b, d)
			ctx := b.Context()
			expires := time.Now().Add(time.Hour)
			b.SetBytes(int64(len(stanza200)))
			i := 0
			for b.Loop() {
				if _, err := s.Enqueue(ctx, users[i%benchUsers], stanza200, expires, 0); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
