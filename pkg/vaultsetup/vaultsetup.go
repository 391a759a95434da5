// Package vaultsetup does the Vault side of ghconnect once, with a token
// allowed to administer Vault (the root token of a new Vault, or an
// operator's admin token): it mounts transit, creates the keys that
// encrypt the Apps' secrets (ghconnect-secrets) and the users' GitHub.com
// tokens (ghconnect-user-tokens), enables AppRole, writes one
// ACL policy per identity from deploy/vault/*.hcl, and creates an AppRole
// per identity whose role_id and secret_id it writes to files. After it,
// no service holds that token: each logs in with its own AppRole.
// Running it again changes nothing that is already right.
package vaultsetup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	vault "github.com/hashicorp/vault/api"
)

// Options say what to set up.
type Options struct {
	// Client calls Vault with the administering token.
	Client *vault.Client
	// PoliciesDir holds <identity>.hcl per identity (deploy/vault).
	PoliciesDir  string
	TransitMount string // default "transit"
	AppRoleMount string // default "approle"
	// TokenTTL and TokenMaxTTL bound the tokens an AppRole login gives
	// (defaults 1 h and 24 h).
	TokenTTL, TokenMaxTTL time.Duration
	// OutDir receives <identity>-role-id and <identity>-secret-id (mode
	// 600). A secret_id file that still logs in is kept.
	OutDir string
}

// Result names what was set up.
type Result struct {
	// Identities are the AppRoles, e.g. "broker" (role "ghconnect-broker").
	Identities []string
	// Mounted and Enabled say whether transit and AppRole were new.
	Mounted, Enabled bool
	// NewSecretIDs lists the identities whose secret_id was (re)issued.
	NewSecretIDs []string
}

// Prefix names every policy and role ghconnect owns.
const Prefix = "ghconnect-"

