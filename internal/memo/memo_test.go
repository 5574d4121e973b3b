package memo

import (
	"errors"
	"testing"
)

func TestCache(t *testing.T) {
	c := New[int](2)
	loads := 0
	load := func(v int) func() (int, error) { return func() (int, error) { loads++; return v, nil } }
	if v, err := c.Get("a", load(1)); v != 1 || err != nil {
		t.Fatalf("Get a: %d, %v", v, err)
	}
	if v, _ := c.Get("a", load(9)); v != 1 || loads != 1 {
		t.Fatalf("cached a: %d after %d loads", v, loads)
	}
	// Errors are returned and not cached.
	boom := errors.New("boom")
	if _, err := c.Get("b", func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("load error: %v", err)
	}
	if v, _ := c.Get("b", load(2)); v != 2 || c.Len() != 2 {
		t.Fatalf("b after an error: %d, %d cached", v, c.Len())
	}
	// Full: a third key evicts one of the two.
	c.Get("c", load(3))
	if c.Len() != 2 {
		t.Fatalf("%d cached, bound 2", c.Len())
	}
	// Forget drops the value; the next Get loads again.
	c.Forget("c")
	if v, _ := c.Get("c", load(4)); v != 4 {
		t.Fatalf("c after Forget: %d", v)
	}
}

// TestForgetDuringLoad: a value loaded while the key was forgotten (the
// store changed meanwhile) is returned but not cached.
func TestForgetDuringLoad(t *testing.T) {
	c := New[string](10)
	v, _ := c.Get("k", func() (string, error) {
		c.Forget("k") // the store changes while this load runs
		return "old", nil
	})
	if v != "old" {
		t.Fatalf("Get returned %q", v)
	}
	if v, _ := c.Get("k", func() (string, error) { return "new", nil }); v != "new" {
		t.Fatalf("stale value cached: %q", v)
	}
}
