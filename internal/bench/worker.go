package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// ServeWorker runs a worker: it reads commands from in and writes events
// to out until the close command, the end of in, or ctx ends. Sessions
// still open then are closed.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	w := &worker{out: json.NewEncoder(out)}
	defer w.closeAll()
	dec := json.NewDecoder(bufio.NewReader(in))
	for {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: read command: %w", err)
		}
		if cmd.Op == opClose {
			w.closeAll()
			if err := w.saveKeyCache(); err != nil {
				return w.send(event{Ev: evError, Err: err.Error()})
			}
			return w.send(event{Ev: evDone, Done: w.footprint(&phaseResult{})})
		}
		res, err := w.handle(ctx, &cmd)
		ev := event{Ev: evDone, Done: res}
		if err != nil {
			ev = event{Ev: evError, Err: err.Error()}
		}
		if err := w.send(ev); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

type worker struct {
	outMu sync.Mutex
	out   *json.Encoder

	setup *workerSetup
	tls   *tls.Config
	// keys is shared by all the worker's sessions. Each account shows its
	// own salt on Parley, so it pays off when an account logs in again
	// (the storm's reconnects), or on a server that salts every account
	// alike; nil with Target.NoSCRAMCache.
	keys     *client.SCRAMKeyCache
	sessions []*client.Client // by account index; nil while offline
	dropped  []bool           // closed by the last disconnect
	chat     atomic.Pointer[chatRun]
}

func (w *worker) send(ev event) error {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if err := w.out.Encode(ev); err != nil {
		return fmt.Errorf("worker: write event: %w", err)
	}
	return nil
}

func (w *worker) handle(ctx context.Context, cmd *command) (*phaseResult, error) {
	if cmd.Op != opSetup && w.setup == nil {
		return nil, fmt.Errorf("%s before setup", cmd.Op)
	}
	switch cmd.Op {
	case opSetup:
		return w.doSetup(cmd.Setup)
	case opRegister:
		return w.register(ctx, cmd.Concurrency), nil
	case opLogin:
		// To: 0 means every account, a negative value none (a phase
		// that concerns other workers only).
		to := cmd.To
		switch {
		case to < 0:
			to = 0
		case to == 0 || to > len(w.sessions):
			to = len(w.sessions)
		}
		conc := cmd.Concurrency
		if conc <= 0 {
			conc = len(w.sessions) // at once
		}
		return w.login(ctx, cmd.From, to, conc, cmd.Reconnect), nil
	case opDisconnect:
		return w.disconnect(), nil
	case opChat:
		if cmd.Chat == nil {
			return nil, errors.New("chat without parameters")
		}
		return w.runChat(ctx, cmd.Chat)
	}
	return nil, fmt.Errorf("unknown command %q", cmd.Op)
}

func (w *worker) doSetup(s *workerSetup) (*phaseResult, error) {
	if s == nil || len(s.Sources) == 0 {
		return nil, errors.New("setup without accounts or sources")
	}
	// Each session holds one socket; the rest is for the runtime, the
	// pipes and the odd file.
	if err := RaiseNoFile(len(s.Accounts) + 256); err != nil {
		return nil, fmt.Errorf("%w in one worker: use more workers (--per-worker)", err)
	}
	tc, err := tlsConfig(&s.Target)
	if err != nil {
		return nil, err
	}
	w.setup, w.tls = s, tc
	if !s.Target.NoSCRAMCache {
		if w.keys, err = loadKeyCache(s.KeyCacheFile, max(len(s.Accounts), 1)); err != nil {
			return nil, err
		}
	}
	w.sessions = make([]*client.Client, len(s.Accounts))
	return w.footprint(&phaseResult{}), nil
}

// tlsConfig builds the client's TLS configuration: the --ca certificates,
// or no verification with --insecure, or the system roots.
func tlsConfig(t *Target) (*tls.Config, error) {
	groups, err := curveIDs(t.Groups)
	if err != nil {
		return nil, err
	}
	var c *tls.Config
	switch {
	case t.Insecure:
		c = &tls.Config{InsecureSkipVerify: true, ServerName: t.Domain} //nolint:gosec // asked for with --insecure, loopback only
	case t.CAFile != "":
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate", t.CAFile)
		}
		c = &tls.Config{RootCAs: pool, ServerName: t.Domain}
	case len(groups) > 0:
		c = &tls.Config{ServerName: t.Domain} // system roots
	default:
		return nil, nil
	}
	c.CurvePreferences = groups
	return c, nil
}

