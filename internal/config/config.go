// Package config builds the typed configuration of `parley serve` from its
// four sources: command-line flags, PARLEY_* environment variables, an
// optional YAML file and built-in defaults, in that order of precedence.
//
// One table (settings) names every setting once; the flag set, the
// environment variable names and the YAML keys are all derived from it, so
// the three spellings of a setting cannot drift apart.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Config is the complete configuration of `parley serve`. The yaml tags are
// the flag names: a key in the --config file is spelt exactly like its flag.
//
// Load returns a validated Config; code that builds one by hand (tests,
// embedding) starts from Default and should call Validate.
type Config struct {
	// Config is the YAML file the other settings were read from ("" if none).
	Config string `yaml:"config"`
	// Domain is the XMPP domain served, lower case.
	Domain string `yaml:"domain"`
	// Data is the directory of the embedded store, the generated
	// certificate and the generated admin token.
	Data string `yaml:"data"`
	// C2S is the listen address for client connections using STARTTLS.
	C2S string `yaml:"c2s"`
	// C2STLS is the listen address for direct TLS (XEP-0368).
	C2STLS string `yaml:"c2s-tls"`
	// HTTP is the listen address of the HTTP server (WebSocket, API, metrics).
	HTTP string `yaml:"http"`
	// TLSCert and TLSKey are PEM files; both empty means "generate a
	// self-signed certificate in Data".
	TLSCert string `yaml:"tls-cert"`
	TLSKey  string `yaml:"tls-key"`
	// AllowRegistration enables in-band registration (XEP-0077).
	AllowRegistration bool `yaml:"allow-registration"`
	// AdminToken is the bearer token of /api/; empty means "use or create
	// Data/admin-token".
	AdminToken string `yaml:"admin-token"`

	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"log-level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log-format"`
	// StartTLSRequired refuses authentication on the c2s port before STARTTLS.
	StartTLSRequired bool `yaml:"starttls-required"`
	// Durability is fsync (every commit reaches the disk before it is
	// acknowledged) or os (the OS flushes when it likes: faster, but a power
	// loss can drop the last writes).
	Durability string `yaml:"durability"`
	// QueueJournal keeps queue items that are acknowledged within seconds
	// out of the Pebble store (an append-only journal in front of it).
	QueueJournal bool `yaml:"queue-journal"`
	// MaxStanzaSize is the largest stanza accepted, in bytes.
	MaxStanzaSize int `yaml:"max-stanza-size"`
	// MaxOfflineMessages is the per-user offline queue cap; 0 is unlimited.
	MaxOfflineMessages int `yaml:"max-offline-messages"`
	// OfflineExpiry is how long an offline message is kept; 0 keeps it forever.
	OfflineExpiry time.Duration `yaml:"offline-expiry"`
	// MaxSessionsPerUser caps concurrent resources of one account.
	MaxSessionsPerUser int `yaml:"max-sessions-per-user"`
	// MaxConnections caps open client connections on all listeners together.
	MaxConnections int `yaml:"max-connections"`
	// MaxConnectionsPerIP caps open client connections from one IP address.
	MaxConnectionsPerIP int `yaml:"max-connections-per-ip"`
	// LoginRatePerIP is the number of failed logins per minute from one IP
	// after which further attempts are throttled.
	LoginRatePerIP int `yaml:"login-rate-per-ip"`
	// StanzaRate is the sustained stanzas per second allowed per session.
	StanzaRate int `yaml:"stanza-rate"`
	// StanzaBurst is the token-bucket size above StanzaRate.
	StanzaBurst int `yaml:"stanza-burst"`
	// IdleTimeout closes a connection that has not authenticated in time.
	IdleTimeout time.Duration `yaml:"idle-timeout"`
	// WriteTimeout bounds one write to a client; a slower client is dropped
	// so it cannot hold the senders up.
	WriteTimeout time.Duration `yaml:"write-timeout"`
	// ShutdownTimeout bounds draining sessions and flushing the store on
	// SIGTERM/SIGINT.
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`
	// ResumeTimeout is how long a detached session waits for stream
	// management resumption (XEP-0198); it is also the maximum advertised to
	// clients. 0 disables resumption.
	ResumeTimeout time.Duration `yaml:"resume-timeout"`
	// WebSocketOrigins is a comma-separated list of browser origins
	// (scheme://host[:port]) allowed to open XMPP over WebSocket; empty
	// allows any (login happens inside the stream, never with cookies).
	WebSocketOrigins string `yaml:"websocket-origins"`
	// ArchiveRetention is how long messages stay in the message archive
	// (XEP-0313); 0 turns archiving off.
	ArchiveRetention time.Duration `yaml:"archive-retention"`
	// MUCDomain is the group chat service's domain (XEP-0045); empty turns
	// group chat off. The default is conference.<domain>.
	MUCDomain string `yaml:"muc-domain"`
	// MUCMaxRooms caps the rooms of the group chat service.
	MUCMaxRooms int `yaml:"muc-max-rooms"`
	// MUCMaxOccupants caps the occupants of one room.
	MUCMaxOccupants int `yaml:"muc-max-occupants"`
}

