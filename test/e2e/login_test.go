package e2e

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Test 1: STARTTLS + SCRAM login with slixmpp, the other contracted
// mechanisms, direct TLS, a wrong password, and (raw socket) that TLS is
// really required before authentication.
func TestLoginStartTLSAndSCRAM(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "secret"})
	srv := startServer(t, dir)

	t.Run("slixmpp_starttls_scram", func(t *testing.T) {
		t.Parallel()
		p := runPy(t, "login", "login.py", "--port", srv.C2SPort(), "--jid", "alice@localhost/e2e", "--password", "secret")
		p.expectExit(pyExitOK, pyScriptTimeout)

		// First features: before TLS. Must offer STARTTLS and no PLAIN.
		pre := p.expectEv("features", nil)
		if pre.boolean("tls") {
			t.Fatalf("first <stream:features/> already on a TLS connection: %s", pre)
		}
		if !slices.Contains(pre.strs("features"), "{"+nsTLS+"}starttls") {
			t.Fatalf("pre-TLS features do not offer STARTTLS: %s", pre)
		}
		if slices.Contains(pre.strs("mechanisms"), "PLAIN") {
			t.Fatalf("PLAIN offered before TLS: %s", pre)
		}
		// Next features: after TLS, offering the contracted mechanisms.
		post := p.expectEv("features", nil)
		if !post.boolean("tls") {
			t.Fatalf("second <stream:features/> not on TLS: %s", post)
		}
		for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
			if !slices.Contains(post.strs("mechanisms"), m) {
				t.Errorf("post-TLS mechanisms %v lack %s", post.strs("mechanisms"), m)
			}
		}

		sess := p.expectEv("session_start", nil)
		assertSCRAM(t, sess.str("mech"))
		if !sess.boolean("starttls") {
			t.Errorf("STARTTLS was not negotiated: %s", sess)
		}
		if sess.obj("tls").str("version") == "" {
			t.Errorf("session is not on TLS: %s", sess)
		}
		if sess.str("jid") != "alice@localhost/e2e" {
			t.Errorf("bound JID %q, want alice@localhost/e2e", sess.str("jid"))
		}
		t.Logf("negotiated %s with %s over %s (%s)", sess.str("mech"), sess.str("jid"),
			sess.obj("tls").str("version"), sess.obj("tls").str("cipher"))
	})

	for _, mech := range []string{"SCRAM-SHA-1", "PLAIN"} {
		t.Run("slixmpp_"+mech, func(t *testing.T) {
			t.Parallel()
			p := runPy(t, "login", "login.py", "--port", srv.C2SPort(), "--jid", "alice@localhost", "--password", "secret", "--mech", mech)
			p.expectExit(pyExitOK, pyScriptTimeout)
			sess := p.expectEv("session_start", nil)
			if sess.str("mech") != mech {
				t.Errorf("mechanism %q, want %s", sess.str("mech"), mech)
			}
			if !sess.boolean("starttls") {
				t.Errorf("STARTTLS was not negotiated: %s", sess)
			}
		})
	}

	t.Run("slixmpp_direct_tls", func(t *testing.T) {
		t.Parallel()
		p := runPy(t, "login", "login.py", "--direct-tls", "--port", srv.C2STLSPort(), "--jid", "alice@localhost", "--password", "secret")
		p.expectExit(pyExitOK, pyScriptTimeout)
		first := p.expectEv("features", nil)
		if !first.boolean("tls") {
			t.Fatalf("features on the direct-TLS port arrived without TLS: %s", first)
		}
		sess := p.expectEv("session_start", nil)
		assertSCRAM(t, sess.str("mech"))
		if sess.obj("tls").str("version") == "" {
			t.Errorf("session is not on TLS: %s", sess)
		}
	})

	t.Run("slixmpp_wrong_password", func(t *testing.T) {
		t.Parallel()
		p := runPy(t, "login", "login.py", "--port", srv.C2SPort(), "--jid", "alice@localhost", "--password", "not-the-password")
		p.expectExit(pyExitAuth, pyScriptTimeout)
		ev := p.expectEv("failed_auth", nil)
		if ev.str("condition") != "not-authorized" {
			t.Errorf("SASL failure condition %q, want not-authorized", ev.str("condition"))
		}
		if got := p.all(evMatch("session_start", nil)); len(got) != 0 {
			t.Errorf("session started with a wrong password: %v", got)
		}
	})

	t.Run("raw_tls_required", func(t *testing.T) {
		t.Parallel()
		// Features before TLS.
		c := dialRaw(t, srv.C2S)
		f := c.openStream()
		if f.child(nsTLS, "starttls") == nil {
			t.Fatalf("pre-TLS features lack <starttls/>: %s", f)
		}
		if slices.Contains(mechanisms(f), "PLAIN") {
			t.Fatalf("pre-TLS features offer PLAIN: %s", f)
		}
		t.Logf("pre-TLS features: %s (required=%v)", f, f.child(nsTLS, "starttls").child(nsTLS, "required") != nil)

		// STARTTLS, then the certificate and the post-TLS features.
		f2 := c.startTLS()
		for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
			if !slices.Contains(mechanisms(f2), m) {
				t.Errorf("post-TLS mechanisms %v lack %s", mechanisms(f2), m)
			}
		}
		if f2.child(nsTLS, "starttls") != nil {
			t.Errorf("STARTTLS offered again after TLS: %s", f2)
		}
		checkServerCertificate(t, dir, c.TLS.PeerCertificates)
	})

	// A client may send its first stream header in the same TCP segment as
	// its TLS Finished message; asyncio clients (slixmpp) do. The server
	// must answer it without waiting for more bytes on the socket.
	t.Run("raw_direct_tls_header_coalesced_with_handshake", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2STLS)
		f := c.tlsCoalesced()
		if !slices.Contains(mechanisms(f), "SCRAM-SHA-256") {
			t.Errorf("direct TLS features lack SCRAM-SHA-256: %s", f)
		}
	})
	t.Run("raw_starttls_header_coalesced_with_handshake", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2S)
		c.openStream()
		c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
		if n := c.mustNext("<proceed/>"); !n.is(nsTLS, "proceed") {
			t.Fatalf("STARTTLS: expected <proceed/>, got %s", n)
		}
		f := c.tlsCoalesced()
		if !slices.Contains(mechanisms(f), "SCRAM-SHA-256") {
			t.Errorf("post-STARTTLS features lack SCRAM-SHA-256: %s", f)
		}
	})

	t.Run("raw_plain_before_tls_refused", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2S)
		c.openStream()
		cred := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
		c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + cred + `</auth>`)
		assertNoSASLProgress(t, c, "PLAIN with the right password before STARTTLS")
	})

	t.Run("raw_scram_before_tls_refused", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, srv.C2S)
		c.openStream()
		first := base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"))
		c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + first + `</auth>`)
		assertNoSASLProgress(t, c, "SCRAM-SHA-256 before STARTTLS")
	})
}