// Run sets Vault up; it is safe to run again.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Client == nil || o.PoliciesDir == "" || o.OutDir == "" {
		return nil, errors.New("vaultsetup: a client, a policies directory and an output directory are required")
	}
	if o.TransitMount == "" {
		o.TransitMount = "transit"
	}
	if o.AppRoleMount == "" {
		o.AppRoleMount = "approle"
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.TokenMaxTTL <= 0 {
		o.TokenMaxTTL = 24 * time.Hour
	}
	if o.TokenMaxTTL < o.TokenTTL {
		return nil, errors.New("vaultsetup: the token max TTL is below the token TTL")
	}
	policies, err := filepath.Glob(filepath.Join(o.PoliciesDir, "*.hcl"))
	if err != nil || len(policies) == 0 {
		return nil, fmt.Errorf("vaultsetup: no policies (*.hcl) in %s", o.PoliciesDir)
	}
	if err := os.MkdirAll(o.OutDir, 0o700); err != nil {
		return nil, err
	}
	sys := o.Client.Sys()
	res := &Result{}

	mounts, err := sys.ListMountsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vaultsetup: listing secrets engines: %w", err)
	}
	if m, ok := mounts[o.TransitMount+"/"]; !ok {
		if err := sys.MountWithContext(ctx, o.TransitMount, &vault.MountInput{Type: "transit", Description: "ghconnect: GitHub App keys"}); err != nil {
			return nil, fmt.Errorf("vaultsetup: mounting transit at %s: %w", o.TransitMount, err)
		}
		res.Mounted = true
	} else if m.Type != "transit" {
		return nil, fmt.Errorf("vaultsetup: %s/ is a %s engine, not transit", o.TransitMount, m.Type)
	}
	// The keys that encrypt secrets are made here, with the setup's own
	// token: the services may only encrypt and decrypt with them.
	for _, name := range []string{vaulttransit.SecretsKey, vaulttransit.UserTokensKey} {
		path := o.TransitMount + "/keys/" + name
		if k, err := o.Client.Logical().ReadWithContext(ctx, path); err != nil {
			return nil, fmt.Errorf("vaultsetup: reading the key %s: %w", name, err)
		} else if k == nil {
			if _, err := o.Client.Logical().WriteWithContext(ctx, path, map[string]any{"type": "aes256-gcm96"}); err != nil {
				return nil, fmt.Errorf("vaultsetup: creating the key %s: %w", name, err)
			}
		}
	}
	auths, err := sys.ListAuthWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vaultsetup: listing auth methods: %w", err)
	}
	if m, ok := auths[o.AppRoleMount+"/"]; !ok {
		if err := sys.EnableAuthWithOptionsWithContext(ctx, o.AppRoleMount, &vault.EnableAuthOptions{Type: "approle", Description: "ghconnect services"}); err != nil {
			return nil, fmt.Errorf("vaultsetup: enabling AppRole at %s: %w", o.AppRoleMount, err)
		}
		res.Enabled = true
	} else if m.Type != "approle" {
		return nil, fmt.Errorf("vaultsetup: auth/%s is %s, not approle", o.AppRoleMount, m.Type)
	}

	for _, file := range policies {
		identity := strings.TrimSuffix(filepath.Base(file), ".hcl")
		rules, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		// The policies name the mount "transit/"; another mount path gets
		// them rewritten.
		text := string(rules)
		if o.TransitMount != "transit" {
			text = strings.ReplaceAll(text, `path "transit/`, `path "`+o.TransitMount+`/`)
		}
		if err := sys.PutPolicyWithContext(ctx, Prefix+identity, text); err != nil {
			return nil, fmt.Errorf("vaultsetup: writing policy %s%s: %w", Prefix, identity, err)
		}
		role := "auth/" + o.AppRoleMount + "/role/" + Prefix + identity
		if _, err := o.Client.Logical().WriteWithContext(ctx, role, map[string]any{
			"token_policies": []string{Prefix + identity},
			"token_ttl":      int(o.TokenTTL.Seconds()),
			"token_max_ttl":  int(o.TokenMaxTTL.Seconds()),
			"token_type":     "service",
			"secret_id_ttl":  0,
		}); err != nil {
			return nil, fmt.Errorf("vaultsetup: writing AppRole %s%s: %w", Prefix, identity, err)
		}
		sec, err := o.Client.Logical().ReadWithContext(ctx, role+"/role-id")
		if err != nil || sec == nil {
			return nil, fmt.Errorf("vaultsetup: reading the role_id of %s%s: %v", Prefix, identity, err)
		}
		roleID, _ := sec.Data["role_id"].(string)
		roleFile := filepath.Join(o.OutDir, identity+"-role-id")
		secretFile := filepath.Join(o.OutDir, identity+"-secret-id")
		if err := writeSecret(roleFile, roleID); err != nil {
			return nil, err
		}
		if !loginWorks(ctx, o.Client, o.AppRoleMount, roleID, secretFile) {
			sec, err := o.Client.Logical().WriteWithContext(ctx, role+"/secret-id", map[string]any{})
			if err != nil || sec == nil {
				return nil, fmt.Errorf("vaultsetup: issuing a secret_id for %s%s: %v", Prefix, identity, err)
			}
			secretID, _ := sec.Data["secret_id"].(string)
			if err := writeSecret(secretFile, secretID); err != nil {
				return nil, err
			}
			res.NewSecretIDs = append(res.NewSecretIDs, identity)
		}
		res.Identities = append(res.Identities, identity)
	}
	slices.Sort(res.Identities)
	return res, nil
}

// loginWorks says whether the secret_id in file still logs in (the token
// it gets is revoked at once).
func loginWorks(ctx context.Context, admin *vault.Client, mount, roleID, file string) bool {
	raw, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(raw)) == "" {
		return false
	}
	c, err := admin.Clone()
	if err != nil {
		return false
	}
	c.ClearToken()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": strings.TrimSpace(string(raw))})
	if err != nil || sec == nil || sec.Auth == nil {
		return false
	}
	c.SetToken(sec.Auth.ClientToken)
	// The login worked, which is the answer; a token left unrevoked ends
	// with its TTL.
	_ = c.Auth().Token().RevokeSelfWithContext(ctx, "")
	return true
}

func writeSecret(path, value string) error {
	if value == "" {
		return fmt.Errorf("vaultsetup: Vault returned nothing for %s", filepath.Base(path))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(value+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
