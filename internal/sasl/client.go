package sasl

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// ChannelBinding is the client's view of the TLS channel binding: the type
// to use and this connection's data for it (see ClientChannelBinding). The
// zero value means the client has no channel binding (plain TCP, or a TLS
// stack that cannot provide it).
type ChannelBinding struct {
	Type string // CBTLSExporter or CBTLSServerEndPoint
	Data []byte
}

func (cb ChannelBinding) available() bool { return cb.Type != "" && len(cb.Data) > 0 }

// ClientMech is the client side of one SASL exchange; not safe for
// concurrent use.
type ClientMech interface {
	// Name is the mechanism name to put in <auth mechanism=.../>.
	Name() string
	// Start returns the initial response for <auth/>.
	Start() (initialResponse []byte, err error)
	// Next answers a (decoded) <challenge/>. A SCRAM server that sends its
	// final message as a challenge gets an empty response, and the
	// signature is checked here already.
	Next(challenge []byte) (response []byte, err error)
	// Verify must be called with the (decoded) additional data of
	// <success/>; for SCRAM it checks the server signature (v=), which
	// proves the server knew the credentials. Treat the login as failed
	// unless it returns nil: a server that cannot prove itself may be an
	// impostor that simply claims success.
	Verify(successData []byte) error
}

// Errors of the client side. Malformed server messages give other errors.
var (
	// ErrServerSignature means the server's v= did not match: it does not
	// hold this account's credentials, or the exchange was tampered with.
	ErrServerSignature = errors.New("sasl: server signature mismatch")
	// ErrServerFailure wraps an e= server-error received instead of v=.
	ErrServerFailure = errors.New("sasl: server reported an error")
	// ErrSequence means a method was called out of order.
	ErrSequence = errors.New("sasl: method called out of sequence")
)

// ChooseMechanism picks the strongest mechanism in offered this client can
// use: -PLUS when cb is available, then SCRAM-SHA-256, SCRAM-SHA-1, and
// PLAIN only if allowPLAIN (only allow it over TLS). It returns "" if none
// fits. Choosing through it keeps the gs2 flag honest: a client with channel
// binding ends on a non-PLUS mechanism (and sends 'y') only when the server
// offered no -PLUS one.
func ChooseMechanism(offered []string, cb ChannelBinding, allowPLAIN bool) string {
	has := make(map[string]bool, len(offered))
	for _, m := range offered {
		has[m] = true
	}
	prefs := []string{MechSCRAMSHA256, MechSCRAMSHA1}
	if cb.available() {
		prefs = append([]string{MechSCRAMSHA256Plus, MechSCRAMSHA1Plus}, prefs...)
	}
	if allowPLAIN {
		prefs = append(prefs, MechPLAIN)
	}
	for _, m := range prefs {
		if has[m] {
			return m
		}
	}
	return ""
}

// NewClient prepares the client side of mech for username (the localpart,
// sent as is) and password (prepared with PRECIS OpaqueString). With a
// -PLUS mechanism cb must be available; with a plain SCRAM mechanism an
// available cb makes the client send 'y' ("I could bind, but you do not
// offer it"), which a server that did offer -PLUS refuses, so pick the
// mechanism with ChooseMechanism.
func NewClient(mech, username, password string, cb ChannelBinding) (ClientMech, error) {
	return NewClientWithKeyCache(mech, username, password, cb, nil)
}

