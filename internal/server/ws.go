package server

import (
	"net/http"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/internal/listener"
	"github.com/parley-im/parley/internal/web"
)

// websocketHandler serves XMPP over WebSocket (RFC 7395): the same c2s
// sessions as the TCP listeners, sharing their connection limits and drain.
// See internal/web/ws.go for the transport, the framing and the rule that
// decides when a WebSocket session counts as secure.
func (s *Server) websocketHandler() http.Handler {
	return web.WebSocket(web.WebSocketConfig{
		NewSession: func(tr c2s.Transport, codec c2s.Codec) (listener.Session, error) {
			return c2s.New(s.sessCfg, tr, codec), nil
		},
		NewBinaryCodec:      func(max int) c2s.Codec { return newBinCodec(max) },
		MaxStanzaSize:       s.cfg.MaxStanzaSize,
		IdleTimeout:         s.cfg.IdleTimeout,
		WriteTimeout:        s.cfg.WriteTimeout,
		RequireSecure:       s.cfg.StartTLSRequired,
		Tracker:             s.tracker,
		MaxConnections:      s.cfg.MaxConnections,
		MaxConnectionsPerIP: s.cfg.MaxConnectionsPerIP,
		Logger:              s.log,
		AllowedOrigins:      s.cfg.Origins(),
	})
}

// hostMetaHandler serves XEP-0156 discovery of the WebSocket endpoint.
func (s *Server) hostMetaHandler() http.Handler { return web.HostMeta() }
