package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile writes a config file in a fresh directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// problems returns the list inside an *Error, failing the test otherwise.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *config.Error, got %T: %v", err, err)
	}
	return ce.Problems
}

func containsAll(t *testing.T, got []string, want ...string) {
	t.Helper()
	joined := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in problems:\n%s", w, joined)
		}
	}
}

func TestDefaults(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	cfg, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("Load with no sources = %+v, want Default()", cfg)
	}
	d := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"domain", d.Domain, "localhost"},
		{"data", d.Data, "./parley-data"},
		{"c2s", d.C2S, ":5222"},
		{"c2s-tls", d.C2STLS, ":5223"},
		{"http", d.HTTP, ":5280"},
		{"allow-registration", d.AllowRegistration, false},
		{"starttls-required", d.StartTLSRequired, true},
		{"queue-journal", d.QueueJournal, true},
		{"max-stanza-size", d.MaxStanzaSize, 262144},
		{"offline-expiry", d.OfflineExpiry, 720 * time.Hour},
		{"resume-timeout", d.ResumeTimeout, 300 * time.Second},
		{"archive-retention", d.ArchiveRetention, 720 * time.Hour},
		{"muc-domain", d.MUC(), "conference.localhost"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestSettingsTable guards the single table against drift: every Config
// field is exactly one setting, bound to the field whose yaml tag is the
// setting's name.
func TestSettingsTable(t *testing.T) {
	c := Default()
	rv := reflect.ValueOf(c).Elem()
	byTag := map[string]uintptr{}
	for i := 0; i < rv.NumField(); i++ {
		tag := rv.Type().Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			t.Errorf("field %s has no yaml tag", rv.Type().Field(i).Name)
		}
		byTag[tag] = rv.Field(i).Addr().Pointer()
	}
	seen := map[string]bool{}
	for _, s := range settings {
		if seen[s.name] {
			t.Errorf("setting %s listed twice", s.name)
		}
		seen[s.name] = true
		addr, ok := byTag[s.name]
		if !ok {
			t.Errorf("setting %s has no Config field with that yaml tag", s.name)
			continue
		}
		if got := reflect.ValueOf(s.value(c)).Pointer(); got != addr {
			t.Errorf("setting %s is bound to the wrong field", s.name)
		}
	}
	if len(seen) != len(byTag) {
		t.Errorf("%d settings for %d fields", len(seen), len(byTag))
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "parley.yaml", `
domain: file.example
idle-timeout: 1m
max-stanza-size: 20000
allow-registration: true
`)
	tests := []struct {
		name string
		args []string
		env  []string
		want func(*Config) bool
	}{
		{
			name: "default",
			want: func(c *Config) bool {
				return c.Domain == "localhost" && c.IdleTimeout == 30*time.Second && c.MaxStanzaSize == 262144 && !c.AllowRegistration
			},
		},
		{
			name: "file over default",
			args: []string{"--config", file},
			want: func(c *Config) bool {
				return c.Domain == "file.example" && c.IdleTimeout == time.Minute && c.MaxStanzaSize == 20000 && c.AllowRegistration &&
					c.C2S == ":5222" && c.Config == file
			},
		},
		{
			name: "env over file",
			args: []string{"--config", file},
			env:  []string{"PARLEY_DOMAIN=env.example", "PARLEY_IDLE_TIMEOUT=2m", "PARLEY_ALLOW_REGISTRATION=false", "PARLEY_C2S_TLS=127.0.0.1:0"},
			want: func(c *Config) bool {
				return c.Domain == "env.example" && c.IdleTimeout == 2*time.Minute && c.MaxStanzaSize == 20000 && !c.AllowRegistration &&
					c.C2STLS == "127.0.0.1:0"
			},
		},
		{
			name: "flag over env over file",
			args: []string{"--config", file, "--domain", "flag.example", "--allow-registration", "-max-stanza-size=30000"},
			env:  []string{"PARLEY_DOMAIN=env.example", "PARLEY_IDLE_TIMEOUT=2m", "PARLEY_ALLOW_REGISTRATION=false"},
			want: func(c *Config) bool {
				return c.Domain == "flag.example" && c.IdleTimeout == 2*time.Minute && c.MaxStanzaSize == 30000 && c.AllowRegistration
			},
		},
		{
			name: "flag equal to the default still wins over env",
			args: []string{"--idle-timeout=30s", "--starttls-required=true"},
			env:  []string{"PARLEY_IDLE_TIMEOUT=2m", "PARLEY_STARTTLS_REQUIRED=no"},
			want: func(c *Config) bool { return c.IdleTimeout == 30*time.Second && c.StartTLSRequired },
		},
		{
			name: "queue journal off",
			args: []string{"--queue-journal=false"},
			want: func(c *Config) bool { return !c.QueueJournal },
		},
		{
			name: "config file from env",
			env:  []string{"PARLEY_CONFIG=" + file},
			want: func(c *Config) bool { return c.Domain == "file.example" && c.Config == file },
		},
		{
			name: "config flag over PARLEY_CONFIG",
			args: []string{"--config", file},
			env:  []string{"PARLEY_CONFIG=/nonexistent/parley.yaml"},
			want: func(c *Config) bool { return c.Domain == "file.example" && c.Config == file },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(cfg) {
				t.Errorf("unexpected config: %+v", cfg)
			}
		})
	}
}

