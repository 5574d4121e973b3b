package sasl

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

// vector is one of the RFC test exchanges, which fix both nonces.
type vector struct {
	mech                                  string
	h                                     Hash
	salt                                  string // base64
	cnonce, snonce                        string
	clientFirst, serverFirst, clientFinal string
	serverFinal                           string
}

var vectors = []vector{
	{ // RFC 5802 §5
		mech: MechSCRAMSHA1, h: SHA1, salt: "QSXCR+Q6sek8bf92",
		cnonce:      "fyko+d2lbbFgONRv9qkxdawL",
		snonce:      "3rfcNHYJY1ZVvWVs7j",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{ // RFC 7677 §3
		mech: MechSCRAMSHA256, h: SHA256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
		cnonce:      "rOprNGfwEbeRWgbNEkqO",
		snonce:      "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

func vectorConfig(v vector) ServerConfig {
	a := newAccounts(map[string]string{"user": "pencil"})
	a.salts["user"] = b64(v.salt)
	cfg := testConfig(a)
	cfg.nonce = fixedNonce(v.snonce)
	return cfg
}

func TestRFCVectorsServer(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.mech, func(t *testing.T) {
			s, err := NewServer(v.mech, vectorConfig(v))
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := s.Next([]byte(v.clientFirst))
			if err != nil || done || string(out) != v.serverFirst {
				t.Fatalf("server-first = %q, %v, %v; want %q", out, done, err, v.serverFirst)
			}
			out, done, err = s.Next([]byte(v.clientFinal))
			if err != nil || !done || string(out) != v.serverFinal {
				t.Fatalf("server-final = %q, %v, %v; want %q", out, done, err, v.serverFinal)
			}
			if s.Username() != "user" {
				t.Errorf("Username = %q", s.Username())
			}
			if _, _, err := s.Next(nil); condition(err) != MalformedRequest {
				t.Errorf("Next after success: %v", err)
			}
		})
	}
}

func TestRFCVectorsClient(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.mech, func(t *testing.T) {
			m, err := NewClient(v.mech, "user", "pencil", ChannelBinding{})
			if err != nil {
				t.Fatal(err)
			}
			m.(*scramClient).nonce = fixedNonce(v.cnonce)
			out, err := m.Start()
			if err != nil || string(out) != v.clientFirst {
				t.Fatalf("client-first = %q, %v", out, err)
			}
			out, err = m.Next([]byte(v.serverFirst))
			if err != nil || string(out) != v.clientFinal {
				t.Fatalf("client-final = %q, %v; want %q", out, err, v.clientFinal)
			}
			if err := m.Verify([]byte(v.serverFinal)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestDeriveSCRAMVector(t *testing.T) {
	// RFC 5802 §5 implies these keys for "pencil"; compare against an
	// independent derivation from the RFC's ClientProof and the vector run.
	v := vectors[0]
	c, err := DeriveSCRAM(SHA1, "pencil", b64(v.salt), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if c.Iterations != 4096 || !bytes.Equal(c.Salt, b64(v.salt)) || len(c.StoredKey) != 20 || len(c.ServerKey) != 20 {
		t.Fatalf("unexpected credentials %+v", c)
	}
	// ServerSignature in the vector = HMAC(ServerKey, AuthMessage).
	auth := "n=user,r=" + v.cnonce + "," + v.serverFirst + ",c=biws,r=" + v.cnonce + v.snonce
	if got := EncodeData(hmacSum(SHA1, c.ServerKey, []byte(auth))); "v="+got != v.serverFinal {
		t.Fatalf("ServerSignature %s, want %s", got, v.serverFinal)
	}
}

func TestDeriveSCRAMBounds(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, tc := range []struct {
		name string
		h    Hash
		pw   string
		salt []byte
		iter int
	}{
		{"too few iterations", SHA256, "pw", salt, MinIterations - 1},
		{"too many iterations", SHA256, "pw", salt, MaxIterations + 1},
		{"empty salt", SHA256, "pw", nil, DefaultIterations},
		{"bad hash", Hash(0), "pw", salt, DefaultIterations},
		{"empty password", SHA256, "", salt, DefaultIterations},
		{"control character", SHA256, "pass\x07", salt, DefaultIterations},
	} {
		if _, err := DeriveSCRAM(tc.h, tc.pw, tc.salt, tc.iter); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// OpaqueString maps non-ASCII spaces to ASCII space and applies NFC,
	// so these two spellings are the same password.
	a, _ := DeriveSCRAM(SHA256, "caf\u00e9\u00a0x", salt, DefaultIterations)
	b, _ := DeriveSCRAM(SHA256, "cafe\u0301 x", salt, DefaultIterations)
	if !bytes.Equal(a.StoredKey, b.StoredKey) {
		t.Error("PRECIS preparation not applied")
	}
}

func TestNewCredentials(t *testing.T) {
	s1, s256, err := NewCredentials("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if len(s1.Salt) != SaltLength || len(s256.Salt) != SaltLength || bytes.Equal(s1.Salt, s256.Salt) {
		t.Errorf("salts %x %x", s1.Salt, s256.Salt)
	}
	if s1.Iterations != DefaultIterations || s256.Iterations != DefaultIterations {
		t.Error("iterations")
	}
	if !validCredentials(SHA1, s1) || !validCredentials(SHA256, s256) {
		t.Error("invalid credentials")
	}
	lookup := func(h Hash, u string) (store.SCRAM, error) {
		if u != "alice" {
			return store.SCRAM{}, store.ErrNotFound
		}
		if h == SHA1 {
			return s1, nil
		}
		return s256, nil
	}
	cfg := ServerConfig{Lookup: lookup, Normalize: testNormalize, AllowPLAIN: true, FakeSaltSecret: testSecret}
	for _, mech := range []string{MechSCRAMSHA1, MechSCRAMSHA256, MechPLAIN} {
		if _, err := exchange(t, mech, cfg, "alice", "correct horse", ChannelBinding{}); err != nil {
			t.Errorf("%s: %v", mech, err)
		}
	}
}

func TestRoundTrips(t *testing.T) {
	a := newAccounts(map[string]string{"alice": "s3cret pässword", "a,b=c": "pw"})
	cfg := testConfig(a)
	exporter := ChannelBinding{Type: CBTLSExporter, Data: exporterData}
	endpoint := ChannelBinding{Type: CBTLSServerEndPoint, Data: endpointData}
	for _, tc := range []struct {
		mech, user, pw string
		cb             ChannelBinding
		cfg            func(*ServerConfig)
	}{
		{mech: MechSCRAMSHA1, user: "alice", pw: "s3cret pässword"},
		{mech: MechSCRAMSHA256, user: "alice", pw: "s3cret pässword"},
		{mech: MechSCRAMSHA1Plus, user: "alice", pw: "s3cret pässword", cb: exporter},
		{mech: MechSCRAMSHA256Plus, user: "alice", pw: "s3cret pässword", cb: exporter},
		{mech: MechSCRAMSHA256Plus, user: "alice", pw: "s3cret pässword", cb: endpoint},
		{mech: MechPLAIN, user: "alice", pw: "s3cret pässword"},
		// The username reaches the server normalised.
		{mech: MechSCRAMSHA256, user: "ALICE", pw: "s3cret pässword"},
		{mech: MechPLAIN, user: "Alice", pw: "s3cret pässword"},
		// saslname escaping of ',' and '='.
		{mech: MechSCRAMSHA256, user: "a,b=c", pw: "pw"},
		// 'y': the client could bind but the server offered no -PLUS.
		{mech: MechSCRAMSHA256, user: "alice", pw: "s3cret pässword", cb: exporter,
			cfg: func(c *ServerConfig) { c.AdvertisePLUS = false }},
	} {
		c := cfg
		if tc.cfg != nil {
			tc.cfg(&c)
		}
		s, err := exchange(t, tc.mech, c, tc.user, tc.pw, tc.cb)
		if err != nil {
			t.Errorf("%s %q cb=%q: %v", tc.mech, tc.user, tc.cb.Type, err)
			continue
		}
		want, _ := testNormalize(tc.user)
		if s.Username() != want || s.Name() != tc.mech {
			t.Errorf("%s: Username %q Name %q", tc.mech, s.Username(), s.Name())
		}
	}
}

func TestChannelBindingFailures(t *testing.T) {
	a := newAccounts(map[string]string{"alice": "pw"})
	cfg := testConfig(a)
	for _, tc := range []struct {
		name string
		mech string
		cb   ChannelBinding
		cfg  func(*ServerConfig)
		cond string
	}{
		{"exporter mismatch", MechSCRAMSHA256Plus, ChannelBinding{CBTLSExporter, []byte("other connection")}, nil, NotAuthorized},
		{"endpoint mismatch", MechSCRAMSHA1Plus, ChannelBinding{CBTLSServerEndPoint, exporterData}, nil, NotAuthorized},
		{"unsupported type", MechSCRAMSHA256Plus, ChannelBinding{"tls-unique", exporterData}, nil, NotAuthorized},
		{"type not on this connection", MechSCRAMSHA256Plus, ChannelBinding{CBTLSExporter, exporterData},
			func(c *ServerConfig) { c.ChannelBindings = map[string][]byte{CBTLSServerEndPoint: endpointData} }, NotAuthorized},
		// 'y' while -PLUS was offered: a downgrade (RFC 5802 §6).
		{"y flag downgrade", MechSCRAMSHA256, ChannelBinding{CBTLSExporter, exporterData}, nil, NotAuthorized},
		{"y flag downgrade sha1", MechSCRAMSHA1, ChannelBinding{CBTLSExporter, exporterData}, nil, NotAuthorized},
		{"plus not offered", MechSCRAMSHA256Plus, ChannelBinding{CBTLSExporter, exporterData},
			func(c *ServerConfig) { c.AdvertisePLUS = false }, InvalidMechanism},
		{"plus without bindings", MechSCRAMSHA256Plus, ChannelBinding{CBTLSExporter, exporterData},
			func(c *ServerConfig) { c.ChannelBindings = nil }, InvalidMechanism},
	} {
		c := cfg
		if tc.cfg != nil {
			tc.cfg(&c)
		}
		_, err := exchange(t, tc.mech, c, "alice", "pw", tc.cb)
		if got := condition(err); got != tc.cond {
			t.Errorf("%s: got %v (%q), want %q", tc.name, err, got, tc.cond)
		}
	}
}

// clientWithHeader makes a SCRAM client that sends a hand-written gs2
// header, to drive the server through cases our client never produces.
func clientWithHeader(t *testing.T, mech, user, pw, header string, cbData []byte) ClientMech {
	t.Helper()
	c, err := NewClient(strings.TrimSuffix(mech, "-PLUS"), user, pw, ChannelBinding{})
	if err != nil {
		t.Fatal(err)
	}
	sc := c.(*scramClient)
	sc.name = mech
	sc.gs2Header = header
	sc.cbData = cbData
	return c
}

func TestGS2Flags(t *testing.T) {
	a := newAccounts(map[string]string{"alice": "pw"})
	cfg := testConfig(a)
	for _, tc := range []struct {
		mech, header string
		cbData       []byte
		cond         string
	}{
		{MechSCRAMSHA256Plus, "n,,", nil, MalformedRequest},
		{MechSCRAMSHA256Plus, "y,,", nil, MalformedRequest},
		{MechSCRAMSHA256, "p=tls-exporter,,", exporterData, MalformedRequest},
		{MechSCRAMSHA256Plus, "p=,,", nil, MalformedRequest},
		{MechSCRAMSHA256Plus, "p=tls exporter,,", nil, MalformedRequest},
		{MechSCRAMSHA256, "x,,", nil, MalformedRequest},
		{MechSCRAMSHA256, "N,,", nil, MalformedRequest},
		{MechSCRAMSHA256Plus, "p=tls-exporter,,", exporterData, ""},
		// Binding data right but header in c= differs from client-first:
		// done by sending data for the other type.
		{MechSCRAMSHA256Plus, "p=tls-exporter,,", endpointData, NotAuthorized},
	} {
		c := clientWithHeader(t, tc.mech, "alice", "pw", tc.header, tc.cbData)
		_, err := runExchange(t, c, tc.mech, cfg)
		if got := condition(err); got != tc.cond {
			t.Errorf("%s %q: got %v, want %q", tc.mech, tc.header, err, tc.cond)
		}
	}
}

func TestAuthzid(t *testing.T) {
	a := newAccounts(map[string]string{"alice": "pw", "bob": "pw"})
	cfg := testConfig(a)
	for _, tc := range []struct {
		authzid string
		cond    string
	}{
		{"alice", ""},
		{"ALICE", ""},
		{"alice@example.com", ""},
		{"Alice@EXAMPLE.com.", ""},
		{"bob", InvalidAuthzid},
		{"bob@example.com", InvalidAuthzid},
		{"alice@other.example", InvalidAuthzid},
		{"alice@example.com/res", InvalidAuthzid},
		{"example.com", InvalidAuthzid},
		{"@example.com", InvalidAuthzid},
	} {
		// SCRAM, with the authzid in the gs2 header (saslname-encoded).
		c := clientWithHeader(t, MechSCRAMSHA256, "alice", "pw", "n,a="+encodeSaslname(tc.authzid)+",", nil)
		_, err := runExchange(t, c, MechSCRAMSHA256, cfg)
		if got := condition(err); got != tc.cond {
			t.Errorf("SCRAM authzid %q: got %v, want %q", tc.authzid, err, tc.cond)
		}
		// PLAIN.
		s, _ := NewServer(MechPLAIN, cfg)
		_, _, err = s.Next([]byte(tc.authzid + "\x00alice\x00pw"))
		if got := condition(err); got != tc.cond {
			t.Errorf("PLAIN authzid %q: got %v, want %q", tc.authzid, err, tc.cond)
		}
	}
	// Without a configured domain only the bare username is accepted.
	cfg.Domain = ""
	s, _ := NewServer(MechPLAIN, cfg)
	if _, _, err := s.Next([]byte("alice@example.com\x00alice\x00pw")); condition(err) != InvalidAuthzid {
		t.Errorf("authzid JID without Domain: %v", err)
	}
}

// TestUnknownUserLooksLikeWrongPassword checks that nothing on the wire
// tells an unknown user from a wrong password: same failure, and a
// server-first-message of the same shape with a salt stable across attempts
// and across server restarts (configs sharing the secret).
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	a := newAccounts(map[string]string{"alice": "pw"})
	cfg := testConfig(a)
	for _, mech := range []string{MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA256Plus, MechPLAIN} {
		cb := ChannelBinding{}
		if strings.HasSuffix(mech, "-PLUS") {
			cb = ChannelBinding{CBTLSExporter, exporterData}
		}
		_, errWrong := exchange(t, mech, cfg, "alice", "wrong", cb)
		_, errUnknown := exchange(t, mech, cfg, "mallory", "pw", cb)
		if condition(errWrong) != NotAuthorized {
			t.Errorf("%s wrong password: %v", mech, errWrong)
		}
		if !reflect.DeepEqual(errWrong, errUnknown) || errors.Is(errUnknown, store.ErrNotFound) {
			t.Errorf("%s: wrong password %#v vs unknown user %#v", mech, errWrong, errUnknown)
		}
	}

	first := func(cfg ServerConfig, h Hash, user string) (salt string, iter string) {
		mech := MechSCRAMSHA1
		if h == SHA256 {
			mech = MechSCRAMSHA256
		}
		s, err := NewServer(mech, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := s.Next([]byte("n,,n=" + user + ",r=abcdefgh"))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Split(string(out), ",")
		return f[1], f[2]
	}
	realSalt, realIter := first(cfg, SHA256, "alice")
	fakeSalt, fakeIter := first(cfg, SHA256, "mallory")
	again, _ := first(testConfig(newAccounts(nil)), SHA256, "mallory")
	other, _ := first(cfg, SHA256, "trudy")
	sha1Salt, _ := first(cfg, SHA1, "mallory")
	if fakeSalt != again {
		t.Error("fake salt not stable across configs with the same secret")
	}
	if fakeSalt == other || fakeSalt == sha1Salt {
		t.Error("fake salt does not depend on user and hash")
	}
	if len(b64(fakeSalt[2:])) != SaltLength || fakeIter != realIter {
		t.Errorf("fake %s %s vs real %s %s", fakeSalt, fakeIter, realSalt, realIter)
	}
	cfg2 := cfg
	cfg2.FakeSaltSecret = []byte("another secret, also 16+ bytes")
	if s, _ := first(cfg2, SHA256, "mallory"); s == fakeSalt {
		t.Error("fake salt does not depend on the secret")
	}
}

func TestWrongPasswordSCRAMProof(t *testing.T) {
	// Proof of the right length but wrong value, on an otherwise perfect
	// exchange (RFC 5802 vector with one proof byte flipped).
	v := vectors[0]
	s, _ := NewServer(v.mech, vectorConfig(v))
	if _, _, err := s.Next([]byte(v.clientFirst)); err != nil {
		t.Fatal(err)
	}
	final := strings.Replace(v.clientFinal, "p=v0X8", "p=v1X8", 1)
	if _, _, err := s.Next([]byte(final)); condition(err) != NotAuthorized {
		t.Fatalf("got %v", err)
	}
}

func TestMalformedClientFirst(t *testing.T) {
	a := newAccounts(map[string]string{"user": "pencil"})
	cfg := testConfig(a)
	long := "n,,n=user,r=" + strings.Repeat("x", MaxNonceLength+1)
	for _, tc := range []struct {
		in   string
		cond string
	}{
		{"n,,n=user,r=abc", ""},
		{"n,,n=user,r=abc,x=ext", ""},
		{"n,,n=us=2Cer=3D,r=abc", ""}, // "us,er=": unknown, so fake credentials
		{"n", MalformedRequest},
		{"n,", MalformedRequest},
		{"n,,", MalformedRequest},
		{"n,,n=user", MalformedRequest},
		{"n,,r=abc,n=user", MalformedRequest},
		{"n,,n=,r=abc", MalformedRequest},
		{"n,,n=user,r=", MalformedRequest},
		{"n,,n=user,r=a b", MalformedRequest},
		{"n,,n=user,r=ab\x7f", MalformedRequest},
		{long, MalformedRequest},
		{"n,,m=ext,n=user,r=abc", MalformedRequest},
		{"n,,n=user,r=abc,", MalformedRequest},
		{"n,,n=user,r=abc,xx", MalformedRequest},
		{"n,,n=user,r=abc,1=x", MalformedRequest},
		{"n,,n=us=er,r=abc", MalformedRequest},
		{"n,,n=user=2c,r=abc", MalformedRequest},
		{"n,,n=user=,r=abc", MalformedRequest},
		{"n,,n=user=3,r=abc", MalformedRequest},
		{"n,,n=\xff,r=abc", MalformedRequest},
		{"n,,n=us\x00er,r=abc", MalformedRequest},
		{"n,x=user,n=user,r=abc", MalformedRequest},
		{"n,a=,n=user,r=abc", MalformedRequest},
		{"n,a=b=ob,n=user,r=abc", MalformedRequest},
		{"n,a=bob,n=user,r=abc", InvalidAuthzid},
		{"n,,n=us er,r=abc", NotAuthorized},
		{strings.Repeat("a", MaxMessageSize+1), MalformedRequest},
	} {
		s, _ := NewServer(MechSCRAMSHA256, cfg)
		_, _, err := s.Next([]byte(tc.in))
		if got := condition(err); got != tc.cond {
			t.Errorf("%.80q: got %v, want %q", tc.in, err, tc.cond)
		}
		if tc.cond != "" {
			// A failed exchange stays failed.
			if _, _, err := s.Next([]byte("n,,n=user,r=abc")); condition(err) != MalformedRequest {
				t.Errorf("%q: Next after failure: %v", tc.in, err)
			}
		}
	}
}

func TestMalformedClientFinal(t *testing.T) {
	v := vectors[0]
	r := "r=" + v.cnonce + v.snonce
	p := "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
	for _, tc := range []struct {
		in   string
		cond string
	}{
		{v.clientFinal, ""},
		{"", MalformedRequest},
		{"c=biws", MalformedRequest},
		{"c=biws," + r, MalformedRequest},
		{r + ",c=biws," + p, MalformedRequest},
		{"c=biws," + p + "," + r, MalformedRequest},
		{"c=biws," + r + ",,", MalformedRequest},
		{"c=biws," + r + ",x," + p, MalformedRequest},
		{"c=biws," + r + ",p=", MalformedRequest},
		{"c=biws," + r + ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts", IncorrectEncoding},
		{"c=biws," + r + ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4T!=", IncorrectEncoding},
		{"c=biws," + r + ",p=v0X8v3Bz2T0CJGbJQyF0\nX+HI4Ts=", IncorrectEncoding},
		{"c=biws," + r + ",p=AAAA", MalformedRequest},
		{"c=biw," + r + "," + p, IncorrectEncoding},
		{"c=bix=," + r + "," + p, IncorrectEncoding}, // non-zero padding bits
		{"c=eSws," + r + "," + p, NotAuthorized},     // "y,," instead of "n,,"
		{"c=," + r + "," + p, NotAuthorized},
		{"c=biws,r=" + v.cnonce + "," + p, MalformedRequest},
		{"c=biws," + r + "x," + p, MalformedRequest},
		{"c=biws," + r + ",\xff=x," + p, MalformedRequest},
		{"c=biws," + r + ",x=1," + p, NotAuthorized}, // extension changes AuthMessage
	} {
		s, _ := NewServer(v.mech, vectorConfig(v))
		if _, _, err := s.Next([]byte(v.clientFirst)); err != nil {
			t.Fatal(err)
		}
		_, done, err := s.Next([]byte(tc.in))
		if got := condition(err); got != tc.cond || done != (tc.cond == "") {
			t.Errorf("%q: got %v, done %v, want %q", tc.in, err, done, tc.cond)
		}
	}
}

func TestEmptyInitialResponse(t *testing.T) {
	a := newAccounts(map[string]string{"alice": "pw"})
	for _, mech := range []string{MechSCRAMSHA256, MechPLAIN} {
		s, _ := NewServer(mech, testConfig(a))
		ch, done, err := s.Next(nil)
		if err != nil || done || len(ch) != 0 {
			t.Fatalf("%s: first empty: %q %v %v", mech, ch, done, err)
		}
		if _, _, err := s.Next([]byte{}); condition(err) != MalformedRequest {
			t.Errorf("%s: second empty: %v", mech, err)
		}
	}
	// After the empty challenge the client's first message is accepted.
	c, _ := NewClient(MechSCRAMSHA256, "alice", "pw", ChannelBinding{})
	s, _ := NewServer(MechSCRAMSHA256, testConfig(a))
	s.Next(nil)
	first, _ := c.Start()
	ch, _, err := s.Next(first)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := c.Next(ch)
	v, done, err := s.Next(final)
	if err != nil || !done || c.Verify(v) != nil {
		t.Fatalf("%v %v", done, err)
	}
}

func TestLookupErrors(t *testing.T) {
	cause := errors.New("disk on fire")
	for _, tc := range []struct {
		name   string
		lookup func(Hash, string) (store.SCRAM, error)
		cond   string
	}{
		{"store error", func(Hash, string) (store.SCRAM, error) { return store.SCRAM{}, cause }, TemporaryAuthFailure},
		{"disabled", func(Hash, string) (store.SCRAM, error) {
			return store.SCRAM{}, &Failure{Condition: AccountDisabled, Text: "ask an admin"}
		}, AccountDisabled},
		{"corrupt credentials", func(Hash, string) (store.SCRAM, error) {
			return store.SCRAM{Salt: []byte("s"), Iterations: 4096, StoredKey: []byte("short")}, nil
		}, TemporaryAuthFailure},
		{"absurd iterations", func(h Hash, _ string) (store.SCRAM, error) {
			return store.SCRAM{Salt: []byte("s"), Iterations: MaxIterations + 1,
				StoredKey: make([]byte, h.Size()), ServerKey: make([]byte, h.Size())}, nil
		}, TemporaryAuthFailure},
	} {
		cfg := testConfig(newAccounts(nil))
		cfg.Lookup = tc.lookup
		for _, mech := range []string{MechSCRAMSHA1, MechPLAIN} {
			_, err := exchange(t, mech, cfg, "alice", "pw", ChannelBinding{})
			if condition(err) != tc.cond {
				t.Errorf("%s %s: %v", tc.name, mech, err)
			}
			if tc.name == "store error" && (!errors.Is(err, cause) || strings.Contains(err.(*Failure).Text, "fire")) {
				t.Errorf("cause must be wrapped, not sent: %#v", err)
			}
		}
	}
}

func TestNewServerErrors(t *testing.T) {
	cfg := testConfig(newAccounts(nil))
	for _, tc := range []struct {
		mech string
		mod  func(*ServerConfig)
		cond string
	}{
		{"DIGEST-MD5", nil, InvalidMechanism},
		{"scram-sha-1", nil, InvalidMechanism},
		{"", nil, InvalidMechanism},
		{MechPLAIN, func(c *ServerConfig) { c.AllowPLAIN = false }, InvalidMechanism},
		{MechSCRAMSHA1, func(c *ServerConfig) { c.Lookup = nil }, TemporaryAuthFailure},
		{MechSCRAMSHA1, func(c *ServerConfig) { c.Normalize = nil }, TemporaryAuthFailure},
		{MechSCRAMSHA1, func(c *ServerConfig) { c.FakeSaltSecret = []byte("short") }, TemporaryAuthFailure},
		{MechSCRAMSHA1, func(c *ServerConfig) { c.FakeIterations = -1 }, TemporaryAuthFailure},
	} {
		c := cfg
		if tc.mod != nil {
			tc.mod(&c)
		}
		if _, err := NewServer(tc.mech, c); condition(err) != tc.cond {
			t.Errorf("%q: %v", tc.mech, err)
		}
	}
}

func TestMechanismsAdvertised(t *testing.T) {
	cfg := testConfig(newAccounts(nil))
	want := []string{MechSCRAMSHA256Plus, MechSCRAMSHA1Plus, MechSCRAMSHA256, MechSCRAMSHA1, MechPLAIN}
	if got := cfg.Mechanisms(); !reflect.DeepEqual(got, want) {
		t.Errorf("Mechanisms = %v", got)
	}
	if got := cfg.ChannelBindingTypes(); !reflect.DeepEqual(got, []string{CBTLSExporter, CBTLSServerEndPoint}) {
		t.Errorf("ChannelBindingTypes = %v", got)
	}
	cfg.AdvertisePLUS, cfg.AllowPLAIN = false, false
	if got := cfg.Mechanisms(); !reflect.DeepEqual(got, []string{MechSCRAMSHA256, MechSCRAMSHA1}) {
		t.Errorf("Mechanisms = %v", got)
	}
	if cfg.ChannelBindingTypes() != nil {
		t.Error("binding types without PLUS")
	}
}

func TestChooseMechanism(t *testing.T) {
	all := []string{MechPLAIN, MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA1Plus, MechSCRAMSHA256Plus}
	cb := ChannelBinding{CBTLSExporter, exporterData}
	for _, tc := range []struct {
		offered []string
		cb      ChannelBinding
		plain   bool
		want    string
	}{
		{all, cb, false, MechSCRAMSHA256Plus},
		{all, ChannelBinding{}, false, MechSCRAMSHA256},
		{[]string{MechSCRAMSHA1Plus, MechSCRAMSHA256}, cb, false, MechSCRAMSHA1Plus},
		{[]string{MechSCRAMSHA1, MechPLAIN}, cb, false, MechSCRAMSHA1},
		{[]string{MechPLAIN}, cb, false, ""},
		{[]string{MechPLAIN}, cb, true, MechPLAIN},
		{[]string{MechSCRAMSHA256Plus}, ChannelBinding{}, true, ""},
	} {
		if got := ChooseMechanism(tc.offered, tc.cb, tc.plain); got != tc.want {
			t.Errorf("ChooseMechanism(%v) = %q, want %q", tc.offered, got, tc.want)
		}
	}
}

func TestDecodeData(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		cond string
	}{
		{"", "", ""},
		{"=", "", ""},
		{"biw=", "n,", ""},
		{"bix=", "", IncorrectEncoding}, // non-zero padding bits
		{"biws", "n,,", ""},
		{"biw", "", IncorrectEncoding},
		{"bi ws", "", IncorrectEncoding},
		{"bi\nws", "", IncorrectEncoding},
		{"bi\r\nws", "", IncorrectEncoding},
		{"b!ws", "", IncorrectEncoding},
		{"biws=", "", IncorrectEncoding},
		{strings.Repeat("A", 5464), "", MalformedRequest}, // 4098 bytes
		{strings.Repeat("A", 5468), "", MalformedRequest},
	} {
		got, err := DecodeData(tc.in)
		if condition(err) != tc.cond || (tc.cond == "" && string(got) != tc.want) {
			t.Errorf("DecodeData(%.40q) = %.40q, %v", tc.in, got, err)
		}
	}
	if d, err := DecodeData(EncodeData(bytes.Repeat([]byte{0xff}, MaxMessageSize))); err != nil || len(d) != MaxMessageSize {
		t.Errorf("max size: %v", err)
	}
	if EncodeData(nil) != "" || EncodeData([]byte("n,,")) != "biws" {
		t.Error("EncodeData")
	}
}

func TestFailureError(t *testing.T) {
	f := failureCause(TemporaryAuthFailure, "try later", errors.New("db down"))
	if f.Error() != "sasl: temporary-auth-failure: try later: db down" {
		t.Errorf("Error() = %q", f.Error())
	}
	if failure(NotAuthorized, "").Error() != "sasl: not-authorized" {
		t.Error("Error() without text")
	}
}
