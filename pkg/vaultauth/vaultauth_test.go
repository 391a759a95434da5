package vaultauth_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	vault "github.com/hashicorp/vault/api"
)

// appKey makes the App signing key the broker signs with. Vault generates
// it (RSA-2048): importing one, as the registry does, would first make
// Vault generate its RSA-4096 wrapping key, which these tests of logins do
// not need and which took over 30 s on a loaded machine (the vaulttransit
// tests cover importing).
func appKey(t *testing.T, v *testenv.VaultDev) {
	t.Helper()
	if _, err := v.Root(t).Logical().Write("transit/keys/ghconnect-app-k", map[string]any{"type": "rsa-2048"}); err != nil {
		t.Fatal(err)
	}
}

// signLoop signs with the broker's identity every interval until stop,
// across workers, and counts the failures.
func signLoop(s *vaultauth.Session, workers int, every time.Duration, stop <-chan struct{}) (ok, failed *atomic.Int64, firstErr *atomic.Value, wait func()) {
	ok, failed, firstErr = &atomic.Int64{}, &atomic.Int64{}, &atomic.Value{}
	tr := vaulttransit.New(s, "transit")
	digest := sha256.Sum256([]byte("header.payload"))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(every):
				}
				if _, _, err := tr.SignPKCS1v15(context.Background(), "ghconnect-app-k", 0, digest[:]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	return ok, failed, firstErr, wg.Wait
}

// Tokens that live 10 s and at most 30 s, under steady traffic: renewed
// ahead of expiry, replaced by a new login at the maximum, and not one
// request fails. (The broker's test runs the same for two minutes through
// token requests.)
func TestShortLivedTokensUnderTraffic(t *testing.T) {
	t.Parallel()
	length := 65 * time.Second
	if testing.Short() {
		length = 35 * time.Second
	}
	v := testenv.Vault(t)
	creds := v.Setup(t, 10*time.Second, 30*time.Second)
	appKey(t, v)
	s := creds.Login(t, "broker")
	first := s.Client().Token()
	stop := make(chan struct{})
	ok, failed, firstErr, wait := signLoop(s, 4, 25*time.Millisecond, stop)
	time.Sleep(length) // the traffic runs this long: the behaviour under test
	close(stop)
	wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d signs failed; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	// A new login at least every 30 s.
	if want := int64(length/(30*time.Second)) + 1; s.Logins() < want {
		t.Errorf("%d logins in %s, want at least %d", s.Logins(), length, want)
	}
	if s.Client().Token() == first {
		t.Errorf("still on the first token after %s", length)
	}
	t.Logf("%d signs, 0 failed, %d logins in %s", ok.Load(), s.Logins(), length)
}

// A token revoked mid-run: the next call is refused, the service logs in
// again at once, and that call is retried: at most one request fails.
func TestRevokedTokenLogsInAgain(t *testing.T) {
	t.Parallel()
	v := testenv.Vault(t)
	creds := v.Setup(t, 0, 0)
	appKey(t, v)
	s := creds.Login(t, "broker")
	stop := make(chan struct{})
	ok, failed, firstErr, wait := signLoop(s, 4, 10*time.Millisecond, stop)
	time.Sleep(time.Second) // traffic before the revocation
	old := s.Client().Token()
	if err := v.Root(t).Auth().Token().RevokeTree(old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // traffic after the revocation
	close(stop)
	wait()
	if failed.Load() > 1 {
		t.Errorf("%d requests failed after the revocation; first: %v", failed.Load(), firstErr.Load())
	}
	if s.Client().Token() == old || s.Logins() != 2 {
		t.Errorf("token not replaced (logins %d)", s.Logins())
	}
	t.Logf("%d signs, %d failed across the revocation", ok.Load(), failed.Load())
}

// Wrong credentials: the service does not start, and says why.
func TestWrongCredentialsRefuseToStart(t *testing.T) {
	t.Parallel()
	v := testenv.Vault(t)
	creds := v.Setup(t, 0, 0)
	ctx := context.Background()

	f := creds.Flags("broker")
	bad := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(bad, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.SecretIDFile = bad
	_, err := f.Login(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "AppRole at auth/approle login") || !strings.Contains(err.Error(), "-vault-secret-id-file") {
		t.Errorf("wrong secret_id: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "00000000-0000") {
		t.Errorf("the error quotes the secret_id")
	}
	f = creds.Flags("broker")
	f.RoleIDFile = filepath.Join(t.TempDir(), "missing")
	if _, err := f.Login(ctx, nil); err == nil || !strings.Contains(err.Error(), "role_id") {
		t.Errorf("missing role_id file: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("hvs.not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&vaultauth.Flags{Addr: v.Addr, TokenFile: tokenFile}).Login(ctx, nil); err == nil || !strings.Contains(err.Error(), "not accepted") {
		t.Errorf("wrong token file: %v", err)
	}
	for _, f := range []vaultauth.Flags{
		{Addr: v.Addr},
		{Addr: v.Addr, RoleIDFile: "r"},
		{Addr: v.Addr, RoleIDFile: "r", SecretIDFile: "s", TokenFile: "t"},
		{RoleIDFile: "r", SecretIDFile: "s"},
	} {
		if f.Validate() == nil {
			t.Errorf("accepted %+v", f)
		}
	}
}

// A token file kept fresh by Vault Agent: a new token in the file is used
// without a restart.
func TestTokenFileIsReread(t *testing.T) {
	t.Parallel()
	v := testenv.Vault(t)
	v.Setup(t, 0, 0)
	appKey(t, v)
	mint := func() string {
		sec, err := v.Root(t).Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"ghconnect-broker"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	file := filepath.Join(t.TempDir(), "token")
	first := mint()
	if err := os.WriteFile(file, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := (&vaultauth.Flags{Addr: v.Addr, TokenFile: file}).Login(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.PollEvery = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	tr := vaulttransit.New(s, "transit")
	digest := sha256.Sum256([]byte("x"))
	if _, _, err := tr.SignPKCS1v15(ctx, "ghconnect-app-k", 0, digest[:]); err != nil {
		t.Fatal(err)
	}
	// Vault Agent writes a new token and the old one goes away.
	second := mint()
	if err := os.WriteFile(file+".new", []byte(second+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	if err := v.Root(t).Auth().Token().RevokeTree(first); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.SignPKCS1v15(ctx, "ghconnect-app-k", 0, digest[:]); err != nil {
		t.Fatalf("after the token file changed: %v", err)
	}
	if s.Client().Token() != second {
		t.Errorf("the new token is not in use")
	}
}
