package client

import (
	"io"

	"github.com/parley-im/parley/internal/sasl"
)

// SCRAMKeyCache remembers the keys a SCRAM login derives from a password
// (ClientKey and ServerKey, RFC 5802 §5.1), indexed by hash function,
// password, salt and iteration count. A login that finds them skips
// PBKDF2, thousands of hash iterations and about a millisecond of CPU,
// which is most of a client's cost per login; the server must still prove
// that it knows the password before the login succeeds. Only keys of
// logins the server accepted are kept.
//
// A hit needs the server to show the same salt again, so the cache helps
// when one account logs in repeatedly (reconnects) or when accounts share
// a password and a salt. It is safe for concurrent use and bounded.
//
// The cache holds no password, but the keys are password equivalents for
// the servers that issued the salts (ClientKey suffices to log in): keep
// it within the process, and do not share one between users who must not
// act as one another.
type SCRAMKeyCache struct {
	c *sasl.KeyCache
}

// NewSCRAMKeyCache returns an empty cache of at most size entries; size
// <= 0 means 1024. An entry takes a few hundred bytes.
func NewSCRAMKeyCache(size int) *SCRAMKeyCache {
	return &SCRAMKeyCache{c: sasl.NewKeyCache(size)}
}

// Len returns the number of cached entries.
func (k *SCRAMKeyCache) Len() int { return k.c.Len() }

// Stats returns how many SCRAM logins found their keys in the cache
// (hits) and how many derived them (misses).
func (k *SCRAMKeyCache) Stats() (hits, misses uint64) { return k.c.Stats() }

// WriteTo saves the cache, so that a later process can start with it
// (a load generator that logs the same accounts in run after run). The
// output holds password equivalents: keep it where the passwords could be
// kept.
func (k *SCRAMKeyCache) WriteTo(w io.Writer) (int64, error) { return k.c.WriteTo(w) }

// ReadSCRAMKeyCache loads a cache saved by WriteTo, keeping at most size
// entries (size <= 0 means 1024).
func ReadSCRAMKeyCache(r io.Reader, size int) (*SCRAMKeyCache, error) {
	c, err := sasl.ReadKeyCache(r, size)
	if err != nil {
		return nil, err
	}
	return &SCRAMKeyCache{c: c}, nil
}
