package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAdminUI drives the admin page in Debian's chromium (playwright-core)
// against the whole system: sign-in, validation, enabling through the
// GitHub emulator, feature toggles and a refusal, a key version imported in
// Vault that GitHub.com does not accept yet, disabling, gateway down.
// Screenshots land in .artifacts/ui.
func TestAdminUI(t *testing.T) {
	dir := filepath.Join(repoRoot(), "services", "gateway", "ui", "test")
	_, errChromium := os.Stat("/usr/bin/chromium")
	_, errModules := os.Stat(filepath.Join(dir, "node_modules", "playwright-core"))
	if errChromium != nil || errModules != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium or playwright-core missing: run `make ui-deps`")
		}
		t.Skip("chromium or playwright-core missing: run `make ui-deps`")
	}
	s := startSystem(t)
	artifacts := filepath.Join(repoRoot(), ".artifacts", "ui")
	cmd := exec.Command("node", "ui.test.mjs")
	cmd.Dir = dir
	// For the key-rotation step: the runbook's variables (KEY comes from
	// the page's connection).
	_, newPEM, _ := newKeyPEM(t)
	pemFile := filepath.Join(s.dir, "ui-new-key.pem")
	if err := os.WriteFile(pemFile, []byte(newPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+s.gw, "ADMIN_TOKEN="+s.tokens["admin"], "LICENSE_FILE="+filepath.Join(s.dir, "license"), "ARTIFACTS="+artifacts,
		"VAULT_ADDR="+s.vault, "CREDS="+filepath.Join(s.dir, "vault-creds"), "NEW_PEM="+pemFile)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser test: %v", err)
	}
}
