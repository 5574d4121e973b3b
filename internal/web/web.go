// Package web is Parley's HTTP side: XMPP over WebSocket (RFC 7395) and its
// discovery (XEP-0156 host-meta), the admin REST API, the embedded admin
// dashboard, Prometheus metrics and the health endpoints, all on the one
// HTTP listener. It owns routing, authentication of the admin surface and
// the HTTP-level limits; the server supplies the operations behind them.
package web

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// Config assembles the HTTP surface. Handlers left nil answer 404.
type Config struct {
	Logger *slog.Logger
	// Ready reports whether the server accepts traffic (/readyz).
	Ready func() bool
	// Metrics serves /metrics.
	Metrics http.Handler
	// WebSocket serves /xmpp-websocket.
	WebSocket http.Handler
	// HostMeta serves /.well-known/host-meta and host-meta.json.
	HostMeta http.Handler
	// API serves /api/ (it checks the admin token itself).
	API http.Handler
	// Dashboard serves /admin/.
	Dashboard http.Handler
}

// New returns the HTTP handler for the server's HTTP listener.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if cfg.Ready != nil && !cfg.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	handle := func(pattern string, h http.Handler) {
		if h != nil {
			mux.Handle(pattern, h)
		}
	}
	handle("GET /metrics", cfg.Metrics)
	handle("/xmpp-websocket", cfg.WebSocket)
	handle("GET /.well-known/host-meta", cfg.HostMeta)
	handle("GET /.well-known/host-meta.json", cfg.HostMeta)
	handle("/api/", cfg.API)
	handle("/admin/", cfg.Dashboard)
	mux.Handle("GET /admin", http.RedirectHandler("/admin/", http.StatusMovedPermanently))
	return securityHeaders(mux)
}

// securityHeaders sets the headers every response should carry.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// ErrorBody is the one shape of every JSON error the HTTP side returns.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: a stable machine-readable code
// (bad_request, unauthorized, not_found, conflict, …) and a message for
// people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError writes a JSON error of the one shape.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
