package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/config"
	"github.com/parley-im/parley/internal/server"
)

// workerEnv makes the test binary a bench worker, so that the process
// mode (re-executing a binary and talking JSON over its stdin and stdout)
// is tested for real.
const workerEnv = "PARLEY_BENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testServer is a real Parley server in this process, on loopback ports
// chosen by the kernel, with in-band registration and plain c2s allowed.
type testServer struct {
	c2s, c2sTLS string
	ca          string // the generated certificate
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with mod applied to the configuration.
func startServerWith(t *testing.T, mod func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.C2S, cfg.C2STLS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AllowRegistration = true
	cfg.StartTLSRequired = false
	cfg.Durability = config.DurabilityOS
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	c2s, c2sTLS, _ := srv.Addrs()
	return &testServer{c2s: c2s, c2sTLS: c2sTLS, ca: filepath.Join(cfg.Data, "tls", cfg.Domain+".crt")}
}

func run(t *testing.T, o Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o.Progress = func(line string) { t.Log(line) }
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("report:\n%s", rep)
	return rep
}

func TestConnectRegisterMemory(t *testing.T) {
	s := startServer(t)
	rep := run(t, Options{
		Scenario:  ScenarioConnect,
		Target:    Target{Addr: s.c2s, TLS: TLSStartTLS, CAFile: s.ca, Presence: true},
		Sessions:  20,
		Register:  true,
		InProcess: true,
		Workers:   2,
		// The server shares this process: the figure means nothing, but
		// the measuring path runs.
		PID:    os.Getpid(),
		Settle: 10 * time.Millisecond,
	})
	if rep.Register == nil || rep.Register.Created != 20 {
		t.Errorf("register: %+v, want 20 created", rep.Register)
	}
	if rep.Login.OK != 19 || rep.Login.WarmUp != 1 || rep.Login.Failed != 0 || rep.Login.Online != 20 {
		t.Errorf("login: %+v, want 19 ok after the warm-up, 20 online", rep.Login)
	}
	if rep.Memory == nil || rep.Memory.Sessions != 19 || rep.Memory.RSSAfterKiB == 0 {
		t.Errorf("memory: %+v", rep.Memory)
	}
}

// TestPlainSCRAMSHA1 logs in without TLS on a server that offers STARTTLS
// without requiring it.
func TestPlainSCRAMSHA1(t *testing.T) {
	s := startServer(t)
	o := Options{
		Scenario:  ScenarioConnect,
		Target:    Target{Addr: s.c2s, TLS: TLSPlain, Mechanism: "SCRAM-SHA-1"},
		Sessions:  20,
		Register:  true,
		InProcess: true,
	}
	rep := run(t, o)
	if rep.Login.OK != 20 {
		t.Errorf("plain logins: %+v", rep.Login)
	}
}

// TestPlainRequiredSTARTTLS: a server that requires STARTTLS cannot be
// measured in the clear, and says so in the errors.
func TestPlainRequiredSTARTTLS(t *testing.T) {
	s := startServerWith(t, func(c *config.Config) { c.StartTLSRequired = true })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Scenario:  ScenarioConnect,
		Target:    Target{Addr: s.c2s, TLS: TLSPlain},
		Sessions:  3,
		InProcess: true,
	})
	if err == nil || rep == nil || rep.Login == nil {
		t.Fatalf("Run = %v, %v; want a failed login phase", rep, err)
	}
	if rep.Login.OK != 0 || rep.Login.Failed != 3 || len(rep.Login.Errors) == 0 {
		t.Fatalf("login: %+v", rep.Login)
	}
	for _, e := range rep.Login.Errors {
		if !strings.Contains(e, "requires STARTTLS") || !strings.Contains(e, "--tls plain") {
			t.Errorf("error %q does not say that STARTTLS is required", e)
		}
	}
}

