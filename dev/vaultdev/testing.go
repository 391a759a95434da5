package vaultdev

import (
	"context"
	"testing"
)

// StartForTest starts a server on a loopback port for the test's duration.
// An empty RootToken becomes "root".
func StartForTest(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.RootToken == "" {
		cfg.RootToken = "root"
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Logf("vaultdev: closing: %v", err)
		}
	})
	return s
}
