// Package tlsrec is a TLS 1.3 record layer (RFC 8446 §5) for server
// connections whose handshake crypto/tls has already done.
//
// crypto/tls keeps about 7 KB per connection after the handshake (record
// buffers, both AES-GCM states, the Conn itself) for as long as the
// connection lives. A Conn here keeps only what it needs to continue the
// record protocol: the two application traffic secrets and sequence
// numbers, in a 192-byte Conn, and no buffer while it is idle. A batch of
// records (one ReadReady, one Write) on a quiet connection derives its key
// and IV from the secret and builds the AEAD, and drops them when it ends.
// With AES-128-GCM that costs about 1.5 µs of CPU per batch, a third of it
// the derivation (BenchmarkKeys, BenchmarkOpen); keeping the AEAD in Conn
// instead would cost over a kilobyte per direction per idle connection,
// and keeping key and IV 96 bytes more per Conn. A direction busy for
// several seconds has its keys cached outside Conn until it goes idle
// (keycache.go), so busy connections pay the setup once, not per batch.
//
// Handshake runs crypto/tls with a per-connection clone of the server's
// config that logs the traffic secrets to this package (KeyLogWriter) and
// sends no session tickets, under a reader that hands crypto/tls one record
// at a time: when the handshake returns, crypto/tls has read exactly the
// client's records up to its Finished and written nothing after its own, so
// both directions start at sequence 0 in this layer. Connections this layer
// does not carry (TLS 1.2) stay with crypto/tls.
package tlsrec

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Record layer limits (RFC 8446 §5.1, §5.2).
const (
	headerLen = 5
	// MaxPlaintext is the largest plaintext of one record.
	MaxPlaintext = 1 << 14
	// maxCiphertext bounds an encrypted record's length field: the
	// plaintext, its content type and padding, and the AEAD expansion.
	maxCiphertext = MaxPlaintext + 256
	// MaxRecord is the largest record on the wire, header included.
	MaxRecord = headerLen + maxCiphertext
	tagLen    = 16
	ivLen     = 12
	maxKeyLen = 32
	// keyUpdateAfter is how many records we seal under one key before
	// updating it: AES-GCM's limit is 2^24.5 full records (RFC 8446 §5.5).
	// ChaCha20-Poly1305 has no limit that matters; one rule for all suites
	// keeps the write path the same for each.
	keyUpdateAfter = 1 << 24
)

// Content types (RFC 8446 §5.1).
const (
	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23
)

// Handshake message types handled after the handshake.
const (
	msgKeyUpdate = 24
	keyUpdateLen = 4 + 1 // type, 24-bit length, request_update
)

// Alert descriptions (RFC 8446 §6).
const (
	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertDecodeError       = 50
	alertIllegalParameter  = 47
	alertInternalError     = 80
)

// AlertError is a fatal alert: sent by us (Sent) or received from the peer.
type AlertError struct {
	Desc uint8
	Sent bool
}

func (e *AlertError) Error() string {
	if e.Sent {
		return fmt.Sprintf("tlsrec: sent alert %d", e.Desc)
	}
	return fmt.Sprintf("tlsrec: peer sent alert %d", e.Desc)
}

// halfConn is one direction's state between batches of records: the
// current traffic secret and the sequence number of the next record. The
// key and IV are not kept: keys derives them from the secret, for each
// batch or for the key cache. Fixed arrays keep it pointer-free.
type halfConn struct {
	secret [sha512.Size384]byte
	seq    uint64
}

// suite describes a TLS 1.3 cipher suite this layer can carry.
type suite struct {
	id     uint16
	keyLen int
	sha384 bool // the suite's hash is SHA-384, else SHA-256
	chacha bool // the AEAD is ChaCha20-Poly1305, else AES-GCM
}

func (s *suite) hashLen() int {
	if s.sha384 {
		return sha512.Size384
	}
	return sha256.Size
}

func (s *suite) blockSize() int {
	if s.sha384 {
		return sha512.BlockSize
	}
	return sha256.BlockSize
}

// sum writes the suite's hash of p to dst and returns its length.
func (s *suite) sum(dst, p []byte) int {
	if s.sha384 {
		h := sha512.Sum384(p)
		return copy(dst, h[:])
	}
	h := sha256.Sum256(p)
	return copy(dst, h[:])
}