// A validation problem names where the bad value came from, so the operator
// knows which of the four places to edit.
func TestProblemNamesSource(t *testing.T) {
	file := writeFile(t, "p.yaml", "log-format: xml\n\nlog-level: loud\ndurability: maybe\n")
	_, err := Load([]string{"--config", file, "--durability", "never"}, []string{"PARLEY_LOG_LEVEL=noisy"})
	got := problems(t, err)
	containsAll(t, got,
		`log-format: unknown value "xml" (want text, json) (from `+file+`:1)`,
		`log-level: unknown value "noisy" (want debug, info, warn, error) (from PARLEY_LOG_LEVEL)`,
		`durability: unknown value "never" (want fsync, os) (from --durability)`,
	)
	if len(got) != 3 {
		t.Errorf("want 3 problems, got %q", got)
	}
}

func TestStrictYAML(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // substrings of problems; the file path is prefixed
		fatal   string   // substring of a non-*Error error
	}{
		{
			name:    "unknown key names key and line",
			content: "domain: example.org\n# comment\nmax-stanza: 5000\n",
			want:    []string{`:3: unknown key "max-stanza"`},
		},
		{
			name:    "several unknown keys all reported",
			content: "domian: a\nc2s: :1\nport: 5\n",
			want:    []string{`:1: unknown key "domian"`, `:3: unknown key "port"`},
		},
		{
			name:    "type error names key",
			content: "domain: example.org\nidle-timeout: 30\nmax-connections: lots\nstarttls-required: maybe\n",
			want: []string{
				`:2: idle-timeout: invalid value "30": want a duration`,
				`:3: max-connections: invalid value "lots": want an integer`,
				`:4: starttls-required: invalid value "maybe": want true or false`,
			},
		},
		{
			name:    "duplicate key",
			content: "domain: a.example\ndomain: b.example\n",
			want:    []string{`:2: mapping key "domain" already defined at line 1`},
		},
		{
			name:    "nested config",
			content: "config: other.yaml\n",
			want:    []string{`:1: config: cannot be set inside a config file`},
		},
		{
			name:    "two documents",
			content: "domain: a.example\n---\ndomain: b.example\n",
			want:    []string{`only one YAML document is allowed`},
		},
		{
			name:    "not a mapping",
			content: "- domain\n",
			want:    []string{`:1: want a mapping of settings`},
		},
		{
			name:    "scalar document",
			content: "example.org\n",
			want:    []string{`:1: want a mapping of settings`},
		},
		{
			name:    "syntax error",
			content: "domain: [a\n",
			fatal:   "yaml:",
		},
		{
			name:    "file problems and value problems together",
			content: "bogus: 1\ndomain: bad_domain\n",
			want:    []string{`:1: unknown key "bogus"`, `domain: "bad_domain" contains '_'`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "parley.yaml", tt.content)
			_, err := Load([]string{"--config", path}, nil)
			if err == nil {
				t.Fatal("want an error")
			}
			if tt.fatal != "" {
				if !strings.Contains(err.Error(), tt.fatal) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %q should mention %q and the path", err, tt.fatal)
				}
				return
			}
			got := problems(t, err)
			for i, w := range tt.want {
				if strings.HasPrefix(w, ":") {
					tt.want[i] = path + w
				}
			}
			containsAll(t, got, tt.want...)
		})
	}
}

