package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
)

func newAuth(t *testing.T, perIP, perAccount int, c *clock) *Authenticator {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Durability: pebble.DurabilityOS, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s1, s256, err := sasl.NewCredentials("secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(context.Background(), store.Account{Username: "alice", Created: time.Now(), SHA1: s1, SHA256: s256}); err != nil {
		t.Fatal(err)
	}
	return New(Config{
		Domain: "example.com", Accounts: st, Secret: []byte("0123456789abcdef0123456789abcdef"),
		FailuresPerIP: perIP, FailuresPerAccount: perAccount, Window: time.Minute, Now: c.now,
	})
}

// login runs a SCRAM-SHA-256 exchange through the Authenticator as the c2s
// session does, recording a failure like it; it returns the failure
// condition or "" on success.
func login(t *testing.T, a *Authenticator, ip, user, pass string) string {
	t.Helper()
	m, err := a.Start(sasl.MechSCRAMSHA256, ip, nil)
	if err != nil {
		cond, _ := a.Condition(err)
		a.Failed(ip, nil)
		return cond
	}
	cl, err := sasl.NewClient(sasl.MechSCRAMSHA256, user, pass, sasl.ChannelBinding{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Start()
	if err != nil {
		t.Fatal(err)
	}
	for {
		ch, done, err := m.Next(resp)
		if err != nil {
			cond, _ := a.Condition(err)
			a.Failed(ip, m)
			return cond
		}
		if done {
			if err := cl.Verify(ch); err != nil {
				t.Fatalf("server signature: %v", err)
			}
			if m.Username() != user {
				t.Fatalf("Username %q", m.Username())
			}
			return ""
		}
		if resp, err = cl.Next(ch); err != nil {
			t.Fatalf("client: %v", err)
		}
	}
}

func TestAuthenticatorThrottlesPerIP(t *testing.T) {
	t.Parallel()
	c := newClock()
	a := newAuth(t, 2, 0, c)
	for i := range 2 {
		if got := login(t, a, "192.0.2.1", "alice", "wrong"); got != sasl.NotAuthorized {
			t.Fatalf("attempt %d: %q", i, got)
		}
	}
	if got := login(t, a, "192.0.2.1", "alice", "secret"); got != sasl.TemporaryAuthFailure {
		t.Fatalf("throttled IP with the right password: %q", got)
	}
	if got := login(t, a, "192.0.2.2", "alice", "secret"); got != "" {
		t.Fatalf("other IP: %q", got)
	}
	c.advance(time.Minute)
	if got := login(t, a, "192.0.2.1", "alice", "secret"); got != "" {
		t.Fatalf("after the window: %q", got)
	}
}

func TestAuthenticatorThrottlesPerAccount(t *testing.T) {
	t.Parallel()
	c := newClock()
	a := newAuth(t, 0, 2, c)
	// A distributed guesser: every attempt from another address.
	for i, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if got := login(t, a, ip, "alice", "wrong"); got != sasl.NotAuthorized {
			t.Fatalf("attempt %d: %q", i, got)
		}
	}
	if got := login(t, a, "198.51.100.3", "alice", "secret"); got != sasl.TemporaryAuthFailure {
		t.Fatalf("throttled account from a new IP: %q", got)
	}
	// The account name is normalised before counting.
	if got := login(t, a, "198.51.100.4", "ALICE", "secret"); got != sasl.TemporaryAuthFailure {
		t.Fatalf("throttled account under another case: %q", got)
	}
	c.advance(time.Minute)
	if got := login(t, a, "198.51.100.3", "alice", "secret"); got != "" {
		t.Fatalf("after the window: %q", got)
	}
}

func TestAuthenticatorMechanisms(t *testing.T) {
	t.Parallel()
	a := newAuth(t, 0, 0, newClock())
	plain := a.Mechanisms(nil)
	if slices.Contains(plain, sasl.MechPLAIN) || !slices.Contains(plain, sasl.MechSCRAMSHA256) {
		t.Errorf("plain TCP: %v", plain)
	}
	if m := a.Mechanisms(&tls.ConnectionState{}); !slices.Contains(m, sasl.MechPLAIN) {
		t.Errorf("TLS: %v", m)
	}
	if _, err := a.Start(sasl.MechPLAIN, "192.0.2.1", nil); err == nil {
		t.Error("PLAIN started on plain TCP")
	}
	_, err := a.Start("X-UNKNOWN", "192.0.2.1", nil)
	var f *sasl.Failure
	if !errors.As(err, &f) {
		t.Fatalf("unknown mechanism: %v", err)
	}
	if cond, _ := a.Condition(errors.New("opaque")); cond != sasl.TemporaryAuthFailure {
		t.Errorf("opaque error condition %q", cond)
	}
}
