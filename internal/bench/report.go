package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run; --json prints it as is.
type Report struct {
	Scenario  string    `json:"scenario"`
	Addr      string    `json:"addr"`
	Domain    string    `json:"domain"`
	TLS       string    `json:"tls"`
	Mechanism string    `json:"mechanism"`
	Groups    []string  `json:"tls_groups,omitempty"` // empty: Go's defaults
	Encoding  string    `json:"encoding"`
	SM        bool      `json:"stream_management"`
	Sessions  int       `json:"sessions"`
	Workers   int       `json:"workers"`
	Started   time.Time `json:"started"`

	Register *RegisterStats `json:"register,omitempty"`
	Login    *LoginStats    `json:"login,omitempty"`
	Memory   *MemoryStats   `json:"memory,omitempty"`
	Chat     *ChatStats     `json:"chat,omitempty"`
	Storm    *StormStats    `json:"storm,omitempty"`

	// ServerCPUSeconds is the server's CPU time over the scenario (--pid).
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	// LoadRSSKiB and LoadCPUSeconds are the workers' own footprint at the
	// end, all together: a load generator near its limits skews figures.
	LoadRSSKiB     int64   `json:"load_rss_kib"`
	LoadCPUSeconds float64 `json:"load_cpu_seconds"`
	// SCRAMCacheHits and SCRAMCacheMisses count the SCRAM logins of all
	// workers that found their keys in the worker's cache and those that
	// ran PBKDF2 (both 0 with NoSCRAMCache or without SCRAM).
	SCRAMCacheHits   uint64 `json:"scram_cache_hits"`
	SCRAMCacheMisses uint64 `json:"scram_cache_misses"`
}

// RegisterStats are the in-band registrations.
type RegisterStats struct {
	Created   int      `json:"created"`
	Existed   int      `json:"existed"`
	Failed    int      `json:"failed"`
	Seconds   float64  `json:"seconds"`
	PerSecond float64  `json:"per_second"`
	Errors    []string `json:"errors,omitempty"`
}

// LoginStats are a login phase over all workers.
type LoginStats struct {
	// OK counts the logins of this phase. With --pid, connect logs one
	// session in first (WarmUp) and the phase skips it: OK is then N-1
	// and Online N.
	OK        int         `json:"ok"`
	WarmUp    int         `json:"warm_up,omitempty"`
	Failed    int         `json:"failed"`
	Online    int         `json:"online"`
	Seconds   float64     `json:"seconds"`
	PerSecond float64     `json:"per_second"`
	Latency   Percentiles `json:"latency"`
	Errors    []string    `json:"errors,omitempty"`
	hist      Hist
}

// MemoryStats are the server's resident memory before and with the idle
// sessions.
type MemoryStats struct {
	PID             int     `json:"pid"`
	RSSBeforeKiB    int64   `json:"rss_before_kib"`
	RSSAfterKiB     int64   `json:"rss_after_kib"`
	Sessions        int     `json:"sessions"`
	BytesPerSession float64 `json:"bytes_per_session"`
}

// ChatStats are a chat measurement over all workers.
type ChatStats struct {
	TargetRate float64 `json:"target_rate"` // 0: as fast as the window allows
	Window     int     `json:"window"`
	BodySize   int     `json:"body_size"`
	Sent       int64   `json:"sent"`
	Delivered  int64   `json:"delivered"`
	Bounced    int64   `json:"bounced"`
	SendErrors int64   `json:"send_errors"`
	// Lost were sent and neither delivered nor bounced within the drain
	// time after sending stopped.
	Lost  int64 `json:"lost"`
	Stale int64 `json:"stale"`
	// Seconds runs from the first send to the last delivery.
	Seconds               float64     `json:"seconds"`
	SentPerSecond         float64     `json:"sent_per_second"`
	DeliveredPerSecond    float64     `json:"delivered_per_second"`
	Latency               Percentiles `json:"latency"`
	ServerCPUPerMessageUS float64     `json:"server_cpu_per_message_us,omitempty"`
	// Timeline is the latency of the messages sent in each second of the
	// run: a tail made of a few bad seconds (a stall) looks different from
	// one spread over the run (a server near saturation).
	Timeline []SecondStats `json:"timeline,omitempty"`
}

// SecondStats is the latency of the messages sent in one second of a chat
// run; Second counts from the second of the first send.
type SecondStats struct {
	Second int `json:"second"`
	Percentiles
}

