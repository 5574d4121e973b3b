// Package memo is a bounded in-memory cache of values loaded from the
// store by key (a user's blocklist, archive preferences), for modules that
// consult them on every routed stanza and change them rarely.
package memo

import "sync"

// Cache holds at most size values. When full it drops an arbitrary entry:
// every value can be loaded again, so the choice only costs a store read.
type Cache[V any] struct {
	size int

	mu sync.Mutex
	m  map[string]V
	// gen counts Forget calls: a load that raced with one is returned but
	// not cached, since it may have read the value from before a change.
	gen uint64
}

// New returns an empty cache of at most size entries (at least 1).
func New[V any](size int) *Cache[V] {
	return &Cache[V]{size: max(size, 1), m: map[string]V{}}
}

// Get returns the cached value of key, or loads it with load and caches
// it. A load error is returned and nothing is cached.
func (c *Cache[V]) Get(key string, load func() (V, error)) (V, error) {
	c.mu.Lock()
	v, ok := c.m[key]
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return v, nil
	}
	if len(c.m) >= c.size {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = v
	return v, nil
}

// Forget drops the value of key. Call it after the stored value changed
// (or was deleted): loads in progress then do not cache what they read.
func (c *Cache[V]) Forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.gen++
	c.mu.Unlock()
}

// Len is the number of cached values.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
