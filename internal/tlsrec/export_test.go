package tlsrec

// Tests drive the key cache's sweeps themselves (sweepKeys): a background
// sweeper would end periods at moments they do not choose.
func init() { keyCache.period.Store(-1) }

// keyDerivations is how many times keys were derived so far.
func keyDerivations() uint64 { return derivations.n.Load() }

// cachedEntries is how many directions have cached keys.
func cachedEntries() int { return int(keyCache.n.Load()) }

// cached returns the cache entry of h, or nil.
func cached(h *halfConn) *cachedKeys {
	if v, ok := keyCache.m.Load(h); ok {
		return v.(*cachedKeys)
	}
	return nil
}
