package config

import (
	"slices"
	"strings"
	"testing"
)

func TestWebSocketOrigins(t *testing.T) {
	cfg, err := Load([]string{"--websocket-origins", " https://chat.example.org, http://localhost:8080 "}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Origins(); !slices.Equal(got, []string{"https://chat.example.org", "http://localhost:8080"}) {
		t.Errorf("Origins() = %q", got)
	}
	if got := Default().Origins(); got != nil {
		t.Errorf("default Origins() = %q, want none (any origin)", got)
	}
	_, err = Load([]string{"--websocket-origins", "chat.example.org,https://ok.example,https://x.example/path"}, nil)
	if err == nil {
		t.Fatal("invalid origins accepted")
	}
	for _, bad := range []string{`"chat.example.org"`, `"https://x.example/path"`} {
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("error does not name %s: %v", bad, err)
		}
	}
	if strings.Contains(err.Error(), "ok.example") {
		t.Errorf("error names a valid origin: %v", err)
	}
}
