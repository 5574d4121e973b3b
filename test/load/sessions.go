package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// loginResult is what logging a batch of sessions in achieved.
type loginResult struct {
	clients []*client.Client // index i is account i; nil if its login failed
	ok      int
	errs    []string
	elapsed time.Duration
	lat     []time.Duration // per successful login: Dial + initial presence + ping
}

// loginAll logs accounts [0, count) in at o.concurrency at a time, each
// from source address i % o.sources, sends initial presence and waits for a
// ping round trip, which the server answers only after it has processed the
// presence: a session counted here is fully set up on the server. Incoming
// stanzas of session i go to onIncoming (nil: dropped) from one goroutine
// per session.
func loginAll(ctx context.Context, o *options, count int, resource string, onIncoming func(i int, el *stanza.Element)) *loginResult {
	res := &loginResult{clients: make([]*client.Client, count)}
	var mu sync.Mutex
	sem := make(chan struct{}, o.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	lastReport := start
	for i := range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			c, err := loginOne(ctx, o, i, resource, onIncoming)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.errs = append(res.errs, fmt.Sprintf("%s: %v", o.account(i), err))
				return
			}
			res.clients[i] = c
			res.ok++
			res.lat = append(res.lat, d)
			if now := time.Now(); now.Sub(lastReport) >= 5*time.Second {
				lastReport = now
				fmt.Fprintf(os.Stderr, "  … %d/%d logged in (%.0f/s)\n", res.ok, count, float64(res.ok)/now.Sub(start).Seconds())
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func loginOne(ctx context.Context, o *options, i int, resource string, onIncoming func(int, *stanza.Element)) (*client.Client, error) {
	c, err := client.Dial(ctx, client.Config{
		Addr:                o.addr,
		JID:                 o.account(i),
		Password:            o.password,
		Resource:            resource,
		DirectTLS:           o.directTLS,
		TLSConfig:           o.tls,
		SendInitialPresence: true,
		DialContext:         dialerFrom(sourceIP(i % o.sources)),
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for el := range c.Incoming() {
			if onIncoming != nil {
				onIncoming(i, el)
			}
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", o.domain).
		Append(stanza.New("ping", "urn:xmpp:ping"))
	if _, err := c.IQ(pctx, iq); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ping after login: %w", err)
	}
	return c, nil
}

// closeAll closes the sessions, o.concurrency at a time.
func closeAll(o *options, clients []*client.Client) {
	sem := make(chan struct{}, max(o.concurrency, 64))
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
			<-sem
		}()
	}
	wg.Wait()
}

// registerAccounts creates accounts [0, count) by in-band registration.
// The server allows one registration per source address per 10 s, so
// account i registers from address i % o.registerSources, each address
// waiting out the interval before its next use; accounts that exist
// already count as done, so a run can be repeated.
func registerAccounts(ctx context.Context, o *options, count int) error {
	const interval = 10*time.Second + 250*time.Millisecond
	lastUse := make([]time.Time, min(o.registerSources, count))
	var (
		mu                      sync.Mutex
		created, existed, tries int
		errs                    []string
		wg                      sync.WaitGroup
	)
	sem := make(chan struct{}, o.concurrency)
	start := time.Now()
	fmt.Fprintf(os.Stderr, "registering %d accounts over %d source addresses …\n", count, len(lastUse))
	for i := range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			slot := i % len(lastUse)
			for attempt := 0; ; attempt++ {
				mu.Lock()
				wait := time.Until(lastUse[slot].Add(interval))
				lastUse[slot] = time.Now().Add(max(wait, 0))
				tries++
				mu.Unlock()
				if wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return
					}
				}
				err := client.Register(ctx, client.Config{
					Addr:        o.addr,
					JID:         o.account(i),
					Password:    o.password,
					DirectTLS:   o.directTLS,
					TLSConfig:   o.tls,
					DialContext: dialerFrom(sourceIP(slot)),
				})
				var se *stanza.Error
				errors.As(err, &se)
				mu.Lock()
				switch {
				case err == nil:
					created++
				case se != nil && se.Condition == "conflict":
					existed++
				case se != nil && se.Condition == "resource-constraint" && attempt < 3:
					mu.Unlock()
					continue // rate-limited after all (clock skew, a restart): wait and retry
				default:
					errs = append(errs, fmt.Sprintf("%s: %v", o.account(i), err))
				}
				done := created + existed
				if done > 0 && done%1000 == 0 {
					fmt.Fprintf(os.Stderr, "  … %d/%d accounts (%.0f/s)\n", done, count, float64(done)/time.Since(start).Seconds())
				}
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("register: %d created, %d existed, %d failed in %.1fs (%.0f registrations/s, %d attempts)\n",
		created, existed, len(errs), el.Seconds(), float64(created)/el.Seconds(), tries)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d registrations failed: %s", len(errs), firstErrors(errs, 5))
	}
	return nil
}

// procStatus reads a field of /proc/PID/status in KiB (VmRSS, RssAnon, …).
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: odd %s line %q", pid, field, line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// procCPU returns the user+system CPU time a process has used, from
// /proc/PID/stat (fields 14 and 15, in USER_HZ ticks, 100 per second on
// Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields start after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	d, err := procCPU(os.Getpid())
	if err != nil {
		return 0
	}
	return d
}

// percentiles formats p50/p90/p99/max of ds (sorted in place).
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration {
		i := int(p * float64(len(ds)-1))
		return ds[i]
	}
	r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s", r(at(0.50)), r(at(0.90)), r(at(0.99)), r(ds[len(ds)-1]))
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
