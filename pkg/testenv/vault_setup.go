package testenv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaultsetup"
	vault "github.com/hashicorp/vault/api"
)

// Root is a Vault client holding the root token: for setting Vault up and
// looking from outside, never for a service.
func (v *VaultDev) Root(t testing.TB) *vault.Client {
	t.Helper()
	c, err := v.client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (v *VaultDev) client() (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = v.Addr
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(v.Token)
	return c, nil
}

// VaultCreds is what the setup step hands the services.
type VaultCreds struct {
	Dir  string
	Addr string
}

// Flags are a service's Vault settings for identity ("broker",
// "registry", "operator").
func (c *VaultCreds) Flags(identity string) vaultauth.Flags {
	return vaultauth.Flags{Addr: c.Addr, RoleIDFile: filepath.Join(c.Dir, identity+"-role-id"),
		SecretIDFile: filepath.Join(c.Dir, identity+"-secret-id"), AppRoleMount: "approle"}
}

// Login logs identity in with its AppRole, renewing until the test ends.
func (c *VaultCreds) Login(t testing.TB, identity string) *vaultauth.Session {
	t.Helper()
	f := c.Flags(identity)
	s, err := f.Login(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// Setup runs ghconnect's Vault setup step (deploy/vault policies, AppRoles)
// with the root token; tokenTTL and maxTTL 0 take the defaults.
func (v *VaultDev) Setup(t testing.TB, tokenTTL, maxTTL time.Duration) *VaultCreds {
	t.Helper()
	if v.shared {
		t.Fatal("testenv: the shared Vault is set up once; SharedVault returned its credentials")
	}
	dir := t.TempDir()
	_, err := vaultsetup.Run(context.Background(), vaultsetup.Options{Client: v.Root(t), PoliciesDir: filepath.Join(repoRoot(), "deploy", "vault"),
		TokenTTL: tokenTTL, TokenMaxTTL: maxTTL, OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return &VaultCreds{Dir: dir, Addr: v.Addr}
}

// Seal seals Vault (it answers 503 until Unseal).
func (v *VaultDev) Seal(t testing.TB) {
	t.Helper()
	if v.shared {
		t.Fatal(errShared)
	}
	if err := v.Root(t).Sys().Seal(); err != nil {
		t.Fatal(err)
	}
}

// Unseal unseals Vault with its key.
func (v *VaultDev) Unseal(t testing.TB) {
	t.Helper()
	if v.shared {
		t.Fatal(errShared)
	}
	st, err := v.Root(t).Sys().Unseal(v.UnsealKey)
	if err != nil || st.Sealed {
		t.Fatalf("unseal: %v", err)
	}
}
