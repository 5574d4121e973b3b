package server

import "net/http"

// websocketHandler serves XMPP over WebSocket (RFC 7395). Not wired yet.
func (s *Server) websocketHandler() http.Handler { return nil }

// hostMetaHandler serves XEP-0156 discovery. Not wired yet.
func (s *Server) hostMetaHandler() http.Handler { return nil }