// NewClientWithKeyCache is NewClient with a cache of the keys SCRAM derives
// from the password: a SCRAM exchange looks them up there before running
// PBKDF2 and adds them once the server's signature has proven them right.
// A nil cache is NewClient; PLAIN ignores it.
func NewClientWithKeyCache(mech, username, password string, cb ChannelBinding, cache *KeyCache) (ClientMech, error) {
	if username == "" || !utf8.ValidString(username) || strings.IndexByte(username, 0) >= 0 {
		return nil, errors.New("sasl: invalid username")
	}
	pw, err := preparePassword(password)
	if err != nil {
		return nil, err
	}
	switch mech {
	case MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA1Plus, MechSCRAMSHA256Plus:
		c := &scramClient{name: mech, h: SHA1, username: username, password: pw, cache: cache}
		if mech == MechSCRAMSHA256 || mech == MechSCRAMSHA256Plus {
			c.h = SHA256
		}
		plus := mech == MechSCRAMSHA1Plus || mech == MechSCRAMSHA256Plus
		switch {
		case plus:
			if !cb.available() || !validCBName(cb.Type) {
				return nil, fmt.Errorf("sasl: %s needs channel-binding data", mech)
			}
			c.gs2Header = "p=" + cb.Type + ",,"
			c.cbData = append([]byte(nil), cb.Data...)
		case cb.available():
			c.gs2Header = "y,,"
		default:
			c.gs2Header = "n,,"
		}
		return c, nil
	case MechPLAIN:
		if strings.IndexByte(pw, 0) >= 0 {
			return nil, errors.New("sasl: NUL in password")
		}
		return &plainClient{username: username, password: pw}, nil
	}
	return nil, fmt.Errorf("sasl: unsupported mechanism %q", mech)
}

type clientState uint8

const (
	clientInit     clientState = iota
	clientStarted              // client-first sent
	clientFinalOut             // client-final sent, v= pending
	clientVerified             // v= checked
	clientFailed
)

// scramClient is the client side of SCRAM and SCRAM-PLUS.
type scramClient struct {
	name      string
	h         Hash
	username  string
	password  string // prepared
	gs2Header string
	cbData    []byte
	state     clientState

	cnonce          string
	clientFirstBare string
	serverSig       []byte

	cache *KeyCache
	// derived holds keys computed by PBKDF2 in this exchange until the
	// server's signature proves them right; only then do they go into
	// cache, so that failed logins (a wrong password, a fake salt for an
	// unknown user) cannot fill it.
	derived *cachedKeys

	// nonce, if set, replaces the random client nonce (tests only).
	nonce func() (string, error)
}

func (c *scramClient) Name() string { return c.name }

func (c *scramClient) Start() ([]byte, error) {
	if c.state != clientInit {
		return nil, ErrSequence
	}
	gen := c.nonce
	if gen == nil {
		gen = randomNonce
	}
	n, err := gen()
	if err != nil {
		return nil, err
	}
	if !validNonce(n) {
		return nil, errors.New("sasl: invalid client nonce")
	}
	c.cnonce = n
	c.clientFirstBare = "n=" + encodeSaslname(c.username) + ",r=" + n
	c.state = clientStarted
	return []byte(c.gs2Header + c.clientFirstBare), nil
}

func (c *scramClient) Next(challenge []byte) ([]byte, error) {
	switch c.state {
	case clientStarted:
		out, err := c.serverFirst(challenge)
		if err != nil {
			c.state = clientFailed
			return nil, err
		}
		c.state = clientFinalOut
		return out, nil
	case clientFinalOut:
		// Some servers send server-final-message as a challenge and
		// <success/> without data.
		if err := c.serverFinal(challenge); err != nil {
			c.state = clientFailed
			return nil, err
		}
		c.state = clientVerified
		return nil, nil
	}
	c.state = clientFailed
	return nil, ErrSequence
}

func (c *scramClient) Verify(data []byte) error {
	switch c.state {
	case clientFinalOut:
		if len(data) == 0 {
			c.state = clientFailed
			return errors.New("sasl: success without server signature")
		}
		if err := c.serverFinal(data); err != nil {
			c.state = clientFailed
			return err
		}
		c.state = clientVerified
		return nil
	case clientVerified:
		if len(data) == 0 {
			return nil
		}
		return c.serverFinal(data)
	}
	return ErrSequence
}

func checkServerMessage(msg []byte) error {
	if len(msg) == 0 || len(msg) > MaxMessageSize {
		return errors.New("sasl: server message empty or too long")
	}
	if !utf8.Valid(msg) {
		return errors.New("sasl: server message not UTF-8")
	}
	return nil
}

