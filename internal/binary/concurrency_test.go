package binary

import (
	"sync"
	"testing"
)

// TestConcurrentHalves runs the decoder on a reader goroutine while other
// goroutines encode under a shared lock, as a session does (run with
// -race). The client's half also picks up the server's answer while its
// encoder is in use.
func TestConcurrentHalves(t *testing.T) {
	srv := NewCodec(Options{Role: Server})
	cli := NewCodec(Options{Role: Client})
	el := parseOne(t, chatXML)

	var outMu sync.Mutex // the session's output lock
	var srvOut []byte
	cliOpen := cli.AppendOpen(nil, clientHeader)

	var wg sync.WaitGroup
	// Writers on the client: stanzas before and after the server's answer.
	var cliMu sync.Mutex
	var cliOut []byte
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				cliMu.Lock()
				cliOut = cli.AppendElement(cliOut, el)
				cliMu.Unlock()
			}
		}()
	}
	// The server's reader: reads the open, answers, then reads stanzas
	// while writers deliver to its client.
	mustEvent(t, srv, cliOpen)
	outMu.Lock()
	srvOut = srv.AppendOpen(srvOut, serverHeader)
	outMu.Unlock()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				outMu.Lock()
				srvOut = srv.AppendElement(srvOut, el)
				outMu.Unlock()
			}
		}()
	}
	// The client's reader consumes the server's open while its writers run.
	outMu.Lock()
	first := append([]byte(nil), srvOut...)
	outMu.Unlock()
	if err := cli.Feed(first); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok, err := cli.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if ev.Kind == EventElement && dump(ev.Element) != dump(el) {
			t.Fatalf("client read %s", dump(ev.Element))
		}
	}
	wg.Wait()

	// Everything the client wrote, before and after it learnt the
	// server's choice, reads back on the server.
	n := 0
	if err := srv.Feed(cliOut); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok, err := srv.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if dump(ev.Element) != dump(el) {
			t.Fatalf("server read %s", dump(ev.Element))
		}
		n++
	}
	if n != 200 {
		t.Fatalf("server read %d stanzas, want 200", n)
	}
}
