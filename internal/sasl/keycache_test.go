package sasl

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

// cachedClient is NewClientWithKeyCache with a fixed client nonce.
func cachedClient(t *testing.T, mech, user, pw string, cache *KeyCache, cnonce string) ClientMech {
	t.Helper()
	m, err := NewClientWithKeyCache(mech, user, pw, ChannelBinding{}, cache)
	if err != nil {
		t.Fatal(err)
	}
	if cnonce != "" {
		m.(*scramClient).nonce = fixedNonce(cnonce)
	}
	return m
}

// clientFinal runs a client against the fixed server-first of v and
// returns its client-final-message.
func clientFinal(t *testing.T, m ClientMech, v vector) string {
	t.Helper()
	if out, err := m.Start(); err != nil || string(out) != v.clientFirst {
		t.Fatalf("client-first = %q, %v; want %q", out, err, v.clientFirst)
	}
	out, err := m.Next([]byte(v.serverFirst))
	if err != nil {
		t.Fatalf("client-final: %v", err)
	}
	return string(out)
}

func wantStats(t *testing.T, c *KeyCache, hits, misses uint64, n int) {
	t.Helper()
	h, m := c.Stats()
	if h != hits || m != misses || c.Len() != n {
		t.Fatalf("cache: %d hits, %d misses, %d entries; want %d, %d, %d", h, m, c.Len(), hits, misses, n)
	}
}

// TestKeyCacheSameMessages runs the RFC vectors without a cache, then
// twice through one (a miss, then a hit): the client-final-message must be
// the same every time, and the server signature accepted.
func TestKeyCacheSameMessages(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.mech, func(t *testing.T) {
			plain := clientFinal(t, cachedClient(t, v.mech, "user", "pencil", nil, v.cnonce), v)
			if plain != v.clientFinal {
				t.Fatalf("uncached client-final %q, want %q", plain, v.clientFinal)
			}
			cache := NewKeyCache(0)
			for i, want := range []struct {
				hits, misses uint64
			}{{0, 1}, {1, 1}} {
				m := cachedClient(t, v.mech, "user", "pencil", cache, v.cnonce)
				if got := clientFinal(t, m, v); got != plain {
					t.Fatalf("run %d: client-final %q, want %q", i, got, plain)
				}
				if err := m.Verify([]byte(v.serverFinal)); err != nil {
					t.Fatalf("run %d: Verify: %v", i, err)
				}
				wantStats(t, cache, want.hits, want.misses, 1)
			}
		})
	}
}

// TestKeyCacheStillVerifies: keys from the cache do not excuse the server
// from proving itself.
func TestKeyCacheStillVerifies(t *testing.T) {
	v := vectors[1]
	cache := NewKeyCache(0)
	m := cachedClient(t, v.mech, "user", "pencil", cache, v.cnonce)
	clientFinal(t, m, v)
	if err := m.Verify([]byte(v.serverFinal)); err != nil {
		t.Fatal(err)
	}
	forged := "v=" + EncodeData(make([]byte, SHA256.Size()))
	for _, tc := range []struct {
		name string
		run  func(m ClientMech) error
	}{
		{"success data", func(m ClientMech) error { return m.Verify([]byte(forged)) }},
		{"final challenge", func(m ClientMech) error { _, err := m.Next([]byte(forged)); return err }},
	} {
		m := cachedClient(t, v.mech, "user", "pencil", cache, v.cnonce)
		clientFinal(t, m, v)
		if err := tc.run(m); !errors.Is(err, ErrServerSignature) {
			t.Errorf("%s: forged signature on a cache hit: %v, want ErrServerSignature", tc.name, err)
		}
	}
	wantStats(t, cache, 2, 1, 1)
}

// fixedLookup serves one account whose stored credentials the test sets.
type fixedLookup struct {
	mu    sync.Mutex
	creds map[Hash]store.SCRAM
}

func (f *fixedLookup) set(t *testing.T, h Hash, pw string, salt []byte, iter int) {
	t.Helper()
	c, err := DeriveSCRAM(h, pw, salt, iter)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.creds == nil {
		f.creds = map[Hash]store.SCRAM{}
	}
	f.creds[h] = c
}

