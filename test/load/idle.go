package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// runIdle logs o.n sessions in, keeps them idle and reports the server's
// memory growth per session and the login rate.
func runIdle(ctx context.Context, o *options) error {
	if err := raiseNoFile(o.n + 256); err != nil {
		return err
	}
	var rssBefore, anonBefore int64
	if o.pid > 0 {
		// One session first, so that "before" is a server that has served
		// someone: pools, caches and code touched by the first login are
		// not charged to the idle sessions.
		warm := loginAll(ctx, o, 1, "warmup", nil)
		if warm.ok != 1 {
			return fmt.Errorf("warm-up login failed: %s", firstErrors(warm.errs, 1))
		}
		defer closeAll(o, warm.clients)
		if !sleep(ctx, o.settle) {
			return ctx.Err()
		}
		var err error
		if rssBefore, anonBefore, err = memory(o.pid); err != nil {
			return err
		}
	}
	var cpu0 time.Duration
	if o.pid > 0 {
		cpu0, _ = procCPU(o.pid)
	}
	fmt.Fprintf(os.Stderr, "logging in %d sessions, %d at a time, from %d source addresses …\n", o.n, o.concurrency, min(o.sources, o.n))
	res := loginAll(ctx, o, o.n, "idle", nil)
	defer closeAll(o, res.clients)
	how := "STARTTLS"
	if o.directTLS {
		how = "direct TLS"
	}
	fmt.Printf("idle: %d of %d sessions logged in (%s, SCRAM, bind, presence, ping) in %.1fs: %.0f logins/s, %d failed\n",
		res.ok, o.n, how, res.elapsed.Seconds(), float64(res.ok)/res.elapsed.Seconds(), len(res.errs))
	fmt.Printf("  login latency: %s\n", percentiles(res.lat))
	if len(res.errs) > 0 {
		fmt.Printf("  errors: %s\n", firstErrors(res.errs, 5))
	}
	if o.pid > 0 {
		if cpu1, err := procCPU(o.pid); err == nil && res.ok > 0 {
			fmt.Printf("  server CPU for the logins: %.2fs, %.0f µs per login\n", (cpu1 - cpu0).Seconds(), float64((cpu1-cpu0).Microseconds())/float64(res.ok))
		}
		if !sleep(ctx, o.settle) {
			return ctx.Err()
		}
		rssAfter, anonAfter, err := memory(o.pid)
		if err != nil {
			return err
		}
		alive := 0
		for _, c := range res.clients {
			if c != nil && c.Err() == nil {
				alive++
			}
		}
		fmt.Printf("  server VmRSS %s -> %s (after %v settling), %d sessions alive\n", mib(rssBefore), mib(rssAfter), o.settle, alive)
		if alive > 0 {
			fmt.Printf("  server memory per idle session: VmRSS %.1f KiB, RssAnon %.1f KiB\n",
				float64(rssAfter-rssBefore)/float64(alive), float64(anonAfter-anonBefore)/float64(alive))
		}
	}
	if self, err := procStatus(os.Getpid(), "VmRSS"); err == nil {
		fmt.Printf("  load generator: VmRSS %s, CPU %.1fs\n", mib(self), selfCPU().Seconds())
	}
	if res.ok == 0 {
		return errors.New("no session logged in")
	}
	if o.hold > 0 {
		fmt.Fprintf(os.Stderr, "holding the sessions for %v …\n", o.hold)
		sleep(ctx, o.hold)
	}
	return nil
}

func memory(pid int) (rss, anon int64, err error) {
	if rss, err = procStatus(pid, "VmRSS"); err != nil {
		return 0, 0, err
	}
	if anon, err = procStatus(pid, "RssAnon"); err != nil {
		return 0, 0, err
	}
	return rss, anon, nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