var (
	suiteAES128   = suite{tls.TLS_AES_128_GCM_SHA256, 16, false, false}
	suiteAES256   = suite{tls.TLS_AES_256_GCM_SHA384, 32, true, false}
	suiteChaCha20 = suite{tls.TLS_CHACHA20_POLY1305_SHA256, chacha20poly1305.KeySize, false, true}
)

// suites numbers the suites for Conn, which keeps a byte, not a pointer:
// the word saved holds the key cache's activity bytes.
var suites = [...]*suite{&suiteAES128, &suiteAES256, &suiteChaCha20}

// newAEAD calls the constructors directly, not through a function value,
// so that the compiler sees they copy the key: it stays on the caller's
// stack instead of being allocated for every batch.
func (s *suite) newAEAD(key []byte) (cipher.AEAD, error) {
	if s.chacha {
		return chacha20poly1305.New(key)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func suiteByID(id uint16) *suite {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return &suiteAES128
	case tls.TLS_AES_256_GCM_SHA384:
		return &suiteAES256
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		return &suiteChaCha20
	}
	return nil
}

// expandLabel writes HKDF-Expand-Label(secret, label, "", len(out))
// (RFC 8446 §7.1) to out. Every TLS 1.3 key, IV and traffic secret fits in
// one hash output, so HKDF-Expand is a single HMAC, T(1) of RFC 5869 §2.3,
// written out here over the one-shot hash functions: crypto/hkdf allocates
// an HMAC per call and, twice per batch of records, would cost more than
// the AEAD setup it feeds (BenchmarkKeys). Which bytes are
// hashed, and in what steps, depends on the lengths only, never on the
// secret. The result is checked against crypto/hkdf in the tests.
func (s *suite) expandLabel(out, secret []byte, label string) {
	bs := s.blockSize()
	if len(out) > s.hashLen() || len(secret) > bs || len(label) > 12 {
		panic("tlsrec: expandLabel beyond one block")
	}
	// A key block, then the message: at most 2+1+6+12+1+1 bytes inside,
	// the inner hash outside.
	var buf [sha512.BlockSize + sha512.Size384]byte
	pad := buf[:bs]
	copy(pad, secret)
	for i := range pad {
		pad[i] ^= 0x36
	}
	msg := binary.BigEndian.AppendUint16(buf[bs:bs], uint16(len(out)))
	msg = append(msg, byte(len("tls13 ")+len(label)))
	msg = append(msg, "tls13 "...)
	msg = append(msg, label...)
	msg = append(msg, 0, 1) // the empty context, then T(1)'s counter
	var inner [sha512.Size384]byte
	n := s.sum(inner[:], buf[:bs+len(msg)])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	copy(buf[bs:], inner[:n])
	var t [sha512.Size384]byte
	s.sum(t[:], buf[:bs+n])
	copy(out, t[:])
}

// setSecret installs a traffic secret; the sequence number restarts at 0.
// Keys cached for the old secret are dropped: no batch must find them.
func (h *halfConn) setSecret(secret []byte) {
	forgetKeys(h)
	h.secret = [sha512.Size384]byte{}
	copy(h.secret[:], secret)
	h.seq = 0
}

// update moves to the next generation of traffic secret (RFC 8446 §7.2).
func (h *halfConn) update(s *suite) {
	n := s.hashLen()
	var next [sha512.Size384]byte
	s.expandLabel(next[:n], h.secret[:n], "traffic upd")
	h.setSecret(next[:n])
}

// recordKeys protect one batch of records in one direction. They live on
// the stack of the call that moves the batch and go with it, or, for a busy
// direction, in the key cache until it goes idle, so an idle Conn holds
// neither the AEAD (for AES-GCM, a key schedule and GHASH table of over a
// kilobyte) nor the key and IV.
type recordKeys struct {
	aead cipher.AEAD
	iv   [ivLen]byte
}

// keys derives the current key and IV (RFC 8446 §7.3) and builds the AEAD.
func (h *halfConn) keys(s *suite) (recordKeys, error) {
	derivations.n.Add(1)
	secret := h.secret[:s.hashLen()]
	var key [maxKeyLen]byte
	s.expandLabel(key[:s.keyLen], secret, "key")
	var k recordKeys
	s.expandLabel(k.iv[:], secret, "iv")
	aead, err := s.newAEAD(key[:s.keyLen])
	if err != nil {
		return recordKeys{}, fmt.Errorf("tlsrec: AEAD: %w", err)
	}
	k.aead = aead
	return k, nil
}

// nonce is the per-record nonce: the IV XOR the padded sequence number.
func (k *recordKeys) nonce(seq uint64) [ivLen]byte {
	n := k.iv
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	for i := range b {
		n[ivLen-8+i] ^= b[i]
	}
	return n
}

// Conn carries TLS 1.3 application data over a socket after the handshake.
// Reading is driven by the owner: ReadReady reads once from the socket and
// hands over every complete record's plaintext. One goroutine reads at a
// time; writes may come from any goroutine and are serialised.
type Conn struct {
	conn writer
	sid  uint8 // suites[sid]
	// The key cache's record of each direction's batches: inAct is the
	// reader's, outAct is guarded by wmu.
	inAct, outAct activity

	// Reader-owned.
	in      halfConn
	pending []byte             // an incomplete record read from the socket; nil when idle
	hs      [keyUpdateLen]byte // an incomplete post-handshake message: hs[:hsLen]
	hsLen   uint8
	eof     bool

	// sentClose is guarded by wmu; it sits here to fill the word the
	// reader's bytes leave, which (with werr a pointer) keeps Conn in a
	// 192-byte size class (TestConnSize).
	sentClose bool

	wmu          sync.Mutex
	out          halfConn
	writeTimeout time.Duration
	werr         *writeError // a failed write poisons the write side
}

// writeError is the failed write that poisoned the write side. Conn holds
// a pointer to it, a word smaller than an error.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// SetWriteTimeout bounds every write to the socket, including those the
// reader makes (alerts, the KeyUpdate a client asks for): each write gets
// its own deadline, so no caller-set deadline can be stale.
func (c *Conn) SetWriteTimeout(d time.Duration) {
	c.wmu.Lock()
	c.writeTimeout = d
	c.wmu.Unlock()
}

// writer is the socket as the record layer uses it: reading is the
// owner's (see ReadReady).
type writer interface {
	Write(p []byte) (int, error)
	SetWriteDeadline(t time.Time) error
}

// bufPool holds buffers for one record in or out, used only while bytes
// move, so an idle Conn holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxRecord+MaxRecord); return &b }}

// Result is a completed server handshake: the record-layer Conn when this
// package carries the connection, else the crypto/tls connection.
type Result struct {
	// Rec is set when the connection was handed to this record layer.
	Rec *Conn
	// TLS is set when crypto/tls keeps the connection (TLS 1.2, or a
	// handshake this layer cannot take over exactly).
	TLS *tls.Conn
	// State is the handshake's outcome (ALPN, channel binding via
	// ExportKeyingMaterial, peer certificates).
	State tls.ConnectionState
}

// Handshake performs the server side of a TLS handshake on conn with a
// clone of cfg and hands the connection to this record layer if it can.
func Handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*Result, error) {
	var keys secretLog
	c := cfg.Clone()
	// Tickets would be written after the server's Finished under the
	// application key, moving the write sequence away from 0 before the
	// handoff; they would also cost a ticket-sized write per login.
	c.SessionTicketsDisabled = true
	c.KeyLogWriter = &keys
	rr := &recordReader{Conn: conn}
	tc := tls.Server(rr, c)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	st := tc.ConnectionState()
	s := suiteByID(st.CipherSuite)
	if st.Version != tls.VersionTLS13 || s == nil || !rr.atBoundary() ||
		len(keys.client) != s.hashLen() || len(keys.server) != s.hashLen() {
		rr.passthrough = true
		return &Result{TLS: tc, State: st}, nil
	}
	r := newConn(conn, s, keys.client, keys.server)
	clear(keys.client)
	clear(keys.server)
	return &Result{Rec: r, State: st}, nil
}