func (f *fixedLookup) lookup(h Hash, user string) (store.SCRAM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.creds[h]; ok && user == "alice" {
		return c, nil
	}
	return store.SCRAM{}, fmt.Errorf("account %q: %w", user, store.ErrNotFound)
}

// TestKeyCacheKeying changes one input at a time: every change must miss,
// and only exchanges the server accepted add entries.
func TestKeyCacheKeying(t *testing.T) {
	var f fixedLookup
	cfg := testConfig(newAccounts(nil))
	cfg.Lookup = f.lookup
	cache := NewKeyCache(0)
	login := func(mech, pw string) error {
		t.Helper()
		_, err := runExchange(t, cachedClient(t, mech, "alice", pw, cache, ""), mech, cfg)
		return err
	}
	saltA, saltB := []byte("salt-A-0123456789"), []byte("salt-B-0123456789")

	f.set(t, SHA256, "pw", saltA, 4096)
	f.set(t, SHA1, "pw", saltA, 4096)
	for _, step := range []struct {
		name         string
		mech, pw     string
		change       func()
		ok           bool
		hits, misses uint64
		entries      int
	}{
		{"first login", MechSCRAMSHA256, "pw", nil, true, 0, 1, 1},
		{"again", MechSCRAMSHA256, "pw", nil, true, 1, 1, 1},
		{"other salt", MechSCRAMSHA256, "pw", func() { f.set(t, SHA256, "pw", saltB, 4096) }, true, 1, 2, 2},
		{"other iteration count", MechSCRAMSHA256, "pw", func() { f.set(t, SHA256, "pw", saltB, 5000) }, true, 1, 3, 3},
		{"other hash, same salt and count", MechSCRAMSHA1, "pw", nil, true, 1, 4, 4},
		{"back to the first salt", MechSCRAMSHA256, "pw", func() { f.set(t, SHA256, "pw", saltA, 4096) }, true, 2, 4, 4},
		// A wrong password misses and, refused, is not cached.
		{"wrong password", MechSCRAMSHA256, "pw2", nil, false, 2, 5, 4},
		{"wrong password again", MechSCRAMSHA256, "pw2", nil, false, 2, 6, 4},
		// Keys cached for a password the server no longer holds: the hit
		// is used, and the server refuses the proof.
		{"password changed", MechSCRAMSHA256, "pw", func() { f.set(t, SHA256, "new", saltA, 4096) }, false, 3, 6, 4},
		{"new password", MechSCRAMSHA256, "new", nil, true, 3, 7, 5},
	} {
		if step.change != nil {
			step.change()
		}
		err := login(step.mech, step.pw)
		if (err == nil) != step.ok {
			t.Fatalf("%s: login err %v, want ok=%v", step.name, err, step.ok)
		}
		if !step.ok && condition(err) != NotAuthorized {
			t.Fatalf("%s: %v, want not-authorized", step.name, err)
		}
		h, m := cache.Stats()
		if h != step.hits || m != step.misses || cache.Len() != step.entries {
			t.Fatalf("%s: %d hits, %d misses, %d entries; want %d, %d, %d", step.name, h, m, cache.Len(), step.hits, step.misses, step.entries)
		}
	}
}

func TestKeyCacheBounded(t *testing.T) {
	var f fixedLookup
	cfg := testConfig(newAccounts(nil))
	cfg.Lookup = f.lookup
	cache := NewKeyCache(2)
	login := func(salt string) {
		t.Helper()
		f.set(t, SHA256, "pw", []byte(salt), 4096)
		if _, err := runExchange(t, cachedClient(t, MechSCRAMSHA256, "alice", "pw", cache, ""), MechSCRAMSHA256, cfg); err != nil {
			t.Fatal(err)
		}
	}
	login("salt-1")
	login("salt-2")
	login("salt-1") // hit: salt-2 is now the least recently used
	login("salt-3") // evicts salt-2
	wantStats(t, cache, 1, 3, 2)
	login("salt-1")
	wantStats(t, cache, 2, 3, 2)
	login("salt-2")
	wantStats(t, cache, 2, 4, 2)
}

