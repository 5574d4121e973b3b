//go:build !race

// The race detector changes allocation sizes and stack use: this guard is
// built only without it (see doc.go).

package density

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/internal/bench"
	"github.com/parley-im/parley/internal/benchutil"
	"github.com/parley-im/parley/internal/config"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/server"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/stanza"
)

const (
	// sessions is how many idle sessions the guard opens: enough that
	// per-session costs dominate the server's background noise, few
	// enough for a CI run of seconds.
	sessions = 2000
	// budget is the goal of issue #8 for a whole idle TLS session as the
	// process's RSS sees it (4 KB).
	budget = 4096
	// limit is what this test allows of Go heap+stack per session (live,
	// after GC): measured 1.65 KB once the XML decoder keeps only 48 B
	// while idle and the last presence is kept serialised (2.4 KB before,
	// 2.9 KB before the TLS state was dropped after authentication). RSS is this times about 1.1 × (1 + GOGC/100): see
	// docs/density.md.
	limit   = 2048
	domain  = "localhost"
	pass    = "density-pw"
	sources = 200 // client source addresses 127.0.x.y
)

// envClient makes the test binary the client driver (see TestMain).
const envClient = "PARLEY_DENSITY_CLIENT"

func TestMain(m *testing.M) {
	if addr := os.Getenv(envClient); addr != "" {
		os.Exit(runClients(addr))
	}
	if os.Getenv("PARLEY_DENSITY_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 64 // fine-grained: objects here are small
	}
	os.Exit(m.Run())
}

func TestIdleSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2000 sessions")
	}
	if err := bench.RaiseNoFile(sessions + 256); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	createAccounts(t, filepath.Join(dir, "store"), sessions+1)

	cfg := config.Default()
	cfg.Data = dir
	cfg.Domain = domain
	cfg.C2S, cfg.C2STLS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.MaxConnectionsPerIP = sessions
	cfg.LoginRatePerIP = 1 << 20
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	c2sAddr, _, _ := srv.Addrs()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envClient+"="+c2sAddr, "PARLEY_DENSITY_CA="+filepath.Join(dir, "tls", domain+".crt"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	expect := func(prefix string) string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("client driver ended before %q: %v", prefix, lines.Err())
		}
		l := lines.Text()
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("client driver: %s", l)
		}
		return strings.TrimSpace(strings.TrimPrefix(l, prefix))
	}

	// One session first, so "before" is a server that has served someone.
	expect("warm")
	heap0, stack0, g0 := settled()
	gc0 := lastGC()
	// This process's CPU time is the server's: the clients run in a subprocess.
	cpu0 := benchutil.CPUTime()
	if f := os.Getenv("PARLEY_DENSITY_CPUPROFILE"); f != "" {
		stop := startCPUProfile(t, f)
		defer stop()
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(expect("ready"))
	if err != nil || n != sessions {
		t.Fatalf("client driver logged in %d of %d sessions (%v)", n, sessions, err)
	}
	cpu1 := benchutil.CPUTime()
	heap1, stack1, g1 := settled()
	gc1 := lastGC()
	if f := os.Getenv("PARLEY_DENSITY_HEAPPROFILE"); f != "" {
		writeHeapProfile(t, f)
	}
	perHeap := float64(int64(heap1)-int64(heap0)) / sessions
	perStack := float64(int64(stack1)-int64(stack0)) / sessions
	t.Logf("per idle session: heap %.0f B + stack %.0f B = %.0f B (limit %d B); goroutines %d -> %d",
		perHeap, perStack, perHeap+perStack, limit, g0, g1)
	// Informational, never asserted (timings): server CPU per login and
	// what a full GC costs with and without the idle sessions.
	t.Logf("server CPU per login %.0f µs; forced GC: %v stop-the-world, %v in all before, %v stop-the-world, %v in all with the sessions",
		float64((cpu1-cpu0).Microseconds())/sessions, gc0.pause, gc0.total, gc1.pause, gc1.total)
	if perHeap+perStack > limit {
		t.Errorf("idle sessions cost %.0f B of Go heap+stack each, over the %d B limit (budget %d B per session)",
			perHeap+perStack, limit, budget)
	}
	if g1-g0 > sessions/10 {
		t.Errorf("%d more goroutines for %d idle sessions: idle sessions must not hold goroutines", g1-g0, sessions)
	}
}