func assertSCRAM(t *testing.T, mech string) {
	t.Helper()
	// The -PLUS (channel binding) variants are the same mechanisms.
	base := strings.TrimSuffix(mech, "-PLUS")
	if base != "SCRAM-SHA-256" && base != "SCRAM-SHA-1" {
		t.Errorf("SASL mechanism used: %q, want SCRAM-SHA-256 or SCRAM-SHA-1", mech)
	}
}

// assertNoSASLProgress: STARTTLS is required, so an <auth/> on the plaintext
// stream must be answered by a SASL <failure/> or a stream error, never by
// <success/> or <challenge/>.
func assertNoSASLProgress(t *testing.T, c *rawConn, what string) {
	t.Helper()
	n, err := c.next(stepTimeout)
	if err != nil {
		t.Logf("%s: server closed the stream (%v)", what, err)
		return
	}
	switch {
	case n.is(nsSASL, "failure"):
		t.Logf("%s: refused with %s", what, n)
	case n.is(nsStreams, "error"):
		t.Logf("%s: refused with stream error %s", what, n)
	default:
		t.Fatalf("%s: server answered %s; STARTTLS must be required before SASL", what, n)
	}
}

// checkServerCertificate: the leaf certificate presented on STARTTLS is for
// the domain and is the self-signed one generated under DATA/tls/.
func checkServerCertificate(t *testing.T, dataDir string, chain []*x509.Certificate) {
	t.Helper()
	if len(chain) == 0 {
		t.Fatal("server presented no certificate")
	}
	leaf := chain[0]
	pool := x509.NewCertPool()
	var files []string
	_ = filepath.WalkDir(filepath.Join(dataDir, "tls"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for {
			var blk *pem.Block
			blk, data = pem.Decode(data)
			if blk == nil {
				break
			}
			if blk.Type == "CERTIFICATE" {
				if cert, err := x509.ParseCertificate(blk.Bytes); err == nil {
					pool.AddCert(cert)
					files = append(files, path)
				}
			}
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatalf("no PEM certificate found under %s", filepath.Join(dataDir, "tls"))
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: pool, CurrentTime: time.Now()}); err != nil {
		t.Errorf("certificate presented (subject %q, DNS names %v) does not verify for %q against the certificate(s) in %v: %v",
			leaf.Subject, leaf.DNSNames, domain, files, err)
	}
}
