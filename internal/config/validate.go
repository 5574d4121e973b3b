package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Validate reports every invalid setting of c at once in an *Error, or nil.
// Load has already called it; it is exported for configurations built in
// code. Enumerated values and the domain must be lower case here (Load
// lower-cases them).
func (c *Config) Validate() error {
	if p := c.validate(nil); len(p) > 0 {
		return &Error{Problems: p}
	}
	return nil
}

// validate returns one "setting: problem" per mistake. sources, when known,
// says where a value came from so the operator knows what to edit.
func (c *Config) validate(sources map[string]string) []string {
	var problems []string
	bad := func(name, format string, args ...any) {
		p := name + ": " + fmt.Sprintf(format, args...)
		if src, ok := sources[name]; ok {
			p += " (from " + src + ")"
		}
		problems = append(problems, p)
	}

	if err := checkDomain(c.Domain); err != nil {
		bad("domain", "%q %v", c.Domain, err)
	}
	if c.Data == "" {
		bad("data", "must not be empty")
	}

	type listener struct{ name, addr, host, port string }
	var listeners []listener
	for _, l := range []struct{ name, addr string }{{"c2s", c.C2S}, {"c2s-tls", c.C2STLS}, {"http", c.HTTP}} {
		host, port, err := checkAddr(l.addr)
		if err != nil {
			bad(l.name, "invalid address %q: %v", l.addr, err)
			continue
		}
		for _, o := range listeners {
			if port != "0" && port == o.port && hostsOverlap(host, o.host) {
				bad(l.name, "address %q conflicts with %s %q", l.addr, o.name, o.addr)
			}
		}
		listeners = append(listeners, listener{l.name, l.addr, host, port})
	}

	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		bad("tls-cert", "given without tls-key")
	case c.TLSCert == "" && c.TLSKey != "":
		bad("tls-key", "given without tls-cert")
	}
	if strings.IndexFunc(c.AdminToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		// It travels in an Authorization header, where it could not be sent.
		bad("admin-token", "must not contain spaces or control characters")
	}

	oneOf := func(name, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(name, "unknown value %q (want %s)", v, strings.Join(allowed, ", "))
	}
	oneOf("log-level", c.LogLevel, "debug", "info", "warn", "error")
	oneOf("log-format", c.LogFormat, LogFormatText, LogFormatJSON)
	oneOf("durability", c.Durability, DurabilityFsync, DurabilityOS)

	if c.MaxStanzaSize < MinStanzaSize || c.MaxStanzaSize > MaxStanzaSize {
		bad("max-stanza-size", "%d is out of range (%d to %d bytes)", c.MaxStanzaSize, MinStanzaSize, MaxStanzaSize)
	}
	atLeast := func(name string, v, min int) {
		if v < min {
			bad(name, "%d is too small (minimum %d)", v, min)
		}
	}
	atLeast("max-offline-messages", c.MaxOfflineMessages, 0)
	atLeast("max-sessions-per-user", c.MaxSessionsPerUser, 1)
	atLeast("max-connections", c.MaxConnections, 1)
	atLeast("max-connections-per-ip", c.MaxConnectionsPerIP, 1)
	atLeast("login-rate-per-ip", c.LoginRatePerIP, 1)
	atLeast("stanza-rate", c.StanzaRate, 1)
	atLeast("stanza-burst", c.StanzaBurst, 1)

	durationAtLeast := func(name string, d time.Duration, zeroOK bool) {
		if d < 0 || (d == 0 && !zeroOK) {
			want := "positive"
			if zeroOK {
				want = "zero or positive"
			}
			bad(name, "%s must be %s", formatDuration(d), want)
		}
	}
	durationAtLeast("offline-expiry", c.OfflineExpiry, true)
	durationAtLeast("idle-timeout", c.IdleTimeout, false)
	durationAtLeast("write-timeout", c.WriteTimeout, false)
	durationAtLeast("shutdown-timeout", c.ShutdownTimeout, false)
	durationAtLeast("resume-timeout", c.ResumeTimeout, true)
	durationAtLeast("archive-retention", c.ArchiveRetention, true)
	atLeast("muc-max-rooms", c.MUCMaxRooms, 1)
	atLeast("muc-max-occupants", c.MUCMaxOccupants, 2)
	// conference.<domain> is valid whenever the domain is; only a domain
	// given explicitly is checked on its own.
	if m := c.MUC(); m != "" && c.MUCDomain != DefaultMUCDomain {
		if err := checkDomain(m); err != nil {
			bad("muc-domain", "%s", err)
		} else if m == c.Domain {
			bad("muc-domain", "must differ from the served domain %q", c.Domain)
		}
	}
	for _, o := range c.Origins() {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			bad("websocket-origins", "%q is not an origin (want scheme://host[:port])", o)
		}
	}
	return problems
}

// checkDomain accepts an ASCII host name in lower case (an IPv4 literal
// passes too). Internationalised names must be given in their A-label
// (xn--) form: the domain names files and certificates, where one spelling
// is needed.
func checkDomain(d string) error {
	switch {
	case d == "":
		return fmt.Errorf("must not be empty")
	case strings.HasSuffix(d, "."):
		return fmt.Errorf("must not end with a dot")
	case d != strings.ToLower(d):
		return fmt.Errorf("must be lower case")
	}
	return checkHostname(d)
}

func checkHostname(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("is longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return fmt.Errorf("has an empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("has a label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("has a label starting or ending with '-'")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				if r > unicode.MaxASCII {
					return fmt.Errorf("is not ASCII: use the xn-- (punycode) form")
				}
				return fmt.Errorf("contains %q: only letters, digits, '-' and '.' are allowed", r)
			}
		}
	}
	return nil
}

// checkAddr validates a listen address as net.Listen would take it, but
// with a numeric port: a service name would silently depend on
// /etc/services.
func checkAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok {
			return "", "", fmt.Errorf("%s (want HOST:PORT, e.g. :5222 or 127.0.0.1:0)", ae.Err)
		}
		return "", "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			if err := checkHostname(host); err != nil {
				return "", "", fmt.Errorf("host %q %v", host, err)
			}
		}
	}
	return host, port, nil
}

// hostsOverlap reports whether listeners on the same port and these hosts
// would collide: the same host, or a wildcard on either side.
func hostsOverlap(a, b string) bool {
	wildcard := func(h string) bool {
		if h == "" {
			return true
		}
		ip, err := netip.ParseAddr(h)
		return err == nil && ip.IsUnspecified()
	}
	return wildcard(a) || wildcard(b) || strings.EqualFold(a, b)
}
