package server

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/parley-im/parley/internal/config"
)

// TestNewFailsWhenAPortIsTaken: a start-up that fails after the plain c2s
// listener opened (here the direct TLS port is in use) returns the error.
// It used to hang in closing the first listener, which waited for an
// accept loop that had never started.
func TestNewFailsWhenAPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg, err := config.Load([]string{"--data", t.TempDir(), "--c2s", "127.0.0.1:0",
		"--c2s-tls", taken.Addr().String(), "--http", "127.0.0.1:0", "--durability", "os"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		srv.closeAll()
		t.Fatal("New succeeded on a port in use")
	}
	if !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("error %q does not name the address in use", err)
	}
}
