package tlsrec

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/certs"
)

var (
	certOnce sync.Once
	testCert tls.Certificate
	certPEM  []byte
)

func serverConfig(t testing.TB) *tls.Config {
	t.Helper()
	certOnce.Do(func() {
		var err error
		if testCert, certPEM, err = certs.SelfSigned("localhost"); err != nil {
			panic(err)
		}
	})
	return &tls.Config{Certificates: []tls.Certificate{testCert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-client"}}
}

// pair is a server handshake through Handshake and the client's socket.
type pair struct {
	res    *Result
	server net.Conn // the server's TCP socket
	client net.Conn
}

// handshakePair runs Handshake on the server side of a loopback
// connection while dial runs the client side.
func handshakePair(t *testing.T, dial func(addr string) (net.Conn, error)) *pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type out struct {
		res *Result
		tcp net.Conn
		err error
	}
	ch := make(chan out, 1)
	cfg := serverConfig(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- out{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := Handshake(ctx, c, cfg)
		ch <- out{r, c, err}
	}()
	cc, err := dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	if want := os.Getenv(envWantSuite); want != "" && o.res.State.Version == tls.VersionTLS13 {
		if got := tls.CipherSuiteName(o.res.State.CipherSuite); got != want {
			t.Fatalf("negotiated %s, want %s", got, want)
		}
	}
	t.Cleanup(func() { cc.Close(); o.tcp.Close() })
	return &pair{res: o.res, server: o.tcp, client: cc}
}

func dialGo(cfg *tls.Config) func(string) (net.Conn, error) {
	return func(addr string) (net.Conn, error) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		return c, c.Handshake()
	}
}

func clientConfig() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}}
}

// readUntil drives ReadReady (blocking reads: a test has no event loop)
// until want bytes of plaintext arrived. read may be wrapped to split the
// stream into small pieces.
func readUntil(t *testing.T, c *Conn, read func([]byte) (int, error), want int) ([]byte, error) {
	t.Helper()
	var got []byte
	for len(got) < want {
		err := c.ReadReady(read, func(p []byte) error { got = append(got, p...); return nil })
		if err != nil && !errors.Is(err, ErrWouldBlock) {
			return got, err
		}
	}
	return got, nil
}

func TestHandoffEcho(t *testing.T) {
	p := handshakePair(t, dialGo(clientConfig()))
	if p.res.Rec == nil {
		t.Fatalf("not handed off: suite %x version %x", p.res.State.CipherSuite, p.res.State.Version)
	}
	if p.res.State.NegotiatedProtocol != "xmpp-client" {
		t.Errorf("ALPN %q", p.res.State.NegotiatedProtocol)
	}
	if _, err := p.res.State.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
		t.Errorf("exporter after handoff: %v", err)
	}
	if _, err := p.client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := readUntil(t, p.res.Rec, p.server.Read, 5)
	if err != nil || string(got) != "hello" {
		t.Fatalf("server read %q, %v", got, err)
	}
	if _, err := p.res.Rec.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(p.client, b); err != nil || string(b) != "world" {
		t.Fatalf("client read %q, %v", b, err)
	}
}

// The client's first application data often travels in the same segment
// as its Finished: it must not be swallowed by crypto/tls.
func TestFirstBytesWithFinished(t *testing.T) {
	p := handshakePair(t, func(addr string) (net.Conn, error) {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		cw := &coalescer{Conn: raw}
		c := tls.Client(cw, clientConfig())
		if err := c.Handshake(); err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte("<stream>")); err != nil {
			return nil, err
		}
		cw.flush()
		return c, nil
	})
	got, err := readUntil(t, p.res.Rec, p.server.Read, 8)
	if err != nil || string(got) != "<stream>" {
		t.Fatalf("server read %q, %v", got, err)
	}
}

// coalescer holds the client's writes after its handshake's first flight
// so that Finished and the first data leave in one segment.
type coalescer struct {
	net.Conn
	mu     sync.Mutex
	writes int
	held   []byte
}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes == 1 {
		return c.Conn.Write(p) // ClientHello
	}
	c.held = append(c.held, p...)
	return len(p), nil
}

func (c *coalescer) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.Conn.Write(c.held)
	c.held = nil
}

