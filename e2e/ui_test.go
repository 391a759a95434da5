package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
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
		"VAULT_ADDR="+s.vault, "CREDS="+filepath.Join(s.dir, "vault-creds"), "NEW_PEM="+pemFile,
		// The gateway serves HTTPS with the system's CA: node trusts the
		// CA, Chromium the gateway's key (it has no CA option).
		"NODE_EXTRA_CA_CERTS="+s.pki.CA(), "GATEWAY_SPKI="+spkiHash(t, s.pki.Cert("gateway")))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser test: %v", err)
	}
}

// spkiHash is the base64 SHA-256 of a certificate's public key, as
// Chromium's --ignore-certificate-errors-spki-list takes it.
func spkiHash(t *testing.T, certFile string) string {
	block, _ := pem.Decode([]byte(readFile(t, certFile)))
	if block == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