// serverFirst handles server-first-message and returns client-final-message:
//
//	[reserved-mext ","] "r=" nonce "," "s=" base64(salt) "," "i=" count ["," extensions]
func (c *scramClient) serverFirst(in []byte) ([]byte, error) {
	if err := checkServerMessage(in); err != nil {
		return nil, err
	}
	msg := string(in)
	fields := strings.Split(msg, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return nil, errors.New("sasl: server requires an unsupported extension")
	}
	if len(fields) < 3 || !strings.HasPrefix(fields[0], "r=") || !strings.HasPrefix(fields[1], "s=") || !strings.HasPrefix(fields[2], "i=") {
		return nil, errors.New("sasl: malformed server-first-message")
	}
	for _, f := range fields[3:] {
		if !validExtension(f) {
			return nil, errors.New("sasl: malformed server-first-message")
		}
	}
	nonce := fields[0][2:]
	// The server's part must be present: the client's alone would allow
	// replay of an earlier exchange.
	if !validNonce(nonce) || len(nonce) <= len(c.cnonce) || !strings.HasPrefix(nonce, c.cnonce) {
		return nil, errors.New("sasl: server nonce does not extend the client nonce")
	}
	salt, err := decodeBase64(fields[1][2:])
	if err != nil || len(salt) == 0 {
		return nil, errors.New("sasl: invalid salt")
	}
	iter, err := parseIterations(fields[2][2:])
	if err != nil {
		return nil, err
	}

	clientKey, serverKey, err := c.keys(salt, iter)
	if err != nil {
		return nil, err
	}
	sum := c.h.New()
	sum.Write(clientKey)
	storedKey := sum.Sum(nil)
	cbind := make([]byte, 0, len(c.gs2Header)+len(c.cbData))
	cbind = append(append(cbind, c.gs2Header...), c.cbData...)
	withoutProof := "c=" + EncodeData(cbind) + ",r=" + nonce
	authMessage := []byte(c.clientFirstBare + "," + msg + "," + withoutProof)
	proof := xorBytes(clientKey, hmacSum(c.h, storedKey, authMessage))
	c.serverSig = hmacSum(c.h, serverKey, authMessage)
	return []byte(withoutProof + ",p=" + EncodeData(proof)), nil
}

// keys returns ClientKey and ServerKey for salt and iter: from the cache
// when it has them, else derived with PBKDF2.
func (c *scramClient) keys(salt []byte, iter int) (clientKey, serverKey []byte, err error) {
	var id keyID
	if c.cache != nil {
		id = c.cache.id(c.h, c.password, salt, iter)
		if ck, sk, ok := c.cache.get(id); ok {
			return ck, sk, nil
		}
	}
	salted, err := saltedPassword(c.h, c.password, salt, iter)
	if err != nil {
		return nil, nil, err
	}
	clientKey, _, serverKey = scramKeys(c.h, salted)
	if c.cache != nil {
		c.derived = &cachedKeys{id: id, clientKey: clientKey, serverKey: serverKey}
	}
	return clientKey, serverKey, nil
}

// parseIterations accepts only plain decimal in [MinIterations,
// MaxIterations]; the cap is what keeps a hostile server from making the
// client spin on PBKDF2.
func parseIterations(s string) (int, error) {
	if s == "" || len(s) > 7 || s[0] == '0' {
		return 0, errors.New("sasl: invalid iteration count")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("sasl: invalid iteration count")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New("sasl: invalid iteration count")
	}
	if n < MinIterations || n > MaxIterations {
		return 0, fmt.Errorf("sasl: iteration count %d outside [%d, %d]", n, MinIterations, MaxIterations)
	}
	return n, nil
}

