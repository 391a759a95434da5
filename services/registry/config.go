package registry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"go.uber.org/zap"
)

// Config is the registry's configuration; every field has a flag and a
// GHCONNECT_REGISTRY_* environment variable.
type Config struct {
	GRPCAddr string
	HTTPAddr string
	// DatabaseURL is "sqlite:PATH" (default) or "postgres://…".
	DatabaseURL string
	// TokensFile lists the bearer tokens (as SHA-256) of admins and
	// services.
	TokensFile string
	// LicenseIssuersFile lists the Ed25519 keys licenses must be signed by.
	LicenseIssuersFile string
	Log                logging.Options
}

// EnvPrefix prefixes the registry's environment variables.
const EnvPrefix = "GHCONNECT_REGISTRY"

// RegisterFlags binds cfg to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:7001", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:7101", "listen address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&c.DatabaseURL, "database", "sqlite:.data/registry.db", `"sqlite:PATH" or "postgres://…"`)
	fs.StringVar(&c.TokensFile, "tokens-file", "", `file of "<principal> sha256:<hex>" lines: the bearer tokens accepted`)
	fs.StringVar(&c.LicenseIssuersFile, "license-issuers", "", "file of trusted license issuer keys (base64 Ed25519, one per line)")
	c.Log.RegisterFlags(fs)
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("-grpc-addr is required"))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("-database is required"))
	}
	if c.TokensFile == "" {
		errs = append(errs, errors.New("-tokens-file is required: the registry never runs unauthenticated"))
	}
	if c.LicenseIssuersFile == "" {
		errs = append(errs, errors.New("-license-issuers is required"))
	}
	return errors.Join(errs...)
}

// Run serves the registry until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	logger, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer logger.Sync()
	logger = logger.With(zap.String("service", "registry"))
	ctx = logging.WithLogger(ctx, logger)

	authn, err := auth.LoadTokenFile(cfg.TokensFile)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(cfg.LicenseIssuersFile)
	if err != nil {
		return fmt.Errorf("license issuers: %w", err)
	}
	issuers, err := ParseIssuerKeys(string(raw))
	if err != nil {
		return fmt.Errorf("license issuers %s: %w", cfg.LicenseIssuersFile, err)
	}
	store, err := OpenStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()

	srv := server.New(server.Options{Logger: logger, Auth: authn})
	NewServer(store, issuers).Register(srv)
	grpcLis, httpLis, err := server.Listen(cfg.GRPCAddr, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, grpcLis, httpLis)
}
