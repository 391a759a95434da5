// Command vaultdev runs a development and test Vault serving Vault's transit
// engine. Never use it in production: it has one root token and no seal.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
	token := fs.String("root-token", os.Getenv("VAULTDEV_ROOT_TOKEN"), "the root token (default $VAULTDEV_ROOT_TOKEN, else \"root\")")
	dataDir := fs.String("data-dir", "", "persist mounts and keys here (default: memory only)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *token == "" {
		*token = "root"
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv, err := vaultdev.New(ctx, vaultdev.Config{RootToken: *token, DataDir: *dataDir, Logger: logger})
	if err != nil {
		return err
	}
	if err := srv.Start(*addr); err != nil {
		return err
	}
	// The one line on stdout: tests and scripts read the address from it.
	fmt.Printf("VAULT_ADDR=%s\n", srv.URL())
	<-ctx.Done()
	return srv.Close()
}
