package featuregate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"flag"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Config is the feature gate's configuration; every field has a flag and a
// GHCONNECT_FEATUREGATE_* environment variable.
type Config struct {
	GRPCAddr    string
	HTTPAddr    string
	DatabaseURL string
	TokensFile  string
	// RegistryAddr is the registry's gRPC address; RegistryTokenFile holds
	// the bearer token the gate watches it with.
	RegistryAddr      string
	RegistryTokenFile string
	Log               logging.Options
}

// EnvPrefix prefixes the feature gate's environment variables.
const EnvPrefix = "GHCONNECT_FEATUREGATE"

// RegisterFlags binds c to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:7003", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:7103", "listen address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&c.DatabaseURL, "database", "sqlite:.data/featuregate.db", `"sqlite:PATH" or "postgres://…"`)
	fs.StringVar(&c.TokensFile, "tokens-file", "", `file of "<principal> sha256:<hex>" lines: the bearer tokens accepted`)
	fs.StringVar(&c.RegistryAddr, "registry-addr", "127.0.0.1:7001", "connection-registry gRPC address")
	fs.StringVar(&c.RegistryTokenFile, "registry-token-file", "", "file holding the bearer token for the registry")
	c.Log.RegisterFlags(fs)
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	for flagName, v := range map[string]string{"grpc-addr": c.GRPCAddr, "database": c.DatabaseURL, "tokens-file": c.TokensFile, "registry-addr": c.RegistryAddr, "registry-token-file": c.RegistryTokenFile} {
		if v == "" {
			errs = append(errs, fmt.Errorf("-%s is required", flagName))
		}
	}
	return errors.Join(errs...)
}

// Run serves the feature gate until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	logger, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer logger.Sync()
	logger = logger.With(zap.String("service", "featuregate"))
	ctx = logging.WithLogger(ctx, logger)
	authn, err := auth.LoadTokenFile(cfg.TokensFile)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(cfg.RegistryTokenFile)
	if err != nil {
		return fmt.Errorf("registry token: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	store, err := OpenStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()
	conn, err := grpc.NewClient(cfg.RegistryAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()

	gate := NewServer(store)
	srv := server.New(server.Options{Logger: logger, Auth: authn})
	gate.Register(srv)
	grpcLis, httpLis, err := server.Listen(cfg.GRPCAddr, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go FollowRegistry(bg, registryv1.NewConnectionRegistryServiceClient(conn), token, store)
	go gate.Follow(bg)
	return srv.Serve(ctx, grpcLis, httpLis)
}
