package vaultsetup_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaultsetup"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	vault "github.com/hashicorp/vault/api"
)

func newPEM(t *testing.T) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// The policies in deploy/vault, proved at their edges against Vault's own
// ACL enforcement: each identity does its work and is refused the rest.
func TestPolicyEdges(t *testing.T) {
	v := testenv.Vault(t)
	creds := v.Setup(t, 0, 0)
	ctx := context.Background()
	registry := creds.Login(t, "registry")
	broker := creds.Login(t, "broker")
	operator := creds.Login(t, "operator")

	// The registry's whole job: import, configure, sign, secrets, list.
	rt := vaulttransit.New(registry, "transit")
	if _, err := rt.ImportKey(ctx, "ghconnect-app-c1", newPEM(t)); err != nil {
		t.Fatalf("registry import: %v", err)
	}
	// The setup step made the secrets key: the registry only uses it.
	secret, err := rt.Encrypt(ctx, "ghconnect-secrets", []byte("client-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rt.Decrypt(ctx, "ghconnect-secrets", secret); err != nil || string(pt) != "client-secret" {
		t.Fatalf("registry decrypt: %v", err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, _, err := rt.SignPKCS1v15(ctx, "ghconnect-app-c1", 0, digest[:]); err != nil {
		t.Fatalf("registry sign: %v", err)
	}
	if keys, err := rt.ListKeys(ctx); err != nil || !slices.Contains(keys, "ghconnect-app-c1") {
		t.Fatalf("registry list: %v %v", keys, err)
	}
	// The operator imports a version and retires the old one.
	ot := vaulttransit.New(operator, "transit")
	if ver, _, err := ot.ImportKeyVersion(ctx, "ghconnect-app-c1", newPEM(t)); err != nil || ver != 2 {
		t.Fatalf("operator import_version: %d %v", ver, err)
	}
	if err := ot.RetireVersionsBelow(ctx, "ghconnect-app-c1", 2); err != nil {
		t.Fatalf("operator retire: %v", err)
	}
	// The broker signs and reads versions.
	bt := vaulttransit.New(broker, "transit")
	if _, ver, err := bt.SignPKCS1v15(ctx, "ghconnect-app-c1", 0, digest[:]); err != nil || ver != 2 {
		t.Fatalf("broker sign: %d %v", ver, err)
	}
	if info, err := bt.Key(ctx, "ghconnect-app-c1"); err != nil || info.Latest != 2 {
		t.Fatalf("broker read: %v %v", info, err)
	}
	// The broker reads the App's client secret and keeps users' tokens
	// with a key of their own.
	if pt, err := bt.Decrypt(ctx, "ghconnect-secrets", secret); err != nil || string(pt) != "client-secret" {
		t.Fatalf("broker decrypt of the client secret: %v", err)
	}
	userToken, err := bt.Encrypt(ctx, "ghconnect-user-tokens", []byte("ghu_example"))
	if err != nil {
		t.Fatalf("broker encrypt a user token: %v", err)
	}
	if pt, err := bt.Decrypt(ctx, "ghconnect-user-tokens", userToken); err != nil || string(pt) != "ghu_example" {
		t.Fatalf("broker decrypt a user token: %v", err)
	}

	wrapped := base64.StdEncoding.EncodeToString(make([]byte, 600))
	sign := map[string]any{"input": base64.StdEncoding.EncodeToString(digest[:]), "prehashed": true, "signature_algorithm": "pkcs1v15", "hash_algorithm": "sha2-256"}
	type call struct {
		what, op, path string
		data           map[string]any
	}
	denied := map[string][]call{
		"broker": {
			{"export", "GET", "transit/export/signing-key/ghconnect-app-c1", nil},
			{"import a key", "PUT", "transit/keys/ghconnect-app-c9/import", map[string]any{"ciphertext": wrapped, "type": "rsa-2048"}},
			{"import a version", "PUT", "transit/keys/ghconnect-app-c1/import_version", map[string]any{"ciphertext": wrapped}},
			{"configure", "PUT", "transit/keys/ghconnect-app-c1/config", map[string]any{"deletion_allowed": true}},
			{"delete", "DELETE", "transit/keys/ghconnect-app-c1", nil},
			{"encrypt with the secrets key", "PUT", "transit/encrypt/ghconnect-secrets", map[string]any{"plaintext": "eA=="}},
			{"read the wrapping key", "GET", "transit/wrapping_key", nil},
			{"sign with a key that is not ghconnect's", "PUT", "transit/sign/other", sign},
			{"back up a key", "GET", "transit/backup/ghconnect-app-c1", nil},
			{"write a policy", "PUT", "sys/policies/acl/mine", map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`}},
		},
		"registry": {
			{"export", "GET", "transit/export/signing-key/ghconnect-app-c1", nil},
			{"make a key exportable", "PUT", "transit/keys/ghconnect-app-c1/config", map[string]any{"exportable": true}},
			{"allow a plaintext backup", "PUT", "transit/keys/ghconnect-app-c1/config", map[string]any{"allow_plaintext_backup": true}},
			{"import an exportable key", "PUT", "transit/keys/ghconnect-app-c8/import", map[string]any{"ciphertext": wrapped, "type": "rsa-2048", "exportable": true}},
			{"back up a key", "GET", "transit/backup/ghconnect-app-c1", nil},
			{"decrypt with another key", "PUT", "transit/decrypt/other", map[string]any{"ciphertext": secret}},
			{"read the secrets key", "GET", "transit/keys/ghconnect-secrets", nil},
			{"allow deleting the secrets key", "PUT", "transit/keys/ghconnect-secrets/config", map[string]any{"deletion_allowed": true}},
			{"delete the secrets key", "DELETE", "transit/keys/ghconnect-secrets", nil},
			{"rotate the secrets key", "PUT", "transit/keys/ghconnect-secrets/rotate", nil},
			{"trim the secrets key", "PUT", "transit/keys/ghconnect-secrets/trim", map[string]any{"min_available_version": 1}},
			{"retire the secrets key's versions", "PUT", "transit/keys/ghconnect-secrets/config", map[string]any{"min_decryption_version": 2}},
			{"import a version of the secrets key", "PUT", "transit/keys/ghconnect-secrets/import_version", map[string]any{"ciphertext": wrapped}},
			{"create a key that is not an App key", "PUT", "transit/keys/ghconnect-other", map[string]any{"type": "aes256-gcm96"}},
			{"sign with the secrets key", "PUT", "transit/sign/ghconnect-secrets", sign},
			{"decrypt a user's token", "PUT", "transit/decrypt/ghconnect-user-tokens", map[string]any{"ciphertext": userToken}},
			{"encrypt with the user-token key", "PUT", "transit/encrypt/ghconnect-user-tokens", map[string]any{"plaintext": "eA=="}},
		},
		"operator": {
			{"sign", "PUT", "transit/sign/ghconnect-app-c1", sign},
			{"export", "GET", "transit/export/signing-key/ghconnect-app-c1", nil},
			{"delete", "DELETE", "transit/keys/ghconnect-app-c1", nil},
			{"allow deletion", "PUT", "transit/keys/ghconnect-app-c1/config", map[string]any{"deletion_allowed": true}},
			{"make a key exportable", "PUT", "transit/keys/ghconnect-app-c1/config", map[string]any{"exportable": true}},
			{"decrypt the App's client secret", "PUT", "transit/decrypt/ghconnect-secrets", map[string]any{"ciphertext": secret}},
			{"import a new App key", "PUT", "transit/keys/ghconnect-app-c7/import", map[string]any{"ciphertext": wrapped, "type": "rsa-2048"}},
			{"import a new key of the default type", "PUT", "transit/keys/ghconnect-app-c7/import", map[string]any{"ciphertext": wrapped}},
			{"create a key", "PUT", "transit/keys/ghconnect-app-c7", map[string]any{"type": "rsa-2048"}},
			{"plant a secrets key", "PUT", "transit/keys/ghconnect-secrets/import", map[string]any{"ciphertext": wrapped}},
			{"rotate an App key", "PUT", "transit/keys/ghconnect-app-c1/rotate", nil},
			{"trim an App key", "PUT", "transit/keys/ghconnect-app-c1/trim", map[string]any{"min_available_version": 2}},
			{"import a version of the secrets key", "PUT", "transit/keys/ghconnect-secrets/import_version", map[string]any{"ciphertext": wrapped}},
			{"configure the secrets key", "PUT", "transit/keys/ghconnect-secrets/config", map[string]any{"min_decryption_version": 1}},
			{"read the secrets key", "GET", "transit/keys/ghconnect-secrets", nil},
			{"decrypt a user's token", "PUT", "transit/decrypt/ghconnect-user-tokens", map[string]any{"ciphertext": userToken}},
		},
	}
	sessions := map[string]*vaultauth.Session{"broker": broker, "registry": registry, "operator": operator}
	for who, calls := range denied {
		for _, c := range calls {
			_, err := raw(ctx, sessions[who].Client(), c.op, c.path, c.data)
			if !vaultauth.IsPermissionDenied(err) {
				t.Errorf("%s may %s (%s %s): %v", who, c.what, c.op, c.path, err)
			}
		}
	}
	// import_version reaches only a key that exists: the operator makes
	// no new key with it.
	if _, err := raw(ctx, operator.Client(), "PUT", "transit/keys/ghconnect-app-nope/import_version", map[string]any{"ciphertext": wrapped}); err == nil {
		t.Errorf("the operator's import_version made a new key")
	}
	if k, err := raw(ctx, v.Root(t), "GET", "transit/keys/ghconnect-app-nope", nil); err != nil || k != nil {
		t.Errorf("a key ghconnect-app-nope exists: %v %v", k, err)
	}
	// The secrets key is whole after all of it: one version, still
	// decrypting what the registry encrypted.
	if k, err := raw(ctx, v.Root(t), "GET", "transit/keys/ghconnect-secrets", nil); err != nil || k == nil || fmt.Sprint(k.Data["latest_version"]) != "1" {
		t.Errorf("the secrets key changed: %v %v", k, err)
	}
	if pt, err := rt.Decrypt(ctx, "ghconnect-secrets", secret); err != nil || string(pt) != "client-secret" {
		t.Errorf("registry decrypt after the refusals: %v", err)
	}
	// Nobody can export: the key is not exportable, even for root.
	if _, err := raw(ctx, v.Root(t), "GET", "transit/export/signing-key/ghconnect-app-c1", nil); err == nil {
		t.Errorf("root exported the App key")
	} else if vaultauth.IsPermissionDenied(err) {
		t.Errorf("root's export was refused by a policy, not because the key is not exportable: %v", err)
	}
	// No service token carries the root policy.
	for who, s := range sessions {
		self, err := s.Client().Auth().Token().LookupSelf()
		if err != nil {
			t.Fatal(err)
		}
		policies, _ := self.TokenPolicies()
		if slices.Contains(policies, "root") || !slices.Contains(policies, "ghconnect-"+who) {
			t.Errorf("%s's token has policies %v", who, policies)
		}
	}
}

func raw(ctx context.Context, c *vault.Client, op, path string, data map[string]any) (*vault.Secret, error) {
	switch op {
	case "GET":
		return c.Logical().ReadWithContext(ctx, path)
	case "DELETE":
		return c.Logical().DeleteWithContext(ctx, path)
	}
	return c.Logical().WriteWithContext(ctx, path, data)
}

// Running the setup again keeps the AppRoles and the secret_ids that still
// log in.
func TestSetupTwice(t *testing.T) {
	v := testenv.Vault(t)
	dir := t.TempDir()
	opts := vaultsetup.Options{Client: v.Root(t), PoliciesDir: filepath.Join(testenv.RepoRoot(), "deploy", "vault"), OutDir: dir}
	first, err := vaultsetup.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// vaultdev mounts transit itself; AppRole is new.
	if !first.Enabled || len(first.NewSecretIDs) != 3 || !slices.Equal(first.Identities, []string{"broker", "operator", "registry"}) {
		t.Errorf("first run: %+v", first)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "broker-secret-id"))
	again, err := vaultsetup.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "broker-secret-id"))
	if again.Mounted || again.Enabled || len(again.NewSecretIDs) != 0 || string(before) != string(after) {
		t.Errorf("second run changed things: %+v", again)
	}
	if fi, err := os.Stat(filepath.Join(dir, "broker-secret-id")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret_id file mode: %v", err)
	}
	// A secret_id that no longer logs in is replaced.
	if err := os.WriteFile(filepath.Join(dir, "broker-secret-id"), []byte("not-a-secret-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := vaultsetup.Run(context.Background(), opts)
	if err != nil || !slices.Equal(third.NewSecretIDs, []string{"broker"}) {
		t.Errorf("third run: %+v %v", third, err)
	}
	// Bad input changes nothing.
	if _, err := vaultsetup.Run(context.Background(), vaultsetup.Options{Client: v.Root(t), PoliciesDir: t.TempDir(), OutDir: dir}); err == nil {
		t.Errorf("setup without policies succeeded")
	}
}
