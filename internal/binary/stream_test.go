package binary

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/parley-im/parley/stanza"
)

// serverStream returns what a server writes on a connection whose client
// opened with the default options: its open, the given elements (each
// twice, so that aliases are defined and then used), a keepalive and the
// close.
func serverStream(t testing.TB, els []*stanza.Element) []byte {
	t.Helper()
	cli := NewCodec(Options{Role: Client})
	srv := NewCodec(Options{Role: Server})
	mustEvent(t, srv, cli.AppendOpen(nil, clientHeader))
	out := srv.AppendOpen(nil, serverHeader)
	for _, el := range els {
		out = srv.AppendElement(out, el)
		out = AppendKeepalive(out)
		out = srv.AppendElement(out, el)
	}
	return srv.AppendClose(out)
}

func clientDecoder() *Codec {
	c := NewCodec(Options{Role: Client})
	c.AppendOpen(nil, clientHeader)
	return c
}

// TestChunkedFeeding checks that the events do not depend on how the
// bytes are cut: at every single split point, and byte by byte.
func TestChunkedFeeding(t *testing.T) {
	_, els := corpus(t)
	stream := serverStream(t, els[:12])
	want := decodeAll(clientDecoder(), [][]byte{stream})
	if len(want) != 2+24 || want[len(want)-1] != "close" {
		t.Fatalf("one-shot decoding gave %d events: %q", len(want), want)
	}
	for i := 1; i < len(stream); i++ {
		got := decodeAll(clientDecoder(), [][]byte{stream[:i], stream[i:]})
		if !equalStrings(got, want) {
			t.Fatalf("split at %d of %d:\n got  %q\n want %q", i, len(stream), got, want)
		}
	}
	var single [][]byte
	for i := range stream {
		single = append(single, stream[i:i+1])
	}
	if got := decodeAll(clientDecoder(), single); !equalStrings(got, want) {
		t.Fatalf("byte by byte:\n got  %q\n want %q", got, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestIdleHoldsNoBuffer checks that a decoder which has consumed all it was
// fed holds no input buffer, also after a frame that arrived in pieces.
func TestIdleHoldsNoBuffer(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	el := parseOne(t, chatXML)
	b := p.srv.AppendElement(nil, el)
	c := p.cli
	idle := c.StateBytes()
	if err := c.Feed(b[:10]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Next(); ok || err != nil {
		t.Fatalf("partial frame: ok=%v err=%v", ok, err)
	}
	if c.dec.buf == nil || c.StateBytes() <= idle {
		t.Fatal("a partial frame must be buffered")
	}
	if err := c.Feed(b[10:]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Next(); !ok || err != nil {
		t.Fatalf("complete frame: ok=%v err=%v", ok, err)
	}
	if c.dec.buf != nil || c.dec.bufp != nil {
		t.Fatal("decoder keeps its input buffer after consuming everything")
	}
	// The event came with the frame; the buffer went back at once.
	if _, ok, _ := c.Next(); ok {
		t.Fatal("unexpected event")
	}
	if c.dec.buf != nil {
		t.Fatal("buffer held while idle")
	}
	// The decoded tree does not alias the (pooled, reused) input.
	got := mustEvent(t, c, b).Element
	junk := bytes.Repeat([]byte{0xEE}, len(b))
	c2 := newPair(t, Options{}, Options{}).cli
	_ = c2.Feed(junk) // reuses the pooled buffer
	if dump(got) != dump(el) {
		t.Fatalf("decoded tree changed after its buffer was reused: %s", dump(got))
	}
}

// TestCodecState checks the per-connection state bound: a server codec
// whose two alias tables are full holds less than 4 KiB, by its own count
// and as measured on the heap.
func TestCodecState(t *testing.T) {
	cli := NewCodec(Options{Role: Client})
	open := cli.AppendOpen(nil, clientHeader)
	first := NewCodec(Options{Role: Server})
	mustEvent(t, first, open)
	mustEvent(t, cli, first.AppendOpen(nil, serverHeader))

	// The client names many contacts: its alias definitions fill the
	// server's receiving table.
	var c2s []byte
	var s2c []*stanza.Element
	for i := 0; i < 100; i++ {
		contact := "contact-number-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "@example.com"
		m := stanza.New("message", stanza.NSClient).SetAttr("to", contact+"/Conversations.abcd").SetAttr("type", "chat")
		c2s = cli.AppendElement(c2s, m)
		s2c = append(s2c, stanza.New("message", stanza.NSClient).
			SetAttr("from", contact+"/Conversations.abcd").SetAttr("to", "juliet@example.com/Dino.x7k2").SetAttr("type", "chat"))
	}
	fill := func(srv *Codec) {
		if err := srv.Feed(c2s); err != nil {
			t.Fatal(err)
		}
		for {
			_, ok, err := srv.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
		}
		for _, m := range s2c {
			srv.AppendElement(nil, m)
		}
	}
	fill(first)
	if n := first.StateBytes(); n > 4096 {
		t.Fatalf("server codec state %d bytes, want ≤ 4096", n)
	} else {
		t.Logf("server codec state with full alias tables: %d bytes (send table %d entries, receive table %d)",
			n, len(first.enc.aliases.e), len(first.dec.aliases.e))
	}

	const n = 500
	codecs := make([]*Codec, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range codecs {
		c := NewCodec(Options{Role: Server})
		mustEvent(t, c, open)
		c.AppendOpen(nil, serverHeader)
		fill(c)
		codecs[i] = c
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("heap per server codec with full alias tables: %d bytes", per)
	if per > 4096 {
		t.Errorf("heap per codec %d bytes, want ≤ 4096", per)
	}
	runtime.KeepAlive(codecs)

	idle := NewCodec(Options{Role: Server})
	t.Logf("fresh codec: %d bytes", idle.StateBytes())
}
