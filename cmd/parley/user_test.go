package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/config"
	"github.com/parley-im/parley/internal/server"
)

// parley runs the command in-process and returns stdout, stderr and the
// exit code.
func parley(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb strings.Builder
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// startInProcess runs a server on dir in this process; its store lock
// makes the user commands go through the admin API, as with a separate
// server process.
func startInProcess(t *testing.T, dir string, extra ...string) *server.Server {
	t.Helper()
	args := append([]string{"--data", dir, "--c2s", "127.0.0.1:0", "--c2s-tls", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--durability", "os"}, extra...)
	cfg, err := config.Load(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	return srv
}

func stopInProcess(t *testing.T, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestUserCommandsSameOutput runs each account command on the store and
// through the API of a running server, and expects the same results.
func TestUserCommandsSameOutput(t *testing.T) {
	dir := t.TempDir()
	type step struct {
		stdin  string
		args   []string
		stdout string
		stderr string // substring
		code   int
	}
	steps := func(first, second string) []step {
		return []step{
			{"", []string{"add", first + "@localhost", "--password", "pw"}, "added " + first + "\n", "", 0},
			{"pw2\n", []string{"passwd", strings.ToUpper(first), "--password-stdin"}, "password changed for " + first + "\n", "", 0},
			{"", []string{"add", first, "--password", "pw"}, "", first + " already exists", 1},
			{"", []string{"add", second, "--password", "pw"}, "added " + second + "\n", "", 0},
			{"", []string{"del", second}, "deleted " + second + "\n", "", 0},
			{"", []string{"del", second}, "", second + " does not exist", 1},
			{"", []string{"passwd", second, "--password", "x"}, "", second + " does not exist", 1},
		}
	}
	check := func(s step) {
		t.Helper()
		args := append(append([]string{"user"}, s.args...), "--data", dir)
		stdout, stderr, code := parley(t, s.stdin, args...)
		if stdout != s.stdout || code != s.code || !strings.Contains(stderr, s.stderr) {
			t.Errorf("parley %v: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				args, code, stdout, stderr, s.code, s.stdout, s.stderr)
		}
	}
	// No server: the store directly.
	for _, s := range steps("alice", "zed") {
		check(s)
	}
	// A server runs: the admin API.
	srv := startInProcess(t, dir)
	for _, s := range steps("bob", "yves") {
		check(s)
	}
	check(step{"", []string{"list"}, "alice\nbob\n", "", 0})
	check(step{"", []string{"import"}, "", "import works on a stopped server only", 1})
	check(step{"", []string{"list", "--admin-token", "nope"}, "", "refused the admin token", 1})
	stopInProcess(t, srv)
	check(step{"", []string{"list"}, "alice\nbob\n", "", 0})
	check(step{"alice secret\ncarol secret\n", []string{"import"}, "imported 1, skipped 1 existing, 0 failed\n", "", 0})
}

func TestUserCommandsAPIErrors(t *testing.T) {
	dir := t.TempDir()
	srv := startInProcess(t, dir, "--admin-token", "configured")
	defer stopInProcess(t, srv)

	// The configured token is not in a file: the command says how to pass it.
	_, stderr, code := parley(t, "", "user", "list", "--data", dir)
	if code != 1 || !strings.Contains(stderr, "--admin-token") {
		t.Errorf("without the token: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("PARLEY_ADMIN_TOKEN", "configured")
	if stdout, stderr, code := parley(t, "", "user", "add", "dave", "--password", "pw", "--data", dir); code != 0 || stdout != "added dave\n" {
		t.Errorf("with PARLEY_ADMIN_TOKEN: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A run file pointing nowhere.
	runFile := filepath.Join(dir, server.RunFile)
	good, err := os.ReadFile(runFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runFile, []byte(`{"http":"127.0.0.1:1","pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := parley(t, "", "user", "list", "--data", dir); code != 1 || !strings.Contains(stderr, "cannot be reached") {
		t.Errorf("unreachable API: exit %d, stderr %q", code, stderr)
	}
	if err := os.Remove(runFile); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := parley(t, "", "user", "list", "--data", dir); code != 1 || !strings.Contains(stderr, "run.json does not exist") {
		t.Errorf("missing run file: exit %d, stderr %q", code, stderr)
	}
	if err := os.WriteFile(runFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := parley(t, "", "user", "list", "--data", dir); code != 0 || stdout != "dave\n" {
		t.Errorf("restored run file: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		":5280":             "127.0.0.1:5280",
		"0.0.0.0:5280":      "127.0.0.1:5280",
		"[::]:5280":         "127.0.0.1:5280",
		"127.0.0.1:5280":    "127.0.0.1:5280",
		"[::1]:5280":        "[::1]:5280",
		"192.0.2.1:80":      "192.0.2.1:80",
		"example.org:5280":  "example.org:5280",
		"no-port-at-all":    "no-port-at-all",
		"[2001:db8::1]:443": "[2001:db8::1]:443",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUserUnknownSubcommand(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := parley(t, "", "user", "frobnicate", "--data", dir); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("an unknown subcommand touched the data directory: %v", entries)
	}
}
