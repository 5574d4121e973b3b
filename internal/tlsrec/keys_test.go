package tlsrec

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

var allSuites = []*suite{&suiteAES128, &suiteAES256, &suiteChaCha20}

// refExpandLabel is HKDF-Expand-Label over crypto/hkdf, the reference
// for expandLabel.
func refExpandLabel(s *suite, secret []byte, label string, n int) []byte {
	h := sha256.New
	if s.sha384 {
		h = func() hash.Hash { return sha512.New384() }
	}
	info := binary.BigEndian.AppendUint16(nil, uint16(n))
	info = append(info, byte(len("tls13 ")+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func TestExpandLabelMatchesHKDF(t *testing.T) {
	for _, s := range allSuites {
		for range 50 {
			secret := make([]byte, s.hashLen())
			_, _ = rand.Read(secret)
			for _, c := range []struct {
				label string
				n     int
			}{{"key", s.keyLen}, {"iv", ivLen}, {"traffic upd", s.hashLen()}, {"x", 1}} {
				got := make([]byte, c.n)
				s.expandLabel(got, secret, c.label)
				if want := refExpandLabel(s, secret, c.label, c.n); !bytes.Equal(got, want) {
					t.Fatalf("%s %q: %x, want %x", suiteName(s), c.label, got, want)
				}
			}
		}
	}
}

// RFC 8448 §3, the server's application traffic key and IV.
func TestExpandLabelRFC8448(t *testing.T) {
	secret, _ := hex.DecodeString("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
	var h halfConn
	h.setSecret(secret)
	k, err := h.keys(&suiteAES128)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k.iv[:]); got != "cf782b88dd83549aadf1e984" {
		t.Errorf("iv %s", got)
	}
	key := make([]byte, 16)
	suiteAES128.expandLabel(key, secret, "key")
	if got := hex.EncodeToString(key); got != "9f02283b6c9c07efc26bb9f2ac92e356" {
		t.Errorf("key %s", got)
	}
}

// The per-batch key setup must not allocate beyond the AEAD itself.
func TestKeysAllocations(t *testing.T) {
	var h halfConn
	h.setSecret(fuzzIn)
	// ChaCha20-Poly1305's AEAD is one allocation; the derivation adds none.
	if n := testing.AllocsPerRun(100, func() { _, _ = h.keys(&suiteChaCha20) }); n > 1 {
		t.Errorf("%v allocations per key setup", n)
	}
}

// TestConnSize keeps Conn in its size class: it is kept per idle session.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 192 {
		t.Errorf("Conn is %d bytes, more than the 192 of its size class", n)
	}
}

// connRefs are the fields of Conn through which it may reference other
// memory, and why each may.
var connRefs = map[string]string{
	"conn":    "the socket",
	"pending": "an incomplete record: nil while idle",
	"werr":    "the write error: nil while the connection works",
}

// TestConnHoldsNoKeyMaterialByType checks that nothing in Conn but
// connRefs can reference memory: no field could hold an AEAD, a key
// schedule or a buffer.
func TestConnHoldsNoKeyMaterialByType(t *testing.T) {
	ct := reflect.TypeFor[Conn]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if _, ok := connRefs[f.Name]; ok {
			continue
		}
		if hasPointers(f.Type) {
			t.Errorf("Conn.%s (%s) can reference memory", f.Name, f.Type)
		}
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Pointer, reflect.UnsafePointer, reflect.Interface, reflect.Slice,
		reflect.Map, reflect.Chan, reflect.Func, reflect.String:
		return true
	}
	return false
}

// assertIdle checks that c holds nothing but its socket, suite, secrets
// and sequence numbers.
func assertIdle(t *testing.T, c *Conn, who string) {
	t.Helper()
	if c.pending != nil {
		t.Fatalf("%s: idle with %d pending bytes", who, len(c.pending))
	}
	if c.werr != nil {
		t.Fatalf("%s: write error %v", who, c.werr)
	}
}

// memPipe is one direction of an in-memory connection: what the writer's
// Conn wrote, for the reader's Conn to read.
type memPipe struct{ sink }

// read hands out what was written so far, then would block.
func (m *memPipe) read(p []byte) (int, error) {
	if m.Len() == 0 {
		return 0, ErrWouldBlock
	}
	return m.Read(p)
}

// memPair is a server and a client Conn joined by two memPipes.
type memPair struct {
	srv, cli       *Conn
	toSrv, toCli   *memPipe
	srvGot, cliGot []byte
}

