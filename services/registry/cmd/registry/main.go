// Command registry runs the connection-registry service.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/services/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	var cfg registry.Config
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, os.Args[1:], registry.EnvPrefix, &cfg); err != nil {
		return err
	}
	return registry.Run(ctx, cfg)
}
