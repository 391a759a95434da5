// Command vaultdev runs a development and test Vault: Vault's own server
// core with transit, AppRole, token auth, ACL policies and the file audit
// device, initialised with one unseal key and unsealed on start. Never use
// it in production: its unseal key sits next to its data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ghconnect/ghconnect/dev/vaultdev"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vaultdev:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	fs := flag.NewFlagSet("vaultdev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8200", "listen address (port 0 picks a free one)")
	token := fs.String("root-token", os.Getenv("VAULTDEV_ROOT_TOKEN"), "the root token's ID (default $VAULTDEV_ROOT_TOKEN, else \"root\")")
	tokenFile := fs.String("root-token-file", "", "read the root token's ID from this file instead (containers: a secret file)")
	dataDir := fs.String("data-dir", "", "keep Vault's storage and unseal key here (default: memory only)")
	auditFile := fs.String("audit-file", "", "enable Vault's file audit device writing to this file")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	root, err := rootToken(*token, *tokenFile)
	if err != nil {
		return err
	}
	srv, err := vaultdev.New(ctx, vaultdev.Config{RootToken: root, DataDir: *dataDir, AuditFile: *auditFile})
	if err != nil {
		return err
	}
	if err := srv.Start(*addr); err != nil {
		_ = srv.Close() // the failed start is the error to report
		return err
	}
	// The two lines on stdout: tests and scripts read them.
	fmt.Printf("VAULT_ADDR=%s\nVAULT_UNSEAL_KEY=%s\n", srv.URL(), srv.UnsealKey())
	<-ctx.Done()
	return srv.Close()
}

// rootToken is the root token's ID: from file when given (surrounding
// white space dropped), else the flag's value, else "root".
func rootToken(flagValue, file string) (string, error) {
	if file == "" {
		if flagValue == "" {
			return "root", nil
		}
		return flagValue, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return token, nil
}
