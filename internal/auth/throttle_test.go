package auth

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestThrottleWindow(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(3, time.Minute, c.now)
	steps := []struct {
		name    string
		advance time.Duration
		adds    int
		key     string
		blocked bool
	}{
		{"fresh key", 0, 0, "a", false},
		{"below the limit", 0, 2, "a", false},
		{"at the limit", 0, 1, "a", true},
		{"other keys unaffected", 0, 0, "b", false},
		{"still inside the window", 59 * time.Second, 0, "a", true},
		{"window over", time.Second, 0, "a", false},
		{"new window counts from one", 0, 2, "a", false},
		{"and blocks again at the limit", 0, 1, "a", true},
	}
	for _, s := range steps {
		c.advance(s.advance)
		for range s.adds {
			th.Add(s.key)
		}
		if got := th.Blocked(s.key); got != s.blocked {
			t.Errorf("%s: Blocked(%q) = %v, want %v", s.name, s.key, got, s.blocked)
		}
	}
}

// TestThrottleFixedWindow: events late in a window do not carry over.
func TestThrottleFixedWindow(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(2, time.Minute, c.now)
	th.Add("k")
	c.advance(59 * time.Second)
	th.Add("k") // second event, same window
	if !th.Blocked("k") {
		t.Fatal("not blocked at the limit")
	}
	c.advance(time.Second)
	th.Add("k") // first event of a new window
	if th.Blocked("k") {
		t.Fatal("blocked after one event in a new window")
	}
}

func TestThrottleDisabled(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(0, time.Minute, c.now)
	for range 100 {
		th.Add("k")
	}
	if th.Blocked("k") {
		t.Fatal("a zero limit blocked")
	}
	if n := len(th.keys); n != 0 {
		t.Fatalf("a disabled throttle tracks %d keys", n)
	}
}

// TestThrottleBoundedKeys: the key map never grows past maxKeys; expired
// keys make room; and, as documented, when it is full of live keys new keys
// "are counted as blocked" — a key spray must not switch throttling off.
func TestThrottleBoundedKeys(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(3, time.Minute, c.now)
	for i := range maxKeys {
		th.Add("spray-" + strconv.Itoa(i))
	}
	if n := len(th.keys); n != maxKeys {
		t.Fatalf("%d keys, want %d", n, maxKeys)
	}
	// Each Add of a new key while full scans the whole map (see report),
	// so keep these few.
	for range 4 {
		th.Add("attacker")
	}
	if n := len(th.keys); n > maxKeys {
		t.Fatalf("the map grew to %d keys past the bound %d", n, maxKeys)
	}
	if !th.Blocked("attacker") {
		t.Errorf("with the key map full, a new key made 4 failed attempts (limit 3) and is not blocked: a spray of %d addresses disables throttling", maxKeys)
	}
	// Once the sprayed keys expire, a new key evicts them.
	c.advance(time.Minute)
	th.Add("fresh")
	if n := len(th.keys); n != 1 {
		t.Errorf("%d keys after expiry, want 1", n)
	}
	th.Add("fresh")
	th.Add("fresh")
	if !th.Blocked("fresh") {
		t.Error("fresh key not counted after eviction")
	}
}

func TestThrottleConcurrent(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(1000, time.Minute, c.now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				th.Add("shared")
				th.Add("k" + strconv.Itoa(g*1000+i))
				th.Blocked("shared")
			}
		}()
	}
	wg.Wait()
	if !th.Blocked("shared") { // 1600 events, limit 1000
		t.Fatal("shared key not blocked")
	}
}
