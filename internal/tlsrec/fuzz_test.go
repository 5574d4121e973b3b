package tlsrec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sink is a socket that accepts and keeps every write.
type sink struct{ bytes.Buffer }

func (s *sink) SetWriteDeadline(time.Time) error { return nil }

var (
	fuzzIn  = bytes.Repeat([]byte{0x11}, 32)
	fuzzOut = bytes.Repeat([]byte{0x22}, 32)
)

// fuzzPeer is the client side whose records the server under test reads.
func fuzzPeer() (*Conn, *sink) {
	w := &sink{}
	return newConn(w, &suiteAES128, fuzzOut, fuzzIn), w
}

// sealRaw writes one record whose inner plaintext (content, type,
// padding) is given as is.
func sealRaw(c *Conn, inner []byte) {
	k, err := c.out.keys(c.suite())
	if err != nil {
		panic(err)
	}
	n := len(inner) + tagLen
	hdr := []byte{typeApplicationData, 3, 3, byte(n >> 8), byte(n)}
	nonce := k.nonce(c.out.seq)
	c.out.seq++
	_, _ = c.conn.Write(k.aead.Seal(hdr, nonce[:], inner, hdr))
}

// seedRecords builds valid record streams: data, padded data, a KeyUpdate
// (requested and not, whole and split) followed by data, and close_notify.
func seedRecords() [][]byte {
	var seeds [][]byte
	add := func(f func(c *Conn)) {
		c, w := fuzzPeer()
		c.wmu.Lock()
		f(c)
		c.wmu.Unlock()
		seeds = append(seeds, bytes.Clone(w.Bytes()))
	}
	add(func(c *Conn) { _ = c.writeRecordsLocked(typeApplicationData, []byte("<stream:stream to='x'>")) })
	add(func(c *Conn) { sealRaw(c, append([]byte("padded"), typeApplicationData, 0, 0, 0, 0)) })
	add(func(c *Conn) {
		_ = c.sendKeyUpdateLocked(true)
		_ = c.writeRecordsLocked(typeApplicationData, []byte("after"))
	})
	add(func(c *Conn) {
		_ = c.writeRecordsLocked(typeHandshake, []byte{msgKeyUpdate, 0, 0})
		_ = c.writeRecordsLocked(typeHandshake, []byte{1, 0})
		c.out.update(c.suite())
		_ = c.writeRecordsLocked(typeApplicationData, []byte("split"))
	})
	add(func(c *Conn) { _ = c.writeRecordsLocked(typeAlert, []byte{1, alertCloseNotify}) })
	add(func(c *Conn) {
		_ = c.writeRecordsLocked(typeApplicationData, bytes.Repeat([]byte("z"), MaxPlaintext+10))
	})
	return seeds
}

// FuzzReadReady feeds arbitrary bytes, in arbitrary pieces, to the record
// layer: it must never panic, never deliver more than a record's worth at
// once, and end with an error for anything it cannot accept.
func FuzzReadReady(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add(s, uint16(7))
		f.Add(s, uint16(4096))
	}
	f.Fuzz(func(t *testing.T, data []byte, piece uint16) {
		c := newConn(&sink{}, &suiteAES128, fuzzIn, fuzzOut)
		step := int(piece%2048) + 1
		r := bytes.NewReader(data)
		read := func(b []byte) (int, error) {
			n, err := r.Read(b[:min(len(b), step)])
			if err == io.EOF && n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		for range len(data) + 2 {
			err := c.ReadReady(read, func(p []byte) error {
				if len(p) > MaxPlaintext {
					t.Fatalf("delivered %d bytes at once", len(p))
				}
				return nil
			})
			if err != nil {
				if errors.Is(err, ErrWouldBlock) {
					t.Fatal("ErrWouldBlock from a reader that always has bytes or EOF")
				}
				return
			}
			if len(c.pending) > MaxRecord {
				t.Fatalf("pending %d bytes", len(c.pending))
			}
		}
		t.Fatal("no end after the input ended")
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzReadReady when
// TLSREC_WRITE_SEEDS is set (the seeds depend on the record format only).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("TLSREC_WRITE_SEEDS") == "" {
		t.Skip("set TLSREC_WRITE_SEEDS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReadReady")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seedRecords() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\n", s, 1+i*300)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The seeds themselves must read back as what was written.
func TestSeedsDecode(t *testing.T) {
	want := []string{"<stream:stream to='x'>", "padded", "after", "split", "", string(bytes.Repeat([]byte("z"), MaxPlaintext+10))}
	for i, s := range seedRecords() {
		c := newConn(&sink{}, &suiteAES128, fuzzIn, fuzzOut)
		r := bytes.NewReader(s)
		var got []byte
		err := c.ReadReady(r.Read, func(p []byte) error { got = append(got, p...); return nil })
		for err == nil && r.Len() > 0 {
			err = c.ReadReady(r.Read, func(p []byte) error { got = append(got, p...); return nil })
		}
		if err != nil && !(i == 4 && errors.Is(err, io.EOF)) {
			t.Errorf("seed %d: %v", i, err)
		}
		if string(got) != want[i] {
			t.Errorf("seed %d: got %q", i, got)
		}
	}
}
