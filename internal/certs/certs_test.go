package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureSelfSigned(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // not yet there: must be created
	certPath, keyPath, created, err := EnsureSelfSigned(data, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false on first call")
	}
	if want := filepath.Join(data, "tls", "example.org.crt"); certPath != want {
		t.Errorf("certPath = %s, want %s", certPath, want)
	}
	if want := filepath.Join(data, "tls", "example.org.key"); keyPath != want {
		t.Errorf("keyPath = %s, want %s", keyPath, want)
	}

	for path, want := range map[string]fs.FileMode{
		keyPath:                    0o600,
		certPath:                   0o644,
		data:                       0o700,
		filepath.Join(data, "tls"): 0o700,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("mode of %s = %o, want %o", path, got, want)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(data, "tls", ".*tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	cert, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, name := range []string{"example.org", "upload.example.org", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate not valid for %s: %v", name, err)
		}
	}
	if err := leaf.VerifyHostname("example.com"); err == nil {
		t.Error("certificate valid for an unrelated name")
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < Validity || life > Validity+2*time.Hour {
		t.Errorf("validity %v, want about %v", life, Validity)
	}
	if !leaf.NotBefore.Before(time.Now()) {
		t.Error("certificate not valid yet")
	}
	if leaf.NotAfter.Before(time.Now().Add(9 * 365 * 24 * time.Hour)) {
		t.Errorf("certificate expires %v, want about 10 years", leaf.NotAfter)
	}
}