func TestYAMLValues(t *testing.T) {
	path := writeFile(t, "ok.yaml", `# every kind of value
domain: Chat.Example.ORG
c2s: "[::1]:5222"
c2s-tls: 127.0.0.1:0
allow-registration: yes
starttls-required: false
log-level: DEBUG
max-offline-messages: 0
offline-expiry: 0s
resume-timeout: 90s
admin-token: 0123
`)
	cfg, err := Load([]string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "chat.example.org" || cfg.C2S != "[::1]:5222" || cfg.C2STLS != "127.0.0.1:0" ||
		!cfg.AllowRegistration || cfg.StartTLSRequired || cfg.LogLevel != "debug" ||
		cfg.MaxOfflineMessages != 0 || cfg.OfflineExpiry != 0 || cfg.ResumeTimeout != 90*time.Second ||
		cfg.AdminToken != "0123" {
		t.Errorf("unexpected config: %+v", cfg)
	}

	empty := writeFile(t, "empty.yaml", "# nothing set\n")
	cfg, err = Load([]string{"--config", empty}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "localhost" || cfg.Config != empty {
		t.Errorf("empty file: %+v", cfg)
	}

	if _, err := Load([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, nil); err == nil ||
		!strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestEnv(t *testing.T) {
	t.Run("values of every kind", func(t *testing.T) {
		cfg, err := Load(nil, []string{
			"HOME=/root",
			"PARLEY_DOMAIN=example.net",
			"PARLEY_C2S_TLS=:15223",
			"PARLEY_MAX_CONNECTIONS_PER_IP=50",
			"PARLEY_OFFLINE_EXPIRY=24h",
			"PARLEY_ALLOW_REGISTRATION=1",
			"PARLEY_STARTTLS_REQUIRED=off",
			"PARLEY_LOG_FORMAT=json",
			"PARLEY_ADMIN_TOKEN=s3cret=",
			"PARLEY_HTTP=",             // empty counts as unset
			"PARLEY_UNRELATED_THING=x", // not a setting: ignored
			"PARLEY_STANZA_RATE=50",    // overridden by the later duplicate
			"PARLEY_STANZA_RATE=75",
		})
		if err != nil {
			t.Fatal(err)
		}
		want := Default()
		want.Domain = "example.net"
		want.C2STLS = ":15223"
		want.MaxConnectionsPerIP = 50
		want.OfflineExpiry = 24 * time.Hour
		want.AllowRegistration = true
		want.StartTLSRequired = false
		want.LogFormat = "json"
		want.AdminToken = "s3cret="
		want.StanzaRate = 75
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("got  %+v\nwant %+v", cfg, want)
		}
	})

	t.Run("bad values name the variable", func(t *testing.T) {
		_, err := Load(nil, []string{
			"PARLEY_MAX_STANZA_SIZE=big",
			"PARLEY_WRITE_TIMEOUT=10",
			"PARLEY_ALLOW_REGISTRATION=perhaps",
		})
		got := problems(t, err)
		containsAll(t, got,
			`PARLEY_MAX_STANZA_SIZE: invalid value "big": want an integer`,
			`PARLEY_WRITE_TIMEOUT: invalid value "10": want a duration`,
			`PARLEY_ALLOW_REGISTRATION: invalid value "perhaps": want true or false`,
		)
		if len(got) != 3 {
			t.Errorf("want 3 problems, got %q", got)
		}
	})

	for _, s := range settings {
		if got := envName(s.name); !strings.HasPrefix(got, "PARLEY_") || strings.Contains(got, "-") || got != strings.ToUpper(got) {
			t.Errorf("env name of %s = %s", s.name, got)
		}
	}
	if got := envName("c2s-tls"); got != "PARLEY_C2S_TLS" {
		t.Errorf("envName(c2s-tls) = %s", got)
	}
}

func TestValidationCollectsAll(t *testing.T) {
	_, err := Load([]string{
		"--domain", "-bad-.example",
		"--data", "",
		"--c2s", "5222",
		"--c2s-tls", ":99999",
		"--http", "bad host:80",
		"--tls-key", "key.pem",
		"--admin-token", "two words",
		"--log-format", "xml",
		"--max-stanza-size", "17000000",
		"--max-offline-messages", "-1",
		"--max-sessions-per-user", "0",
		"--stanza-burst", "0",
		"--offline-expiry", "-1h",
		"--shutdown-timeout", "0s",
	}, nil)
	got := problems(t, err)
	containsAll(t, got,
		`domain: "-bad-.example" has a label starting or ending with '-'`,
		`data: must not be empty`,
		`c2s: invalid address "5222": missing port in address`,
		`c2s-tls: invalid address ":99999": port "99999" is not a number from 0 to 65535`,
		`http: invalid address "bad host:80": host "bad host" contains ' '`,
		`tls-key: given without tls-cert`,
		`admin-token: must not contain spaces`,
		`log-format: unknown value "xml"`,
		`max-stanza-size: 17000000 is out of range (10000 to 16777216 bytes)`,
		`max-offline-messages: -1 is too small (minimum 0)`,
		`max-sessions-per-user: 0 is too small (minimum 1)`,
		`stanza-burst: 0 is too small (minimum 1)`,
		`offline-expiry: -1h must be zero or positive`,
		`shutdown-timeout: 0s must be positive`,
	)
	if len(got) != 14 {
		t.Errorf("want 14 problems, got %d:\n%s", len(got), strings.Join(got, "\n"))
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid configuration (14 problems):\n  ") {
		t.Errorf("error text: %s", msg)
	}
}

func TestValidateDomain(t *testing.T) {
	tests := []struct {
		domain string
		ok     bool
	}{
		{"localhost", true},
		{"example.org", true},
		{"xn--bcher-kva.example", true},
		{"a-b.c1.example", true},
		{"192.0.2.1", true},
		{"", false},
		{"example.org.", false},
		{"Example.org", false},
		{"a..b", false},
		{"bücher.example", false},
		{"a_b.example", false},
		{"exa mple", false},
		{strings.Repeat("a", 64) + ".example", false},
		{strings.Repeat("abcdefghi.", 26) + "example", false},
	}
	for _, tt := range tests {
		err := checkDomain(tt.domain)
		if (err == nil) != tt.ok {
			t.Errorf("checkDomain(%q) = %v, want ok=%v", tt.domain, err, tt.ok)
		}
	}
}

func TestValidateAddresses(t *testing.T) {
	tests := []struct {
		c2s, tls, http string
		want           string // substring of the problems, "" for none
	}{
		{":5222", ":5223", ":5280", ""},
		{":0", ":0", "127.0.0.1:0", ""},
		{"127.0.0.1:5222", "[::1]:5222", "localhost:5280", ""},
		{"0.0.0.0:5222", "[fe80::1%eth0]:5223", "example.org:5280", ""},
		{":5222", ":5222", ":5280", `c2s-tls: address ":5222" conflicts with c2s ":5222"`},
		{"127.0.0.1:5222", "0.0.0.0:5223", "[::]:5222", `http: address "[::]:5222" conflicts with c2s`},
		{"127.0.0.1:5222", "127.0.0.2:5222", ":5280", ""},
		{":xmpp-client", ":5223", ":5280", `port "xmpp-client" is not a number`},
		{"::1:5222", ":5223", ":5280", `too many colons`},
		{"", ":5223", ":5280", `c2s: invalid address ""`},
	}
	for _, tt := range tests {
		c := Default()
		c.C2S, c.C2STLS, c.HTTP = tt.c2s, tt.tls, tt.http
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q %q %q: unexpected %v", tt.c2s, tt.tls, tt.http, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q %q %q: got %v, want %q", tt.c2s, tt.tls, tt.http, err, tt.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		var out bytes.Buffer
		cfg, err := load([]string{"--domain", "example.org", arg}, nil, &out)
		if !errors.Is(err, flag.ErrHelp) || cfg != nil {
			t.Fatalf("%s: got %v, %v; want flag.ErrHelp", arg, cfg, err)
		}
		text := out.String()
		for _, s := range settings {
			if !strings.Contains(text, "  --"+s.name+" ") && !strings.Contains(text, "  --"+s.name+"\n") {
				t.Errorf("%s: help lacks --%s", arg, s.name)
			}
		}
		for _, want := range []string{
			"Usage: parley serve",
			"PARLEY_C2S_TLS",
			"flag > environment > file > default",
			`--c2s-tls ADDR`,
			`(default ":5223")`,
			`(default "localhost")`,
			`(default 262144)`,
			`(default 720h)`,
			`(default true)`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: help lacks %q:\n%s", arg, want, text)
			}
		}
	}
}

func TestBadArgs(t *testing.T) {
	var out bytes.Buffer
	_, err := load([]string{"--no-such-flag"}, nil, &out)
	if err == nil || errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("unknown flag: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("a bad flag printed %q; the error alone should say it", out.String())
	}
	_, err = load([]string{"--max-connections", "many"}, nil, &out)
	if err == nil || !strings.Contains(err.Error(), "want an integer") {
		t.Errorf("bad flag value: %v", err)
	}
	_, err = load([]string{"--domain", "example.org", "extra"}, nil, &out)
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("positional argument: %v", err)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                          "0s",
		30 * time.Second:           "30s",
		5 * time.Minute:            "5m",
		720 * time.Hour:            "720h",
		time.Hour + 30*time.Minute: "1h30m",
		time.Hour + 30*time.Second: "1h0m30s",
		1500 * time.Millisecond:    "1.5s",
	} {
		got := formatDuration(d)
		if got != want {
			t.Errorf("formatDuration(%v) = %s, want %s", d, got, want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != d {
			t.Errorf("%s does not round-trip: %v %v", got, back, err)
		}
	}
}

func TestMUCDomain(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		problem string
	}{
		{[]string{"--domain", "chat.example.org"}, "conference.chat.example.org", ""},
		{[]string{"--muc-domain", "rooms.example.org"}, "rooms.example.org", ""},
		{[]string{"--muc-domain", "off"}, "", ""},
		{[]string{"--muc-domain", "localhost"}, "", "muc-domain: must differ from the served domain"},
		{[]string{"--muc-domain", "bad domain"}, "", "muc-domain:"},
		{[]string{"--muc-max-occupants", "1"}, "", "muc-max-occupants: 1 is too small"},
	} {
		cfg, err := Load(tc.args, nil)
		if tc.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.problem)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if got := cfg.MUC(); got != tc.want {
			t.Errorf("%v: MUC() = %q, want %q", tc.args, got, tc.want)
		}
	}
}