// newConn starts the record layer with the peer's traffic secret (in) and
// ours (out), both at sequence 0.
func newConn(w writer, s *suite, in, out []byte) *Conn {
	c := &Conn{conn: w}
	for i, t := range suites {
		if t == s {
			c.sid = uint8(i)
		}
	}
	c.in.setSecret(in)
	c.out.setSecret(out)
	startSweeper()
	return c
}

func (c *Conn) suite() *suite { return suites[c.sid] }

// forgetKeys drops the connection's cached keys when it ends. Any
// goroutine may call it; a batch still running may cache them again, for
// the sweep to drop.
func (c *Conn) forgetKeys() {
	forgetKeys(&c.in)
	forgetKeys(&c.out)
}

// secretLog receives crypto/tls's key log lines for one connection and
// keeps the two application traffic secrets.
type secretLog struct {
	client, server []byte
}

func (k *secretLog) Write(line []byte) (int, error) {
	f := bytes.Fields(line)
	if len(f) != 3 {
		return len(line), nil
	}
	var dst *[]byte
	switch string(f[0]) {
	case "CLIENT_TRAFFIC_SECRET_0":
		dst = &k.client
	case "SERVER_TRAFFIC_SECRET_0":
		dst = &k.server
	default:
		return len(line), nil
	}
	b := make([]byte, hex.DecodedLen(len(f[2])))
	if _, err := hex.Decode(b, f[2]); err != nil {
		return 0, fmt.Errorf("tlsrec: key log: %w", err)
	}
	*dst = b
	return len(line), nil
}

