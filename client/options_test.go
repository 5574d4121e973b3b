package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/internal/sasl"
)

// recorder is a DialContext that keeps what the client writes on the TCP
// connection: readable XML there means the stream stayed in the clear.
type recorder struct {
	mu   sync.Mutex
	sent strings.Builder
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, r: r}, nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.String()
}

type recordingConn struct {
	net.Conn
	r *recorder
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.sent.Write(p)
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

func TestNoStartTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"}, "--starttls-required=false", "--allow-registration")

	// The default upgrades whenever STARTTLS is offered, AllowPlaintext or not.
	var upgraded recorder
	c := dial(t, s, client.Config{JID: "alice@localhost", Password: "secret", AllowPlaintext: true, DialContext: upgraded.dial})
	ping(t, c)
	if sent := upgraded.String(); !strings.Contains(sent, "<starttls") || strings.Contains(sent, "urn:xmpp:ping") {
		t.Errorf("without NoStartTLS the client did not upgrade; it sent %q", sent)
	}

	var clear recorder
	c = dial(t, s, client.Config{JID: "alice@localhost", Password: "secret", AllowPlaintext: true, NoStartTLS: true, DialContext: clear.dial})
	ping(t, c)
	sent := clear.String()
	if strings.Contains(sent, "<starttls") || !strings.Contains(sent, "urn:xmpp:ping") {
		t.Errorf("with NoStartTLS the stream did not stay in the clear; the client sent %q", sent)
	}
	// Without TLS there is no channel binding and PLAIN is not chosen.
	if !strings.Contains(sent, "SCRAM-SHA-256") || strings.Contains(sent, "-PLUS") || strings.Contains(sent, "PLAIN") {
		t.Errorf("mechanism in the clear: %q", sent)
	}

	var reg recorder
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cfg := client.Config{Addr: s.C2S, JID: "newbie@localhost", Password: "fresh-pw", AllowPlaintext: true, NoStartTLS: true, DialContext: reg.dial}
	if err := client.Register(ctx, cfg); err != nil {
		t.Fatalf("Register with NoStartTLS: %v", err)
	}
	if sent := reg.String(); strings.Contains(sent, "<starttls") || !strings.Contains(sent, "jabber:iq:register") {
		t.Errorf("registration did not stay in the clear: %q", sent)
	}
}

func TestNoStartTLSRequiredByServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret"}) // STARTTLS required by default
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var rec recorder
	cfg := client.Config{Addr: s.C2S, JID: "alice@localhost", Password: "secret", AllowPlaintext: true, NoStartTLS: true, DialContext: rec.dial}
	if c, err := client.Dial(ctx, cfg); !errors.Is(err, client.ErrStartTLSRequired) {
		if c != nil {
			_ = c.Close()
		}
		t.Fatalf("Dial = %v, want ErrStartTLSRequired", err)
	}
	if err := client.Register(ctx, cfg); !errors.Is(err, client.ErrStartTLSRequired) {
		t.Fatalf("Register = %v, want ErrStartTLSRequired", err)
	}
	if sent := rec.String(); strings.Contains(sent, "<auth") || strings.Contains(sent, "secret") || strings.Contains(sent, "<starttls") {
		t.Errorf("the client sent %q", sent)
	}
}