// StormStats are the disconnect-everyone, reconnect-everyone phase.
type StormStats struct {
	Sessions            int         `json:"sessions"`
	Disconnected        int         `json:"disconnected"`
	DisconnectSeconds   float64     `json:"disconnect_seconds"`
	Reconnected         int         `json:"reconnected"`
	Failed              int         `json:"failed"`
	ReconnectSeconds    float64     `json:"reconnect_seconds"`
	ReconnectsPerSecond float64     `json:"reconnects_per_second"`
	Latency             Percentiles `json:"latency"`
	Errors              []string    `json:"errors,omitempty"`
}

func newReport(o *Options, workers int) *Report {
	enc := "xml"
	if o.Target.Binary {
		enc = "binary"
	}
	mech := o.Target.Mechanism
	if mech == "" {
		mech = "auto"
	}
	return &Report{
		Scenario: o.Scenario, Addr: o.Target.Addr, Domain: o.Target.Domain, TLS: o.Target.TLS,
		Mechanism: mech, Groups: o.Target.Groups, Encoding: enc, SM: o.Target.SM, Sessions: o.Sessions, Workers: workers,
		Started: time.Now().UTC(),
	}
}

func firstErrors(res []*phaseResult) []string {
	var out []string
	for _, r := range res {
		for _, e := range r.Errors {
			if len(out) < maxErrors {
				out = append(out, e)
			}
		}
	}
	return out
}

func sumRegister(res []*phaseResult) *RegisterStats {
	s := &RegisterStats{Errors: firstErrors(res)}
	for _, r := range res {
		s.Created += r.OK - r.Existed
		s.Existed += r.Existed
		s.Failed += r.Failed
		s.Seconds = max(s.Seconds, r.Seconds)
	}
	if s.Seconds > 0 {
		s.PerSecond = float64(s.Created) / s.Seconds
	}
	return s
}

func sumLogin(res []*phaseResult) *LoginStats {
	s := &LoginStats{Errors: firstErrors(res)}
	for _, r := range res {
		s.OK += r.OK
		s.Failed += r.Failed
		s.Online += r.Online
		// Workers run side by side: the phase lasts as long as the slowest.
		s.Seconds = max(s.Seconds, r.Seconds)
		s.hist.Merge(r.Latency)
	}
	if s.Seconds > 0 {
		s.PerSecond = float64(s.OK) / s.Seconds
	}
	s.Latency = s.hist.Summary()
	return s
}

func sumChat(res []*phaseResult, o *Options) *ChatStats {
	s := &ChatStats{TargetRate: o.Rate, Window: o.Window, BodySize: o.BodySize}
	var h Hist
	var first, last int64
	timeline := map[int64]*Hist{}
	for _, r := range res {
		for sec, sh := range r.Timeline {
			if timeline[sec] == nil {
				timeline[sec] = &Hist{}
			}
			timeline[sec].Merge(sh)
		}
		s.Sent += r.Sent
		s.Delivered += r.Delivered
		s.Bounced += r.Bounced
		s.SendErrors += r.SendErrors
		s.Stale += r.Stale
		h.Merge(r.Latency)
		if r.FirstSend > 0 && (first == 0 || r.FirstSend < first) {
			first = r.FirstSend
		}
		last = max(last, r.LastDelivery)
	}
	s.Lost = max(0, s.Sent-s.Delivered-s.Bounced)
	if first > 0 && last > first {
		s.Seconds = time.Duration(last - first).Seconds()
		s.DeliveredPerSecond = float64(s.Delivered) / s.Seconds
		s.SentPerSecond = float64(s.Sent) / s.Seconds
	}
	s.Latency = h.Summary()
	secs := slices.Sorted(maps.Keys(timeline))
	for _, sec := range secs {
		s.Timeline = append(s.Timeline, SecondStats{Second: int(sec - secs[0]), Percentiles: timeline[sec].Summary()})
	}
	return s
}

// worstSeconds returns up to n seconds of the timeline with the highest
// p99, worst first.
func worstSeconds(t []SecondStats, n int) []SecondStats {
	w := slices.Clone(t)
	slices.SortStableFunc(w, func(a, b SecondStats) int { return cmp.Compare(b.P99, a.P99) })
	return w[:min(n, len(w))]
}

// addFootprint records the workers' own memory and CPU time.
func (rep *Report) addFootprint(res []*phaseResult) {
	rep.LoadRSSKiB, rep.LoadCPUSeconds = 0, 0
	for _, r := range res {
		rep.LoadRSSKiB += r.RSSKiB
		rep.LoadCPUSeconds += r.CPUSeconds
	}
}

