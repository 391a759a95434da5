package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminUIHealth: the admin page's health panel in Chromium, healthy,
// with the emulator failing and with Vault sealed
// (services/gateway/ui/test/health.test.mjs; screenshots in
// .artifacts/ui-health).
func TestAdminUIHealth(t *testing.T) {
	t.Parallel() // its own system, Vault included: sealing it touches no other test
	dir := uiTestDir(t)
	s := startSystem(t)
	s.enabledWithAToken()
	s.runUITest(dir, "health.test.mjs", "ui-health", "VAULT_ADDR="+s.vault, "VAULT_TOKEN="+s.tokens["vault"], "VAULT_UNSEAL_KEY="+s.vaultUnsealKey())
}

// vaultUnsealKey is the key vaultdev printed when it started.
func (s *system) vaultUnsealKey() string {
	raw, err := os.ReadFile(filepath.Join(s.dir, "vaultdev.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if k, ok := strings.CutPrefix(l, "VAULT_UNSEAL_KEY="); ok {
			return strings.TrimSpace(k)
		}
	}
	s.t.Fatal("vaultdev printed no unseal key")
	return ""
}
