package bench

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// Scenarios.
const (
	ScenarioConnect = "connect"
	ScenarioChat    = "chat"
	ScenarioStorm   = "storm"
	// ScenarioRegister only creates the accounts (as --register) and logs
	// nobody in: account setup for servers without an offline import.
	ScenarioRegister = "register"
)

// Transport security modes.
const (
	TLSStartTLS = "starttls"
	TLSDirect   = "direct"
	TLSPlain    = "plain"
)

// Target says how every session reaches and logs in to the server. It is
// what the parent hands to each worker.
type Target struct {
	Addr      string `json:"addr"`
	Domain    string `json:"domain"`
	TLS       string `json:"tls"`       // starttls, direct or plain
	Mechanism string `json:"mechanism"` // forced SASL mechanism; empty: the client's choice
	SM        bool   `json:"sm"`        // enable stream management (XEP-0198)
	Binary    bool   `json:"binary"`    // Parley's binary encoding (direct TLS, ALPN parley-bin/1)
	CAFile    string `json:"ca_file,omitempty"`
	Insecure  bool   `json:"insecure,omitempty"`
	// Groups are the TLS key exchange groups the client offers, in order
	// of preference (names as crypto/tls prints them: X25519MLKEM768,
	// X25519, CurveP256, ...); empty: Go's defaults. Comparing servers
	// whose TLS libraries support different groups, offering one they
	// all have makes each do the same key exchange work.
	Groups []string `json:"tls_groups,omitempty"`
	// Presence sends initial presence after login, as an online client does.
	Presence bool `json:"presence"`
	// Timeout bounds one login or registration.
	Timeout time.Duration `json:"timeout"`
	// NoSCRAMCache makes every SCRAM login derive its keys (PBKDF2) even
	// when the worker has derived them for the same account and salt
	// before, as a client without a key cache does.
	NoSCRAMCache bool `json:"no_scram_cache,omitempty"`
	// SCRAMCacheFile, when set, keeps each worker's SCRAM key cache
	// across runs in SCRAMCacheFile.<worker index>: loaded at setup (if it
	// exists), saved when the worker closes. A measured run then spends
	// no client CPU on PBKDF2 for accounts an earlier run logged in, so
	// that the server, not the load generator's key derivation, bounds
	// the login rate. Worker i serves the same accounts whenever N and
	// --per-worker are the same. The files hold password equivalents for
	// the bench accounts (mode 0600).
	SCRAMCacheFile string `json:"scram_cache_file,omitempty"`
}

// Account is one login.
type Account struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

// Options is a complete bench run.
type Options struct {
	Scenario string
	Target   Target

	// Sessions is N: sessions of connect and storm, users of chat.
	Sessions int
	// Accounts, when set, are used instead of the pattern; their count
	// must be at least Sessions.
	Accounts []Account
	// UserPrefix and Password make the accounts PREFIX0 … PREFIX(N-1) @Domain.
	UserPrefix string
	Password   string
	// Register creates the accounts first by in-band registration (XEP-0077).
	Register bool

	// Workers is the number of worker processes; 0 picks
	// ceil(Sessions/PerWorker).
	Workers   int
	PerWorker int
	// InProcess runs the workers as goroutines of this process (tests,
	// small runs) instead of re-executing WorkerCommand.
	InProcess bool
	// WorkerCommand is the command line of a worker; nil means this
	// executable with "bench --worker".
	WorkerCommand []string
	// Sources is how many source addresses 127.0.0.2, … the sessions are
	// spread over, all workers together.
	Sources int
	// Concurrency is the logins in progress at once, per worker.
	Concurrency int

	// PID is the server's process, for memory and CPU figures (0: none).
	PID    int
	Settle time.Duration
	Hold   time.Duration

	// Chat.
	Rate     float64       // messages per second, all workers together; 0: as fast as Window allows
	Window   int           // messages in flight at most, all workers together
	Duration time.Duration // sending time
	Messages int           // stop after this many messages (0: Duration decides)
	BodySize int

	// StormConcurrency bounds reconnects in progress at once per worker
	// in the storm; 0 means all at once.
	StormConcurrency int

	// Progress receives a line once per second; nil discards them.
	Progress func(line string)
}