// config returns the client configuration of account i.
func (w *worker) config(i int) client.Config {
	t := &w.setup.Target
	src := sourceIP(w.setup.Sources[i%len(w.setup.Sources)])
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
	a := w.setup.Accounts[i]
	return client.Config{
		Addr:                t.Addr,
		JID:                 a.JID,
		Password:            a.Password,
		Resource:            fmt.Sprintf("bench%d", i),
		DirectTLS:           t.TLS == TLSDirect,
		Binary:              t.Binary,
		TLSConfig:           w.tls,
		AllowPlaintext:      t.TLS == TLSPlain,
		NoStartTLS:          t.TLS == TLSPlain,
		Mechanism:           t.Mechanism,
		SCRAMKeyCache:       w.keys,
		Timeout:             t.Timeout,
		StreamManagement:    t.SM,
		SendInitialPresence: t.Presence,
		DialContext:         d.DialContext,
	}
}

// errorList keeps the first few errors of a phase and counts the rest.
type errorList struct {
	mu   sync.Mutex
	errs []string
}

func (e *errorList) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.errs) < maxErrors {
		e.errs = append(e.errs, fmt.Sprintf(format, args...))
	}
}

// progress sends the counters once per second until stop is closed.
func (w *worker) progress(c *counters, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			snap := counters{
				OK:        atomic.LoadInt64(&c.OK),
				Failed:    atomic.LoadInt64(&c.Failed),
				Sent:      atomic.LoadInt64(&c.Sent),
				Delivered: atomic.LoadInt64(&c.Delivered),
			}
			_ = w.send(event{Ev: evProgress, Progress: &snap})
		case <-stop:
			return
		}
	}
}

// login logs in the offline accounts of [from, to), conc at a time. A
// session counts once the server has answered a ping sent after the
// initial presence: by then the server has processed the whole login.
func (w *worker) login(ctx context.Context, from, to, conc int, reconnect bool) *phaseResult {
	var (
		c    counters
		errs errorList
		hmu  sync.Mutex
		hist Hist
	)
	stop := make(chan struct{})
	go w.progress(&c, stop)
	defer close(stop)
	start := time.Now()
	runBounded(ctx, from, to, conc, func(i int) bool {
		return w.sessions[i] == nil && (!reconnect || w.dropped[i])
	}, func(i int) {
		t0 := time.Now()
		cl, err := w.loginOne(ctx, i)
		if err != nil {
			atomic.AddInt64(&c.Failed, 1)
			errs.add("%s: %v", w.setup.Accounts[i].JID, err)
			return
		}
		d := time.Since(t0)
		w.sessions[i] = cl // each goroutine owns its index
		atomic.AddInt64(&c.OK, 1)
		hmu.Lock()
		hist.Add(d)
		hmu.Unlock()
	})
	res := &phaseResult{
		OK:      int(c.OK),
		Failed:  int(c.Failed),
		Errors:  errs.errs,
		Latency: &hist,
		Seconds: time.Since(start).Seconds(),
		Online:  w.online(),
	}
	return w.footprint(res)
}