// recordReader gives crypto/tls at most the rest of the current record on
// each Read, so the handshake never takes bytes that follow the client's
// Finished from the socket. After the handshake, with passthrough set,
// crypto/tls reads freely.
type recordReader struct {
	net.Conn
	hdr         [headerLen]byte
	hn          int // header bytes seen of the current record
	left        int // body bytes still to come
	passthrough bool
}

func (r *recordReader) atBoundary() bool { return r.hn == 0 && r.left == 0 }

func (r *recordReader) Read(p []byte) (int, error) {
	if r.passthrough {
		return r.Conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.left == 0 {
		n, err := r.Conn.Read(p[:min(len(p), headerLen-r.hn)])
		copy(r.hdr[r.hn:], p[:n])
		r.hn += n
		if r.hn == headerLen {
			r.hn = 0
			r.left = int(binary.BigEndian.Uint16(r.hdr[3:]))
		}
		return n, err
	}
	n, err := r.Conn.Read(p[:min(len(p), r.left)])
	r.left -= n
	return n, err
}

// ErrWouldBlock is returned by a Read function that found no bytes ready.
var ErrWouldBlock = errors.New("tlsrec: no data ready")

// ReadReady reads from the socket once with read, which must not block:
// it returns ErrWouldBlock when no bytes are ready (the call is then a
// no-op), or io.EOF when the peer closed the socket. Every complete
// application-data record's plaintext is passed to deliver, in order; the
// slice is valid only during the call. An incomplete record is kept for
// the next call. The result is nil while the connection goes on; io.EOF
// after the peer's close_notify or the socket's end; deliver's error; or an
// *AlertError after a protocol violation (the alert has been sent).
func (c *Conn) ReadReady(read func([]byte) (int, error), deliver func([]byte) error) error {
	err := c.readReady(read, deliver)
	if err != nil && !errors.Is(err, ErrWouldBlock) {
		// The session ends: its read keys will not be used again.
		forgetKeys(&c.in)
	}
	return err
}

func (c *Conn) readReady(read func([]byte) (int, error), deliver func([]byte) error) error {
	if c.eof {
		return io.EOF
	}
	if len(c.pending) >= headerLen {
		return c.continueRecord(read, deliver)
	}
	bp := bufPool.Get().(*[]byte)
	buf := append((*bp)[:0], c.pending...)
	defer func() { *bp = buf[:0]; bufPool.Put(bp) }()
	n, rerr := read(buf[len(buf):cap(buf)])
	if n, rerr = checkRead(n, rerr); n == 0 && rerr == ErrWouldBlock {
		return ErrWouldBlock
	}
	buf = buf[:len(buf)+n]
	c.pending = nil
	rest, err := c.records(buf, &recordKeys{}, deliver)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		if rerr != nil {
			// The socket ended inside a record.
			return c.fail(alertDecodeError)
		}
		// Right-sized copy: a peer that stalls mid-record holds no more
		// than it sent.
		c.pending = append([]byte(nil), rest...)
	}
	return rerr
}

// checkRead normalises a read's result: ErrWouldBlock only with no bytes,
// and a zero-byte read without error counts as would-block.
func checkRead(n int, err error) (int, error) {
	n = max(n, 0)
	if errors.Is(err, ErrWouldBlock) || err == nil && n == 0 {
		if n == 0 {
			return 0, ErrWouldBlock
		}
		return n, nil
	}
	return n, err
}