// addSCRAMCache sums the workers' key cache counters, from every worker:
// unlike memory and CPU time they are not per process.
func (rep *Report) addSCRAMCache(res []*phaseResult) {
	rep.SCRAMCacheHits, rep.SCRAMCacheMisses = 0, 0
	for _, r := range res {
		rep.SCRAMCacheHits += r.SCRAMCacheHits
		rep.SCRAMCacheMisses += r.SCRAMCacheMisses
	}
}

func fmtLat(p Percentiles) string {
	if p.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", p.P50, p.P90, p.P99, p.Max)
}

// WriteTable prints the report as a two-column summary table.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("scenario", "%s, %d sessions, %d worker(s)", rep.Scenario, rep.Sessions, rep.Workers)
	row("server", "%s (domain %s)", rep.Addr, rep.Domain)
	groups := "Go's default key exchange groups"
	if len(rep.Groups) > 0 {
		groups = "groups " + strings.Join(rep.Groups, ",")
	}
	row("connection", "TLS %s (%s), SASL %s, %s, stream management %v", rep.TLS, groups, rep.Mechanism, rep.Encoding, rep.SM)
	if r := rep.Register; r != nil {
		row("registration", "%d created, %d existed, %d failed in %.1f s (%.0f/s)", r.Created, r.Existed, r.Failed, r.Seconds, r.PerSecond)
	}
	if l := rep.Login; l != nil {
		warm := ""
		if l.WarmUp > 0 {
			warm = fmt.Sprintf(" (+%d warm-up logged in before, not timed)", l.WarmUp)
		}
		row("logins", "%d ok%s, %d failed in %.1f s: %.0f logins/s", l.OK, warm, l.Failed, l.Seconds, l.PerSecond)
		row("login latency", "%s", fmtLat(l.Latency))
		for _, e := range l.Errors {
			row("  error", "%s", e)
		}
	}
	if m := rep.Memory; m != nil {
		row("server VmRSS", "%.1f MiB before, %.1f MiB with %d idle sessions", float64(m.RSSBeforeKiB)/1024, float64(m.RSSAfterKiB)/1024, m.Sessions)
		row("server memory/session", "%.0f bytes (%.1f KiB)", m.BytesPerSession, m.BytesPerSession/1024)
	}
	if c := rep.Chat; c != nil {
		target := "max (window-bound)"
		if c.TargetRate > 0 {
			target = fmt.Sprintf("%.0f msgs/s", c.TargetRate)
		}
		row("chat target", "%s, window %d, %d-byte bodies", target, c.Window, c.BodySize)
		row("messages", "%d sent, %d delivered, %d bounced, %d send errors, %d lost, %d stale", c.Sent, c.Delivered, c.Bounced, c.SendErrors, c.Lost, c.Stale)
		row("delivered rate", "%.0f msgs/s over %.1f s", c.DeliveredPerSecond, c.Seconds)
		row("latency", "%s", fmtLat(c.Latency))
		if w := worstSeconds(c.Timeline, 3); len(w) > 0 {
			var parts []string
			for _, s := range w {
				parts = append(parts, fmt.Sprintf("second %d: p99 %.1f ms, max %.1f ms (%d msgs)", s.Second, s.P99, s.Max, s.N))
			}
			row("worst seconds", "%s", strings.Join(parts, "; "))
		}
		if c.ServerCPUPerMessageUS > 0 {
			row("server CPU/message", "%.0f µs", c.ServerCPUPerMessageUS)
		}
	}
	if s := rep.Storm; s != nil {
		row("storm disconnect", "%d sessions closed in %.2f s", s.Disconnected, s.DisconnectSeconds)
		row("storm reconnect", "%d ok, %d failed in %.2f s (%.0f/s)", s.Reconnected, s.Failed, s.ReconnectSeconds, s.ReconnectsPerSecond)
		row("reconnect latency", "%s", fmtLat(s.Latency))
		for _, e := range s.Errors {
			row("  error", "%s", e)
		}
	}
	if rep.ServerCPUSeconds > 0 {
		row("server CPU", "%.2f s", rep.ServerCPUSeconds)
	}
	row("load generator", "%.1f MiB RSS, %.1f s CPU (all workers)", float64(rep.LoadRSSKiB)/1024, rep.LoadCPUSeconds)
	if rep.SCRAMCacheHits+rep.SCRAMCacheMisses > 0 {
		row("SCRAM key cache", "%d logins reused derived keys, %d ran PBKDF2", rep.SCRAMCacheHits, rep.SCRAMCacheMisses)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// String is the table as text.
func (rep *Report) String() string {
	var b strings.Builder
	_ = rep.WriteTable(&b)
	return b.String()
}
