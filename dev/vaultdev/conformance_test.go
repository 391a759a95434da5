package vaultdev_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/vaultdev"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/tink/go/kwp/subtle"
	"github.com/hashicorp/vault/api"
)

func client(t *testing.T, s *vaultdev.Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.URL()
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// githubStyleKey makes an RSA key and its PEM the way GitHub hands out App
// keys: PKCS#1.
func githubStyleKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// wrapForImport converts a PKCS#1 PEM to PKCS#8 and wraps it for transit's
// BYOK import: RSA-OAEP(SHA-256) of a fresh AES-256 key, then AES-KWP of
// the key material under it.
func wrapForImport(t *testing.T, c *api.Client, mount string, pkcs1PEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(pkcs1PEM)
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := c.Logical().Read(mount + "/wrapping_key")
	if err != nil {
		t.Fatal(err)
	}
	wblock, _ := pem.Decode([]byte(wk.Data["public_key"].(string)))
	wpub, err := x509.ParsePKIXPublicKey(wblock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	kwp, err := subtle.NewKWP(aesKey)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := kwp.Wrap(pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	encKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, wpub.(*rsa.PublicKey), aesKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(append(encKey, wrapped...))
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var vaultSig = regexp.MustCompile(`^vault:v([0-9]+):([A-Za-z0-9_-]+)$`)

// signJWT signs an App-style JWT through transit with the given key version
// (0: the newest) and returns the token and the version Vault used.
func signJWT(c *api.Client, mount, key string, version int) (string, string, error) {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix(), "iss": "12345"})
	input := header + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	req := map[string]any{
		"input":                base64.StdEncoding.EncodeToString(digest[:]),
		"prehashed":            true,
		"hash_algorithm":       "sha2-256",
		"signature_algorithm":  "pkcs1v15",
		"marshaling_algorithm": "jws",
	}
	if version > 0 {
		req["key_version"] = version
	}
	resp, err := c.Logical().Write(mount+"/sign/"+key, req)
	if err != nil {
		return "", "", err
	}
	m := vaultSig.FindStringSubmatch(resp.Data["signature"].(string))
	if m == nil {
		return "", "", errors.New("unexpected signature format " + resp.Data["signature"].(string))
	}
	return input + "." + m[2], m[1], nil
}

func verifies(token string, pub *rsa.PublicKey) bool {
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{"RS256"}))
	return err == nil && parsed.Valid
}

