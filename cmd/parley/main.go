// Command parley is the Parley messaging server: `parley serve` runs it,
// `parley user …` manages accounts, `parley version` prints the version.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parley-im/parley/internal/config"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/server"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/jid"
)

const usage = `Parley, a messaging server that speaks XMPP.

Usage:
  parley serve [flags]                      run the server (parley serve --help for flags)
  parley user add JID (--password P | --password-stdin) [--data DIR]
  parley user passwd JID (--password P | --password-stdin) [--data DIR]
  parley user del JID [--data DIR]
  parley user list [--data DIR]
  parley user import [--data DIR] < FILE    one "JID PASSWORD" per line; existing accounts are skipped
  parley bench SCENARIO [flags]             load an XMPP server: connect, chat, storm, register (parley bench --help)
  parley version

While a server runs on the data directory, the user commands (except import)
go through its admin API, found in DIR/run.json, with the token from
--admin-token TOKEN, $PARLEY_ADMIN_TOKEN or DIR/admin-token.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "user":
		return user(args[1:], stdin, stdout, stderr)
	case "chat":
		return chat(args[1:], stdin, stdout, stderr)
	case "bench":
		return runBench(args[1:], stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "parley %s\n", server.Version)
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == config.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stderr io.Writer) int {
	cfg, err := config.Load(args, os.Environ())
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "parley serve: invalid configuration:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	server.ApplyGCDefaults(os.Getenv, log)
	server.ApplyProcsDefault(os.Getenv, log)
	srv, err := server.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	// Catch signals before accepting anything: a SIGTERM right after start
	// must still mean a graceful stop.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	srv.Start()
	got := <-sig
	log.Info("shutting down", "signal", got.String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("user add alice --password x" as well as "user add --password x alice").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func user(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := args[0]
	switch sub {
	case "add", "passwd", "del", "list", "import":
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "parley user: unknown command %q\n\n%s", sub, usage)
		return 2
	}
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := config.Default()
	data := fs.String("data", envOr("PARLEY_DATA", def.Data), "data directory of the server")
	password := fs.String("password", "", "the password (visible in the process list: prefer --password-stdin)")
	passStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	adminToken := fs.String("admin-token", "", "the server's admin `TOKEN`, when a server runs on --data with a configured token (default: $PARLEY_ADMIN_TOKEN, else --data/admin-token)")
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	want := 1
	if sub == "list" || sub == "import" {
		want = 0
	}
	if len(pos) != want {
		fmt.Fprintf(stderr, "parley user %s: expected %d argument(s)\n\n%s", sub, want, usage)
		return 2
	}
	var username string
	if want == 1 {
		username, err = localpart(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "parley user %s: %v\n", sub, err)
			return 2
		}
	}
	var pw string
	if sub == "add" || sub == "passwd" {
		pw, err = readPassword(*password, *passStdin, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "parley user %s: %v\n", sub, err)
			return 2
		}
	}
	ctx := context.Background()
	st, err := pebble.Open(filepath.Join(*data, "store"), pebble.Options{})
	var accts accounts
	switch {
	case err == nil:
		defer st.Close()
		if sub == "import" {
			return importUsers(ctx, st, stdin, stdout, stderr)
		}
		accts = storeAccounts{st}
	case errors.Is(err, pebble.ErrLocked) && sub == "import":
		fmt.Fprintf(stderr, "parley user import: a Parley server is running on %s (its store is locked); import works on a stopped server only: stop it first, or add accounts one by one with parley user add, which goes through the server's admin API\n", *data)
		return 1
	case errors.Is(err, pebble.ErrLocked):
		// A server runs on this data directory: go through its admin API.
		api, err := newAPIAccounts(*data, *adminToken)
		if err != nil {
			fmt.Fprintf(stderr, "parley user %s: %v\n", sub, err)
			return 1
		}
		accts = api
	default:
		fmt.Fprintf(stderr, "parley user %s: %v\n", sub, err)
		return 1
	}
	return userOp(ctx, accts, sub, username, pw, stdout, stderr)
}

// userOp runs one account command and prints the same output whether it
// went to the store or through the admin API.
func userOp(ctx context.Context, accts accounts, sub, username, pw string, stdout, stderr io.Writer) int {
	var err error
	switch sub {
	case "add":
		if err = accts.add(ctx, username, pw); err == nil {
			fmt.Fprintf(stdout, "added %s\n", username)
		}
	case "passwd":
		if err = accts.passwd(ctx, username, pw); err == nil {
			fmt.Fprintf(stdout, "password changed for %s\n", username)
		}
	case "del":
		if err = accts.del(ctx, username); err == nil {
			fmt.Fprintf(stdout, "deleted %s\n", username)
		}
	case "list":
		err = accts.list(ctx, func(name string) { fmt.Fprintln(stdout, name) })
	default:
		fmt.Fprintf(stderr, "parley user: unknown command %q\n\n%s", sub, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, store.ErrExists):
		fmt.Fprintf(stderr, "parley user %s: %s already exists\n", sub, username)
	case errors.Is(err, store.ErrNotFound):
		fmt.Fprintf(stderr, "parley user %s: %s does not exist\n", sub, username)
	default:
		fmt.Fprintf(stderr, "parley user %s: %v\n", sub, err)
	}
	return 1
}

// importUsers creates accounts from "JID PASSWORD" lines. Deriving SCRAM
// credentials (PBKDF2) and the synced writes are the slow parts, so it
// runs many workers.
func importUsers(ctx context.Context, st *pebble.Store, stdin io.Reader, stdout, stderr io.Writer) int {
	type job struct {
		line int
		user string
		pass string
	}
	jobs := make(chan job, 256)
	var mu sync.Mutex
	added, skipped, failed := 0, 0, 0
	var wg sync.WaitGroup
	// More workers than cores: account writes are fsync'd, and concurrent
	// commits share one fsync (group commit).
	for range 8 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				sha1, sha256, err := sasl.NewCredentials(j.pass)
				if err == nil {
					err = st.CreateAccount(ctx, store.Account{Username: j.user, Created: time.Now(), SHA1: sha1, SHA256: sha256})
				}
				mu.Lock()
				switch {
				case errors.Is(err, store.ErrExists):
					skipped++
				case err != nil:
					failed++
					fmt.Fprintf(stderr, "line %d: %s: %v\n", j.line, j.user, err)
				default:
					added++
				}
				mu.Unlock()
			}
		}()
	}
	sc := bufio.NewScanner(stdin)
	n := 0
	for sc.Scan() {
		n++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			mu.Lock()
			failed++
			fmt.Fprintf(stderr, "line %d: want \"JID PASSWORD\"\n", n)
			mu.Unlock()
			continue
		}
		u, err := localpart(fields[0])
		if err != nil {
			mu.Lock()
			failed++
			fmt.Fprintf(stderr, "line %d: %v\n", n, err)
			mu.Unlock()
			continue
		}
		jobs <- job{line: n, user: u, pass: fields[1]}
	}
	close(jobs)
	wg.Wait()
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "parley user import: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d, skipped %d existing, %d failed\n", added, skipped, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// localpart accepts "alice" or "alice@domain" and returns the normalised
// localpart: the store is per domain-less username.
func localpart(s string) (string, error) {
	if !strings.Contains(s, "@") {
		s += "@localhost"
	}
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid JID %q: %w", s, err)
	}
	if j.Local() == "" || j.Resource() != "" {
		return "", fmt.Errorf("invalid JID %q: want user@domain", s)
	}
	return j.Local(), nil
}

func readPassword(flagValue string, fromStdin bool, stdin io.Reader) (string, error) {
	switch {
	case fromStdin && flagValue != "":
		return "", errors.New("give either --password or --password-stdin, not both")
	case fromStdin:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", errors.New("empty password on standard input")
		}
		return line, nil
	case flagValue != "":
		return flagValue, nil
	}
	return "", errors.New("a password is required: --password P or --password-stdin")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
