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
// read, as an idle session that receives a stanza runs it: pooled buffer,
// copy from the socket, key setup, open, deliver.
func BenchmarkReadReady(b *testing.B) {
	for _, s := range benchSuites {
		for _, n := range benchSizes {
			rec := sealedRecord(s, n)
			c := newConn(&sink{}, s, fuzzIn, fuzzOut)
			b.Run(fmt.Sprintf("%s/%d", suiteName(s), n), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					c.in.seq = 0
					done := false
					err := c.ReadReady(func(p []byte) (int, error) {
						if done {
							return 0, ErrWouldBlock
						}
						done = true
						return copy(p, rec), nil
					}, func([]byte) error { return nil })
					if err != nil {
						b.Fatal(err)
					}
				}
			})
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

// BenchmarkWrite is the whole write path for one Write.
func BenchmarkWrite(b *testing.B) {
	for _, s := range benchSuites {
		for _, n := range benchSizes {
			w := &sink{}
			c := newConn(w, s, fuzzIn, fuzzOut)
			p := bytes.Repeat([]byte("x"), n)
			b.Run(fmt.Sprintf("%s/%d", suiteName(s), n), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					w.Reset()
					if _, err := c.Write(p); err != nil {
						b.Fatal(err)
					}
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
