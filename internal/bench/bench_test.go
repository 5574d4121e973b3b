package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.C2S, cfg.C2STLS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AllowRegistration = true
	cfg.StartTLSRequired = false
	cfg.Durability = config.DurabilityOS
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
	if rep.Login.OK != 19 || rep.Login.Failed != 0 || rep.Login.Online != 20 {
		t.Errorf("login: %+v, want 19 ok after the warm-up, 20 online", rep.Login)
	}
	if rep.Memory == nil || rep.Memory.Sessions != 19 || rep.Memory.RSSAfterKiB == 0 {
		t.Errorf("memory: %+v", rep.Memory)
	}
}

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
}

func TestPlainConnFiltersOptionalStartTLS(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"single quotes",
			"<?xml version='1.0'?><stream:stream xmlns='jabber:client'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms/></stream:features>",
			"<?xml version='1.0'?><stream:stream xmlns='jabber:client'><stream:features><mechanisms/></stream:features>", nil},
		{"double quotes, empty element",
			`<stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"></starttls><mechanisms/></stream:features><iq/>`,
			`<stream:features><mechanisms/></stream:features><iq/>`, nil},
		{"required", "<features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></features>", "", ErrStartTLSRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() {
				// Byte by byte: the filter must not depend on read boundaries.
				for i := range len(tc.in) {
					if _, err := b.Write([]byte{tc.in[i]}); err != nil {
						return
					}
				}
				b.Close()
			}()
			got, err := io.ReadAll(&plainConn{Conn: a})
			if tc.err != nil {
				if err != tc.err {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
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