func TestTLS12StaysWithCryptoTLS(t *testing.T) {
	cfg := clientConfig()
	cfg.MaxVersion = tls.VersionTLS12
	p := handshakePair(t, dialGo(cfg))
	if p.res.Rec != nil || p.res.TLS == nil {
		t.Fatal("TLS 1.2 must stay with crypto/tls")
	}
	if _, err := p.client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(p.res.TLS, b); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}
}

// splitReader hands out at most n bytes per read, so records arrive in
// pieces.
func splitReader(r io.Reader, n int) func([]byte) (int, error) {
	return func(b []byte) (int, error) { return r.Read(b[:min(len(b), n)]) }
}

func TestBigWritesAndPartialRecords(t *testing.T) {
	p := handshakePair(t, dialGo(clientConfig()))
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160 KB: many records
	go func() { _, _ = p.client.Write(big) }()
	for _, n := range []int{7, 1000} {
		got, err := readUntil(t, p.res.Rec, splitReader(p.server, n), len(big)/2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 7 {
			rest, err := readUntil(t, p.res.Rec, splitReader(p.server, 1000), len(big)-len(got))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rest...)
			if !bytes.Equal(got, big) {
				t.Fatalf("client→server: got %d bytes, mismatch", len(got))
			}
			break
		}
	}
	go func() { _, _ = p.res.Rec.Write(big) }()
	b := make([]byte, len(big))
	if _, err := io.ReadFull(p.client, b); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("server→client: %v", err)
	}
}

// goClient makes the client side of the record layer from a crypto/tls
// client handshake, so a test can send what crypto/tls never would.
func goClient(addr string, keys *secretLog) (net.Conn, *tls.Conn, error) {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	cfg := clientConfig()
	cfg.KeyLogWriter = keys
	c := tls.Client(&recordReader{Conn: raw}, cfg)
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return raw, c, nil
}

// TestKeyUpdateBothWays runs KeyUpdates from a client, requested and
// not, whole and split, against a server whose keys are derived per batch
// (cold) or cached (cached).
func TestKeyUpdateBothWays(t *testing.T) {
	for _, mode := range keyModes {
		t.Run(mode, func(t *testing.T) { keyUpdateBothWays(t, mode == "cached") })
	}
}

