package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// handle is the parent's end of one worker.
type handle struct {
	idx    int
	n      int // accounts
	enc    *json.Encoder
	in     io.Closer
	events chan event // done and error events
	wait   func() error

	mu   sync.Mutex
	prog counters // the latest progress
}

func (h *handle) progress() counters {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.prog
}

// runner is one bench run in the parent.
type runner struct {
	o       *Options
	workers []*handle
	cpu0    time.Duration
	last    []*phaseResult // the latest phase's results, for the footprint
}

// Run executes the scenario of o and returns its report. Progress lines
// go to o.Progress once per second.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.Defaults()
	if err := o.Check(); err != nil {
		return nil, err
	}
	r := &runner{o: &o}
	if err := r.start(ctx); err != nil {
		r.stop()
		return nil, err
	}
	rep, err := r.scenario(ctx)
	if rep != nil && r.last != nil {
		last := r.last
		if o.InProcess {
			last = last[:1] // one process: every worker reports the same
		}
		rep.addFootprint(last)
		rep.addSCRAMCache(r.last)
	}
	if cerr := r.stop(); err == nil && cerr != nil {
		err = cerr
	}
	return rep, err
}

// start launches the workers and hands each its accounts and sources.
func (r *runner) start(ctx context.Context) error {
	o := r.o
	accts := o.AccountList()
	nw := o.Workers
	if nw <= 0 {
		nw = (len(accts) + o.PerWorker - 1) / o.PerWorker
	}
	nw = max(1, min(nw, len(accts)))
	for i := range nw {
		lo, hi := i*len(accts)/nw, (i+1)*len(accts)/nw
		// Sources split like the accounts; with fewer sources than
		// workers, workers share them.
		var srcs []int
		slo, shi := i*o.Sources/nw, (i+1)*o.Sources/nw
		for s := slo; s < shi; s++ {
			srcs = append(srcs, s)
		}
		if len(srcs) == 0 {
			srcs = []int{i % o.Sources}
		}
		h, err := r.spawn(ctx, i)
		if err != nil {
			return err
		}
		h.n = hi - lo
		r.workers = append(r.workers, h)
		setup := &workerSetup{Target: o.Target, Accounts: accts[lo:hi], Sources: srcs, Concurrency: o.Concurrency}
		if o.Target.SCRAMCacheFile != "" && !o.Target.NoSCRAMCache {
			setup.KeyCacheFile = fmt.Sprintf("%s.%d", o.Target.SCRAMCacheFile, i)
		}
		if err := h.enc.Encode(command{Op: opSetup, Setup: setup}); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
	}
	_, err := r.collect(ctx, opSetup, false)
	return err
}

// spawn starts worker i as a process, or as a goroutine with InProcess.
func (r *runner) spawn(ctx context.Context, i int) (*handle, error) {
	h := &handle{idx: i, events: make(chan event, 4)}
	var out io.Reader
	if r.o.InProcess {
		cmdR, cmdW := io.Pipe()
		evR, evW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := ServeWorker(ctx, cmdR, evW)
			evW.CloseWithError(err)
			cmdR.Close()
			done <- err
		}()
		h.enc, h.in, out = json.NewEncoder(cmdW), cmdW, evR
		h.wait = func() error { return <-done }
	} else {
		argv := r.o.WorkerCommand
		if len(argv) == 0 {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("find own executable for the workers: %w", err)
			}
			argv = []string{exe, "bench", "--worker"}
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = os.Stderr
		// A worker must not outlive a parent killed without cleanup.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		h.enc, h.in, out = json.NewEncoder(stdin), stdin, stdout
		h.wait = cmd.Wait
	}
	go func() {
		defer close(h.events)
		dec := json.NewDecoder(bufio.NewReader(out))
		for {
			var ev event
			if err := dec.Decode(&ev); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
					h.events <- event{Ev: evError, Err: fmt.Sprintf("read events: %v", err)}
				}
				return
			}
			if ev.Ev == evProgress && ev.Progress != nil {
				h.mu.Lock()
				h.prog = *ev.Progress
				h.mu.Unlock()
				continue
			}
			h.events <- ev
		}
	}()
	return h, nil
}