// continueRecord reads more of a record whose header (already checked)
// is in pending, directly into pending, which grows geometrically up to the
// record's size: a peer dripping a record byte by byte costs amortised
// linear copying, and holds at most twice what it sent. Bytes after the
// record stay in the socket for the next call.
func (c *Conn) continueRecord(read func([]byte) (int, error), deliver func([]byte) error) error {
	total := headerLen + int(binary.BigEndian.Uint16(c.pending[3:5]))
	if cap(c.pending) < total {
		p := make([]byte, len(c.pending), min(total, max(2*cap(c.pending), 1024)))
		copy(p, c.pending)
		c.pending = p
	}
	n, rerr := read(c.pending[len(c.pending):min(cap(c.pending), total)])
	if n, rerr = checkRead(n, rerr); n == 0 && rerr == ErrWouldBlock {
		return ErrWouldBlock
	}
	c.pending = c.pending[:len(c.pending)+n]
	if len(c.pending) < total {
		if rerr != nil {
			return c.fail(alertDecodeError)
		}
		return nil
	}
	rec := c.pending
	c.pending = nil
	if _, err := c.records(rec, &recordKeys{}, deliver); err != nil {
		return err
	}
	return rerr
}

// records processes the complete records at the start of b and returns
// what is left. k holds the read keys for this batch; records derives them
// when it first needs them (k.aead nil), unless its caller already has.
func (c *Conn) records(b []byte, k *recordKeys, deliver func([]byte) error) ([]byte, error) {
	for len(b) >= headerLen {
		typ := b[0]
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if typ != typeApplicationData {
			// After the handshake every record is protected (RFC 8446
			// §5: change_cipher_spec only before the peer's Finished).
			return nil, c.fail(alertUnexpectedMessage)
		}
		if b[1] != 3 || b[2] != 3 {
			return nil, c.fail(alertDecodeError)
		}
		if n > maxCiphertext {
			return nil, c.fail(alertRecordOverflow)
		}
		if n < tagLen+1 {
			return nil, c.fail(alertDecodeError)
		}
		if len(b) < headerLen+n {
			break
		}
		if k.aead == nil {
			var err error
			if *k, err = c.keysFor(&c.in, &c.inAct); err != nil {
				return nil, c.fail(alertInternalError)
			}
		}
		nonce := k.nonce(c.in.seq)
		pt, err := k.aead.Open(b[headerLen:headerLen], nonce[:], b[headerLen:headerLen+n], b[:headerLen])
		if err != nil {
			return nil, c.fail(alertBadRecordMAC)
		}
		c.in.seq++
		b = b[headerLen+n:]
		// Strip the padding: the content type is the last non-zero byte.
		i := len(pt) - 1
		for i >= 0 && pt[i] == 0 {
			i--
		}
		if i < 0 {
			return nil, c.fail(alertUnexpectedMessage)
		}
		inner, pt := pt[i], pt[:i]
		if len(pt) > MaxPlaintext {
			return nil, c.fail(alertRecordOverflow)
		}
		if inner != typeHandshake && c.hsLen > 0 {
			// A handshake message must not be interleaved with other records.
			return nil, c.fail(alertUnexpectedMessage)
		}
		switch inner {
		case typeApplicationData:
			if len(pt) > 0 {
				if err := deliver(pt); err != nil {
					return nil, err
				}
			}
		case typeAlert:
			if len(pt) != 2 {
				return nil, c.fail(alertDecodeError)
			}
			if pt[1] == alertCloseNotify {
				c.eof = true
				return nil, io.EOF
			}
			c.eof = true
			return nil, &AlertError{Desc: pt[1]}
		case typeHandshake:
			if len(pt) == 0 {
				return nil, c.fail(alertUnexpectedMessage)
			}
			updated, err := c.handshakeMessages(pt)
			if err != nil {
				return nil, err
			}
			if updated {
				*k = recordKeys{} // the next record is under the new key
			}
		default:
			return nil, c.fail(alertUnexpectedMessage)
		}
	}
	return b, nil
}

// handshakeMessages handles post-handshake messages from the client. The
// only one a client may send to us is KeyUpdate (we send no
// CertificateRequest, and NewSessionTicket only goes from server to
// client), whose encoding is exactly 5 bytes; a message split over records
// is buffered, bounded by that size.
func (c *Conn) handshakeMessages(p []byte) (keyUpdated bool, err error) {
	for len(p) > 0 {
		if keyUpdated {
			// RFC 8446 §5.1: a key change must end its record.
			return false, c.fail(alertUnexpectedMessage)
		}
		k := copy(c.hs[c.hsLen:], p)
		c.hsLen += uint8(k)
		p = p[k:]
		if c.hs[0] != msgKeyUpdate {
			return false, c.fail(alertUnexpectedMessage)
		}
		if c.hsLen >= 4 && (c.hs[1] != 0 || c.hs[2] != 0 || c.hs[3] != 1) {
			return false, c.fail(alertDecodeError)
		}
		if c.hsLen < keyUpdateLen {
			continue
		}
		requested := c.hs[4]
		c.hsLen = 0
		if err := c.keyUpdate(requested); err != nil {
			return false, err
		}
		keyUpdated = true
	}
	return keyUpdated, nil
}