// serverFinal checks server-final-message: ("e=" error / "v=" base64) ["," extensions].
func (c *scramClient) serverFinal(in []byte) error {
	if err := checkServerMessage(in); err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(in), ",")
	if strings.HasPrefix(first, "e=") {
		// The value is server-controlled: quote it, bounded, for logs.
		v := first[2:]
		if len(v) > 64 {
			v = v[:64]
		}
		return fmt.Errorf("%w: %q", ErrServerFailure, v)
	}
	if !strings.HasPrefix(first, "v=") {
		return errors.New("sasl: malformed server-final-message")
	}
	sig, err := decodeBase64(first[2:])
	if err != nil {
		return errors.New("sasl: malformed server signature")
	}
	if subtle.ConstantTimeCompare(sig, c.serverSig) != 1 {
		return ErrServerSignature
	}
	if c.derived != nil {
		c.cache.add(c.derived)
		c.derived = nil
	}
	return nil
}

// DefaultKeyCacheSize is the number of entries of a KeyCache made with a
// size of 0 or less.
const DefaultKeyCacheSize = 1024

// KeyCache remembers the ClientKey and ServerKey a SCRAM client derived
// for a (hash, password, salt, iteration count), as RFC 5802 §5.1 allows,
// so that logging in again to a server that presents the same salt and
// count skips PBKDF2, the deliberately slow part of the client's work. It
// holds at most a fixed number of entries, dropping the least recently
// used, and is safe for concurrent use by any number of exchanges.
//
// Entries are indexed by a keyed SHA-256 of the inputs, never by the
// password, but the cached keys themselves are password equivalents for
// the servers that issued the salts (ClientKey suffices to log in): keep a
// cache inside the process that owns the passwords.
type KeyCache struct {
	// secret keys the entry ids, so that an id means nothing outside this
	// cache: no table precomputed for common passwords and public salts
	// matches it.
	secret [32]byte
	size   int

	mu      sync.Mutex
	entries map[keyID]*list.Element // of *cachedKeys
	lru     list.List               // front: most recently used

	hits, misses atomic.Uint64
}

type keyID [sha256.Size]byte

type cachedKeys struct {
	id                   keyID
	clientKey, serverKey []byte
}

// NewKeyCache returns an empty cache of at most size entries
// (DefaultKeyCacheSize if size <= 0). An entry takes a few hundred bytes.
func NewKeyCache(size int) *KeyCache {
	if size <= 0 {
		size = DefaultKeyCacheSize
	}
	c := &KeyCache{size: size, entries: make(map[keyID]*list.Element)}
	_, _ = rand.Read(c.secret[:]) // never fails (crypto/rand panics instead)
	return c
}

// Len returns the number of entries.
func (c *KeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Stats returns how many SCRAM exchanges found their keys in the cache
// and how many had to derive them.
func (c *KeyCache) Stats() (hits, misses uint64) {
	return c.hits.Load(), c.misses.Load()
}

// id names the entry of (h, password, salt, iterations). The fields are
// length-prefixed so that no two different tuples encode alike.
func (c *KeyCache) id(h Hash, password string, salt []byte, iterations int) keyID {
	m := hmac.New(sha256.New, c.secret[:])
	name := h.String()
	var buf [8]byte
	for _, f := range [][]byte{[]byte(name), []byte(password), salt} {
		m.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(len(f))))
		m.Write(f)
	}
	m.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(iterations)))
	var id keyID
	m.Sum(id[:0])
	return id
}

// get returns copies of the keys of id: an eviction zeroes the cached
// slices, which must not change the keys of an exchange in progress.
func (c *KeyCache) get(id keyID) (clientKey, serverKey []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		c.misses.Add(1)
		return nil, nil, false
	}
	c.hits.Add(1)
	c.lru.MoveToFront(e)
	k := e.Value.(*cachedKeys)
	return append([]byte(nil), k.clientKey...), append([]byte(nil), k.serverKey...), true
}