func keyUpdateBothWays(t *testing.T, cache bool) {
	isolateKeyCache(t)
	var keys secretLog
	var client *Conn
	var clientTCP net.Conn
	p := handshakePair(t, func(addr string) (net.Conn, error) {
		raw, tc, err := goClient(addr, &keys)
		if err != nil {
			return nil, err
		}
		s := suiteByID(tc.ConnectionState().CipherSuite)
		client = newConn(raw, s, keys.server, keys.client)
		clientTCP = raw
		return raw, nil
	})
	srv := p.res.Rec
	exchange := func(msg string) {
		t.Helper()
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := readUntil(t, srv, p.server.Read, len(msg))
		if err != nil || string(got) != msg {
			t.Fatalf("server read %q, %v", got, err)
		}
		if _, err := srv.Write([]byte("reply")); err != nil {
			t.Fatal(err)
		}
		got, err = readUntil(t, client, clientTCP.Read, 5)
		if err != nil || string(got) != "reply" {
			t.Fatalf("client read %q, %v", got, err)
		}
	}
	want := 0
	if cache {
		warm(func() { exchange("warm") })
		want = 2
	}
	// Client asks for an update: the server must follow and answer under
	// its new key.
	for i := range 3 {
		client.wmu.Lock()
		err := client.sendKeyUpdateLocked(i != 1)
		client.wmu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		exchange("after update")
		if n := checkCachedKeys(t, srv, "server"); n != want {
			t.Fatalf("server: %d directions cached, want %d", n, want)
		}
		checkCachedKeys(t, client, "client")
	}
	// KeyUpdate split over two records, then data.
	client.wmu.Lock()
	if err := client.writeRecordsLocked(typeHandshake, []byte{msgKeyUpdate, 0}); err != nil {
		t.Fatal(err)
	}
	if err := client.writeRecordsLocked(typeHandshake, []byte{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	client.out.update(client.suite())
	client.wmu.Unlock()
	if _, err := client.Write([]byte("split")); err != nil {
		t.Fatal(err)
	}
	if got, err := readUntil(t, srv, p.server.Read, 5); err != nil || string(got) != "split" {
		t.Fatalf("server read %q, %v", got, err)
	}
	checkCachedKeys(t, srv, "server")
}

// A KeyUpdate from us must be understood by crypto/tls.
func TestServerKeyUpdateToCryptoTLS(t *testing.T) {
	p := handshakePair(t, dialGo(clientConfig()))
	srv := p.res.Rec
	if _, err := srv.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(p.client, b); err != nil {
		t.Fatal(err)
	}
	srv.wmu.Lock()
	err := srv.sendKeyUpdateLocked(false)
	srv.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("x"), 3*MaxPlaintext)
	go func() { _, _ = srv.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(p.client, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("client after KeyUpdate: %v", err)
	}
}

// The write side updates its key by itself before the AES-GCM limit; the
// peer here is our own client side, whose read sequence can be moved to
// match (crypto/tls's cannot).
func TestAutomaticKeyUpdate(t *testing.T) {
	var keys secretLog
	var client *Conn
	var clientTCP net.Conn
	p := handshakePair(t, func(addr string) (net.Conn, error) {
		raw, tc, err := goClient(addr, &keys)
		if err != nil {
			return nil, err
		}
		client = newConn(raw, suiteByID(tc.ConnectionState().CipherSuite), keys.server, keys.client)
		clientTCP = raw
		return raw, nil
	})
	srv := p.res.Rec
	srv.out.seq = keyUpdateAfter - 2
	client.in.seq = keyUpdateAfter - 2
	msg := bytes.Repeat([]byte("y"), 4*MaxPlaintext)
	go func() { _, _ = srv.Write(msg) }()
	got, err := readUntil(t, client, clientTCP.Read, len(msg))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("client read %d bytes, %v", len(got), err)
	}
	if srv.out.seq >= keyUpdateAfter {
		t.Fatalf("write sequence %d: no key update", srv.out.seq)
	}
}

func TestGarbageGetsAlert(t *testing.T) {
	cases := []struct {
		name   string
		record []byte
		desc   uint8
	}{
		{"bad MAC", append([]byte{23, 3, 3, 0, 40}, make([]byte, 40)...), alertBadRecordMAC},
		{"oversized", append([]byte{23, 3, 3, 0x48, 0x01}, make([]byte, 100)...), alertRecordOverflow},
		{"plaintext handshake", []byte{22, 3, 3, 0, 1, 0}, alertUnexpectedMessage},
		{"change cipher spec", []byte{20, 3, 3, 0, 1, 1}, alertUnexpectedMessage},
		{"bad version", append([]byte{23, 3, 1, 0, 40}, make([]byte, 40)...), alertDecodeError},
		{"too short", []byte{23, 3, 3, 0, 3, 1, 2, 3}, alertDecodeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var raw net.Conn
			p := handshakePair(t, func(addr string) (net.Conn, error) {
				var keys secretLog
				r, _, err := goClient(addr, &keys)
				raw = r
				return r, err
			})
			if _, err := raw.Write(tc.record); err != nil {
				t.Fatal(err)
			}
			_, err := readUntil(t, p.res.Rec, p.server.Read, 1)
			var ae *AlertError
			if !errors.As(err, &ae) || !ae.Sent || ae.Desc != tc.desc {
				t.Fatalf("err %v, want alert %d", err, tc.desc)
			}
			// Later writes fail: the connection is over.
			if _, err := p.res.Rec.Write([]byte("x")); err == nil {
				t.Error("write after a fatal alert succeeded")
			}
		})
	}
}

func TestAlertReachesCryptoTLSClient(t *testing.T) {
	p := handshakePair(t, dialGo(clientConfig()))
	tc := p.client.(*tls.Conn)
	done := make(chan error, 1)
	go func() {
		_, err := readUntil(t, p.res.Rec, p.server.Read, 1)
		done <- err
	}()
	// crypto/tls cannot send a corrupt record: write one under it.
	if _, err := tc.NetConn().Write(append([]byte{23, 3, 3, 0, 40}, make([]byte, 40)...)); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := tc.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Fatalf("client read err %v, want the bad_record_mac alert", err)
	}
	<-done
}

