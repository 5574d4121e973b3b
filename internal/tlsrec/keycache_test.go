package tlsrec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"
)

// isolateKeyCache empties the key cache for a test and again after it,
// and restores the default limit, so that entries of other tests' Conns
// do not count.
func isolateKeyCache(t *testing.T) {
	t.Helper()
	empty := func() {
		keyCache.m.Range(func(k, v any) bool {
			if keyCache.m.CompareAndDelete(k, v) {
				keyCache.n.Add(-1)
			}
			return true
		})
	}
	empty()
	t.Cleanup(func() {
		SetKeyCacheLimit(DefaultKeyCacheLimit)
		empty()
	})
}

// warm runs exchange in keyCacheAdmit consecutive sweep periods: enough
// activity for the directions it moves to have their keys cached.
func warm(exchange func()) {
	for i := range keyCacheAdmit {
		if i > 0 {
			sweepKeys()
		}
		exchange()
	}
}

// checkCachedKeys fails if a cached entry of c is not for the current
// secret of its direction, and returns how many of c's directions have
// one.
func checkCachedKeys(t *testing.T, c *Conn, who string) int {
	t.Helper()
	n := 0
	for _, h := range []*halfConn{&c.in, &c.out} {
		e := cached(h)
		if e == nil {
			continue
		}
		n++
		k, err := h.keys(c.suite())
		if err != nil {
			t.Fatal(err)
		}
		if k.iv != e.keys.iv {
			t.Fatalf("%s: cached keys are not those of the current secret", who)
		}
	}
	return n
}

// checkCached fails unless all four directions of m have keys cached
// for their current secrets (want) or none has (!want).
func (m *memPair) checkCached(t *testing.T, want bool) {
	t.Helper()
	n := checkCachedKeys(t, m.srv, "server") + checkCachedKeys(t, m.cli, "client")
	if want && n != 4 || !want && n != 0 {
		t.Fatalf("%d directions have cached keys, want cached %v", n, want)
	}
}

// A burst of batches derives keys for each; a direction active over
// keyCacheAdmit periods has them cached and derives no more.
func TestKeyCacheReuse(t *testing.T) {
	for _, s := range allSuites {
		t.Run(suiteName(s), func(t *testing.T) {
			isolateKeyCache(t)
			m := newMemPair(s)
			d := keyDerivations()
			m.exchange(t, "1")
			m.exchange(t, "2")
			if got := keyDerivations() - d; got != 8 {
				t.Fatalf("%d derivations for 8 batches in one period", got)
			}
			m.checkCached(t, false)
			sweepKeys()
			m.exchange(t, "3")
			m.checkCached(t, false)
			sweepKeys()
			m.exchange(t, "4") // the third period in a row
			m.checkCached(t, true)
			before := []*cachedKeys{cached(&m.srv.in), cached(&m.srv.out), cached(&m.cli.in), cached(&m.cli.out)}
			d = keyDerivations()
			for i := range 10 {
				if i%3 == 2 {
					sweepKeys() // used in each period: kept
				}
				m.exchange(t, strconv.Itoa(i))
			}
			if got := keyDerivations() - d; got != 0 {
				t.Fatalf("%d derivations with cached keys", got)
			}
			after := []*cachedKeys{cached(&m.srv.in), cached(&m.srv.out), cached(&m.cli.in), cached(&m.cli.out)}
			for i := range before {
				if before[i] != after[i] || before[i].keys.aead != after[i].keys.aead {
					t.Fatalf("direction %d: cache entry replaced", i)
				}
			}
			m.checkCached(t, true)
		})
	}
}

// Keys unused for a whole sweep period are dropped and become garbage;
// the direction then derives its keys again.
func TestKeyCacheIdleDrop(t *testing.T) {
	isolateKeyCache(t)
	m := newMemPair(&suiteAES128)
	warm(func() { m.exchange(t, "warm") })
	m.checkCached(t, true)
	gone := weak.Make(cached(&m.srv.in))
	sweepKeys() // they were used in the period it ends
	m.checkCached(t, true)
	sweepKeys() // a whole period without a batch
	m.checkCached(t, false)
	if n := cachedEntries(); n != 0 {
		t.Fatalf("%d entries counted after the sweep", n)
	}
	runtime.GC()
	if gone.Value() != nil {
		t.Fatal("dropped keys are still referenced")
	}
	d := keyDerivations()
	m.exchange(t, "after idle")
	if got := keyDerivations() - d; got != 4 {
		t.Fatalf("%d derivations for 4 batches after idleness", got)
	}
	// A direction back from idleness is as new: one period's activity
	// does not cache its keys.
	m.checkCached(t, false)
}

