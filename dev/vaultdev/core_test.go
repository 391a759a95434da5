package vaultdev_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/vaultdev"
	"github.com/hashicorp/vault/api"
)

func signInput() map[string]any {
	d := sha256.Sum256([]byte("header.payload"))
	return map[string]any{"input": base64.StdEncoding.EncodeToString(d[:]), "prehashed": true, "hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"}
}

// Vault's own ACL enforcement: a sign-only identity signs and is refused
// everything else with 403 "permission denied".
func TestPolicyDenials(t *testing.T) {
	s := vaultdev.StartForTest(t, vaultdev.Config{})
	root := client(t, s, "root")
	_, pemKey := githubStyleKey(t)
	if _, err := root.Logical().Write("transit/keys/app-1/import", map[string]any{"ciphertext": wrapForImport(t, root, "transit", pemKey), "type": "rsa-2048", "hash_function": "SHA256"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("transit/keys/secrets", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	ct, err := root.Logical().Write("transit/encrypt/secrets", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("client secret"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("signer", `
path "transit/sign/app-*" { capabilities = ["update"] }
path "transit/keys/app-*" { capabilities = ["read"] }
`); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"signer"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	signer := client(t, s, tok.Auth.ClientToken)
	if _, err := signer.Logical().Write("transit/sign/app-1", signInput()); err != nil {
		t.Fatalf("signer cannot sign: %v", err)
	}
	if k, err := signer.Logical().Read("transit/keys/app-1"); err != nil || k == nil {
		t.Fatalf("signer cannot read the key: %v", err)
	}
	for what, call := range map[string]func() error{
		"export": func() error { _, err := signer.Logical().Read("transit/export/signing-key/app-1"); return err },
		"import_version": func() error {
			_, err := signer.Logical().Write("transit/keys/app-1/import_version", map[string]any{"ciphertext": "AAAA"})
			return err
		},
		"delete": func() error { _, err := signer.Logical().Delete("transit/keys/app-1"); return err },
		"decrypt": func() error {
			_, err := signer.Logical().Write("transit/decrypt/secrets", map[string]any{"ciphertext": ct.Data["ciphertext"]})
			return err
		},
		"wrapping key": func() error { _, err := signer.Logical().Read("transit/wrapping_key"); return err },
	} {
		if err := call(); statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("signer's %s: %v", what, err)
		}
	}
}

// Tokens expire, renew up to their maximum, and are then refused.
func TestTokenTTLAndRenewal(t *testing.T) {
	s := vaultdev.StartForTest(t, vaultdev.Config{})
	root := client(t, s, "root")
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "3s", ExplicitMaxTTL: "8s"})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Auth.LeaseDuration != 3 || !sec.Auth.Renewable {
		t.Fatalf("token: ttl %d renewable %v", sec.Auth.LeaseDuration, sec.Auth.Renewable)
	}
	c := client(t, s, sec.Auth.ClientToken)
	for range 3 {
		time.Sleep(2 * time.Second)
		if _, err := c.Auth().Token().RenewSelf(3); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
	// Past the 8 s maximum nothing renews it.
	time.Sleep(3 * time.Second)
	if _, err := c.Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Errorf("after the max TTL: %v", err)
	}
}

// Kubernetes auth (Vault Agent's login in a cluster): it mounts, keeps its
// config and roles, and refuses a login whose token is no JWT before it
// asks any API server. The login itself, checked with a real API server's
// TokenReview, runs in make k8s-test.
func TestKubernetesAuth(t *testing.T) {
	s := vaultdev.StartForTest(t, vaultdev.Config{})
	root := client(t, s, "root")
	if err := root.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/config", map[string]any{"kubernetes_host": "https://127.0.0.1:1", "disable_local_ca_jwt": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/role/svc", map[string]any{"bound_service_account_names": "svc",
		"bound_service_account_namespaces": "ghconnect", "audience": "vault", "token_policies": "svc", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	role, err := root.Logical().Read("auth/kubernetes/role/svc")
	if err != nil || role == nil || role.Data["audience"] != "vault" || fmt.Sprint(role.Data["bound_service_account_names"]) != "[svc]" {
		t.Fatalf("role: %v %v", role, err)
	}
	anon := client(t, s, "")
	if _, err := anon.Logical().Write("auth/kubernetes/login", map[string]any{"role": "svc", "jwt": "not-a-jwt"}); statusOf(err) != http.StatusBadRequest && statusOf(err) != http.StatusForbidden {
		t.Errorf("login with a malformed token: %v", err)
	}
}

// AppRole: a role with its policies and TTLs; login through vault/api.
func TestAppRoleLogin(t *testing.T) {
	s := vaultdev.StartForTest(t, vaultdev.Config{})
	root := client(t, s, "root")
	if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("svc", `path "transit/sign/*" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/svc", map[string]any{"token_policies": "svc", "token_ttl": "60s", "token_max_ttl": "120s"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/svc/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/approle/role/svc/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := client(t, s, "")
	anon.ClearToken()
	login, err := anon.Logical().Write("auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]})
	if err != nil {
		t.Fatal(err)
	}
	if login.Auth.LeaseDuration != 60 || !login.Auth.Renewable || !slices.Contains(login.Auth.TokenPolicies, "svc") {
		t.Errorf("login: %+v", login.Auth)
	}
	// The token carries the role's policy: it signs, and nothing more.
	app := client(t, s, login.Auth.ClientToken)
	self, err := app.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := self.TokenTTL(); ttl <= 0 || ttl > 60*time.Second {
		t.Errorf("approle token TTL %v", ttl)
	}
	if pols, _ := self.TokenPolicies(); !slices.Contains(pols, "svc") {
		t.Errorf("approle token policies %v", pols)
	}
	if _, err := root.Logical().Write("transit/keys/app", map[string]any{"type": "rsa-2048"}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Logical().Write("transit/sign/app", signInput()); err != nil {
		t.Errorf("approle token cannot sign: %v", err)
	}
	if _, err := app.Logical().Read("transit/keys/app"); statusOf(err) != http.StatusForbidden {
		t.Errorf("approle token reads the key: %v", err)
	}
	// A wrong secret ID is a 400 in Vault 1.19, not a 403.
	if _, err := anon.Logical().Write("auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": "wrong"}); statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "invalid role or secret ID") {
		t.Errorf("wrong secret_id: %v", err)
	}
}

// Sealed: 503 for everything but health and unseal; unsealed with the
// key, old tokens and keys work again.
func TestSealAndUnseal(t *testing.T) {
	s := vaultdev.StartForTest(t, vaultdev.Config{})
	root := client(t, s, "root")
	if _, err := root.Logical().Write("transit/keys/app", map[string]any{"type": "rsa-2048"}); err != nil {
		t.Fatal(err)
	}
	tok, _ := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	if h, err := root.Sys().Health(); err != nil || !h.Sealed {
		t.Errorf("health while sealed: %+v %v", h, err)
	}
	// Sealed, Vault 1.19 also reports itself as a standby in sys/health.
	if _, err := root.Logical().Write("transit/sign/app", signInput()); statusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Errorf("sign while sealed: %v", err)
	}
	if st, err := root.Sys().Unseal(s.UnsealKey()); err != nil || st.Sealed {
		t.Fatalf("unseal: %v", err)
	}
	var err error
	for range 50 {
		if _, err = root.Logical().Write("transit/sign/app", signInput()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("sign after unseal: %v", err)
	}
	if _, err := client(t, s, tok.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Errorf("a token from before the seal: %v", err)
	}
}

// The file audit device: one response entry per request, values HMAC'd.
func TestAuditFile(t *testing.T) {
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.log")
	s := vaultdev.StartForTest(t, vaultdev.Config{AuditFile: audit, RootToken: "audit-root-token-7f3a9c"})
	root := client(t, s, "audit-root-token-7f3a9c")
	_, pemKey := githubStyleKey(t)
	wrapped := wrapForImport(t, root, "transit", pemKey)
	if _, err := root.Logical().Write("transit/keys/app/import", map[string]any{"ciphertext": wrapped, "type": "rsa-2048", "hash_function": "SHA256"}); err != nil {
		t.Fatal(err)
	}
	in := signInput()
	if _, err := root.Logical().Write("transit/sign/app", in); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	signs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "response" && e.Request.Path == "transit/sign/app" {
			signs++
		}
	}
	if signs != 1 {
		t.Errorf("%d sign responses in the audit log, want 1", signs)
	}
	for _, secret := range []string{in["input"].(string), wrapped[:40], "audit-root-token-7f3a9c", strings.Split(string(pemKey), "\n")[1]} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit log holds %.12s… in the clear", secret)
		}
	}
}