func TestEnsureSelfSignedReuse(t *testing.T) {
	data := t.TempDir()
	certPath, keyPath, _, err := EnsureSelfSigned(data, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	certBefore, _ := os.ReadFile(certPath)
	keyBefore, _ := os.ReadFile(keyPath)

	c2, k2, created, err := EnsureSelfSigned(data, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if created || c2 != certPath || k2 != keyPath {
		t.Errorf("second call: %s %s created=%v; want the same files, not created", c2, k2, created)
	}
	certAfter, _ := os.ReadFile(certPath)
	keyAfter, _ := os.ReadFile(keyPath)
	if !bytes.Equal(certBefore, certAfter) || !bytes.Equal(keyBefore, keyAfter) {
		t.Error("files changed on reuse")
	}

	// Another domain gets its own pair beside the first.
	if c3, _, created, err := EnsureSelfSigned(data, "other.example"); err != nil || !created || c3 == certPath {
		t.Errorf("other domain: %s created=%v err=%v", c3, created, err)
	}

	// A half-written pair (key without certificate) is regenerated whole.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	_, _, created, err = EnsureSelfSigned(data, "example.org")
	if err != nil || !created {
		t.Fatalf("after losing the certificate: created=%v err=%v", created, err)
	}
	keyNew, _ := os.ReadFile(keyPath)
	if bytes.Equal(keyNew, keyBefore) {
		t.Error("key kept while the certificate was regenerated")
	}
	if _, err := Load(certPath, keyPath); err != nil {
		t.Errorf("regenerated pair does not load: %v", err)
	}
}

func TestEnsureSelfSignedSpecialDomains(t *testing.T) {
	data := t.TempDir()
	for _, domain := range []string{"localhost", "192.0.2.7"} {
		c, k, _, err := EnsureSelfSigned(data, domain)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := Load(c, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{domain, "localhost", "127.0.0.1"} {
			if err := cert.Leaf.VerifyHostname(name); err != nil {
				t.Errorf("%s: not valid for %s: %v", domain, name, err)
			}
		}
	}
	for _, bad := range []string{"", ".", "..", "../evil", `a\b`} {
		if _, _, _, err := EnsureSelfSigned(data, bad); err == nil {
			t.Errorf("domain %q accepted", bad)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "no.crt"), filepath.Join(dir, "no.key")); err == nil || !strings.Contains(err.Error(), "no.crt") {
		t.Errorf("missing files: %v", err)
	}
	// A certificate with another pair's key is refused.
	c1, _, _, _ := EnsureSelfSigned(dir, "a.example")
	_, k2, _, _ := EnsureSelfSigned(dir, "b.example")
	if _, err := Load(c1, k2); err == nil {
		t.Error("mismatched key accepted")
	}
}

func TestEnsureAdminToken(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	token, created, err := EnsureAdminToken(data)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false on first call")
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 || len(token) != 43 {
		t.Errorf("token %q: %d bytes, err %v; want 32 bytes base64url", token, len(raw), err)
	}
	path := filepath.Join(data, AdminTokenFile)
	if got := mode(t, path); got != 0o600 {
		t.Errorf("mode %o, want 600", got)
	}
	if got := mode(t, data); got != 0o700 {
		t.Errorf("data dir mode %o, want 700", got)
	}
	if b, _ := os.ReadFile(path); string(b) != token {
		t.Errorf("file holds %q, want exactly the token", b)
	}

	again, created, err := EnsureAdminToken(data)
	if err != nil || created || again != token {
		t.Errorf("second call: %q created=%v err=%v; want the same token", again, created, err)
	}

	// An operator's own token (with an editor's newline) is kept.
	if err := os.WriteFile(path, []byte("my-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, created, err := EnsureAdminToken(data); err != nil || created || got != "my-token" {
		t.Errorf("hand-written token: %q created=%v err=%v", got, created, err)
	}

	// An empty file is as good as none.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, created, err := EnsureAdminToken(data); err != nil || !created || len(got) != 43 || got == token {
		t.Errorf("empty file: %q created=%v err=%v", got, created, err)
	}

	other, _, err := EnsureAdminToken(t.TempDir())
	if err != nil || other == token {
		t.Errorf("tokens of two data dirs: %q %q %v", token, other, err)
	}
}

// handshake runs a TLS handshake over a loopback TCP connection and returns
// the client's view of it and the two sides' errors. TCP rather than
// net.Pipe: a pipe has no buffer, so a client that aborts mid-flight (bad
// certificate) would block writing its alert while the server still writes.
func handshake(t *testing.T, server *tls.Config, client *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		serverErr <- tls.Server(c, server).Handshake()
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_ = cc.SetDeadline(time.Now().Add(10 * time.Second))
	cli := tls.Client(cc, client)
	cerr := cli.Handshake()
	if cerr != nil {
		cc.Close() // the server may still wait for the client's Finished
	}
	serr := <-serverErr
	return cli.ConnectionState(), cerr, serr
}

func TestHandshake(t *testing.T) {
	data := t.TempDir()
	certPath, keyPath, _, err := EnsureSelfSigned(data, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf) // clients trust a self-signed certificate by pinning it

	serverCfg := ServerTLSConfig(cert)
	if serverCfg.MinVersion != tls.VersionTLS12 || len(serverCfg.NextProtos) != 0 {
		t.Errorf("MinVersion %x NextProtos %v", serverCfg.MinVersion, serverCfg.NextProtos)
	}

	t.Run("TLS 1.3 with ALPN set by the caller", func(t *testing.T) {
		s := serverCfg.Clone()
		s.NextProtos = []string{"xmpp-client", "parley-bin/1"}
		st, cerr, serr := handshake(t, s, &tls.Config{RootCAs: pool, ServerName: "example.org", NextProtos: []string{"parley-bin/1"}})
		if cerr != nil || serr != nil {
			t.Fatalf("client %v, server %v", cerr, serr)
		}
		if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "parley-bin/1" {
			t.Errorf("version %x, ALPN %q", st.Version, st.NegotiatedProtocol)
		}
	})

	t.Run("TLS 1.2 for localhost gets an ECDHE AEAD suite", func(t *testing.T) {
		st, cerr, serr := handshake(t, serverCfg, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
		if cerr != nil || serr != nil {
			t.Fatalf("client %v, server %v", cerr, serr)
		}
		if st.Version != tls.VersionTLS12 {
			t.Errorf("version %x", st.Version)
		}
		name := tls.CipherSuiteName(st.CipherSuite)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("cipher suite %s", name)
		}
	})

	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		_, cerr, serr := handshake(t, serverCfg, &tls.Config{RootCAs: pool, ServerName: "example.org", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if cerr == nil || serr == nil {
			t.Errorf("TLS 1.1 accepted: client %v, server %v", cerr, serr)
		}
	})

	t.Run("CBC-only TLS 1.2 client is refused", func(t *testing.T) {
		_, cerr, serr := handshake(t, serverCfg, &tls.Config{
			RootCAs: pool, ServerName: "example.org", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		})
		if cerr == nil || serr == nil {
			t.Errorf("CBC suite accepted: client %v, server %v", cerr, serr)
		}
	})

	t.Run("wrong name fails verification", func(t *testing.T) {
		_, cerr, _ := handshake(t, serverCfg, &tls.Config{RootCAs: pool, ServerName: "example.com"})
		if cerr == nil {
			t.Error("client accepted a certificate for another name")
		}
	})
}

func TestServerTLSConfigSuites(t *testing.T) {
	data := t.TempDir()
	c, k, _, _ := EnsureSelfSigned(data, "example.org")
	cert, err := Load(c, k)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerTLSConfig(cert)
	insecure := map[uint16]bool{}
	for _, s := range tls.InsecureCipherSuites() {
		insecure[s.ID] = true
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if insecure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || strings.Contains(name, "CBC") {
			t.Errorf("suite %s is not ECDHE+AEAD", name)
		}
	}
	if len(cfg.Certificates) != 1 {
		t.Errorf("%d certificates", len(cfg.Certificates))
	}
}