func TestChatWindow(t *testing.T) {
	s := startServer(t)
	rep := run(t, Options{
		Scenario:  ScenarioChat,
		Target:    Target{Addr: s.c2s, TLS: TLSStartTLS, Insecure: true, SM: true, Presence: true},
		Sessions:  20,
		Register:  true,
		InProcess: true,
		Window:    50,
		Messages:  400,
	})
	c := rep.Chat
	if c.Sent != 400 || c.Delivered != 400 || c.Lost != 0 || c.Latency.N != 400 {
		t.Errorf("chat: %+v, want 400 sent and delivered", c)
	}
	if c.DeliveredPerSecond <= 0 || c.Latency.Max < c.Latency.P50 {
		t.Errorf("chat figures: %+v", c)
	}
	checkTimeline(t, c)
}

// checkTimeline: every delivered message is in the second it was sent in,
// the seconds ascend from 0, and no second's worst exceeds the run's.
func checkTimeline(t *testing.T, c *ChatStats) {
	t.Helper()
	var n uint64
	for i, s := range c.Timeline {
		n += s.N
		if i == 0 && s.Second != 0 || i > 0 && s.Second <= c.Timeline[i-1].Second {
			t.Errorf("timeline seconds %+v", c.Timeline)
			break
		}
		if s.N == 0 || s.Max > c.Latency.Max || s.P99 < s.P50 {
			t.Errorf("timeline second %+v against the run's %+v", s, c.Latency)
		}
	}
	if n != c.Latency.N || len(c.Timeline) == 0 {
		t.Errorf("timeline holds %d messages in %d seconds, the run %d", n, len(c.Timeline), c.Latency.N)
	}
	if w := worstSeconds(c.Timeline, 3); len(w) == 0 || w[0].P99 != slices.MaxFunc(c.Timeline, func(a, b SecondStats) int { return cmp.Compare(a.P99, b.P99) }).P99 {
		t.Errorf("worst seconds %+v", w)
	}
}

// TestChatRateBinaryWorkers runs the chat at a target rate over direct TLS
// with the binary encoding, in two worker processes.
func TestChatRateBinaryWorkers(t *testing.T) {
	s := startServer(t)
	t.Setenv(workerEnv, "1")
	rep := run(t, Options{
		Scenario:      ScenarioChat,
		Target:        Target{Addr: s.c2sTLS, TLS: TLSDirect, Binary: true, CAFile: s.ca, Presence: true},
		Sessions:      20,
		Register:      true,
		Workers:       2,
		WorkerCommand: []string{os.Args[0]},
		Rate:          200,
		Messages:      100,
		Duration:      time.Minute,
		BodySize:      100,
	})
	if rep.Workers != 2 || rep.Chat.Delivered != 100 || rep.Chat.Sent != 100 {
		t.Errorf("chat: workers %d, %+v", rep.Workers, rep.Chat)
	}
	if rep.LoadRSSKiB == 0 {
		t.Error("no worker footprint")
	}
	// 100 messages at 200/s span one or two seconds, merged from two
	// worker processes.
	checkTimeline(t, rep.Chat)
}

func TestStorm(t *testing.T) {
	s := startServer(t)
	rep := run(t, Options{
		Scenario:  ScenarioStorm,
		Target:    Target{Addr: s.c2s, TLS: TLSStartTLS, Insecure: true, Presence: true},
		Sessions:  20,
		Register:  true,
		InProcess: true,
		Workers:   2,
	})
	st := rep.Storm
	if st.Sessions != 20 || st.Disconnected != 20 || st.Reconnected != 20 || st.Failed != 0 {
		t.Errorf("storm: %+v", st)
	}
	// Every account derived its keys at the first login and reused them
	// on reconnecting.
	if rep.SCRAMCacheMisses != 20 || rep.SCRAMCacheHits != 20 {
		t.Errorf("SCRAM key cache: %d hits, %d misses; want 20 and 20", rep.SCRAMCacheHits, rep.SCRAMCacheMisses)
	}
}