func TestCloseNotify(t *testing.T) {
	p := handshakePair(t, dialGo(clientConfig()))
	if err := p.client.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := readUntil(t, p.res.Rec, p.server.Read, 1); !errors.Is(err, io.EOF) {
		t.Fatalf("after client close_notify: %v, want EOF", err)
	}
	p = handshakePair(t, dialGo(clientConfig()))
	p.res.Rec.CloseNotify(time.Second)
	if _, err := p.client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("client after server close_notify: %v, want EOF", err)
	}
	if _, err := p.res.Rec.Write([]byte("x")); err == nil {
		t.Error("write after close_notify succeeded")
	}
}

// OpenSSL clients, which choose any suite: all three TLS 1.3 suites are
// carried by this layer, across a KeyUpdate that OpenSSL starts and asks
// us to answer.
func TestOpenSSLSuites(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	serverConfig(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		suite string
		id    uint16
	}{
		{"TLS_AES_256_GCM_SHA384", tls.TLS_AES_256_GCM_SHA384},
		{"TLS_AES_128_GCM_SHA256", tls.TLS_AES_128_GCM_SHA256},
		{"TLS_CHACHA20_POLY1305_SHA256", tls.TLS_CHACHA20_POLY1305_SHA256},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			var cmd *exec.Cmd
			var stdout bytes.Buffer
			var stdin io.WriteCloser
			p := handshakePair(t, func(addr string) (net.Conn, error) {
				cmd = exec.Command("openssl", "s_client", "-quiet", "-no_ign_eof", "-tls1_3", "-ciphersuites", tc.suite,
					"-connect", addr, "-CAfile", ca, "-servername", "localhost", "-alpn", "xmpp-client")
				cmd.Stdout = &stdout
				var err error
				if stdin, err = cmd.StdinPipe(); err != nil {
					return nil, err
				}
				if err := cmd.Start(); err != nil {
					return nil, err
				}
				if _, err := io.WriteString(stdin, "ping\n"); err != nil {
					return nil, err
				}
				// The caller's socket is the server's; return a dummy.
				a, b := net.Pipe()
				b.Close()
				return a, nil
			})
			t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
			if p.res.State.CipherSuite != tc.id {
				t.Fatalf("suite %x, want %x", p.res.State.CipherSuite, tc.id)
			}
			srv := p.res.Rec
			if srv == nil {
				t.Fatal("not handed off")
			}
			got, err := readUntil(t, srv, p.server.Read, 5)
			if err != nil || string(got) != "ping\n" {
				t.Fatalf("server read %q, %v", got, err)
			}
			if _, err := srv.Write([]byte("pong1\n")); err != nil {
				t.Fatal(err)
			}
			// A line "K" makes s_client send a KeyUpdate with
			// update_requested; the server answers with its own. The
			// read sequence restarting at 0 shows it arrived.
			if _, err := io.WriteString(stdin, "K\n"); err != nil {
				t.Fatal(err)
			}
			for srv.in.seq != 0 {
				err := srv.ReadReady(p.server.Read, func(p []byte) error {
					return fmt.Errorf("data %q before the KeyUpdate", p)
				})
				if err != nil && !errors.Is(err, ErrWouldBlock) {
					t.Fatal(err)
				}
			}
			if srv.out.seq != 0 {
				t.Fatalf("write sequence %d: the requested KeyUpdate was not sent", srv.out.seq)
			}
			if _, err := io.WriteString(stdin, "ping2\n"); err != nil {
				t.Fatal(err)
			}
			got, err = readUntil(t, srv, p.server.Read, 6)
			if err != nil || string(got) != "ping2\n" {
				t.Fatalf("server read after KeyUpdate %q, %v", got, err)
			}
			if _, err := p.res.Rec.Write([]byte("pong\n")); err != nil {
				t.Fatal(err)
			}
			stdin.Close() // s_client sends close_notify at EOF of its input
			if got, err := readUntil(t, p.res.Rec, p.server.Read, 1<<20); !errors.Is(err, io.EOF) {
				t.Fatalf("after client close: %q, %v", got, err)
			}
			_ = cmd.Wait()
			if out := stdout.String(); !strings.Contains(out, "pong1\n") || !strings.Contains(out, "pong\n") {
				t.Fatalf("openssl got %q", stdout.String())
			}
		})
	}
}