func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestTransitConformance(t *testing.T) {
	var logged syncBuffer
	s := vaultdev.StartForTest(t, vaultdev.Config{RootToken: "s3cret-root", Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	c := client(t, s, "s3cret-root")
	if err := c.Sys().Mount("gh-transit", &api.MountInput{Type: "transit", Description: "GitHub App keys"}); err != nil {
		t.Fatal(err)
	}
	mounts, err := c.Sys().ListMounts()
	if err != nil || mounts["gh-transit/"] == nil || mounts["gh-transit/"].Type != "transit" {
		t.Fatalf("mounts: %v %v", mounts, err)
	}

	k1, pem1 := githubStyleKey(t)
	if _, err := c.Logical().Write("gh-transit/keys/app-1/import", map[string]any{
		"ciphertext": wrapForImport(t, c, "gh-transit", pem1), "type": "rsa-2048", "hash_function": "SHA256",
		"exportable": false, "allow_rotation": true,
	}); err != nil {
		t.Fatalf("import: %v", err)
	}
	tok, ver, err := signJWT(c, "gh-transit", "app-1", 0)
	if err != nil || ver != "1" || !verifies(tok, &k1.PublicKey) {
		t.Fatalf("sign v1: version %q err %v verifies %v", ver, err, verifies(tok, &k1.PublicKey))
	}

	k2, pem2 := githubStyleKey(t)
	if _, err := c.Logical().Write("gh-transit/keys/app-1/import_version", map[string]any{
		"ciphertext": wrapForImport(t, c, "gh-transit", pem2), "hash_function": "SHA256",
	}); err != nil {
		t.Fatalf("import_version: %v", err)
	}
	for _, tc := range []struct {
		version int
		key     *rsa.PublicKey
		other   *rsa.PublicKey
	}{{1, &k1.PublicKey, &k2.PublicKey}, {2, &k2.PublicKey, &k1.PublicKey}} {
		tok, ver, err := signJWT(c, "gh-transit", "app-1", tc.version)
		if err != nil || ver != strconv.Itoa(tc.version) {
			t.Fatalf("sign v%d: %q %v", tc.version, ver, err)
		}
		if !verifies(tok, tc.key) || verifies(tok, tc.other) {
			t.Errorf("v%d signature verifies with the wrong key", tc.version)
		}
	}
	if _, ver, _ := signJWT(c, "gh-transit", "app-1", 0); ver != "2" {
		t.Errorf("default version %s, want the newest (2)", ver)
	}

	// Verify through transit too.
	digest := sha256.Sum256([]byte("x"))
	sig, err := c.Logical().Write("gh-transit/sign/app-1", map[string]any{"input": base64.StdEncoding.EncodeToString(digest[:]), "prehashed": true, "hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Logical().Write("gh-transit/verify/app-1", map[string]any{"input": base64.StdEncoding.EncodeToString(digest[:]), "prehashed": true, "hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15", "signature": sig.Data["signature"]})
	if err != nil || v.Data["valid"] != true {
		t.Errorf("verify: %v %v", v, err)
	}

	// Retire version 1.
	if _, err := c.Logical().Write("gh-transit/keys/app-1/config", map[string]any{"min_encryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	// Vault 1.19's transit refuses to sign with a version below
	// min_encryption_version, and answers that with a 500 (its error is
	// not marked as a user error): "requested version for signing is less
	// than the minimum encryption key version".
	if _, _, err := signJWT(c, "gh-transit", "app-1", 1); statusOf(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "less than the minimum encryption key version") {
		t.Errorf("sign with retired version: %v", err)
	}
	if _, _, err := signJWT(c, "gh-transit", "app-1", 2); err != nil {
		t.Errorf("sign with version 2 after retiring 1: %v", err)
	}

	// Export is refused: the key is not exportable.
	if _, err := c.Logical().Read("gh-transit/export/signing-key/app-1"); statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "not exportable") {
		t.Errorf("export: %v", err)
	}

	// LIST, by verb and by ?list=true.
	keys, err := c.Logical().List("gh-transit/keys")
	// The wrapping key lives under "import/", and Vault lists it too.
	if err != nil || keys == nil || fmt.Sprint(keys.Data["keys"]) != "[app-1 import/]" {
		t.Errorf("list: %v %v", keys, err)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/v1/gh-transit/keys?list=true", nil)
	req.Header.Set("X-Vault-Token", "s3cret-root")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("GET ?list=true: %v %v", res, err)
	}
	var listed struct {
		Data struct{ Keys []string } `json:"data"`
	}
	err = json.NewDecoder(res.Body).Decode(&listed)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(listed.Data.Keys) != "[app-1 import/]" {
		t.Errorf("GET ?list=true keys: %v", listed.Data.Keys)
	}

	// Deletion needs deletion_allowed.
	if _, err := c.Logical().Delete("gh-transit/keys/app-1"); statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "deletion is not allowed") {
		t.Errorf("delete without deletion_allowed: %v", err)
	}
	if _, err := c.Logical().Write("gh-transit/keys/app-1/config", map[string]any{"deletion_allowed": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Delete("gh-transit/keys/app-1"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got, err := c.Logical().Read("gh-transit/keys/app-1"); got != nil || err != nil {
		t.Errorf("read after delete: %v %v", got, err)
	}

	// Unknown key: Vault answers 400 "signing key not found".
	if _, _, err := signJWT(c, "gh-transit", "nope", 0); statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "signing key not found") {
		t.Errorf("unknown key: %v", err)
	}
	// Wrong and missing tokens: 403 permission denied.
	for _, tok := range []string{"wrong", ""} {
		bad := client(t, s, tok)
		if tok == "" {
			bad.ClearToken()
		}
		_, err := bad.Logical().Read("gh-transit/wrapping_key")
		if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	// Unmounting removes the engine and its keys.
	if err := c.Sys().Unmount("gh-transit"); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", s.URL()+"/v1/gh-transit/wrapping_key", nil)
	req.Header.Set("X-Vault-Token", "s3cret-root")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("after unmount: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	// Only transit is there to mount (and kv, built into Vault's core).
	if err := c.Sys().Mount("db", &api.MountInput{Type: "database"}); statusOf(err) != http.StatusBadRequest {
		t.Errorf("mounting database: %v", err)
	}
	// Vault logs that refusal as an error, through Config.Logger.
	if l := logged.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "plugin not found in the catalog: database") || strings.Contains(l, "s3cret-root") {
		t.Errorf("Vault's log: %s", l)
	}
	health, err := c.Sys().Health()
	if err != nil || !health.Initialized || health.Sealed {
		t.Errorf("health: %v %v", health, err)
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.log")
	cfg := vaultdev.Config{RootToken: "persistent-root", DataDir: filepath.Join(dir, "vault"), AuditFile: auditLog}
	s := vaultdev.StartForTest(t, cfg)
	c := client(t, s, cfg.RootToken)
	k, pemKey := githubStyleKey(t)
	if _, err := c.Logical().Write("transit/keys/app-1/import", map[string]any{"ciphertext": wrapForImport(t, c, "transit", pemKey), "type": "rsa-2048", "hash_function": "SHA256"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().PutPolicy("signer", `path "transit/sign/app-*" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/approle/role/svc", map[string]any{"token_policies": "signer", "token_ttl": "5m"}); err != nil {
		t.Fatal(err)
	}
	roleID, err := c.Logical().Read("auth/approle/role/svc/role-id")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"signer"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	unsealKey := s.UnsealKey()
	s.Close()

	// unseal.json is private and holds the unseal key and nothing else.
	uf := filepath.Join(cfg.DataDir, "unseal.json")
	if fi, err := os.Stat(uf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("unseal.json: %v %v", fi, err)
	}
	var stored map[string]any
	if raw, err := os.ReadFile(uf); err != nil || json.Unmarshal(raw, &stored) != nil || len(stored) != 1 || stored["unseal_key"] != unsealKey {
		t.Errorf("unseal.json holds %d fields, err %v", len(stored), err)
	}

	s2 := vaultdev.StartForTest(t, cfg)
	if s2.UnsealKey() != unsealKey {
		t.Errorf("the unseal key changed across the restart")
	}
	c2 := client(t, s2, cfg.RootToken)
	// The imported key, with the root token kept in Vault's storage.
	if jwt, _, err := signJWT(c2, "transit", "app-1", 0); err != nil || !verifies(jwt, &k.PublicKey) {
		t.Fatalf("after restart: %v", err)
	}
	// The policy.
	if p, err := c2.Sys().GetPolicy("signer"); err != nil || !strings.Contains(p, "transit/sign/app-*") {
		t.Errorf("policy after restart: %q %v", p, err)
	}
	// The token made before, with its policy.
	if _, _, err := signJWT(client(t, s2, tok.Auth.ClientToken), "transit", "app-1", 0); err != nil {
		t.Errorf("a token from before the restart: %v", err)
	}
	// The AppRole role: same role ID, and a login with a new secret ID.
	if rid, err := c2.Logical().Read("auth/approle/role/svc/role-id"); err != nil || rid.Data["role_id"] != roleID.Data["role_id"] {
		t.Errorf("role-id after restart: %v %v", rid, err)
	}
	sid, err := c2.Logical().Write("auth/approle/role/svc/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := client(t, s2, "")
	anon.ClearToken()
	login, err := anon.Logical().Write("auth/approle/login", map[string]any{"role_id": roleID.Data["role_id"], "secret_id": sid.Data["secret_id"]})
	if err != nil || login.Auth.LeaseDuration != 300 || !slices.Contains(login.Auth.TokenPolicies, "signer") {
		t.Errorf("approle login after restart: %v %v", login, err)
	}
	// The audit device was enabled once and is still there, still writing.
	if devices, err := c2.Sys().ListAudit(); err != nil || len(devices) != 1 || devices["file/"] == nil {
		t.Errorf("audit devices after restart: %v %v", devices, err)
	}
	if raw, err := os.ReadFile(auditLog); err != nil || !strings.Contains(string(raw), `"path":"auth/approle/login"`) {
		t.Errorf("the audit log after restart lacks the login: %v", err)
	}
	s2.Close()

	// Another root token than the data was made with is refused up front.
	if _, err := vaultdev.New(context.Background(), vaultdev.Config{RootToken: "another-root", DataDir: cfg.DataDir}); err == nil || !strings.Contains(err.Error(), "not the one") || strings.Contains(err.Error(), "another-root") {
		t.Errorf("wrong root token on restart: %v", err)
	}

	// Nothing on disk holds the key in the clear.
	der := x509.MarshalPKCS1PrivateKey(k)
	err = filepath.WalkDir(dir, func(f string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(f); bytes.Contains(b, der[len(der)-64:]) || bytes.Contains(b, []byte(cfg.RootToken)) {
				t.Errorf("%s holds raw key bytes or the root token", f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without a data dir nothing survives.
	m := vaultdev.StartForTest(t, vaultdev.Config{})
	if got, _ := client(t, m, "root").Logical().Read("transit/keys/app-1"); got != nil {
		t.Errorf("memory server knows a key it never saw")
	}
}

func TestBinaryPrintsAddress(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vaultdev")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/vaultdev").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-root-token", "bin-root-7c1e9a")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err, stderr.String())
	}
	startup := time.Since(started)
	t.Logf("ready in %v", startup)
	if startup > 3*time.Second {
		t.Errorf("startup took %v", startup)
	}
	addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "VAULT_ADDR=")
	if !ok || !regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+$`).MatchString(addr) {
		t.Fatalf("first line %q", line)
	}
	line, _ = r.ReadString('\n')
	key, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "VAULT_UNSEAL_KEY=")
	if _, err := base64.StdEncoding.DecodeString(key); !ok || key == "" || err != nil {
		t.Fatalf("second line %q", line)
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, _ := api.NewClient(cfg)
	c.SetToken("bin-root-7c1e9a")
	if _, err := c.Logical().Read("transit/wrapping_key"); err != nil {
		t.Fatalf("binary at %s: %v", addr, err)
	}
	if err := c.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Sys().Unseal(key); err != nil || st.Sealed {
		t.Fatalf("unsealing with the printed key: %v", err)
	}
	// SIGINT stops it cleanly, and stdout had nothing else.
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v\n%s", err, stderr.String())
	}
	if len(rest) != 0 {
		t.Errorf("more on stdout: %q", rest)
	}
	if strings.Contains(stderr.String(), "bin-root-7c1e9a") || strings.Contains(stderr.String(), key) {
		t.Errorf("stderr shows the root token or the unseal key: %s", stderr.String())
	}
}