// TestKeyCacheConcurrent shares one cache between parallel exchanges
// (run with -race).
func TestKeyCacheConcurrent(t *testing.T) {
	var f fixedLookup
	f.set(t, SHA256, "pw", []byte("shared-salt"), 4096)
	cfg := testConfig(newAccounts(nil))
	cfg.Lookup = f.lookup
	cache := NewKeyCache(1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 3 {
				m, err := NewClientWithKeyCache(MechSCRAMSHA256, "alice", "pw", ChannelBinding{}, cache)
				if err != nil {
					errs <- err
					return
				}
				if err := exchangeNoT(m, MechSCRAMSHA256, cfg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h, m := cache.Stats(); h+m != 24 || m == 0 || cache.Len() != 1 {
		t.Errorf("%d hits, %d misses, %d entries; want 24 lookups, one entry", h, m, cache.Len())
	}
}

// exchangeNoT is runExchange for goroutines other than the test's.
func exchangeNoT(c ClientMech, mech string, cfg ServerConfig) error {
	s, err := NewServer(mech, cfg)
	if err != nil {
		return err
	}
	resp, err := c.Start()
	if err != nil {
		return err
	}
	for range 5 {
		ch, done, err := s.Next(resp)
		if err != nil {
			return err
		}
		if done {
			return c.Verify(ch)
		}
		if resp, err = c.Next(ch); err != nil {
			return err
		}
	}
	return errors.New("exchange did not finish")
}

func TestKeyCacheIgnoredByPLAIN(t *testing.T) {
	cache := NewKeyCache(0)
	cfg := testConfig(newAccounts(map[string]string{"alice": "pw"}))
	m, err := NewClientWithKeyCache(MechPLAIN, "alice", "pw", ChannelBinding{}, cache)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runExchange(t, m, MechPLAIN, cfg); err != nil {
		t.Fatal(err)
	}
	wantStats(t, cache, 0, 0, 0)
}

// BenchmarkSCRAMClient is the client's cost of one SCRAM exchange (server
// side excluded), without and with a warm key cache.
func BenchmarkSCRAMClient(b *testing.B) {
	for _, v := range vectors {
		for _, tc := range []struct {
			name  string
			cache *KeyCache
		}{{"uncached", nil}, {"cached", NewKeyCache(0)}} {
			b.Run(v.mech+"/"+tc.name, func(b *testing.B) {
				for b.Loop() {
					m, err := NewClientWithKeyCache(v.mech, "user", "pencil", ChannelBinding{}, tc.cache)
					if err != nil {
						b.Fatal(err)
					}
					m.(*scramClient).nonce = fixedNonce(v.cnonce)
					if _, err := m.Start(); err != nil {
						b.Fatal(err)
					}
					if _, err := m.Next([]byte(v.serverFirst)); err != nil {
						b.Fatal(err)
					}
					if err := m.Verify([]byte(v.serverFinal)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestKeyCacheSaved: a saved cache serves hits in a new process (the same
// client-final message, the server still verified), and damaged input is
// refused rather than read as an empty cache.
func TestKeyCacheSaved(t *testing.T) {
	v := vectors[1]
	cache := NewKeyCache(0)
	m := cachedClient(t, v.mech, "user", "pencil", cache, v.cnonce)
	want := clientFinal(t, m, v)
	if err := m.Verify([]byte(v.serverFinal)); err != nil {
		t.Fatal(err)
	}
	var saved bytes.Buffer
	if _, err := cache.WriteTo(&saved); err != nil {
		t.Fatal(err)
	}
	loaded, err := ReadKeyCache(bytes.NewReader(saved.Bytes()), 0)
	if err != nil {
		t.Fatal(err)
	}
	m = cachedClient(t, v.mech, "user", "pencil", loaded, v.cnonce)
	if got := clientFinal(t, m, v); got != want {
		t.Fatalf("client-final from the loaded cache %q, want %q", got, want)
	}
	if err := m.Verify([]byte(v.serverFinal)); err != nil {
		t.Fatal(err)
	}
	wantStats(t, loaded, 1, 0, 1)
	// Another password still misses.
	clientFinal(t, cachedClient(t, v.mech, "user", "pen", loaded, v.cnonce), v)
	wantStats(t, loaded, 1, 1, 1)

	b := saved.Bytes()
	for name, in := range map[string][]byte{
		"empty":     nil,
		"no magic":  b[1:],
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte(nil), b...), 0),
	} {
		if _, err := ReadKeyCache(bytes.NewReader(in), 0); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