func TestStormWithoutSCRAMCache(t *testing.T) {
	s := startServer(t)
	rep := run(t, Options{
		Scenario:  ScenarioStorm,
		Target:    Target{Addr: s.c2s, TLS: TLSPlain, NoSCRAMCache: true},
		Sessions:  10,
		Register:  true,
		InProcess: true,
	})
	if rep.Storm.Reconnected != 10 || rep.SCRAMCacheHits != 0 || rep.SCRAMCacheMisses != 0 {
		t.Errorf("storm %+v, SCRAM key cache %d hits, %d misses; want 10 reconnected, no cache", rep.Storm, rep.SCRAMCacheHits, rep.SCRAMCacheMisses)
	}
}

func TestHist(t *testing.T) {
	var h, o Hist
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	o.Add(5 * time.Second)
	h.Merge(&o)
	s := h.Summary()
	near := func(got, want float64) bool { return got >= want*0.96 && got <= want*1.04 }
	if !near(s.P50, 500) || !near(s.P90, 900) || !near(s.P99, 990) || s.Max != 5000 || s.N != 1001 {
		t.Errorf("summary %+v", s)
	}
	for _, us := range []uint64{0, 1, 31, 32, 33, 64, 1000, 1 << 40} {
		i := histIndex(us)
		if lo, hi := histLow(i), histLow(i+1); us < lo || us >= hi {
			t.Errorf("%d in bucket %d [%d, %d)", us, i, lo, hi)
		}
	}
}

func TestReadAccounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "accts")
	in := "# comment\nalice pw1\nbob@example.org pw2\n\ncarol@example.org\n"
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAccounts(p, "localhost", "def")
	if err != nil {
		t.Fatal(err)
	}
	want := []Account{{"alice@localhost", "pw1"}, {"bob@example.org", "pw2"}, {"carol@example.org", "def"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %v, want %v", i, got[i], want[i])
		}
	}
	if err := os.WriteFile(p, []byte("a b c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAccounts(p, "localhost", ""); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("bad line: %v", err)
	}
}

func TestCheck(t *testing.T) {
	o := Options{Scenario: "chat", Target: Target{Addr: "10.0.0.1:5222", TLS: TLSStartTLS, Binary: true}, Sessions: 1}
	o.Defaults()
	err := o.Check()
	for _, want := range []string{"127.x.y.z", "--binary needs --tls direct", "at least 2 users"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v, want %q", err, want)
		}
	}
}

func TestRegisterOnly(t *testing.T) {
	s := startServer(t)
	rep := run(t, Options{
		Scenario:  ScenarioRegister,
		Target:    Target{Addr: s.c2sTLS, TLS: TLSDirect, Insecure: true},
		Sessions:  20,
		InProcess: true,
	})
	if rep.Register == nil || rep.Register.Created != 20 || rep.Login != nil {
		t.Errorf("register: %+v, login %+v", rep.Register, rep.Login)
	}
}

// TestSCRAMCacheFile: a second run with the same cache file derives no
// keys; each worker has its own file.
func TestSCRAMCacheFile(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "keys")
	o := Options{
		Scenario:  ScenarioConnect,
		Target:    Target{Addr: s.c2s, TLS: TLSPlain, SCRAMCacheFile: file},
		Sessions:  12,
		Register:  true,
		InProcess: true,
		Workers:   2,
	}
	first := run(t, o)
	if first.SCRAMCacheHits != 0 || first.SCRAMCacheMisses != 12 {
		t.Fatalf("first run: %d hits, %d misses; want 0 and 12", first.SCRAMCacheHits, first.SCRAMCacheMisses)
	}
	for i := range 2 {
		if fi, err := os.Stat(fmt.Sprintf("%s.%d", file, i)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cache file of worker %d: %v, %v", i, fi, err)
		}
	}
	o.Register = false
	second := run(t, o)
	if second.SCRAMCacheHits != 12 || second.SCRAMCacheMisses != 0 || second.Login.Failed != 0 {
		t.Fatalf("second run: %d hits, %d misses, %+v; want 12 hits", second.SCRAMCacheHits, second.SCRAMCacheMisses, second.Login)
	}
}