// Origins returns WebSocketOrigins as a list.
func (c *Config) Origins() []string {
	var out []string
	for _, o := range strings.Split(c.WebSocketOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// DefaultMUCDomain stands for conference.<domain> until the domain is known;
// MUCDomainOff disables group chat.
const (
	DefaultMUCDomain = "conference.<domain>"
	MUCDomainOff     = "off"
)

// MUC returns the group chat service's domain, or "" when it is off.
func (c *Config) MUC() string {
	switch c.MUCDomain {
	case MUCDomainOff, "":
		return ""
	case DefaultMUCDomain:
		return "conference." + c.Domain
	}
	return c.MUCDomain
}

// Allowed values of the enumerated settings.
const (
	DurabilityFsync = "fsync"
	DurabilityOS    = "os"

	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Limits of MaxStanzaSize. RFC 6120 §13.12 requires accepting at least 10000
// bytes; the upper bound keeps one stanza from pinning a lot of memory.
const (
	MinStanzaSize = 10000
	MaxStanzaSize = 16 << 20
)

// Default returns the configuration used when no source sets anything.
func Default() *Config {
	return &Config{
		Domain:              "localhost",
		Data:                "./parley-data",
		C2S:                 ":5222",
		C2STLS:              ":5223",
		HTTP:                ":5280",
		LogLevel:            "info",
		LogFormat:           LogFormatText,
		StartTLSRequired:    true,
		Durability:          DurabilityFsync,
		QueueJournal:        true,
		MaxStanzaSize:       262144,
		MaxOfflineMessages:  10000,
		OfflineExpiry:       720 * time.Hour,
		MaxSessionsPerUser:  10,
		MaxConnections:      100000,
		MaxConnectionsPerIP: 1000,
		LoginRatePerIP:      10,
		StanzaRate:          200,
		StanzaBurst:         400,
		IdleTimeout:         30 * time.Second,
		WriteTimeout:        30 * time.Second,
		ShutdownTimeout:     10 * time.Second,
		ResumeTimeout:       300 * time.Second,
		ArchiveRetention:    720 * time.Hour,
		MUCDomain:           DefaultMUCDomain,
		MUCMaxRooms:         100000,
		MUCMaxOccupants:     10000,
	}
}

// setting is one row of the single table every source is derived from.
type setting struct {
	name  string // flag name and YAML key; env var is envName(name)
	usage string // a `WORD` in back quotes names the argument in --help
	value func(*Config) flag.Value
}

func str(f func(*Config) *string) func(*Config) flag.Value {
	return func(c *Config) flag.Value { return (*stringValue)(f(c)) }
}

func num(f func(*Config) *int) func(*Config) flag.Value {
	return func(c *Config) flag.Value { return (*intValue)(f(c)) }
}

func boolean(f func(*Config) *bool) func(*Config) flag.Value {
	return func(c *Config) flag.Value { return (*boolValue)(f(c)) }
}

func dur(f func(*Config) *time.Duration) func(*Config) flag.Value {
	return func(c *Config) flag.Value { return (*durationValue)(f(c)) }
}

var settings = []setting{
	{"config", "read settings from the YAML `FILE` (keys are the flag names; unknown keys are errors)", str(func(c *Config) *string { return &c.Config })},
	{"domain", "the XMPP domain `NAME` served", str(func(c *Config) *string { return &c.Domain })},
	{"data", "`DIR` of the embedded store, the generated certificate and the admin token", str(func(c *Config) *string { return &c.Data })},
	{"c2s", "client listen `ADDR`: XMPP with STARTTLS (:0 picks a free port)", str(func(c *Config) *string { return &c.C2S })},
	{"c2s-tls", "direct TLS listen `ADDR` (XEP-0368); ALPN xmpp-client → XML, parley-bin/1 → binary", str(func(c *Config) *string { return &c.C2STLS })},
	{"http", "HTTP listen `ADDR`: WebSocket, host-meta, upload, API, admin, metrics, health", str(func(c *Config) *string { return &c.HTTP })},
	{"tls-cert", "certificate chain PEM `FILE` (default: self-signed, generated in --data)", str(func(c *Config) *string { return &c.TLSCert })},
	{"tls-key", "private key PEM `FILE` for --tls-cert", str(func(c *Config) *string { return &c.TLSKey })},
	{"allow-registration", "allow in-band registration (XEP-0077)", boolean(func(c *Config) *bool { return &c.AllowRegistration })},
	{"admin-token", "bearer `TOKEN` for /api/ (default: generated into --data/admin-token)", str(func(c *Config) *string { return &c.AdminToken })},
	{"log-level", "log `LEVEL`: debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"log-format", "log `FORMAT`: text or json", str(func(c *Config) *string { return &c.LogFormat })},
	{"starttls-required", "refuse authentication on --c2s before STARTTLS (--starttls-required=false to allow)", boolean(func(c *Config) *bool { return &c.StartTLSRequired })},
	{"durability", "store `MODE`: fsync (commits survive power loss) or os (faster, the OS flushes)", str(func(c *Config) *string { return &c.Durability })},
	{"queue-journal", "journal short-lived queue items instead of writing them to the store (--queue-journal=false to write through)", boolean(func(c *Config) *bool { return &c.QueueJournal })},
	{"max-stanza-size", "largest accepted stanza in `BYTES` (10000 to 16777216)", num(func(c *Config) *int { return &c.MaxStanzaSize })},
	{"max-offline-messages", "offline messages kept per user, `N` (0: unlimited)", num(func(c *Config) *int { return &c.MaxOfflineMessages })},
	{"offline-expiry", "offline messages older than `DURATION` are dropped (0: never)", dur(func(c *Config) *time.Duration { return &c.OfflineExpiry })},
	{"max-sessions-per-user", "concurrent sessions (resources) per account, `N`", num(func(c *Config) *int { return &c.MaxSessionsPerUser })},
	{"max-connections", "open client connections on all listeners, `N`", num(func(c *Config) *int { return &c.MaxConnections })},
	{"max-connections-per-ip", "open client connections from one IP address, `N`", num(func(c *Config) *int { return &c.MaxConnectionsPerIP })},
	{"login-rate-per-ip", "failed logins per minute from one IP before throttling, `N`", num(func(c *Config) *int { return &c.LoginRatePerIP })},
	{"stanza-rate", "sustained stanzas per second per session, `N`", num(func(c *Config) *int { return &c.StanzaRate })},
	{"stanza-burst", "stanzas a session may send at once above --stanza-rate, `N`", num(func(c *Config) *int { return &c.StanzaBurst })},
	{"idle-timeout", "close a connection not authenticated within `DURATION`", dur(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{"write-timeout", "drop a client that does not take a write within `DURATION`", dur(func(c *Config) *time.Duration { return &c.WriteTimeout })},
	{"shutdown-timeout", "on SIGTERM/SIGINT, drain sessions and flush the store within `DURATION`", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"resume-timeout", "keep a detached session resumable (XEP-0198) for `DURATION` (0: no resumption)", dur(func(c *Config) *time.Duration { return &c.ResumeTimeout })},
	{"archive-retention", "keep archived messages (XEP-0313) for `DURATION` (0: no archive)", dur(func(c *Config) *time.Duration { return &c.ArchiveRetention })},
	{"muc-domain", "group chat service `DOMAIN` (default conference.<domain>; \"off\" disables group chat)", str(func(c *Config) *string { return &c.MUCDomain })},
	{"muc-max-rooms", "rooms the group chat service holds, `N`", num(func(c *Config) *int { return &c.MUCMaxRooms })},
	{"muc-max-occupants", "occupants of one room, `N`", num(func(c *Config) *int { return &c.MUCMaxOccupants })},
	{"websocket-origins", "comma-separated browser `ORIGINS` allowed on /xmpp-websocket, e.g. https://chat.example.org (empty: any)", str(func(c *Config) *string { return &c.WebSocketOrigins })},
}

// EnvPrefix starts the environment variable of every setting.
const EnvPrefix = "PARLEY_"

// envName is the environment variable of a setting: PARLEY_<NAME>, upper
// case, dashes as underscores (c2s-tls → PARLEY_C2S_TLS).
func envName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newFlagSet binds every setting to the fields of c; c's current values
// become the defaults shown by --help.
func newFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	for _, s := range settings {
		fs.Var(s.value(c), s.name, s.usage)
	}
	return fs
}

// Error lists every problem found in the configuration, each as
// "where: what", so an operator can fix them all in one pass instead of one
// restart per mistake.
type Error struct {
	Problems []string
}

// Error puts a single problem on one line and several on one line each.
func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

// Load builds the configuration of `parley serve` from args (without the
// program and command names) and env (in os.Environ form).
//
// Precedence is flag > environment > file > default: the YAML file named by
// --config (or PARLEY_CONFIG) is applied over the defaults, then every
// PARLEY_<NAME> variable, then the flags given explicitly. Empty environment
// variables count as unset, and PARLEY_* variables that name no setting are
// ignored, because the environment is shared with other tools. Relative
// paths are relative to the working directory, not to the config file.
//
// For -h/--help the usage is written to os.Stderr (the flag package's
// default output) and flag.ErrHelp is returned, so the caller can exit 0.
// Problems in the file, the environment and the resulting values are all
// reported together in an *Error; an unreadable or syntactically broken
// file or a bad flag is reported alone.
func Load(args []string, env []string) (*Config, error) {
	return load(args, env, os.Stderr)
}

func load(args, env []string, helpOut io.Writer) (*Config, error) {
	fromFlags := Default()
	fs := newFlagSet(fromFlags)
	// The flag package prints parse errors and usage itself; buffer that so
	// a mistyped flag yields one returned error, not a page of help.
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = func() { printUsage(fs.Output(), fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = helpOut.Write(out.Bytes())
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w (see parley serve --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: parley serve takes only flags (see parley serve --help)", fs.Arg(0))
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	environ := envMap(env)
	path := environ[envName("config")]
	if explicit["config"] {
		path = fromFlags.Config
	}

	cfg := Default()
	sources := map[string]string{} // setting name → where its value came from
	var problems []string
	if path != "" {
		p, err := applyFile(cfg, path, sources)
		if err != nil {
			return nil, err
		}
		problems = append(problems, p...)
		cfg.Config = path
	}

	// Env values and explicit flags go through a flag set bound to cfg, so
	// they are parsed by the very code that parses flags.
	setter := newFlagSet(cfg)
	setter.SetOutput(io.Discard)
	for _, s := range settings {
		name := envName(s.name)
		v, ok := environ[name]
		if !ok || v == "" {
			continue
		}
		if err := setter.Set(s.name, v); err != nil {
			problems = append(problems, fmt.Sprintf("%s: invalid value %q: %v", name, v, err))
			continue
		}
		sources[s.name] = name
	}
	fs.Visit(func(f *flag.Flag) {
		// String round-trips every value type used here; Parse accepted it.
		if err := setter.Set(f.Name, f.Value.String()); err != nil {
			problems = append(problems, fmt.Sprintf("--%s: %v", f.Name, err))
			return
		}
		sources[f.Name] = "--" + f.Name
	})

	cfg.normalize()
	problems = append(problems, cfg.validate(sources)...)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return cfg, nil
}

// envMap turns os.Environ form into a map; a later duplicate wins, as in
// os.Getenv.
func envMap(env []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			m[k] = v
		}
	}
	return m
}

// normalize lower-cases what is case-insensitive, so the rest of the server
// compares plain strings (and the certificate file is named consistently).
func (c *Config) normalize() {
	c.Domain = strings.ToLower(c.Domain)
	c.LogLevel = strings.ToLower(c.LogLevel)
	c.LogFormat = strings.ToLower(c.LogFormat)
	c.Durability = strings.ToLower(c.Durability)
}

// printUsage is the --help text: how the sources combine, then every flag
// with its argument, meaning and default.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: parley serve [flags]

Runs the Parley XMPP server.

Every flag is also an environment variable PARLEY_<NAME> (upper case, dashes
as underscores, e.g. PARLEY_C2S_TLS) and a key of the YAML file given by
--config (e.g. "c2s-tls: :5223").
Precedence: flag > environment > file > default.
Durations are Go durations (30s, 5m, 720h).

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, usage)
		if _, isBool := f.Value.(*boolValue); isBool {
			if f.DefValue == "true" {
				fmt.Fprint(w, " (default true)")
			}
		} else if _, isString := f.Value.(*stringValue); isString {
			if f.DefValue != "" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
		} else {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
