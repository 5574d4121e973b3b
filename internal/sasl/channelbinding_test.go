package sasl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

func selfSigned(t *testing.T, key crypto.Signer, alg x509.SignatureAlgorithm) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: "example.com"},
		DNSNames:           []string{"example.com"},
		NotBefore:          time.Now().Add(-time.Hour),
		NotAfter:           time.Now().Add(time.Hour),
		SignatureAlgorithm: alg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// handshake connects a TLS client and server over a pipe and returns both
// connection states.
func handshake(t *testing.T, version uint16, cert *x509.Certificate, key crypto.Signer) (client, server tls.ConnectionState) {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv := tls.Server(c1, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		MinVersion:   version, MaxVersion: version,
	})
	cli := tls.Client(c2, &tls.Config{RootCAs: pool, ServerName: "example.com", MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

func TestChannelBindingOverTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, key, x509.ECDSAWithSHA384)
	a := newAccounts(map[string]string{"alice": "pw"})

	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		ccs, scs := handshake(t, version, cert, key)
		bindings := ServerChannelBindings(scs, cert)
		cb, err := ClientChannelBinding(ccs, "")
		if err != nil {
			t.Fatal(err)
		}
		wantType := CBTLSExporter
		if version == tls.VersionTLS12 {
			wantType = CBTLSServerEndPoint
			if _, ok := bindings[CBTLSExporter]; ok {
				t.Error("tls-exporter offered on TLS 1.2")
			}
		}
		if cb.Type != wantType || !bytes.Equal(bindings[cb.Type], cb.Data) {
			t.Fatalf("TLS %x: client %s %x, server %x", version, cb.Type, cb.Data, bindings[cb.Type])
		}
		ep, err := ClientChannelBinding(ccs, CBTLSServerEndPoint)
		if err != nil {
			t.Fatal(err)
		}
		want := sha512.Sum384(cert.Raw)
		if !bytes.Equal(ep.Data, want[:]) || !bytes.Equal(bindings[CBTLSServerEndPoint], want[:]) {
			t.Error("tls-server-end-point is not SHA-384 of the certificate")
		}

		cfg := testConfig(a)
		cfg.ChannelBindings = bindings
		for _, c := range []ChannelBinding{cb, ep} {
			mech := ChooseMechanism(cfg.Mechanisms(), c, false)
			if mech != MechSCRAMSHA256Plus {
				t.Fatalf("chose %s", mech)
			}
			if _, err := exchange(t, mech, cfg, "alice", "pw", c); err != nil {
				t.Errorf("TLS %x %s: %v", version, c.Type, err)
			}
		}

		// Another connection's binding must not pass.
		other, _ := handshake(t, version, cert, key)
		ocb, _ := ClientChannelBinding(other, "")
		if version == tls.VersionTLS13 {
			if bytes.Equal(ocb.Data, cb.Data) {
				t.Fatal("tls-exporter equal across connections")
			}
			if _, err := exchange(t, MechSCRAMSHA256Plus, cfg, "alice", "pw", ocb); condition(err) != NotAuthorized {
				t.Errorf("other connection's binding: %v", err)
			}
		}
	}

	if _, err := TLSExporter(tls.ConnectionState{}); err == nil {
		t.Error("exporter without handshake")
	}
	if _, err := ClientChannelBinding(tls.ConnectionState{}, "tls-unique"); err == nil {
		t.Error("tls-unique accepted")
	}
	if _, err := ClientChannelBinding(tls.ConnectionState{HandshakeComplete: true}, CBTLSServerEndPoint); err == nil {
		t.Error("end-point without certificate")
	}
	if len(ServerChannelBindings(tls.ConnectionState{}, cert)) != 0 {
		t.Error("bindings before handshake")
	}
}

func TestTLSServerEndPointAlgorithms(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := selfSigned(t, ec, x509.ECDSAWithSHA256)
	if d, err := TLSServerEndPoint(c); err != nil || len(d) != 32 {
		t.Errorf("ECDSA-SHA256: %d %v", len(d), err)
	}
	c = selfSigned(t, ec, x509.ECDSAWithSHA512)
	if d, err := TLSServerEndPoint(c); err != nil || len(d) != 64 {
		t.Errorf("ECDSA-SHA512: %d %v", len(d), err)
	}
	// RFC 5929 §4.1: SHA-1 is replaced by SHA-256.
	c.SignatureAlgorithm = x509.ECDSAWithSHA1
	if d, err := TLSServerEndPoint(c); err != nil || len(d) != 32 {
		t.Errorf("SHA-1 certificate: %d %v", len(d), err)
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := TLSServerEndPoint(selfSigned(t, ed, x509.PureEd25519)); err == nil {
		t.Error("Ed25519 has no defined tls-server-end-point")
	}
	if _, err := TLSServerEndPoint(nil); err == nil {
		t.Error("nil certificate")
	}
}
