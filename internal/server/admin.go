package server

import "net/http"

// apiHandler serves the admin REST API. Not wired yet.
func (s *Server) apiHandler() http.Handler { return nil }
