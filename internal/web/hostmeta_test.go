package web

import (
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type xrdDoc struct {
	XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
	Links   []struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	} `xml:"Link"`
}

// fetchHostMeta GETs path on the real mux and returns the advertised
// WebSocket URL (from XRD or JRD), failing on anything unexpected.
func fetchHostMeta(t *testing.T, base, path string, h http.Header) string {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if host := h.Get("Host"); host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", path, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET %s: Access-Control-Allow-Origin %q, want *", path, got)
	}
	ct := resp.Header.Get("Content-Type")
	if strings.HasSuffix(path, ".json") {
		if !strings.HasPrefix(ct, "application/json") {
			t.Errorf("JRD content type %q", ct)
		}
		var doc struct {
			Links []struct{ Rel, Href string } `json:"links"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("JRD: %v\n%s", err, body)
		}
		if len(doc.Links) != 1 || doc.Links[0].Rel != NSAltConnectionsWebSocket {
			t.Fatalf("JRD links: %s", body)
		}
		return doc.Links[0].Href
	}
	if !strings.HasPrefix(ct, "application/xrd+xml") {
		t.Errorf("XRD content type %q", ct)
	}
	var doc xrdDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("XRD: %v\n%s", err, body)
	}
	if len(doc.Links) != 1 || doc.Links[0].Rel != NSAltConnectionsWebSocket {
		t.Fatalf("XRD links: %s", body)
	}
	return doc.Links[0].Href
}

// XEP-0156 discovery over the real mux: the link follows the request's
// Host; a loopback peer (a proxy on this host) may set the public scheme
// and host with X-Forwarded-Proto and X-Forwarded-Host.
func TestHostMeta(t *testing.T) {
	srv := httptest.NewServer(New(Config{HostMeta: HostMeta()}))
	defer srv.Close()
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	for _, path := range []string{"/.well-known/host-meta", "/.well-known/host-meta.json"} {
		if got, want := fetchHostMeta(t, srv.URL, path, nil), "ws://"+hostPort+WebSocketPath; got != want {
			t.Errorf("%s: href %q, want %q", path, got, want)
		}
		h := http.Header{"Host": {"chat.example.com:8443"}}
		if got, want := fetchHostMeta(t, srv.URL, path, h), "ws://chat.example.com:8443"+WebSocketPath; got != want {
			t.Errorf("%s with Host: href %q, want %q", path, got, want)
		}
		h = http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"xmpp.example.org, inner"}}
		if got, want := fetchHostMeta(t, srv.URL, path, h), "wss://xmpp.example.org"+WebSocketPath; got != want {
			t.Errorf("%s behind a proxy: href %q, want %q", path, got, want)
		}
	}
}

func TestHostMetaHref(t *testing.T) {
	for _, tc := range []struct {
		name    string
		remote  string
		host    string
		tls     bool
		headers map[string]string
		want    string
	}{
		{name: "plain", remote: "203.0.113.9:1", host: "example.com", want: "ws://example.com/xmpp-websocket"},
		{name: "tls", remote: "203.0.113.9:1", host: "example.com", tls: true, want: "wss://example.com/xmpp-websocket"},
		{name: "remote forwarded headers ignored", remote: "203.0.113.9:1", host: "example.com",
			headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, want: "ws://example.com/xmpp-websocket"},
		{name: "loopback proxy", remote: "127.0.0.1:1", host: "127.0.0.1:5280",
			headers: map[string]string{"X-Forwarded-Proto": "HTTPS", "X-Forwarded-Host": "chat.example"}, want: "wss://chat.example/xmpp-websocket"},
		{name: "loopback proxy, plain", remote: "[::1]:1", host: "example.com", tls: true,
			headers: map[string]string{"X-Forwarded-Proto": "http"}, want: "ws://example.com/xmpp-websocket"},
		{name: "ipv6 host", remote: "203.0.113.9:1", host: "[2001:db8::1]:5280", want: "ws://[2001:db8::1]:5280/xmpp-websocket"},
		{name: "bad host", remote: "203.0.113.9:1", host: "a'b", want: ""},
		{name: "bad forwarded host", remote: "127.0.0.1:1", host: "example.com",
			headers: map[string]string{"X-Forwarded-Host": "<x>"}, want: ""},
	} {
		r := httptest.NewRequest("GET", "/.well-known/host-meta", nil)
		r.RemoteAddr = tc.remote
		r.Host = tc.host
		if tc.tls {
			r.TLS = &tls.ConnectionState{HandshakeComplete: true}
		}
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		got, ok := hostMetaHref(r)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	// A bad host is a 400, not a broken document.
	r := httptest.NewRequest("GET", "/.well-known/host-meta", nil)
	r.Host = "a'b"
	w := httptest.NewRecorder()
	HostMeta().ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Errorf("bad host: HTTP %d", w.Code)
	}
}