// The cache holds at most its limit of entries; directions beyond it
// work as uncached ones.
func TestKeyCacheLimit(t *testing.T) {
	isolateKeyCache(t)
	SetKeyCacheLimit(3)
	pairs := []*memPair{newMemPair(&suiteAES128), newMemPair(&suiteAES256), newMemPair(&suiteChaCha20)}
	all := func(tag string) {
		for _, m := range pairs {
			m.exchange(t, tag)
		}
	}
	warm(func() { all("warm") })
	for i := range 5 {
		all(strconv.Itoa(i))
		if n := cachedEntries(); n != 3 {
			t.Fatalf("%d entries, limit 3", n)
		}
	}
	n := 0
	for _, m := range pairs {
		n += checkCachedKeys(t, m.srv, "server") + checkCachedKeys(t, m.cli, "client")
	}
	if n != 3 {
		t.Fatalf("%d directions with cached keys, limit 3", n)
	}

	SetKeyCacheLimit(0)
	sweepKeys()
	sweepKeys()
	warm(func() { all("off") })
	if n := cachedEntries(); n != 0 {
		t.Fatalf("%d entries with the cache off", n)
	}
}

// Ending a connection releases its cached keys: close_notify sent or
// received, an alert we send, the socket's end.
func TestKeyCacheReleasedAtEnd(t *testing.T) {
	isolateKeyCache(t)
	m := newMemPair(&suiteAES128)
	warm(func() { m.exchange(t, "warm") })
	m.checkCached(t, true)
	m.cli.CloseNotify(0)
	if checkCachedKeys(t, m.cli, "client") != 0 {
		t.Fatal("keys cached after close_notify")
	}
	if err := m.drain(t, m.srv); !errors.Is(err, io.EOF) {
		t.Fatalf("after close_notify: %v", err)
	}
	if cached(&m.srv.in) != nil {
		t.Fatal("read keys cached after the peer's close_notify")
	}
	m.srv.CloseNotify(0)
	if cached(&m.srv.out) != nil {
		t.Fatal("write keys cached after close_notify")
	}

	m = newMemPair(&suiteAES128)
	warm(func() { m.exchange(t, "warm") })
	_, _ = m.toSrv.Write([]byte{typeApplicationData, 3, 3, 0, 20})
	_, _ = m.toSrv.Write(make([]byte, 20))
	var ae *AlertError
	if err := m.drain(t, m.srv); !errors.As(err, &ae) || ae.Desc != alertBadRecordMAC {
		t.Fatalf("forged record: %v", err)
	}
	if checkCachedKeys(t, m.srv, "server") != 0 {
		t.Fatal("keys cached after a fatal alert")
	}

	m = newMemPair(&suiteAES128)
	warm(func() { m.exchange(t, "warm") })
	err := m.srv.ReadReady(func([]byte) (int, error) { return 0, io.EOF }, func([]byte) error { return nil })
	if !errors.Is(err, io.EOF) || cached(&m.srv.in) != nil {
		t.Fatalf("socket end: %v, read keys cached %v", err, cached(&m.srv.in) != nil)
	}
}

// The package's sweeper goroutine ends periods by itself: keys get
// cached while a connection is busy and dropped once it is idle.
func TestKeyCacheSweeper(t *testing.T) {
	isolateKeyCache(t)
	keyCache.period.Store(int64(time.Millisecond))
	t.Cleanup(func() {
		keyCache.period.Store(-1)
		for keyCache.sweeping.Load() {
			time.Sleep(time.Millisecond)
		}
	})
	m := newMemPair(&suiteAES128) // starts the sweeper
	if !keyCache.sweeping.Load() {
		t.Fatal("no sweeper")
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; cached(&m.srv.in) == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("keys never cached while busy")
		}
		m.exchange(t, strconv.Itoa(i))
		time.Sleep(100 * time.Microsecond)
	}
	for cachedEntries() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("keys never dropped while idle")
		}
		time.Sleep(time.Millisecond)
	}
	m.exchange(t, "after idle")
}

// lockedPipe is a memPipe that goroutines may write and read at once.
type lockedPipe struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (p *lockedPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b.Write(b)
}

func (p *lockedPipe) SetWriteDeadline(time.Time) error { return nil }