// stop closes the workers' sessions and waits for them to exit.
func (r *runner) stop() error {
	var errs []error
	for _, h := range r.workers {
		if err := h.enc.Encode(command{Op: opClose}); err == nil {
			select {
			case <-h.events:
			case <-time.After(30 * time.Second):
				errs = append(errs, fmt.Errorf("worker %d did not close in time", h.idx))
			}
		}
		_ = h.in.Close()
	}
	for _, h := range r.workers {
		if err := h.wait(); err != nil {
			slog.Debug("bench worker exit", "worker", h.idx, "err", err)
		}
	}
	r.workers = nil
	return errors.Join(errs...)
}

// phase sends one command to every worker (cmdFor may vary it per worker)
// and collects their results, printing progress once per second.
func (r *runner) phase(ctx context.Context, label string, cmdFor func(h *handle) command, chat bool) ([]*phaseResult, error) {
	for _, h := range r.workers {
		if err := h.enc.Encode(cmdFor(h)); err != nil {
			return nil, fmt.Errorf("worker %d: %w", h.idx, err)
		}
	}
	return r.collect(ctx, label, chat)
}

func (r *runner) collect(ctx context.Context, label string, chat bool) ([]*phaseResult, error) {
	res := make([]*phaseResult, len(r.workers))
	var errs []error
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for i, h := range r.workers {
		for res[i] == nil && len(errs) == 0 {
			select {
			case ev, ok := <-h.events:
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("worker %d: ended during %s", h.idx, label))
				case ev.Ev == evError:
					errs = append(errs, fmt.Errorf("worker %d: %s: %s", h.idx, label, ev.Err))
				case ev.Done != nil:
					res[i] = ev.Done
				}
			case <-tick.C:
				r.report(label, start, chat)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.last = res
	return res, nil
}

// report prints one progress line over all workers.
func (r *runner) report(label string, start time.Time, chat bool) {
	if r.o.Progress == nil {
		return
	}
	var sum counters
	for _, h := range r.workers {
		p := h.progress()
		sum.OK += p.OK
		sum.Failed += p.Failed
		sum.Sent += p.Sent
		sum.Delivered += p.Delivered
	}
	el := time.Since(start).Seconds()
	if chat {
		r.o.Progress(fmt.Sprintf("%s %5.0fs: %d sent, %d delivered (%.0f/s)", label, el, sum.Sent, sum.Delivered, float64(sum.Delivered)/el))
		return
	}
	r.o.Progress(fmt.Sprintf("%s %5.0fs: %d ok, %d failed (%.0f/s)", label, el, sum.OK, sum.Failed, float64(sum.OK)/el))
}

func (r *runner) scenario(ctx context.Context) (*Report, error) {
	o := r.o
	rep := newReport(o, len(r.workers))
	if o.Register {
		res, err := r.phase(ctx, "register", func(*handle) command {
			return command{Op: opRegister, Concurrency: o.Concurrency}
		}, false)
		if err != nil {
			return nil, err
		}
		rep.Register = sumRegister(res)
		if rep.Register.Failed > 0 {
			return rep, fmt.Errorf("%d registrations failed: %s", rep.Register.Failed, strings.Join(rep.Register.Errors, "; "))
		}
	}
	if o.PID > 0 {
		r.cpu0, _ = procCPU(o.PID)
	}
	var err error
	switch o.Scenario {
	case ScenarioConnect:
		err = r.connect(ctx, rep)
	case ScenarioChat:
		err = r.chat(ctx, rep)
	case ScenarioStorm:
		err = r.storm(ctx, rep)
	case ScenarioRegister:
		// Done above.
	}
	if o.PID > 0 {
		if cpu, cerr := procCPU(o.PID); cerr == nil {
			rep.ServerCPUSeconds = (cpu - r.cpu0).Seconds()
		}
	}
	return rep, err
}

func (r *runner) login(ctx context.Context, label string, from, to func(h *handle) int, conc int) (*LoginStats, error) {
	res, err := r.phase(ctx, label, func(h *handle) command {
		return command{Op: opLogin, From: from(h), To: to(h), Concurrency: conc, Reconnect: label == "reconnect"}
	}, false)
	if err != nil {
		return nil, err
	}
	return sumLogin(res), nil
}

// all is the From and To of a login of every account of each worker.
func all(*handle) int { return 0 }

// settle waits o.Settle so that the server's memory reflects its steady
// state (freed buffers returned, GC run) rather than the login burst.
func (r *runner) settle(ctx context.Context) error {
	t := time.NewTimer(r.o.Settle)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *runner) connect(ctx context.Context, rep *Report) error {
	o := r.o
	mem := &MemoryStats{PID: o.PID}
	if o.PID > 0 {
		// One session first, so that "before" is a server that has served
		// someone: pools, caches and code paths touched by the first login
		// are not charged to the idle sessions.
		warm, err := r.login(ctx, "warm-up", all, func(h *handle) int {
			if h.idx == 0 {
				return 1
			}
			return -1 // no accounts: login skips an empty range
		}, 1)
		if err != nil {
			return err
		}
		if warm.OK != 1 {
			return fmt.Errorf("warm-up login failed: %s", strings.Join(warm.Errors, "; "))
		}
		if err := r.settle(ctx); err != nil {
			return err
		}
		if mem.RSSBeforeKiB, err = procStatusKiB(o.PID, "VmRSS"); err != nil {
			return err
		}
	}
	ls, err := r.login(ctx, "login", all, all, o.Concurrency)
	if err != nil {
		return err
	}
	rep.Login = ls
	if o.PID > 0 {
		ls.WarmUp = 1
		if err := r.settle(ctx); err != nil {
			return err
		}
		if mem.RSSAfterKiB, err = procStatusKiB(o.PID, "VmRSS"); err != nil {
			return err
		}
		// The warm-up session was there before and after.
		mem.Sessions = ls.Online - 1
		if mem.Sessions > 0 {
			mem.BytesPerSession = float64(mem.RSSAfterKiB-mem.RSSBeforeKiB) * 1024 / float64(mem.Sessions)
		}
		rep.Memory = mem
	}
	if o.Hold > 0 {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("holding %d idle sessions for %v", ls.Online, o.Hold))
		}
		t := time.NewTimer(o.Hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if ls.OK == 0 {
		return errors.New("no session logged in")
	}
	return nil
}

func (r *runner) chat(ctx context.Context, rep *Report) error {
	o := r.o
	ls, err := r.login(ctx, "login", all, all, o.Concurrency)
	if err != nil {
		return err
	}
	rep.Login = ls
	nw := len(r.workers)
	p := chatParams{
		// No "-" in the id: message ids are split at the first one.
		RunID:    fmt.Sprintf("%08x", rand.Uint32()),
		Rate:     o.Rate / float64(nw),
		Window:   max(1, o.Window/nw),
		Duration: o.Duration,
		BodySize: o.BodySize,
	}
	if o.Messages > 0 {
		p.Messages = max(1, o.Messages/nw)
	}
	if o.PID > 0 {
		r.cpu0, _ = procCPU(o.PID)
	}
	res, err := r.phase(ctx, "chat", func(*handle) command { return command{Op: opChat, Chat: &p} }, true)
	if err != nil {
		return err
	}
	rep.Chat = sumChat(res, o)
	if o.PID > 0 && rep.Chat.Delivered > 0 {
		if cpu, err := procCPU(o.PID); err == nil {
			rep.Chat.ServerCPUPerMessageUS = float64((cpu - r.cpu0).Microseconds()) / float64(rep.Chat.Delivered)
		}
	}
	if rep.Chat.Delivered == 0 {
		return errors.New("no message delivered")
	}
	return nil
}

func (r *runner) storm(ctx context.Context, rep *Report) error {
	o := r.o
	ls, err := r.login(ctx, "login", all, all, o.Concurrency)
	if err != nil {
		return err
	}
	rep.Login = ls
	st := &StormStats{Sessions: ls.Online}
	t0 := time.Now()
	dres, err := r.phase(ctx, "disconnect", func(*handle) command { return command{Op: opDisconnect} }, false)
	if err != nil {
		return err
	}
	st.DisconnectSeconds = time.Since(t0).Seconds()
	for _, d := range dres {
		st.Disconnected += d.OK
	}
	t1 := time.Now()
	rl, err := r.login(ctx, "reconnect", all, all, o.StormConcurrency)
	if err != nil {
		return err
	}
	st.ReconnectSeconds = time.Since(t1).Seconds()
	st.Reconnected, st.Failed, st.Errors, st.Latency = rl.OK, rl.Failed, rl.Errors, rl.Latency
	if st.ReconnectSeconds > 0 {
		st.ReconnectsPerSecond = float64(rl.OK) / st.ReconnectSeconds
	}
	rep.Storm = st
	return nil
}
