package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves the server's counters in the Prometheus format,
// from a registry of this server instance (tests run several in one
// process). The counters live where the events happen (atomics in the
// router and sessions); the collectors only read them at scrape time, so
// the hot path pays no Prometheus cost.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	counter := func(subsystem, name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: subsystem, Name: name, Help: help,
		}, f))
	}
	gauge := func(subsystem, name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "parley", Subsystem: subsystem, Name: name, Help: help,
		}, f))
	}
	st := &s.router.Stats
	m := s.metrics
	gauge("c2s", "connections", "Open client connections.", func() float64 { return float64(s.tracker.Count()) })
	gauge("c2s", "sessions", "Bound client sessions (including detached ones awaiting resumption).", func() float64 { return float64(s.router.SessionCount()) })
	counter("c2s", "logins_total", "Successful SASL logins.", func() float64 { return float64(m.Logins.Load()) })
	counter("c2s", "login_failures_total", "Failed SASL logins.", func() float64 { return float64(m.LoginFailures.Load()) })
	counter("c2s", "stanzas_in_total", "Stanzas received from bound clients.", func() float64 { return float64(m.StanzasIn.Load()) })
	counter("c2s", "stanzas_out_total", "Stanzas handed to client sessions for writing.", func() float64 { return float64(m.StanzasOut.Load()) })
	counter("c2s", "slow_consumers_total", "Sessions disconnected for not reading or not acknowledging.", func() float64 { return float64(m.SlowConsumers.Load()) })
	counter("c2s", "panics_total", "Panics contained inside sessions.", func() float64 { return float64(m.Panics.Load()) })
	gauge("queue", "depth", "Messages waiting in all users' durable queues.", func() float64 { return float64(s.store.QueueTotal()) })
	counter("queue", "enqueued_total", "Messages appended to a recipient's durable queue.", func() float64 { return float64(st.Enqueued.Load()) })
	counter("queue", "full_total", "Messages refused because the recipient's queue was full.", func() float64 { return float64(st.QueueFull.Load()) })
	counter("queue", "acked_total", "Queue entries deleted after a device of the recipient took them.", func() float64 { return float64(st.Acked.Load()) })
	counter("queue", "redelivered_total", "Queued messages delivered at a later login.", func() float64 { return float64(st.Redelivered.Load()) })
	counter("router", "delivered_total", "Stanzas handed to a recipient session.", func() float64 { return float64(st.Delivered.Load()) })
	counter("router", "bounced_total", "Error replies generated for undeliverable stanzas.", func() float64 { return float64(st.Bounced.Load()) })
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