// settled collects garbage until the live heap stops shrinking and reports
// the live heap, the stacks in use and the goroutine count. Sessions whose
// last reply is on its way may still be finishing their work: a few rounds
// let it end. (Rounds are counted, not timed.)
func settled() (heap, stack uint64, goroutines int) {
	var ms runtime.MemStats
	prev := uint64(1<<63 - 1)
	for range 10 {
		runtime.GC()
		runtime.GC() // the second cycle frees what sync.Pool's victim cache held
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc >= prev {
			break
		}
		prev = ms.HeapAlloc
		runtime.Gosched()
	}
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

// createAccounts stores density0 … density(n-1) with one set of
// credentials (deriving SCRAM keys costs milliseconds each; the accounts
// share a salt, which matters nothing here).
func createAccounts(t *testing.T, dir string, n int) {
	t.Helper()
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sha1, sha256, err := sasl.NewCredentials(pass)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				err := st.CreateAccount(context.Background(), store.Account{Username: account(i), Created: time.Now(), SHA1: sha1, SHA256: sha256})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func account(i int) string { return "density" + strconv.Itoa(i) }

// runClients is the client driver: it logs account 0 in, says "warm",
// waits for "go", logs in the others (STARTTLS, SCRAM, bind, initial
// presence, one ping to know the server is done), says "ready N" and holds
// the sessions until its stdin closes.
func runClients(addr string) int {
	if err := bench.RaiseNoFile(sessions + 256); err != nil {
		fmt.Println("error", err)
		return 1
	}
	ca, err := os.ReadFile(os.Getenv("PARLEY_DENSITY_CA"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	pool := x509Pool(ca)
	ctx := context.Background()
	login := func(i int) (*client.Client, error) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i%sources/250), byte(2+i%sources%250))}}
		c, err := client.Dial(ctx, client.Config{
			Addr:                addr,
			JID:                 account(i) + "@" + domain,
			Password:            pass,
			Resource:            "idle",
			TLSConfig:           &tls.Config{RootCAs: pool, ServerName: domain},
			SendInitialPresence: true,
			DialContext:         d.DialContext,
		})
		if err != nil {
			return nil, err
		}
		go func() {
			for range c.Incoming() {
			}
		}()
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		iq := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", domain).
			Append(stanza.New("ping", "urn:xmpp:ping"))
		if _, err := c.IQ(pctx, iq); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("ping: %w", err)
		}
		return c, nil
	}
	warm, err := login(sessions)
	if err != nil {
		fmt.Println("error warm-up:", err)
		return 1
	}
	defer warm.Close()
	fmt.Println("warm")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return 1
	}
	var (
		mu      sync.Mutex
		clients []*client.Client
		firstE  error
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, 32)
	for i := range sessions {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := login(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstE == nil {
					firstE = err
				}
				return
			}
			clients = append(clients, c)
		}()
	}
	wg.Wait()
	if firstE != nil {
		fmt.Fprintln(os.Stderr, "density client: first login error:", firstE)
	}
	fmt.Println("ready", len(clients))
	for in.Scan() {
	}
	for _, c := range clients {
		_ = c.Close()
	}
	return 0
}

func x509Pool(pemCA []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pemCA)
	return p
}

// writeHeapProfile saves the live heap (go tool pprof -sample_index=inuse_space).
func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

type gcCost struct{ pause, total time.Duration }

// lastGC forces one more collection and reports its stop-the-world pauses
// and its wall time.
func lastGC() gcCost {
	start := time.Now()
	runtime.GC()
	total := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return gcCost{pause: time.Duration(ms.PauseNs[(ms.NumGC+255)%256]), total: total}
}

// startCPUProfile profiles the server during the logins (go tool pprof).
func startCPUProfile(t *testing.T, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
