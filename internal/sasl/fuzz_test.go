package sasl

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

var fuzzMechs = []string{MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA1Plus, MechSCRAMSHA256Plus}

var knownConditions = map[string]bool{
	Aborted: true, AccountDisabled: true, CredentialsExpired: true, EncryptionRequired: true,
	IncorrectEncoding: true, InvalidAuthzid: true, InvalidMechanism: true, MalformedRequest: true,
	MechanismTooWeak: true, NotAuthorized: true, TemporaryAuthFailure: true,
}

// FuzzServerSCRAM feeds arbitrary client-first and client-final messages to
// the SCRAM servers. The server nonces are those of the RFC vectors and the
// account "user" has the vectors' credentials, so seeds (and mutations of
// them) can reach every branch, success included.
func FuzzServerSCRAM(f *testing.F) {
	// Credentials are derived once: PBKDF2 per input would starve the fuzzer.
	creds := map[Hash]store.SCRAM{}
	for _, v := range vectors {
		c, err := DeriveSCRAM(v.h, "pencil", b64(v.salt), 4096)
		if err != nil {
			f.Fatal(err)
		}
		creds[v.h] = c
	}
	lookup := func(h Hash, u string) (store.SCRAM, error) {
		if u == "user" {
			return creds[h], nil
		}
		return store.SCRAM{}, store.ErrNotFound
	}
	for i, v := range vectors {
		f.Add(uint8(i), []byte(v.clientFirst), []byte(v.clientFinal))
	}
	f.Add(uint8(3), []byte("p=tls-exporter,,n=user,r=abc"), []byte("c=cD10bHMtZXhwb3J0ZXIsLA==,r=abc,p=AAAA"))
	f.Add(uint8(1), []byte("y,a=user,n=user,r=abc"), []byte("c=eSxhPXVzZXIs,r=abc,p=AAAA"))

	f.Fuzz(func(t *testing.T, mech uint8, first, final []byte) {
		h := SHA1
		if mech%2 == 1 {
			h = SHA256
		}
		snonce := vectors[0].snonce
		if h == SHA256 {
			snonce = vectors[1].snonce
		}
		cfg := ServerConfig{
			Lookup:    lookup,
			Normalize: testNormalize,
			Domain:    "example.com",
			ChannelBindings: map[string][]byte{
				CBTLSExporter:       exporterData,
				CBTLSServerEndPoint: endpointData,
			},
			AdvertisePLUS:  mech&4 == 0,
			FakeSaltSecret: testSecret,
			nonce:          fixedNonce(snonce),
		}
		name := fuzzMechs[int(mech)%len(fuzzMechs)]
		s, err := NewServer(name, cfg)
		if err != nil {
			if !cfg.AdvertisePLUS && strings.HasSuffix(name, "-PLUS") && condition(err) == InvalidMechanism {
				return
			}
			t.Fatalf("NewServer(%s): %v", name, err)
		}
		ended := false
		for _, in := range [][]byte{first, final, final} {
			out, done, err := s.Next(in)
			if len(out) > MaxMessageSize {
				t.Fatalf("output of %d bytes", len(out))
			}
			if ended {
				if err == nil {
					t.Fatal("exchange continued after it ended")
				}
				break
			}
			if err != nil {
				var fl *Failure
				if !errors.As(err, &fl) || !knownConditions[fl.Condition] {
					t.Fatalf("error is not a Failure with a known condition: %v", err)
				}
				if s.Username() != "" {
					t.Fatal("username set after failure")
				}
				ended = true
				continue
			}
			if done {
				if s.Username() != "user" || !strings.HasPrefix(string(out), "v=") {
					t.Fatalf("success for %q with %q", s.Username(), out)
				}
				ended = true
			}
		}
	})
}

// TestFuzzCorpus keeps the committed seed corpus meaningful: the seeds that
// are complete exchanges must still succeed (with the expected binding), so
// that the fuzzer starts from inputs that reach the end of the exchange.
func TestFuzzCorpus(t *testing.T) {
	want := map[string]string{
		"rfc5802":                    "",
		"rfc7677":                    "",
		"plus-sha256-exporter":       "",
		"plus-sha1-endpoint-authzid": "",
		"y-not-offered-extension":    "",
		"plus-mismatch":              NotAuthorized,
		"y-offered":                  NotAuthorized,
		"unknown-user-escaped":       NotAuthorized,
		"mandatory-ext":              MalformedRequest,
		"bad-base64":                 IncorrectEncoding,
		"garbage":                    MalformedRequest,
	}
	for name, cond := range want {
		data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzServerSCRAM", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 4 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: bad corpus file", name)
		}
		var vals [3]string
		for i, l := range lines[1:] {
			l = l[strings.IndexByte(l, '(')+1 : len(l)-1]
			if vals[i], err = strconv.Unquote(l); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		mech := vals[0][0]
		h := SHA1
		snonce := vectors[0].snonce
		if mech%2 == 1 {
			h, snonce = SHA256, vectors[1].snonce
		}
		a := newAccounts(map[string]string{"user": "pencil"})
		a.salts["user"] = b64(vectors[h-1].salt)
		cfg := testConfig(a)
		cfg.AdvertisePLUS = mech&4 == 0
		cfg.nonce = fixedNonce(snonce)
		s, err := NewServer(fuzzMechs[int(mech)%len(fuzzMechs)], cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Next([]byte(vals[1]))
		if err == nil {
			_, _, err = s.Next([]byte(vals[2]))
		}
		if condition(err) != cond {
			t.Errorf("%s: %v, want %q", name, err, cond)
		}
	}
}
