package vaultauth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHealthFollowsVault: the session's health check, and the metrics the
// alerts read, say unsealed, sealed and unreachable as Vault is, and its
// logins are counted.
func TestHealthFollowsVault(t *testing.T) {
	t.Parallel()
	v := testenv.Vault(t)
	creds := v.Setup(t, 0, 0)
	// Logged in without Run: no check in the background may answer
	// between the test's own.
	f := creds.Flags("broker")
	s, err := f.Login(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if h := s.CheckHealth(ctx); !h.Up() || h.Sealed || !h.Reachable || h.Error != "" {
		t.Fatalf("unsealed Vault: %+v", h)
	}
	if testenv.Sample(t, reg, "ghconnect_vault_up") != 1 || testenv.Sample(t, reg, "ghconnect_vault_sealed") != 0 {
		t.Fatal("unsealed Vault: metrics say otherwise")
	}
	if n := testenv.Sample(t, reg, "ghconnect_vault_logins_total", "outcome", "ok"); n < 1 {
		t.Errorf("logins ok: %v, want at least the first", n)
	}

	v.Seal(t)
	if h := s.CheckHealth(ctx); h.Up() || !h.Sealed || !h.Reachable {
		t.Fatalf("sealed Vault: %+v", h)
	}
	if testenv.Sample(t, reg, "ghconnect_vault_up") != 0 || testenv.Sample(t, reg, "ghconnect_vault_sealed") != 1 {
		t.Fatal("sealed Vault: metrics say otherwise")
	}
	v.Unseal(t)
	if h := s.CheckHealth(ctx); !h.Up() {
		t.Fatalf("unsealed again: %+v", h)
	}

	// Nothing listening: unreachable, not sealed.
	gone, err := vaultauth.WithToken("http://127.0.0.1:1", "x")
	if err != nil {
		t.Fatal(err)
	}
	if h := gone.CheckHealth(ctx); h.Up() || h.Sealed || h.Reachable || !strings.Contains(h.Error, "did not answer") {
		t.Fatalf("no Vault: %+v", h)
	}
	if h := gone.Health(); h.Checked.IsZero() || h.Reachable {
		t.Fatalf("Health after a check: %+v", h)
	}
}