// TestNoStartTLSUnmarkedRequirement: a server that offers STARTTLS without
// <required/> but no SASL mechanism before it requires it all the same.
func TestNoStartTLSUnmarkedRequirement(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(c net.Conn) {
		s := &scripted{t: t, c: c}
		s.expect("<stream:stream")
		s.send(fakeHeader + `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>`)
		s.expect("</stream:stream>")
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := client.Dial(ctx, client.Config{Addr: addr, JID: "alice@localhost", Password: "pw", AllowPlaintext: true, NoStartTLS: true})
	if !errors.Is(err, client.ErrStartTLSRequired) {
		t.Fatalf("Dial = %v, want ErrStartTLSRequired", err)
	}
}

func TestNoStartTLSConfigErrors(t *testing.T) {
	t.Parallel()
	noDial := func(context.Context, string, string) (net.Conn, error) {
		t.Error("connected despite an invalid Config")
		return nil, errors.New("no")
	}
	for _, tc := range []struct {
		cfg  client.Config
		want string
	}{
		{client.Config{NoStartTLS: true}, "AllowPlaintext"},
		{client.Config{NoStartTLS: true, AllowPlaintext: true, DirectTLS: true}, "DirectTLS"},
	} {
		tc.cfg.Addr, tc.cfg.JID, tc.cfg.Password, tc.cfg.DialContext = "127.0.0.1:1", "alice@localhost", "pw", noDial
		_, err := client.Dial(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func wantCache(t *testing.T, cache *client.SCRAMKeyCache, hits, misses uint64, n int) {
	t.Helper()
	h, m := cache.Stats()
	if h != hits || m != misses || cache.Len() != n {
		t.Fatalf("cache: %d hits, %d misses, %d entries; want %d, %d, %d", h, m, cache.Len(), hits, misses, n)
	}
}

func TestSCRAMKeyCache(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice": "secret", "bob": "secret"})
	cache := client.NewSCRAMKeyCache(0)
	alice := client.Config{JID: "alice@localhost", Password: "secret", SCRAMKeyCache: cache}

	c := dial(t, s, alice)
	wantCache(t, cache, 0, 1, 1)
	_ = c.Close()
	// The same account again: the server shows the same salt.
	ping(t, dial(t, s, alice))
	wantCache(t, cache, 1, 1, 1)
	// Another account with the same password: Parley salts each account
	// (and each hash) on its own.
	dial(t, s, client.Config{JID: "bob@localhost", Password: "secret", SCRAMKeyCache: cache})
	wantCache(t, cache, 1, 2, 2)
	sha1 := alice
	sha1.Mechanism = "SCRAM-SHA-1"
	dial(t, s, sha1)
	wantCache(t, cache, 1, 3, 3)
	dial(t, s, sha1)
	wantCache(t, cache, 2, 3, 3)

	// A wrong password misses, fails, and leaves nothing behind.
	wrong := alice
	wrong.Addr, wrong.Password, wrong.TLSConfig = s.C2S, "wrong", s.tlsConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := client.Dial(ctx, wrong)
	var ae *client.AuthError
	if !errors.As(err, &ae) || ae.Condition != "not-authorized" {
		t.Fatalf("wrong password: %v, want not-authorized", err)
	}
	wantCache(t, cache, 2, 4, 3)
}

// scramServer plays a server that logs alice in with SCRAM-SHA-256 in the
// clear, using salt and the keys of password; with forge it sends a wrong
// server signature, as an impostor who does not know the password would.
func scramServer(t *testing.T, salt []byte, password string, forge bool) string {
	const ns = "urn:ietf:params:xml:ns:xmpp-sasl"
	b64 := base64.StdEncoding
	text := func(seen, end string) string {
		body := strings.TrimSuffix(seen, end)
		b, err := b64.DecodeString(body[strings.LastIndexByte(body, '>')+1:])
		if err != nil {
			t.Errorf("fake server: %q: %v", seen, err)
		}
		return string(b)
	}
	return fakeServer(t, func(c net.Conn) {
		s := &scripted{t: t, c: c}
		s.expect("<stream:stream")
		s.send(fakeHeader + `<stream:features><mechanisms xmlns='` + ns + `'><mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>`)
		bare := strings.TrimPrefix(text(s.expect("</auth>"), "</auth>"), "n,,")
		_, cnonce, _ := strings.Cut(bare, ",r=")
		serverFirst := "r=" + cnonce + "server-part,s=" + b64.EncodeToString(salt) + ",i=4096"
		s.send(`<challenge xmlns='` + ns + `'>` + b64.EncodeToString([]byte(serverFirst)) + `</challenge>`)
		final := text(s.expect("</response>"), "</response>")
		withoutProof, _, _ := strings.Cut(final, ",p=")
		salted, err := pbkdf2.Key(sha256.New, password, salt, 4096, sha256.Size)
		if err != nil {
			t.Error(err)
			return
		}
		mac := func(key []byte, msg string) []byte {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(msg))
			return m.Sum(nil)
		}
		sig := mac(mac(salted, "Server Key"), bare+","+serverFirst+","+withoutProof)
		if forge {
			sig[0] ^= 1
		}
		s.send(`<success xmlns='` + ns + `'>` + b64.EncodeToString([]byte("v="+b64.EncodeToString(sig))) + `</success>`)
		if forge {
			s.expect("</stream:stream>")
			return
		}
		s.expect("<stream:stream")
		s.send(fakeHeader + `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`)
		id := attrOf(s.expect("</iq>"), "iq", "id")
		s.send(`<iq type='result' id='` + id + `'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r</jid></bind></iq>`)
	})
}

// TestSCRAMKeyCacheStillVerifiesServer: keys from the cache do not spare
// the server from proving that it knows the password.
func TestSCRAMKeyCacheStillVerifiesServer(t *testing.T) {
	t.Parallel()
	salt := []byte("one-salt-for-all")
	cache := client.NewSCRAMKeyCache(0)
	login := func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c, err := client.Dial(ctx, client.Config{Addr: addr, JID: "alice@localhost", Password: "pencil", AllowPlaintext: true, SCRAMKeyCache: cache})
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := login(scramServer(t, salt, "pencil", false)); err != nil {
		t.Fatalf("honest server: %v", err)
	}
	wantCache(t, cache, 0, 1, 1)
	// The impostor shows the same salt: the keys come from the cache, and
	// its signature is still checked.
	if err := login(scramServer(t, salt, "pencil", true)); !errors.Is(err, sasl.ErrServerSignature) {
		t.Fatalf("impostor with a cached salt: %v, want ErrServerSignature", err)
	}
	wantCache(t, cache, 1, 1, 1)
	// An impostor with a new salt adds nothing.
	if err := login(scramServer(t, []byte("another-salt"), "pencil", true)); !errors.Is(err, sasl.ErrServerSignature) {
		t.Fatalf("impostor with a new salt: %v, want ErrServerSignature", err)
	}
	wantCache(t, cache, 1, 2, 1)
}