// runBounded runs f(i) for each i in [from, to) that want accepts (all
// if want is nil), at most conc at a time on goroutines of their own, and
// returns when all have returned. It starts no more once ctx is done.
func runBounded(ctx context.Context, from, to, conc int, want func(int) bool, f func(int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(conc, 1))
	for i := from; i < to; i++ {
		if want != nil && !want(i) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

func (w *worker) loginOne(ctx context.Context, i int) (*client.Client, error) {
	cl, err := client.Dial(ctx, w.config(i))
	if errors.Is(err, client.ErrStartTLSRequired) {
		return nil, fmt.Errorf("%w: --tls plain cannot measure this server", err)
	}
	if err != nil {
		return nil, err
	}
	// One reader per session drains Incoming: the client library blocks
	// its socket reader while Incoming is full.
	go func() {
		for el := range cl.Incoming() {
			if r := w.chat.Load(); r != nil {
				r.received(el)
			}
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, w.setup.Target.Timeout)
	defer cancel()
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", w.setup.Target.Domain).
		Append(stanza.New("ping", "urn:xmpp:ping"))
	if _, err := cl.IQ(pctx, iq); err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("ping after login: %w", err)
	}
	return cl, nil
}

// online counts the sessions whose stream is up.
func (w *worker) online() int {
	n := 0
	for _, c := range w.sessions {
		if c != nil && c.Err() == nil {
			n++
		}
	}
	return n
}

// disconnect closes every session at once and waits for the closes
// (each bounded by the client library's wait for the server's
// </stream:stream>).
func (w *worker) disconnect() *phaseResult {
	start := time.Now()
	var wg sync.WaitGroup
	n := 0
	w.dropped = make([]bool, len(w.sessions))
	for i, c := range w.sessions {
		if c == nil {
			continue
		}
		w.dropped[i] = true
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
		}()
		w.sessions[i] = nil
	}
	wg.Wait()
	return w.footprint(&phaseResult{OK: n, Seconds: time.Since(start).Seconds()})
}

// loadKeyCache reads a saved SCRAM key cache; a missing file (the first
// run) gives an empty cache.
func loadKeyCache(path string, size int) (*client.SCRAMKeyCache, error) {
	if path == "" {
		return client.NewSCRAMKeyCache(size), nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return client.NewSCRAMKeyCache(size), nil
	}
	if err != nil {
		return nil, fmt.Errorf("scram cache: %w", err)
	}
	defer f.Close()
	c, err := client.ReadSCRAMKeyCache(f, size)
	if err != nil {
		return nil, fmt.Errorf("scram cache %s: %w", path, err)
	}
	return c, nil
}

// saveKeyCache writes the worker's SCRAM key cache to its file, if it has
// one, through a temporary file so that a crash leaves the old one.
func (w *worker) saveKeyCache() error {
	if w.keys == nil || w.setup == nil || w.setup.KeyCacheFile == "" {
		return nil
	}
	path := w.setup.KeyCacheFile
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("scram cache: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := w.keys.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("scram cache %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("scram cache %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("scram cache: %w", err)
	}
	return nil
}

func (w *worker) closeAll() {
	if w.sessions != nil {
		w.disconnect()
	}
}

// registerRetry is the wait before retrying a registration the server
// refused with resource-constraint: Parley allows one registration per
// address per 10 s, other servers have similar throttles.
const registerRetry = 10*time.Second + 250*time.Millisecond

// register creates the worker's accounts by in-band registration, conc at
// a time. Existing accounts count as done, so a run can be repeated.
func (w *worker) register(ctx context.Context, conc int) *phaseResult {
	var (
		c       counters
		existed atomic.Int64
		errs    errorList
	)
	stop := make(chan struct{})
	go w.progress(&c, stop)
	defer close(stop)
	start := time.Now()
	runBounded(ctx, 0, len(w.setup.Accounts), conc, nil, func(i int) {
		cfg := w.config(i)
		for attempt := 0; ; attempt++ {
			err := client.Register(ctx, cfg)
			var se *stanza.Error
			errors.As(err, &se)
			switch {
			case err == nil:
				atomic.AddInt64(&c.OK, 1)
			case se != nil && se.Condition == "conflict":
				existed.Add(1)
				atomic.AddInt64(&c.OK, 1)
			case se != nil && se.Condition == "resource-constraint" && attempt < 3:
				select {
				case <-time.After(registerRetry):
					continue
				case <-ctx.Done():
				}
				fallthrough
			default:
				atomic.AddInt64(&c.Failed, 1)
				errs.add("register %s: %v", cfg.JID, err)
			}
			return
		}
	})
	res := &phaseResult{
		OK:      int(c.OK),
		Failed:  int(c.Failed),
		Existed: int(existed.Load()),
		Errors:  errs.errs,
		Seconds: time.Since(start).Seconds(),
	}
	return w.footprint(res)
}

// footprint adds the worker's own memory and CPU time, and its key cache's
// totals, to res.
func (w *worker) footprint(res *phaseResult) *phaseResult {
	pid := os.Getpid()
	res.RSSKiB, _ = procStatusKiB(pid, "VmRSS")
	if cpu, err := procCPU(pid); err == nil {
		res.CPUSeconds = cpu.Seconds()
	}
	if w.keys != nil {
		res.SCRAMCacheHits, res.SCRAMCacheMisses = w.keys.Stats()
	}
	return res
}
