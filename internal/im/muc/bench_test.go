package muc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// benchSession encodes every stanza it is given to XML, as a real
// session's output path does, so the benchmark counts the encode cost.
type benchSession struct {
	j     jid.JID
	tr    *tracker
	mu    sync.Mutex
	buf   []byte
	bytes int
}

func (s *benchSession) JID() jid.JID                 { return s.j }
func (s *benchSession) Available() bool              { return true }
func (s *benchSession) Priority() int                { return 0 }
func (s *benchSession) Kick(err *stanza.StreamError) {}

func (s *benchSession) Deliver(el *stanza.Element, _ *router.Ack) bool {
	if !s.tr.on.Load() {
		return true // setup (joins) is not measured
	}
	s.mu.Lock()
	s.buf = xmlstream.AppendElement(s.buf[:0], el, stanza.NSClient)
	s.bytes += len(s.buf)
	s.mu.Unlock()
	if el.Name == "message" {
		s.tr.delivered(el.ID())
	}
	return true
}

// tracker notes when the last occupant has a message.
type tracker struct {
	on      atomic.Bool
	n       int64
	left    atomic.Int64
	doneAt  chan time.Time
	current atomic.Value // id of the message in flight
}

func (t *tracker) delivered(id string) {
	if cur, _ := t.current.Load().(string); cur != id {
		return
	}
	if t.left.Add(-1) == 0 {
		t.doneAt <- time.Now()
	}
}

// BenchmarkFanOut measures one room with 1,000 and 5,000 occupants: one
// occupant sends, every occupant's session encodes its copy to XML. It
// reports deliveries per second and the p99 latency from the send to the
// last occupant's delivery. One message is in flight at a time, so the
// latency is the fan-out itself, not queueing. The archive write (Pebble,
// DurabilityOS) is included.
//
//	taskset -c 0 env GOMAXPROCS=1 go test -run '^$' -bench FanOut -benchtime 200x ./internal/im/muc/
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("occupants=%d", n), func(b *testing.B) { benchFanOut(b, n) })
	}
}

func benchFanOut(b *testing.B, n int) {
	st, err := pebble.Open(b.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r, err := router.New(router.Config{Domain: domain, Store: st, Codec: xmlstream.Storage{}, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s, err := New(Config{
		Domain: service, Router: r, Store: st, Codec: xmlstream.Storage{}, Logger: quietLog,
		MessageRate: 1e9, MessageBurst: 1e9,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r.HandleDomain(service, s.Handle)
	ctx := context.Background()
	tr := &tracker{n: int64(n), doneAt: make(chan time.Time, 1)}
	var sessions []*benchSession
	for i := range n {
		j := jid.MustParse(fmt.Sprintf("u%d@%s/r", i, domain))
		sess := &benchSession{j: j, tr: tr}
		if _, err := r.Bind(sess); err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, sess)
		p := presence(occJID("big", "user"+strconv.Itoa(i)), mucX(stanza.New("history", NS).SetAttr("maxstanzas", "0")))
		p.SetAttr("from", j.String())
		r.Route(ctx, p)
		if i == 0 {
			if err := s.Sync(ctx, "big"); err != nil {
				b.Fatal(err)
			}
			cfg := iq("set", roomJID("big"), "c", stanza.New("query", NSOwner).Append(stanza.New("x", NSData).SetAttr("type", "submit")))
			cfg.SetAttr("from", j.String())
			r.Route(ctx, cfg)
		}
		if i%256 == 0 {
			if err := s.Sync(ctx, "big"); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Sync(ctx, "big"); err != nil {
		b.Fatal(err)
	}
	tr.on.Store(true)
	sender := sessions[0].j.String()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		id := "b" + strconv.Itoa(i)
		tr.current.Store(id)
		tr.left.Store(int64(n))
		m := groupchat("big", id, "hello, this is a message of ordinary length to the whole group")
		m.SetAttr("from", sender)
		t0 := time.Now()
		r.Route(ctx, m)
		lat = append(lat, (<-tr.doneAt).Sub(t0))
	}
	el := time.Since(start)
	b.StopTimer()
	if d := s.Stats.Dropped.Load(); d != 0 {
		b.Errorf("%d deliveries dropped", d)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(n)*float64(b.N)/el.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