// keyUpdate applies a KeyUpdate from the client (RFC 8446 §4.6.3): the read
// key moves on, and if the client asks, so does ours after telling it.
func (c *Conn) keyUpdate(requested byte) error {
	if requested > 1 {
		return c.fail(alertIllegalParameter)
	}
	c.in.update(c.suite())
	if requested == 1 {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.sendKeyUpdateLocked(false)
	}
	return nil
}

// sendKeyUpdateLocked sends a KeyUpdate and moves the write key on.
func (c *Conn) sendKeyUpdateLocked(request bool) error {
	msg := [5]byte{msgKeyUpdate, 0, 0, 1, 0}
	if request {
		msg[4] = 1
	}
	if err := c.writeRecordsLocked(typeHandshake, msg[:]); err != nil {
		return err
	}
	c.out.update(c.suite())
	return nil
}

// fail sends a fatal alert (best effort) and returns it as an error.
func (c *Conn) fail(desc uint8) error {
	c.eof = true
	c.wmu.Lock()
	if c.werr == nil && !c.sentClose {
		_ = c.writeRecordsLocked(typeAlert, []byte{2, desc})
		c.sentClose = true
	}
	c.wmu.Unlock()
	c.forgetKeys()
	return &AlertError{Desc: desc, Sent: true}
}

// Write seals p into application-data records and writes them. It is safe
// for concurrent use; the caller sets the socket's write deadline.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sentClose {
		return 0, net.ErrClosed
	}
	if err := c.writeRecordsLocked(typeApplicationData, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeRecordsLocked seals p as records of content type typ, as few
// writes to the socket as the buffer allows.
func (c *Conn) writeRecordsLocked(typ uint8, p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	k, err := c.keysFor(&c.out, &c.outAct)
	if err != nil {
		return err
	}
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0]; bufPool.Put(bp) }()
	for first := true; first || len(p) > 0; first = false {
		if c.out.seq >= keyUpdateAfter && typ == typeApplicationData {
			if err := c.flushLocked(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := c.sendKeyUpdateLocked(false); err != nil {
				return err
			}
			if k, err = c.keysFor(&c.out, &c.outAct); err != nil {
				return err
			}
		}
		chunk := p[:min(len(p), MaxPlaintext)]
		p = p[len(chunk):]
		if cap(buf)-len(buf) < MaxRecord {
			if err := c.flushLocked(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		start := len(buf)
		size := len(chunk) + 1 + tagLen
		buf = append(buf, typeApplicationData, 3, 3, byte(size>>8), byte(size))
		buf = append(buf, chunk...)
		buf = append(buf, typ)
		nonce := k.nonce(c.out.seq)
		buf = k.aead.Seal(buf[:start+headerLen], nonce[:], buf[start+headerLen:], buf[start:start+headerLen])
		c.out.seq++
	}
	return c.flushLocked(buf)
}

func (c *Conn) flushLocked(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if c.writeTimeout > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if _, err := c.conn.Write(b); err != nil {
		// A partial record on the wire cannot be continued.
		c.werr = &writeError{fmt.Errorf("tlsrec: write: %w", err)}
		forgetKeys(&c.out)
		return c.werr
	}
	return nil
}

// CloseNotify sends close_notify unless a write is in progress (a blocked
// writer must not delay closing) or an alert was already sent, and drops
// the connection's cached keys. It does not close the socket.
func (c *Conn) CloseNotify(timeout time.Duration) {
	defer c.forgetKeys()
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	if c.sentClose || c.werr != nil {
		return
	}
	c.sentClose = true
	wt := c.writeTimeout
	c.writeTimeout = timeout
	_ = c.writeRecordsLocked(typeAlert, []byte{1, alertCloseNotify})
	c.writeTimeout = wt
}

// Pending reports whether an incomplete record is buffered.
func (c *Conn) Pending() bool { return len(c.pending) > 0 }
