package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/internal/bench"
)

const benchUsage = `Usage:
  parley bench connect|chat|storm [flags]   load an XMPP server (Parley, ejabberd, Prosody, …) on 127.0.0.0/8
  parley bench register -n N [flags]        only create the accounts by in-band registration
  parley bench --print-accounts -n N [--user-prefix P --password PW --domain D]
                                            print "JID PASSWORD" lines for parley user import

Scenarios:
  connect  N sessions log in and stay idle (--hold); with --pid, the server's
           memory per idle session (VmRSS growth after --settle)
  chat     N users send 1:1 messages to random online peers at --rate (or as
           fast as --window allows) for --duration or --messages; reports
           delivered msgs/s and latency
  storm    N sessions online; all disconnect at once, then all reconnect at once

Flags:
`

// benchGCPercent is the load generator's GOGC unless GOGC or GOMEMLIMIT
// is set: its collections run on the core that timestamps the messages.
const benchGCPercent = 800

// runBench runs `parley bench`; with --worker it is one of the worker
// processes a bench run starts (see internal/bench).
func runBench(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		// The latencies measured include the load generator's own pauses:
		// with Go's GOGC=100 its collections (every ~1.3 s, 26-37 ms each
		// with one core for 2,000 TLS sessions) added ~10 ms to the p99 of
		// a 12,000 msgs/s run. A load generator can afford the memory.
		debug.SetGCPercent(benchGCPercent)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	t := &o.Target
	var (
		accountsFile  string
		printAccounts bool
		asJSON        bool
		worker        bool
		noPresence    bool
		scramCache    bool
	)
	fs.StringVar(&t.Addr, "addr", "127.0.0.1:5222", "server `ADDR` (127.x.y.z only): the c2s port, or the direct-TLS port with --tls direct")
	fs.StringVar(&t.Domain, "domain", "localhost", "XMPP `DOMAIN` of the server")
	fs.StringVar(&t.TLS, "tls", bench.TLSStartTLS, "`MODE`: starttls, direct (XEP-0368) or plain (no TLS; the server must allow it)")
	fs.StringVar(&t.Mechanism, "mechanism", "", "force a SASL `MECH`: SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN (default: the strongest offered)")
	fs.BoolVar(&t.SM, "sm", false, "enable stream management (XEP-0198)")
	fs.BoolVar(&t.Binary, "binary", false, "Parley's binary encoding (needs --tls direct; ALPN parley-bin/1)")
	fs.StringVar(&t.CAFile, "ca", "", "verify the server certificate against the PEM `FILE`")
	fs.BoolVar(&t.Insecure, "insecure", false, "do not verify the server certificate")
	fs.Func("tls-groups", "TLS key exchange `GROUPS` the client offers, comma-separated in order of preference (X25519MLKEM768, X25519, CurveP256, ...; default: Go's)", func(v string) error {
		t.Groups = strings.Split(v, ",")
		return nil
	})
	fs.DurationVar(&t.Timeout, "timeout", 60*time.Second, "bound on one login or registration")
	fs.BoolVar(&noPresence, "no-presence", false, "do not send initial presence after login")
	fs.IntVar(&o.Sessions, "n", 100, "sessions (connect, storm) or users (chat), `N`")
	fs.StringVar(&accountsFile, "accounts", "", "read accounts from `FILE`: lines \"user password\", \"user@domain password\" or \"user@domain\" (with --password)")
	fs.StringVar(&o.UserPrefix, "user-prefix", "bench", "accounts are `PREFIX`0 … PREFIX(N-1) @domain")
	fs.StringVar(&o.Password, "password", "bench-pw", "`PASSWORD` of the pattern accounts")
	fs.BoolVar(&o.Register, "register", false, "create the accounts first by in-band registration (XEP-0077)")
	fs.BoolVar(&printAccounts, "print-accounts", false, "print the accounts as \"JID PASSWORD\" lines (for parley user import) and exit")
	fs.IntVar(&o.Workers, "workers", 0, "worker processes (default: N / --per-worker, rounded up)")
	fs.IntVar(&o.PerWorker, "per-worker", 10000, "sessions per worker process at most, when --workers is not given")
	fs.BoolVar(&o.InProcess, "in-process", false, "run the workers inside this process (small runs, debugging)")
	fs.IntVar(&o.Sources, "sources", 0, "spread connections over `K` source addresses 127.0.0.2, … (default: one per 150 sessions, at least 100)")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "logins in progress at once, per worker")
	fs.IntVar(&o.PID, "pid", 0, "server `PID`, for its memory per session and CPU time (from /proc)")
	fs.DurationVar(&o.Settle, "settle", 30*time.Second, "connect: wait before each memory reading (long enough for the server to return its post-login heap room)")
	fs.DurationVar(&o.Hold, "hold", 0, "connect: keep the idle sessions for `DURATION` after measuring")
	fs.Float64Var(&o.Rate, "rate", 0, "chat: target messages per second, all users together (0: as fast as --window allows)")
	fs.IntVar(&o.Window, "window", 1000, "chat: messages in flight at most (sent, not yet delivered)")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "chat: sending time")
	fs.IntVar(&o.Messages, "messages", 0, "chat: stop after `N` messages (0: --duration decides)")
	fs.IntVar(&o.BodySize, "body-size", 64, "chat: message body size in bytes")
	fs.IntVar(&o.StormConcurrency, "storm-concurrency", 0, "storm: reconnects in progress at once per worker (0: all at once)")
	fs.StringVar(&t.SCRAMCacheFile, "scram-cache", "", "keep the SCRAM keys derived for the accounts in `FILE`.<worker> across runs, so that a later run skips the client's PBKDF2 (the files hold password equivalents)")
	fs.BoolVar(&scramCache, "scram-key-cache", true, "reuse SCRAM keys derived for an account and salt within the run (false: PBKDF2 at every login)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.BoolVar(&worker, "worker", false, "internal: run as a worker process of a bench run")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	t.NoSCRAMCache = !scramCache
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if worker {
		if err := bench.ServeWorker(ctx, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "parley bench worker: %v\n", err)
			return 1
		}
		return 0
	}
	t.Presence = !noPresence
	if accountsFile != "" {
		if o.Accounts, err = bench.ReadAccounts(accountsFile, t.Domain, o.Password); err != nil {
			fmt.Fprintf(stderr, "parley bench: %v\n", err)
			return 2
		}
	}
	if printAccounts {
		accts := o.Accounts
		if accts == nil {
			accts = bench.PatternAccounts(o.UserPrefix, o.Password, t.Domain, o.Sessions)
		}
		for _, a := range accts {
			fmt.Fprintf(stdout, "%s %s\n", a.JID, a.Password)
		}
		return 0
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "parley bench: name one scenario: connect, chat, storm or register\n\n")
		fs.Usage()
		return 2
	}
	o.Scenario = pos[0]
	o.Progress = func(line string) { fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05"), line) }
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil {
				fmt.Fprintf(stderr, "parley bench: %v\n", jerr)
				return 1
			}
		} else if werr := rep.WriteTable(stdout); werr != nil {
			fmt.Fprintf(stderr, "parley bench: %v\n", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "parley bench: %v\n", err)
		return 1
	}
	return 0
}
