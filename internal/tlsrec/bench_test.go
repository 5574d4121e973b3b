package tlsrec

import (
	"bytes"
	"fmt"
	"testing"
)

// benchSuites are the suites the benchmarks run under.
var benchSuites = []*suite{&suiteAES128, &suiteAES256, &suiteChaCha20}

// benchSizes are a typical stanza and a full record.
var benchSizes = []int{200, MaxPlaintext}

// sealedRecord is one application-data record of n bytes sealed at
// sequence 0 by the peer of a Conn made with newConn(w, s, fuzzIn, fuzzOut).
func sealedRecord(s *suite, n int) []byte {
	w := &sink{}
	peer := newConn(w, s, fuzzOut, fuzzIn)
	peer.wmu.Lock()
	defer peer.wmu.Unlock()
	if err := peer.writeRecordsLocked(typeApplicationData, bytes.Repeat([]byte("x"), n)); err != nil {
		panic(err)
	}
	return bytes.Clone(w.Bytes())
}

// BenchmarkReadReady is the whole read path for one record per socket
// read: pooled buffer, copy from the socket, keys, open, deliver. With
// keys derived for the batch (cold: a session idle before it) and with
// keys from the cache (cached: a busy session).
func BenchmarkReadReady(b *testing.B) {
	for _, s := range benchSuites {
		for _, n := range benchSizes {
			rec := sealedRecord(s, n)
			for _, mode := range keyModes {
				c := newConn(&sink{}, s, fuzzIn, fuzzOut)
				readOne := func() error {
					c.in.seq = 0
					done := false
					return c.ReadReady(func(p []byte) (int, error) {
						if done {
							return 0, ErrWouldBlock
						}
						done = true
						return copy(p, rec), nil
					}, func([]byte) error { return nil })
				}
				if mode == "cached" {
					warm(func() { _ = readOne() })
				}
				b.Run(fmt.Sprintf("%s/%d/%s", suiteName(s), n, mode), func(b *testing.B) {
					b.SetBytes(int64(n))
					b.ReportAllocs()
					for b.Loop() {
						if err := readOne(); err != nil {
							b.Fatal(err)
						}
					}
					if (cached(&c.in) != nil) != (mode == "cached") {
						b.Fatal("keys not in the cache state benchmarked")
					}
				})
			}
		}
	}
}

// BenchmarkOpen is the decryption of one record with the AEAD kept from
// an earlier batch ("kept": what a Conn holding its AEAD would do) and
// with key, IV and AEAD set up for the batch ("lazy": what Conn does).
// Neither copies from a socket.
func BenchmarkOpen(b *testing.B) {
	for _, s := range benchSuites {
		for _, n := range benchSizes {
			rec := sealedRecord(s, n)
			c := newConn(&sink{}, s, fuzzIn, fuzzOut)
			kept, err := c.in.keys(s)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, len(rec))
			for _, mode := range []string{"kept", "lazy"} {
				b.Run(fmt.Sprintf("%s/%d/%s", suiteName(s), n, mode), func(b *testing.B) {
					b.SetBytes(int64(n))
					b.ReportAllocs()
					for b.Loop() {
						c.in.seq = 0
						copy(buf, rec)
						var k recordKeys
						if mode == "kept" {
							k = kept
						}
						if _, err := c.records(buf, &k, func([]byte) error { return nil }); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkKeys is the per-batch setup alone: key and IV derivation and
// the AEAD's construction.
func BenchmarkKeys(b *testing.B) {
	for _, s := range benchSuites {
		var h halfConn
		h.setSecret(fuzzIn)
		b.Run(suiteName(s), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.keys(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite is the whole write path for one Write, with keys
// derived for the batch (cold) and from the cache (cached).
func BenchmarkWrite(b *testing.B) {
	for _, s := range benchSuites {
		for _, n := range benchSizes {
			for _, mode := range keyModes {
				w := &sink{}
				c := newConn(w, s, fuzzIn, fuzzOut)
				p := bytes.Repeat([]byte("x"), n)
				if mode == "cached" {
					warm(func() { _, _ = c.Write(p); w.Reset() })
				}
				b.Run(fmt.Sprintf("%s/%d/%s", suiteName(s), n, mode), func(b *testing.B) {
					b.SetBytes(int64(n))
					b.ReportAllocs()
					for b.Loop() {
						w.Reset()
						if _, err := c.Write(p); err != nil {
							b.Fatal(err)
						}
					}
					if (cached(&c.out) != nil) != (mode == "cached") {
						b.Fatal("keys not in the cache state benchmarked")
					}
				})
			}
		}
	}
}

// BenchmarkKeysFor is what a batch spends getting its keys: the lookup
// that misses and the derivation (cold), or the lookup that hits
// (cached).
func BenchmarkKeysFor(b *testing.B) {
	for _, s := range benchSuites {
		for _, mode := range keyModes {
			c := newConn(&sink{}, s, fuzzIn, fuzzOut)
			get := func() {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				if _, err := c.keysFor(&c.out, &c.outAct); err != nil {
					b.Fatal(err)
				}
			}
			if mode == "cached" {
				warm(get)
			}
			b.Run(suiteName(s)+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					get()
				}
				if (cached(&c.out) != nil) != (mode == "cached") {
					b.Fatal("keys not in the cache state benchmarked")
				}
			})
		}
	}
}

func suiteName(s *suite) string {
	switch s {
	case &suiteAES128:
		return "AES128"
	case &suiteAES256:
		return "AES256"
	}
	return "ChaCha20"
}
