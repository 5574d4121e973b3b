// Command load measures a running Parley server from the outside, through
// the public client library only: server memory per idle session, and
// message throughput and latency between online users. It produces the
// figures of the core issue's closing note; the full load generator
// (`parley bench`) comes later.
//
// Everything stays on the loopback network (127.0.0.0/8): the server
// address must be a 127.x.y.z literal, and connections are spread over the
// source addresses 127.0.0.2, 127.0.0.3, … so that the server's per-address
// limits (connections, registrations) see many small clients instead of
// one big one.
//
// Accounts are named PREFIX0, PREFIX1, … @DOMAIN with one password. Create
// them either with -register (in-band registration, server started with
// --allow-registration; the server allows one registration per address
// per 10 s, so registrations are spread over -register-sources addresses),
// or offline, faster, with the server stopped:
//
//	go run ./test/load -print-accounts -n 10000 | parley user import --data DIR
//
// Idle memory (the server's PID for /proc/PID/status):
//
//	go run ./test/load -scenario idle -addr 127.0.0.1:5222 -n 10000 -pid $(pgrep -xf 'parley serve.*')
//
// Chat throughput:
//
//	go run ./test/load -scenario chat -addr 127.0.0.1:5222 -users 200 -messages 20000
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type options struct {
	scenario string
	addr     string
	domain   string
	prefix   string
	password string

	n        int // idle: sessions
	users    int // chat: online users
	messages int // chat: total messages
	window   int // chat: messages in flight
	duration time.Duration

	concurrency     int
	sources         int
	register        bool
	registerSources int
	printAccounts   bool
	pid             int
	settle          time.Duration
	hold            time.Duration
	caFile          string
	directTLS       bool

	tls *tls.Config
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.scenario, "scenario", "", "`NAME` of the measurement: idle or chat; register only creates -n accounts (as -register)")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "server `ADDR` (a 127.x.y.z address): the STARTTLS port, or the direct-TLS port with -direct-tls")
	fs.StringVar(&o.domain, "domain", "localhost", "XMPP `DOMAIN` of the server")
	fs.StringVar(&o.prefix, "prefix", "load", "account names are `PREFIX`0, PREFIX1, …")
	fs.StringVar(&o.password, "password", "load-pw", "`PASSWORD` of every load account")
	fs.IntVar(&o.n, "n", 2000, "idle: number of idle sessions, `N`")
	fs.IntVar(&o.users, "users", 200, "chat: online users, `N`")
	fs.IntVar(&o.messages, "messages", 20000, "chat: messages to send in total, `N`")
	fs.IntVar(&o.window, "window", 1000, "chat: messages in flight (sent, not yet delivered) at most, `N`")
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "chat: stop sending and waiting after `DURATION`")
	fs.IntVar(&o.concurrency, "concurrency", 32, "logins (and registrations) in progress at once, `N`")
	fs.IntVar(&o.sources, "sources", 100, "spread sessions over `N` source addresses from 127.0.0.2 up")
	fs.BoolVar(&o.register, "register", false, "create the accounts first by in-band registration (server needs --allow-registration)")
	fs.IntVar(&o.registerSources, "register-sources", 5000, "-register: spread registrations over `N` source addresses (the server allows one per address per 10 s)")
	fs.BoolVar(&o.printAccounts, "print-accounts", false, "print \"JID PASSWORD\" lines for parley user import (accounts of -n, or -users with -scenario chat) and exit")
	fs.IntVar(&o.pid, "pid", 0, "`PID` of the server, to read its memory and CPU time from /proc")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "idle: wait `DURATION` before reading the server's memory")
	fs.DurationVar(&o.hold, "hold", 0, "idle: keep the sessions open for `DURATION` after measuring")
	fs.StringVar(&o.caFile, "ca", "", "trust the server certificate in PEM `FILE` (DATA/tls/DOMAIN.crt); default: no verification")
	fs.BoolVar(&o.directTLS, "direct-tls", false, "connect with direct TLS (XEP-0368) instead of STARTTLS")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./test/load -scenario idle|chat|register [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	if o.printAccounts {
		for i := range o.accountCount() {
			fmt.Printf("%s %s\n", o.account(i), o.password)
		}
		return 0
	}
	if err := o.loadTLS(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.register || o.scenario == "register" {
		err = registerAccounts(ctx, &o, o.accountCount())
	}
	if err == nil {
		switch o.scenario {
		case "idle":
			err = runIdle(ctx, &o)
		case "chat":
			err = runChat(ctx, &o)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	return 0
}

func (o *options) check() error {
	switch o.scenario {
	case "idle", "chat", "register":
	case "":
		if !o.printAccounts {
			return errors.New("-scenario is required (idle or chat)")
		}
	default:
		return fmt.Errorf("unknown -scenario %q (idle, chat or register)", o.scenario)
	}
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if ip := net.ParseIP(host).To4(); ip == nil || ip[0] != 127 {
		return fmt.Errorf("-addr %s: only 127.x.y.z addresses are allowed: this tool must not load anything but a local server", o.addr)
	}
	switch {
	case o.n < 1 || o.users < 2 || o.messages < 1 || o.window < 1:
		return errors.New("-n, -messages and -window must be at least 1, -users at least 2")
	case o.messages > maxMessages:
		return fmt.Errorf("-messages: at most %d (the run keeps state per message)", maxMessages)
	case o.concurrency < 1 || o.sources < 1 || o.registerSources < 1:
		return errors.New("-concurrency, -sources and -register-sources must be at least 1")
	case o.sources > maxSources || o.registerSources > maxSources:
		return fmt.Errorf("at most %d source addresses", maxSources)
	case o.duration <= 0:
		return errors.New("-duration must be positive")
	}
	return nil
}

func (o *options) loadTLS() error {
	o.tls = &tls.Config{InsecureSkipVerify: true} // loopback only; -ca verifies
	if o.caFile == "" {
		return nil
	}
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no PEM certificate", o.caFile)
	}
	o.tls = &tls.Config{RootCAs: pool}
	return nil
}

// accountCount is how many accounts the scenario uses.
func (o *options) accountCount() int {
	if o.scenario == "chat" {
		return o.users
	}
	return o.n
}

// account returns the bare JID of load account i.
func (o *options) account(i int) string {
	return fmt.Sprintf("%s%d@%s", o.prefix, i, o.domain)
}

// maxMessages bounds the chat run's per-message state (12 bytes each).
const maxMessages = 10_000_000

// maxSources keeps source addresses inside 127.0.0.0/8 (253 per /24).
const maxSources = 253 * 65536

// sourceIP returns the i-th source address: 127.0.0.2 … 127.0.0.254, then
// 127.0.1.2 … and so on, skipping .0, .1 and .255 in the last octet.
func sourceIP(i int) net.IP {
	block, off := i/253, i%253+2
	return net.IPv4(127, byte(block>>8), byte(block), byte(off))
}

// dialerFrom returns a DialContext that connects from the source address.
func dialerFrom(ip net.IP) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	return d.DialContext
}

// raiseNoFile lifts the soft open-files limit to the hard one and checks
// that need descriptors fit.
func raiseNoFile(need int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	if uint64(need) > rl.Cur {
		return fmt.Errorf("%d open files needed, the limit is %d (hard limit %d): raise it (ulimit -Hn) or use fewer sessions", need, rl.Cur, rl.Max)
	}
	return nil
}

func firstErrors(errs []string, n int) string {
	if len(errs) > n {
		return strings.Join(errs[:n], "; ") + fmt.Sprintf("; … (%d more)", len(errs)-n)
	}
	return strings.Join(errs, "; ")
}
