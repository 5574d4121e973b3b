package bench

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
)

// offeredGroups runs a client handshake with c against a server that
// records the ClientHello's groups and then aborts.
func offeredGroups(t *testing.T, c *tls.Config) []tls.CurveID {
	t.Helper()
	cli, srv := net.Pipe()
	defer cli.Close()
	got := make(chan []tls.CurveID, 1)
	go func() {
		defer srv.Close()
		s := tls.Server(srv, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			got <- slices.Clone(h.SupportedCurves)
			return nil, errors.New("recorded")
		}})
		_ = s.Handshake()
	}()
	_ = tls.Client(cli, c).Handshake()
	return <-got
}

func TestTLSGroupsOffered(t *testing.T) {
	c, err := tlsConfig(&Target{Domain: "bench.local", Insecure: true, Groups: []string{"x25519", "CurveP256"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := offeredGroups(t, c), []tls.CurveID{tls.X25519, tls.CurveP256}; !slices.Equal(got, want) {
		t.Errorf("offered %v, want %v", got, want)
	}
	// Without --tls-groups the client offers Go's defaults, which put
	// the hybrid post-quantum group first.
	c, err = tlsConfig(&Target{Domain: "bench.local", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := offeredGroups(t, c); len(got) == 0 || got[0] != tls.X25519MLKEM768 {
		t.Errorf("default offer %v, want X25519MLKEM768 first", got)
	}
}

func TestTLSGroupsUnknown(t *testing.T) {
	o := Options{Scenario: ScenarioConnect, Target: Target{Addr: "127.0.0.1:5222", TLS: TLSStartTLS, Groups: []string{"X25519", "P-999"}}, Sessions: 1}
	err := o.Check()
	if err == nil || !strings.Contains(err.Error(), `unknown group "P-999"`) {
		t.Fatalf("Check: %v, want an unknown group error", err)
	}
}