// Defaults fills zero fields with defaults.
func (o *Options) Defaults() {
	t := &o.Target
	if t.Domain == "" {
		t.Domain = "localhost"
	}
	if t.TLS == "" {
		t.TLS = TLSStartTLS
	}
	if t.Timeout <= 0 {
		t.Timeout = 60 * time.Second
	}
	if o.UserPrefix == "" {
		o.UserPrefix = "bench"
	}
	if o.Password == "" {
		o.Password = "bench-pw"
	}
	if o.PerWorker <= 0 {
		o.PerWorker = 10000
	}
	if o.Sources <= 0 {
		// At most ~150 sessions per source address: well under Parley's
		// default cap per IP (1000) and any ephemeral port range.
		o.Sources = max(100, (o.Sessions+149)/150)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Window <= 0 {
		o.Window = 1000
	}
	if o.Duration <= 0 && o.Messages <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.BodySize <= 0 {
		o.BodySize = 64
	}
}

// Check validates the options after Defaults.
func (o *Options) Check() error {
	var errs []error
	switch o.Scenario {
	case ScenarioConnect, ScenarioChat, ScenarioStorm:
	case ScenarioRegister:
		o.Register = true
	default:
		errs = append(errs, fmt.Errorf("unknown scenario %q (connect, chat, storm or register)", o.Scenario))
	}
	host, _, err := net.SplitHostPort(o.Target.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: %w", o.Target.Addr, err))
	} else if ip := net.ParseIP(host).To4(); ip == nil || ip[0] != 127 {
		// Loopback only: this tool is a load generator, never to be
		// pointed at someone else's server by mistake.
		errs = append(errs, fmt.Errorf("--addr %s: only 127.x.y.z addresses are allowed", o.Target.Addr))
	}
	switch o.Target.TLS {
	case TLSStartTLS, TLSDirect, TLSPlain:
	default:
		errs = append(errs, fmt.Errorf("--tls %q: starttls, direct or plain", o.Target.TLS))
	}
	if _, err := curveIDs(o.Target.Groups); err != nil {
		errs = append(errs, err)
	}
	if o.Target.Binary && o.Target.TLS != TLSDirect {
		errs = append(errs, errors.New("--binary needs --tls direct (the encoding is negotiated with ALPN parley-bin/1)"))
	}
	if o.Sessions < 1 {
		errs = append(errs, errors.New("-n must be at least 1"))
	}
	if o.Scenario == ScenarioChat && o.Sessions < 2 {
		errs = append(errs, errors.New("chat needs at least 2 users"))
	}
	if o.Accounts != nil && len(o.Accounts) < o.Sessions {
		errs = append(errs, fmt.Errorf("--accounts has %d accounts, -n asks for %d", len(o.Accounts), o.Sessions))
	}
	if o.Sources > maxSources {
		errs = append(errs, fmt.Errorf("--sources: at most %d", maxSources))
	}
	if o.Rate < 0 || o.Messages < 0 || o.Hold < 0 || o.Settle < 0 {
		errs = append(errs, errors.New("--rate, --messages, --hold and --settle must not be negative"))
	}
	if o.BodySize > 1<<16 {
		errs = append(errs, errors.New("--body-size: at most 65536"))
	}
	return errors.Join(errs...)
}

// knownGroups are the key exchange groups --tls-groups accepts.
var knownGroups = []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
	tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// curveIDs maps group names to crypto/tls identifiers.
func curveIDs(names []string) ([]tls.CurveID, error) {
	var ids []tls.CurveID
	for _, n := range names {
		i := slices.IndexFunc(knownGroups, func(c tls.CurveID) bool { return strings.EqualFold(c.String(), n) })
		if i < 0 {
			all := make([]string, len(knownGroups))
			for j, c := range knownGroups {
				all[j] = c.String()
			}
			return nil, fmt.Errorf("--tls-groups: unknown group %q (known: %s)", n, strings.Join(all, ", "))
		}
		ids = append(ids, knownGroups[i])
	}
	return ids, nil
}

// AccountList returns the accounts of the run: Accounts, or the pattern.
func (o *Options) AccountList() []Account {
	if o.Accounts != nil {
		return o.Accounts[:o.Sessions]
	}
	return PatternAccounts(o.UserPrefix, o.Password, o.Target.Domain, o.Sessions)
}

// PatternAccounts returns PREFIX0@DOMAIN … PREFIX(n-1)@DOMAIN, all with
// one password.
func PatternAccounts(prefix, password, domain string, n int) []Account {
	out := make([]Account, n)
	for i := range out {
		out[i] = Account{JID: fmt.Sprintf("%s%d@%s", prefix, i, domain), Password: password}
	}
	return out
}

// ReadAccounts reads an accounts file: one account per line, as
// "user password", "user@domain password", or a bare "user@domain" that
// takes defaultPassword. Blank lines and lines starting with # are skipped.
func ReadAccounts(path, domain, defaultPassword string) ([]Account, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer f.Close()
	var out []Account
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		a := Account{JID: fields[0], Password: defaultPassword}
		switch len(fields) {
		case 1:
		case 2:
			a.Password = fields[1]
		default:
			return nil, fmt.Errorf("%s:%d: want \"user password\" or a JID", path, line)
		}
		if !strings.Contains(a.JID, "@") {
			a.JID += "@" + domain
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return out, nil
}
