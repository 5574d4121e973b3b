package sasl

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// testAccounts derives credentials lazily and caches them: PBKDF2 at 4096
// iterations is cheap but not free, and the fuzz target must not redo it.
type testAccounts struct {
	mu        sync.Mutex
	passwords map[string]string
	salts     map[string][]byte // optional fixed salts, by username
	cache     map[string]store.SCRAM
}

func newAccounts(pw map[string]string) *testAccounts {
	return &testAccounts{passwords: pw, salts: map[string][]byte{}, cache: map[string]store.SCRAM{}}
}

func (a *testAccounts) lookup(h Hash, user string) (store.SCRAM, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pw, ok := a.passwords[user]
	if !ok {
		return store.SCRAM{}, fmt.Errorf("account %q: %w", user, store.ErrNotFound)
	}
	key := h.String() + "\x00" + user
	if c, ok := a.cache[key]; ok {
		return c, nil
	}
	salt := a.salts[user]
	if salt == nil {
		salt = []byte("salt-of-" + user + "-" + h.String())
	}
	c, err := DeriveSCRAM(h, pw, salt, DefaultIterations)
	if err != nil {
		return store.SCRAM{}, err
	}
	a.cache[key] = c
	return c, nil
}

// testNormalize stands in for the jid localpart normalisation: lower-case,
// and refuse what cannot be a localpart.
func testNormalize(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "@/ \"&'<>:") {
		return "", errors.New("invalid localpart")
	}
	return strings.ToLower(s), nil
}

var (
	exporterData = []byte("exporter-data-0123456789abcdef!!")
	endpointData = []byte("endpoint-data-0123456789abcdef!!")
)

func testConfig(a *testAccounts) ServerConfig {
	return ServerConfig{
		Lookup:    a.lookup,
		Normalize: testNormalize,
		Domain:    "example.com",
		ChannelBindings: map[string][]byte{
			CBTLSExporter:       exporterData,
			CBTLSServerEndPoint: endpointData,
		},
		AdvertisePLUS:  true,
		AllowPLAIN:     true,
		FakeSaltSecret: testSecret,
	}
}

func fixedNonce(n string) func() (string, error) {
	return func() (string, error) { return n, nil }
}

func b64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// condition returns the Failure condition of err, or "" if err is not one.
func condition(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Condition
	}
	return ""
}

// exchange runs a complete client↔server exchange and returns the first
// error, from whichever side.
func exchange(t *testing.T, mech string, cfg ServerConfig, user, pw string, cb ChannelBinding) (ServerMech, error) {
	t.Helper()
	c, err := NewClient(mech, user, pw, cb)
	if err != nil {
		t.Fatalf("NewClient(%s): %v", mech, err)
	}
	return runExchange(t, c, mech, cfg)
}

func runExchange(t *testing.T, c ClientMech, mech string, cfg ServerConfig) (ServerMech, error) {
	t.Helper()
	s, err := NewServer(mech, cfg)
	if err != nil {
		return nil, err
	}
	resp, err := c.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	for i := 0; i < 5; i++ {
		ch, done, err := s.Next(resp)
		if err != nil {
			if s.Username() != "" {
				t.Errorf("Username() = %q after failure", s.Username())
			}
			return s, err
		}
		if done {
			if err := c.Verify(ch); err != nil {
				return s, fmt.Errorf("client Verify: %w", err)
			}
			return s, nil
		}
		if s.Username() != "" {
			t.Errorf("Username() = %q before success", s.Username())
		}
		if resp, err = c.Next(ch); err != nil {
			return s, fmt.Errorf("client Next: %w", err)
		}
	}
	t.Fatal("exchange did not finish")
	return nil, nil
}