func newMemPair(s *suite) *memPair {
	cs := bytes.Repeat([]byte{0xc5}, s.hashLen())
	ss := bytes.Repeat([]byte{0x55}, s.hashLen())
	m := &memPair{toSrv: &memPipe{}, toCli: &memPipe{}}
	m.srv = newConn(m.toCli, s, cs, ss)
	m.cli = newConn(m.toSrv, s, ss, cs)
	return m
}

// drain runs ReadReady on c until its pipe is empty.
func (m *memPair) drain(t *testing.T, c *Conn) error {
	t.Helper()
	in, got := m.toSrv, &m.srvGot
	if c == m.cli {
		in, got = m.toCli, &m.cliGot
	}
	for {
		err := c.ReadReady(in.read, func(p []byte) error { *got = append(*got, p...); return nil })
		if errors.Is(err, ErrWouldBlock) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// exchange sends one message each way and checks both arrive and both
// sides are idle afterwards.
func (m *memPair) exchange(t *testing.T, tag string) {
	t.Helper()
	up, down := []byte("up "+tag), []byte("down "+tag)
	if _, err := m.cli.Write(up); err != nil {
		t.Fatal(err)
	}
	if err := m.drain(t, m.srv); err != nil {
		t.Fatalf("server: %v", err)
	}
	if _, err := m.srv.Write(down); err != nil {
		t.Fatal(err)
	}
	if err := m.drain(t, m.cli); err != nil {
		t.Fatalf("client: %v", err)
	}
	if !bytes.Equal(m.srvGot, up) || !bytes.Equal(m.cliGot, down) {
		t.Fatalf("%s: server got %q, client got %q", tag, m.srvGot, m.cliGot)
	}
	m.srvGot, m.cliGot = nil, nil
	assertIdle(t, m.srv, "server")
	assertIdle(t, m.cli, "client")
}

// keyModes run a test on Conns that derive their keys for each batch
// (cold) and on Conns whose keys are cached (cached), where a KeyUpdate
// must replace the cached keys.
var keyModes = []string{"cold", "cached"}

// A session that goes idle between batches resumes with keys derived
// afresh, in both directions, across KeyUpdates either side starts, a
// record split over an idle period, the automatic update before the
// AES-GCM limit, and close_notify. With the cache, every step leaves all
// four directions with keys cached for their current secrets.
func TestIdleResume(t *testing.T) {
	for _, s := range allSuites {
		for _, mode := range keyModes {
			t.Run(suiteName(s)+"/"+mode, func(t *testing.T) { idleResume(t, s, mode == "cached") })
		}
	}
}

func idleResume(t *testing.T, s *suite, cache bool) {
	isolateKeyCache(t)
	m := newMemPair(s)
	m.exchange(t, "first")
	m.exchange(t, "after idle")
	if cache {
		warm(func() { m.exchange(t, "warm") })
	}
	m.checkCached(t, cache)

	// The client updates and asks the server to follow.
	m.cli.wmu.Lock()
	err := m.cli.sendKeyUpdateLocked(true)
	m.cli.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	inSecret := m.srv.in.secret
	outSecret := m.srv.out.secret
	m.exchange(t, "client update")
	if m.srv.in.secret == inSecret || m.srv.out.secret == outSecret {
		t.Fatal("the server's keys did not both move on")
	}
	if m.srv.in.secret != m.cli.out.secret || m.srv.out.secret != m.cli.in.secret {
		t.Fatal("the two sides' secrets differ")
	}
	m.checkCached(t, cache)

	// The server updates on its own.
	m.srv.wmu.Lock()
	err = m.srv.sendKeyUpdateLocked(false)
	m.srv.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	m.exchange(t, "server update")
	m.checkCached(t, cache)

	// A record split over an idle period.
	if _, err := m.cli.Write([]byte("split")); err != nil {
		t.Fatal(err)
	}
	rec := bytes.Clone(m.toSrv.Bytes())
	m.toSrv.Reset()
	m.toSrv.Write(rec[:7])
	if err := m.drain(t, m.srv); err != nil || !m.srv.Pending() {
		t.Fatalf("first part: %v, pending %v", err, m.srv.Pending())
	}
	m.toSrv.Write(rec[7:])
	if err := m.drain(t, m.srv); err != nil || string(m.srvGot) != "split" {
		t.Fatalf("second part: %q, %v", m.srvGot, err)
	}
	m.srvGot = nil
	assertIdle(t, m.srv, "server")

	// The write side's automatic update, both ways.
	for _, c := range []*Conn{m.srv, m.cli} {
		c.out.seq = keyUpdateAfter - 1
	}
	m.srv.in.seq, m.cli.in.seq = keyUpdateAfter-1, keyUpdateAfter-1
	big := bytes.Repeat([]byte("z"), 3*MaxPlaintext)
	for _, c := range []*Conn{m.srv, m.cli} {
		before := c.out.secret
		if _, err := c.Write(big); err != nil {
			t.Fatal(err)
		}
		if c.out.secret == before || c.out.seq >= keyUpdateAfter {
			t.Fatalf("no automatic update: sequence %d", c.out.seq)
		}
	}
	if err := m.drain(t, m.srv); err != nil || !bytes.Equal(m.srvGot, big) {
		t.Fatalf("server after automatic update: %d bytes, %v", len(m.srvGot), err)
	}
	if err := m.drain(t, m.cli); err != nil || !bytes.Equal(m.cliGot, big) {
		t.Fatalf("client after automatic update: %d bytes, %v", len(m.cliGot), err)
	}
	m.srvGot, m.cliGot = nil, nil
	m.exchange(t, "after automatic update")
	m.checkCached(t, cache)

	m.cli.CloseNotify(0)
	if err := m.drain(t, m.srv); !errors.Is(err, io.EOF) {
		t.Fatalf("after close_notify: %v, want EOF", err)
	}
}

// A record sealed under a stale key after an idle period must fail as
// any forgery does: the read side uses the current key, not the one it
// had before the KeyUpdate, derived or cached.
func TestStaleKeyRejected(t *testing.T) {
	for _, s := range allSuites {
		for _, mode := range keyModes {
			t.Run(suiteName(s)+"/"+mode, func(t *testing.T) {
				isolateKeyCache(t)
				m := newMemPair(s)
				m.exchange(t, "first")
				if mode == "cached" {
					warm(func() { m.exchange(t, "warm") })
					m.checkCached(t, true)
				}
				old := m.cli.out
				m.cli.wmu.Lock()
				err := m.cli.sendKeyUpdateLocked(false)
				m.cli.wmu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				if err := m.drain(t, m.srv); err != nil {
					t.Fatal(err)
				}
				checkCachedKeys(t, m.srv, "server")
				stale := newConn(m.toSrv, s, nil, nil)
				stale.out = old
				stale.out.seq = 0 // the sequence the new key starts at
				if _, err := stale.Write([]byte("stale")); err != nil {
					t.Fatal(err)
				}
				var ae *AlertError
				if err := m.drain(t, m.srv); !errors.As(err, &ae) || ae.Desc != alertBadRecordMAC {
					t.Fatalf("stale key: %v, want bad_record_mac", err)
				}
			})
		}
	}
}

// envWantSuite, when set, is the TLS 1.3 suite every handshake in this
// process must negotiate (see TestCryptoTLSChaCha20).
const envWantSuite = "TLSREC_WANT_SUITE"

// TestCryptoTLSChaCha20 runs the tests against crypto/tls peers again with
// ChaCha20-Poly1305: crypto/tls prefers it on both sides when it sees no
// AES hardware, which GODEBUG makes it believe in a new process.
func TestCryptoTLSChaCha20(t *testing.T) {
	if os.Getenv(envWantSuite) != "" {
		t.Skip("in the child process")
	}
	tests := []string{"TestHandoffEcho", "TestFirstBytesWithFinished", "TestBigWritesAndPartialRecords",
		"TestKeyUpdateBothWays", "TestServerKeyUpdateToCryptoTLS", "TestAutomaticKeyUpdate",
		"TestGarbageGetsAlert", "TestAlertReachesCryptoTLSClient", "TestCloseNotify"}
	godebug := "cpu.aes=off"
	if g := os.Getenv("GODEBUG"); g != "" {
		godebug = g + "," + godebug
	}
	cmd := exec.Command(os.Args[0], "-test.v", "-test.count=1", "-test.run=^("+strings.Join(tests, "|")+")$")
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug, envWantSuite+"="+tls.CipherSuiteName(tls.TLS_CHACHA20_POLY1305_SHA256))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, name := range tests {
		if !bytes.Contains(out, []byte("--- PASS: "+name+" ")) {
			t.Errorf("%s did not pass under ChaCha20-Poly1305:\n%s", name, out)
		}
	}
}
