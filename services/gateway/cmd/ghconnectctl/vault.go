package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaultsetup"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	vault "github.com/hashicorp/vault/api"
)

// vaultSetup does the Vault side once with an administering token: transit,
// AppRole, one policy and one AppRole per identity, credentials in files.
func vaultSetup(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("vault-setup", flag.ContinueOnError)
	addr := fs.String("vault-addr", os.Getenv("VAULT_ADDR"), "Vault address (default $VAULT_ADDR)")
	tokenFile := fs.String("vault-token-file", "", "file holding a token allowed to administer Vault (used for setup only; no service gets it)")
	policies := fs.String("policies", "deploy/vault", "folder of the ACL policies, one <identity>.hcl each")
	out := fs.String("out", "", "folder to write <identity>-role-id and <identity>-secret-id into (mode 600)")
	transit := fs.String("transit-mount", "transit", "transit mount path")
	approle := fs.String("approle-mount", "approle", "AppRole auth method path")
	ttl := fs.Duration("token-ttl", time.Hour, "TTL of the tokens an AppRole login gives")
	maxTTL := fs.Duration("token-max-ttl", 24*time.Hour, "maximum TTL of those tokens (then the service logs in again)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *tokenFile == "" || *out == "" {
		return errors.New("vault-setup: -vault-addr, -vault-token-file and -out are required")
	}
	raw, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	cfg := vault.DefaultConfig()
	cfg.Address = *addr
	client, err := vault.NewClient(cfg)
	if err != nil {
		return err
	}
	client.SetToken(strings.TrimSpace(string(raw)))
	res, err := vaultsetup.Run(ctx, vaultsetup.Options{Client: client, PoliciesDir: *policies, TransitMount: *transit, AppRoleMount: *approle,
		TokenTTL: *ttl, TokenMaxTTL: *maxTTL, OutDir: *out})
	if err != nil {
		return err
	}
	for _, id := range res.Identities {
		state := "kept its secret_id"
		if slices.Contains(res.NewSecretIDs, id) {
			state = "new secret_id"
		}
		fmt.Fprintf(stdout, "AppRole %s%s (policy %s%s): %s; credentials in %s/%s-role-id and %s-secret-id\n",
			vaultsetup.Prefix, id, vaultsetup.Prefix, id, state, *out, id, id)
	}
	return nil
}

// rotateInVault imports the new key version straight into Vault as the
// operator, then waits until the registry has adopted it (GitHub.com
// accepts it) or says it is waiting for GitHub.com.
func rotateInVault(ctx context.Context, c *client, operator *vaultauth.Flags, id string, key []byte, wait time.Duration, stdout io.Writer) error {
	var one struct {
		Connection struct {
			TransitKey struct {
				Mount          string  `json:"mount"`
				Name           string  `json:"name"`
				Versions       []int32 `json:"versions"`
				PendingVersion int32   `json:"pendingVersion"`
				Notice         string  `json:"notice"`
			} `json:"transitKey"`
		} `json:"connection"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/connections/"+id, nil, &one); err != nil {
		return err
	}
	tk := one.Connection.TransitKey
	if tk.Name == "" {
		return errors.New("rotate-key: the connection has no App key")
	}
	session, err := operator.Login(ctx, nil)
	if err != nil {
		return err
	}
	version, _, err := vaulttransit.New(session, tk.Mount).ImportKeyVersion(ctx, tk.Name, key)
	if err != nil {
		return fmt.Errorf("rotate-key: %w", err)
	}
	fmt.Fprintf(stdout, "imported version %d of %s into Vault; waiting for the registry to check it with GitHub.com…\n", version, tk.Name)
	deadline := time.Now().Add(wait)
	for {
		if err := c.do(ctx, http.MethodGet, "/v1/connections/"+id, nil, &one); err != nil {
			return err
		}
		tk = one.Connection.TransitKey
		switch {
		case slices.ContainsFunc(tk.Versions, func(v int32) bool { return int(v) == version }):
			fmt.Fprintf(stdout, "version %d signs now (versions in use: %v); retire older versions in Vault once GitHub.com no longer needs them\n", version, tk.Versions)
			return nil
		case int(tk.PendingVersion) == version:
			fmt.Fprintf(stdout, "%s\n", tk.Notice)
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("rotate-key: the registry has not looked at version %d yet; see ghconnectctl status later", version)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