func (p *lockedPipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.b.Len() == 0 {
		return 0, ErrWouldBlock
	}
	// At most a few hundred bytes at a time, so records arrive in pieces.
	return p.b.Read(b[:min(len(b), 300)])
}

// Concurrent writers, a reader each side, KeyUpdates in both directions
// and a sweeper with a period of microseconds, so that keys are cached,
// reused, dropped under batches and replaced by KeyUpdates all along: for
// the race detector, and every byte must arrive, in order.
func TestKeyCacheConcurrent(t *testing.T) {
	isolateKeyCache(t)
	const writers, msgs = 4, 400
	toSrv, toCli := &lockedPipe{}, &lockedPipe{}
	cs := bytes.Repeat([]byte{0xc5}, 32)
	ss := bytes.Repeat([]byte{0x55}, 32)
	srv := newConn(toCli, &suiteAES128, cs, ss)
	cli := newConn(toSrv, &suiteAES128, ss, cs)

	line := func(w, i int) string { return fmt.Sprintf("w%d %d\n", w, i) }
	wantSrv, wantCli := 0, 0
	for w := range writers {
		for i := range msgs {
			wantSrv += len(line(w, i))
		}
	}
	for i := range msgs {
		wantCli += len(line(writers, i))
	}

	deadline := time.Now().Add(60 * time.Second)
	errs := make(chan error, 16)
	var work sync.WaitGroup
	reader := func(c *Conn, in *lockedPipe, want int, got *[]byte) {
		defer work.Done()
		for len(*got) < want {
			err := c.ReadReady(in.read, func(p []byte) error { *got = append(*got, p...); return nil })
			if errors.Is(err, ErrWouldBlock) {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("reader: %d of %d bytes", len(*got), want)
					return
				}
				runtime.Gosched()
			} else if err != nil {
				errs <- err
				return
			}
		}
	}
	// waitSweep lets the sweeper end a period in the middle of the stream.
	waitSweep := func() error {
		for e := keyCache.epoch.Load(); keyCache.epoch.Load() == e; runtime.Gosched() {
			if time.Now().After(deadline) {
				return errors.New("no sweep")
			}
		}
		return nil
	}
	var srvGot, cliGot []byte
	work.Add(2 + writers + 1)
	go reader(srv, toSrv, wantSrv, &srvGot)
	go reader(cli, toCli, wantCli, &cliGot)
	keyUpdates := 0
	for w := range writers + 1 {
		c := cli
		if w == writers {
			c = srv
		}
		go func() {
			defer work.Done()
			for i := range msgs {
				if i%40 == 39 {
					if err := waitSweep(); err != nil {
						errs <- err
						return
					}
				}
				if w == 0 && i%20 == 19 {
					// The client updates, half the time asking the
					// server to update too.
					c.wmu.Lock()
					err := c.sendKeyUpdateLocked(i%40 == 19)
					c.wmu.Unlock()
					if err != nil {
						errs <- err
						return
					}
					keyUpdates++
				}
				if _, err := c.Write([]byte(line(w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Microsecond):
				sweepKeys()
			}
		}
	}()
	d := keyDerivations()
	work.Wait()
	d = keyDerivations() - d
	close(stop)
	<-swept
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d writes and %d key updates took %d key derivations", (writers+1)*msgs, keyUpdates, d)

	next := make([]int, writers)
	for _, l := range strings.Split(strings.TrimSuffix(string(srvGot), "\n"), "\n") {
		var w, i int
		if _, err := fmt.Sscanf(l, "w%d %d", &w, &i); err != nil || w >= writers || i != next[w] {
			t.Fatalf("server got %q out of order (%v)", l, err)
		}
		next[w]++
	}
	var want strings.Builder
	for i := range msgs {
		want.WriteString(line(writers, i))
	}
	if string(cliGot) != want.String() {
		t.Fatal("client got the server's lines damaged or out of order")
	}
	// Both sides still agree on their keys, and the server's KeyUpdates
	// still in the pipe are understood.
	for range keyCacheAdmit {
		if _, err := cli.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*Conn{srv, cli} {
			in, got := toSrv, []byte(nil)
			if c == cli {
				in = toCli
			}
			for {
				err := c.ReadReady(in.read, func(p []byte) error { got = append(got, p...); return nil })
				if errors.Is(err, ErrWouldBlock) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != 1 {
				t.Fatalf("after the storm: %q", got)
			}
		}
		sweepKeys()
	}
	checkCachedKeys(t, srv, "server")
	checkCachedKeys(t, cli, "client")
}
