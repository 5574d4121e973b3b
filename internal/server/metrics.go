package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/listener"
)

// transportKinds are the session transports the gauges report.
var transportKinds = []string{"tcp", "starttls", "tls", "ws"}

// promMetrics is the server instance's Prometheus registry (tests run
// several servers in one process). Counters live where events happen
// (atomics in the router and sessions) and are read at scrape time, so the
// hot path pays no Prometheus cost; only the two latency histograms are
// observed inline.
type promMetrics struct {
	reg         *prometheus.Registry
	route       prometheus.Histogram
	enqueue     prometheus.Histogram
	journalSync prometheus.Histogram
}

func newPromMetrics() *promMetrics {
	// 50 µs … ~0.8 s: routing is tens of µs, a synced append ~0.2–5 ms.
	buckets := prometheus.ExponentialBuckets(50e-6, 2, 15)
	p := &promMetrics{
		reg: prometheus.NewRegistry(),
		route: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "parley", Subsystem: "router", Name: "route_seconds",
			Help:    "Time to handle one inbound stanza from a client; for a message, until its recipients have it (its durable append is parley_store_enqueue_seconds).",
			Buckets: buckets,
		}),
		enqueue: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "parley", Subsystem: "store", Name: "enqueue_seconds",
			Help:    "Time of one durable queue append (fsync'd with group commit in fsync mode).",
			Buckets: buckets,
		}),
		journalSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "parley", Subsystem: "store", Name: "journal_fsync_seconds",
			Help:    "Time of one write and fsync of the queue journal's group commit (fsync mode); every sender acknowledgement waits for one.",
			Buckets: buckets,
		}),
	}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), p.route, p.enqueue, p.journalSync)
	return p
}

func (p *promMetrics) observeRoute(d time.Duration)   { p.route.Observe(d.Seconds()) }
func (p *promMetrics) observeEnqueue(d time.Duration) { p.enqueue.Observe(d.Seconds()) }
func (p *promMetrics) observeJournalSync(d time.Duration) {
	p.journalSync.Observe(d.Seconds())
}

// metricsHandler registers the server's counters and serves /metrics.
func (s *Server) metricsHandler() http.Handler {
	reg := s.prom.reg
	counter := func(subsystem, name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: subsystem, Name: name, Help: help, ConstLabels: labels,
		}, f))
	}
	gauge := func(subsystem, name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "parley", Subsystem: subsystem, Name: name, Help: help, ConstLabels: labels,
		}, f))
	}
	st := &s.router.Stats
	m := s.metrics
	gauge("c2s", "connections", "Open client connections.", nil, func() float64 { return float64(s.tracker.Count()) })
	gauge("c2s", "sessions", "Bound client sessions (including detached ones awaiting resumption).", nil, func() float64 { return float64(s.router.SessionCount()) })
	for _, kind := range transportKinds {
		for _, enc := range []string{"xml", "binary"} {
			gauge("c2s", "sessions_by_transport", "Bound client sessions by transport and encoding.",
				prometheus.Labels{"transport": kind, "encoding": enc},
				func() float64 { return float64(m.BoundByTransport()[kind+"/"+enc]) })
		}
	}
	counter("c2s", "logins_total", "Successful SASL logins.", nil, func() float64 { return float64(m.Logins.Load()) })
	counter("c2s", "login_failures_total", "Failed SASL logins.", nil, func() float64 { return float64(m.LoginFailures.Load()) })
	for i, kind := range c2s.StanzaKinds {
		counter("c2s", "stanzas_in_total", "Stanzas received from bound clients.", prometheus.Labels{"kind": kind},
			func() float64 { return float64(m.InByKind[i].Load()) })
		counter("c2s", "stanzas_out_total", "Stanzas handed to client sessions for writing.", prometheus.Labels{"kind": kind},
			func() float64 { return float64(m.OutByKind[i].Load()) })
	}
	counter("c2s", "bytes_in_total", "Bytes received from clients (after TLS).", nil, func() float64 { return float64(m.BytesIn.Load()) })
	counter("c2s", "bytes_out_total", "Bytes written to clients (before TLS).", nil, func() float64 { return float64(m.BytesOut.Load()) })
	counter("c2s", "slow_consumers_total", "Sessions disconnected for not reading or not acknowledging.", nil, func() float64 { return float64(m.SlowConsumers.Load()) })
	counter("c2s", "panics_total", "Panics contained inside sessions.", nil, func() float64 { return float64(m.Panics.Load()) })
	gauge("queue", "depth", "Messages waiting in all users' durable queues.", nil, func() float64 { return float64(s.store.QueueTotal()) })
	counter("queue", "enqueued_total", "Messages appended to a recipient's durable queue.", nil, func() float64 { return float64(st.Enqueued.Load()) })
	counter("queue", "full_total", "Messages refused because the recipient's queue was full.", nil, func() float64 { return float64(st.QueueFull.Load()) })
	counter("queue", "acked_total", "Queue entries deleted after a device of the recipient took them.", nil, func() float64 { return float64(st.Acked.Load()) })
	counter("queue", "redelivered_total", "Queued messages delivered at a later login.", nil, func() float64 { return float64(st.Redelivered.Load()) })
	const workersHelp = "Poller workers: busy (running a turn, which reads a session's socket or flushes its output) or idle (waiting for one)."
	gauge("netpoll", "workers", workersHelp, prometheus.Labels{"state": "busy"},
		func() float64 { return float64(listener.PollerStats().Busy) })
	gauge("netpoll", "workers", workersHelp, prometheus.Labels{"state": "idle"},
		func() float64 { return float64(listener.PollerStats().Idle) })
	counter("netpoll", "workers_started_total", "Poller workers started; a steady rise under load means turns block (see docs/density.md).", nil,
		func() float64 { return float64(listener.PollerStats().Started) })
	counter("netpoll", "turns_total", "Turns and output flushes the poller's workers have run.", nil,
		func() float64 { return float64(listener.PollerStats().Turns) })
	counter("router", "delivered_total", "Stanzas handed to a recipient session.", nil, func() float64 { return float64(st.Delivered.Load()) })
	counter("router", "bounced_total", "Error replies generated for undeliverable stanzas.", nil, func() float64 { return float64(st.Bounced.Load()) })
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