func (c *KeyCache) add(k *cachedKeys) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k.id]; ok {
		// Another exchange derived the same keys meanwhile.
		c.lru.MoveToFront(e)
		return
	}
	c.entries[k.id] = c.lru.PushFront(k)
	for c.lru.Len() > c.size {
		old := c.lru.Remove(c.lru.Back()).(*cachedKeys)
		delete(c.entries, old.id)
		// Do not leave password equivalents in memory the GC frees.
		clear(old.clientKey)
		clear(old.serverKey)
	}
}

// plainClient is the client side of PLAIN; it sends no authzid.
type plainClient struct {
	username, password string
	state              clientState
}

func (p *plainClient) Name() string { return MechPLAIN }

func (p *plainClient) Start() ([]byte, error) {
	if p.state != clientInit {
		return nil, ErrSequence
	}
	p.state = clientStarted
	return []byte("\x00" + p.username + "\x00" + p.password), nil
}

func (p *plainClient) Next([]byte) ([]byte, error) {
	// PLAIN has no challenges; the server sending one is a protocol error,
	// and answering it could leak the password a second time.
	p.state = clientFailed
	return nil, ErrSequence
}

func (p *plainClient) Verify(data []byte) error {
	if p.state != clientStarted {
		return ErrSequence
	}
	if len(data) != 0 {
		return errors.New("sasl: unexpected data with PLAIN success")
	}
	p.state = clientVerified
	return nil
}

// keyCacheMagic starts a saved KeyCache (version 1).
const keyCacheMagic = "parley-scram-keys/1\n"

// WriteTo saves the cache: its secret and every entry, most recently used
// first. The output holds password equivalents (see KeyCache): write it
// only where the passwords themselves could be kept.
func (c *KeyCache) WriteTo(w io.Writer) (int64, error) {
	c.mu.Lock()
	buf := append([]byte(keyCacheMagic), c.secret[:]...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(c.lru.Len()))
	for e := c.lru.Front(); e != nil; e = e.Next() {
		k := e.Value.(*cachedKeys)
		buf = append(buf, k.id[:]...)
		buf = append(buf, byte(len(k.clientKey)))
		buf = append(buf, k.clientKey...)
		buf = append(buf, byte(len(k.serverKey)))
		buf = append(buf, k.serverKey...)
	}
	c.mu.Unlock()
	n, err := w.Write(buf)
	clear(buf)
	return int64(n), err
}

// ReadKeyCache loads a cache saved by WriteTo, keeping at most size
// entries (DefaultKeyCacheSize if size <= 0). A file that is not a saved
// cache is an error, not an empty cache.
func ReadKeyCache(r io.Reader, size int) (*KeyCache, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("sasl: read key cache: %w", err)
	}
	defer clear(data)
	bad := errors.New("sasl: not a saved key cache, or a damaged one")
	rest, ok := strings.CutPrefix(string(data), keyCacheMagic)
	if !ok || len(rest) < 32+4 {
		return nil, bad
	}
	c := NewKeyCache(size)
	copy(c.secret[:], rest[:32])
	n := binary.BigEndian.Uint32([]byte(rest[32:36]))
	rest = rest[36:]
	take := func(n int) ([]byte, bool) {
		if len(rest) < n {
			return nil, false
		}
		b := []byte(rest[:n])
		rest = rest[n:]
		return b, true
	}
	entries := make([]*cachedKeys, 0, min(int(n), c.size))
	for range n {
		k := &cachedKeys{}
		id, ok := take(len(k.id))
		if !ok {
			return nil, bad
		}
		copy(k.id[:], id)
		for _, dst := range []*[]byte{&k.clientKey, &k.serverKey} {
			l, ok := take(1)
			if !ok || l[0] == 0 || l[0] > 64 {
				return nil, bad
			}
			if *dst, ok = take(int(l[0])); !ok {
				return nil, bad
			}
		}
		entries = append(entries, k)
	}
	if len(rest) != 0 {
		return nil, bad
	}
	// Added least recently used first, so that the order survives and the
	// size bound drops the oldest.
	for i := len(entries) - 1; i >= 0; i-- {
		c.add(entries[i])
	}
	return c, nil
}
