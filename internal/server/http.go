package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"

	"github.com/parley-im/parley/internal/web"
)

// RunFile is the file in the data directory that tells local tools (the
// `parley user` commands) how to reach a running server: its HTTP address
// and process id. It exists while the server runs.
const RunFile = "run.json"

// RunInfo is the content of RunFile.
type RunInfo struct {
	HTTP string `json:"http"`
	PID  int    `json:"pid"`
}

func (s *Server) writeRunFile() error {
	_, _, h := s.Addrs()
	b, err := json.Marshal(RunInfo{HTTP: h, PID: os.Getpid()})
	if err != nil {
		return err
	}
	p := filepath.Join(s.cfg.Data, RunFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (s *Server) removeRunFile() { _ = os.Remove(filepath.Join(s.cfg.Data, RunFile)) }

// httpHandler assembles the HTTP side; each part is built in its own file.
func (s *Server) httpHandler() http.Handler {
	return web.New(web.Config{
		Logger:    s.log,
		Ready:     s.ready.Load,
		Metrics:   s.metricsHandler(),
		WebSocket: s.websocketHandler(),
		HostMeta:  s.hostMetaHandler(),
		API:       s.apiHandler(),
		Dashboard: web.Dashboard(),
	})
}
