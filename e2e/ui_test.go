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
// Vault that GitHub.com does not accept yet, disabling, gateway down; the
// status of unified contributions before anyone opted in (the user page
// test, TestUserPage, sees it with a person opted in).
// Screenshots land in .artifacts/ui.
func TestAdminUI(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	s := startSystem(t)
	// For the key-rotation step: the runbook's variables (KEY comes from
	// the page's connection).
	_, newPEM, newPub := newKeyPEM(t)
	pemFile := filepath.Join(s.dir, "ui-new-key.pem")
	if err := os.WriteFile(pemFile, []byte(newPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(s.dir, "ui-new-key.pub.pem")
	if err := os.WriteFile(pubFile, []byte(newPub), 0o600); err != nil {
		t.Fatal(err)
	}
	s.runUITest(dir, "ui.test.mjs", "ui", "EMU_URL="+s.emu, "VAULT_ADDR="+s.vault, "CREDS="+filepath.Join(s.dir, "vault-creds"), "NEW_PEM="+pemFile, "NEW_PUB="+pubFile)
}

// uiTestDir is the browser tests' folder; it skips the test (fails it in
// CI) when chromium or playwright-core is missing.
// uiTestDirIf is uiTestDir for a test that checks more than the page:
// "" (the page's checks left out) where uiTestDir would skip.
func uiTestDirIf(t *testing.T) string {
	dir := filepath.Join(repoRoot(), "services", "gateway", "ui", "test")
	_, errChromium := os.Stat("/usr/bin/chromium")
	_, errModules := os.Stat(filepath.Join(dir, "node_modules", "playwright-core"))
	if (errChromium != nil || errModules != nil) && os.Getenv("CI") == "" {
		t.Log("chromium or playwright-core missing: the page's checks are left out (make ui-deps)")
		return ""
	}
	return uiTestDir(t)
}

func uiTestDir(t *testing.T) string {
	dir := filepath.Join(repoRoot(), "services", "gateway", "ui", "test")
	_, errChromium := os.Stat("/usr/bin/chromium")
	_, errModules := os.Stat(filepath.Join(dir, "node_modules", "playwright-core"))
	if errChromium != nil || errModules != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium or playwright-core missing: run `make ui-deps`")
		}
		t.Skip("chromium or playwright-core missing: run `make ui-deps`")
	}
	return dir
}

// runUITest runs one browser test script of dir against the system, its
// screenshots in .artifacts/<artifacts>, env added to what every script
// gets.
func (s *system) runUITest(dir, script, artifacts string, env ...string) {
	t := s.t
	cmd := exec.Command("node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+s.gw, "ADMIN_TOKEN="+s.tokens["admin"], "RUNNER_TOKEN="+s.tokens["runner"], "LICENSE_FILE="+filepath.Join(s.dir, "license"), "GITHUB_API_URL="+s.emu,
		"ARTIFACTS="+filepath.Join(repoRoot(), ".artifacts", artifacts),
		// The gateway serves HTTPS with the system's CA: node trusts the
		// CA, Chromium the gateway's key (it has no CA option).
		"NODE_EXTRA_CA_CERTS="+s.pki.CA(), "GATEWAY_SPKI="+spkiHash(t, s.pki.Cert("gateway")))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser test %s: %v", script, err)
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
