package web

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
)

// NSAltConnectionsWebSocket is the XEP-0156 link relation of an XMPP over
// WebSocket endpoint.
const NSAltConnectionsWebSocket = "urn:xmpp:alt-connections:websocket"

// HostMeta serves XEP-0156 discovery: GET /.well-known/host-meta (XRD, RFC
// 6415) and /.well-known/host-meta.json (JRD) with one link, the WebSocket
// endpoint ws(s)://HOST/xmpp-websocket.
//
// HOST is the request's Host header and the scheme is wss when the request
// came over TLS, ws otherwise. A peer on a loopback address is taken to be a
// reverse proxy on this host (the same rule the WebSocket endpoint uses to
// treat a loopback peer as a TLS terminator): its X-Forwarded-Proto
// ("https" or "wss" → wss, "http" or "ws" → ws) and X-Forwarded-Host are
// honoured, so that a proxy that terminates TLS advertises wss:// and the
// public host name. Those headers are ignored from any other peer. Answers
// vary with these headers (Vary) and may be read by any origin (CORS), as
// XEP-0156 §3.3 asks, since browser clients fetch them cross-origin.
func HostMeta() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		href, ok := hostMetaHref(r)
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Vary", "Host, X-Forwarded-Proto, X-Forwarded-Host")
		if !ok {
			http.Error(w, "bad Host header", http.StatusBadRequest)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".json") {
			h.Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(jrd{Links: []jrdLink{{Rel: NSAltConnectionsWebSocket, Href: href}}})
			return
		}
		h.Set("Content-Type", "application/xrd+xml; charset=utf-8")
		var b strings.Builder
		b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n")
		b.WriteString("<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n")
		b.WriteString("  <Link rel='" + NSAltConnectionsWebSocket + "' href='")
		_ = xml.EscapeText(&b, []byte(href))
		b.WriteString("'/>\n</XRD>\n")
		_, _ = w.Write([]byte(b.String()))
	})
}

type jrd struct {
	Links []jrdLink `json:"links"`
}

type jrdLink struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// hostMetaHref builds the advertised WebSocket URL; false when the host is
// unusable.
func hostMetaHref(r *http.Request) (string, bool) {
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	host := r.Host
	if wsLoopback(wsPeerIP(r)) {
		switch strings.ToLower(firstForwarded(r.Header.Get("X-Forwarded-Proto"))) {
		case "https", "wss":
			scheme = "wss"
		case "http", "ws":
			scheme = "ws"
		}
		if fh := firstForwarded(r.Header.Get("X-Forwarded-Host")); fh != "" {
			host = fh
		}
	}
	if !validHost(host) {
		return "", false
	}
	return scheme + "://" + host + WebSocketPath, true
}

// firstForwarded is the first (client-side) value of a forwarding header.
func firstForwarded(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// validHost accepts host[:port] made of the characters a DNS name, an IPv4
// address or a bracketed IPv6 address can use.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}
