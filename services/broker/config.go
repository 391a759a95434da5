package broker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/loadecho"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/registrywatch"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
)

// Config is the broker's configuration; every field has a flag and a
// GHCONNECT_BROKER_* environment variable. Secrets are files.
type Config struct {
	GRPCAddr string
	HTTPAddr string
	// Callers authenticate with bearer tokens or client certificates.
	Callers auth.Callers
	// PolicyFile holds the per-caller policy (JSON).
	PolicyFile string
	// Vault: the broker's own login (AppRole or a Vault Agent token file).
	Vault        vaultauth.Flags
	GitHubURL    string
	GitHubWebURL string
	// DatabaseURL keeps server users' GitHub.com grants; empty turns user
	// authorization off.
	DatabaseURL       string
	RegistryAddr      string
	RegistryTokenFile string
	// Dial is the TLS of the calls to the registry.
	Dial      dial.Flags
	CacheSize int
	// BrokerAddr (every broker of the deployment, as the other services
	// dial them) and FleetSelf (this one among them) make the brokers one
	// fleet (FleetOptions).
	BrokerAddr string
	FleetSelf  string
	Log        logging.Options
	// LoadtestEcho serves the load tests' baseline (pkg/loadecho) to
	// token clients.
	LoadtestEcho bool
}

// EnvPrefix prefixes the broker's environment variables.
const EnvPrefix = "GHCONNECT_BROKER"

// RegisterFlags binds c to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:7002", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:7102", "listen address of /metrics, /healthz and /readyz (empty: none)")
	c.Callers.RegisterFlags(fs)
	fs.StringVar(&c.PolicyFile, "policy", "", "per-caller token policy (JSON); callers not in it get nothing")
	c.Vault.RegisterFlags(fs, "http://127.0.0.1:8200")
	fs.StringVar(&c.GitHubURL, "github-url", "https://api.github.com/", "GitHub API base URL (GitHub.com, GHE.com, GHES or the emulator)")
	fs.StringVar(&c.GitHubWebURL, "github-web-url", "https://github.com/", "GitHub web host: user authorization pages and the OAuth token endpoint (GitHub.com, or the emulator)")
	fs.StringVar(&c.DatabaseURL, "database", "", `users' GitHub.com grants: "sqlite:PATH" or "postgres://…" (PostgreSQL for several replicas); empty: user authorization off`)
	fs.StringVar(&c.RegistryAddr, "registry-addr", "127.0.0.1:7001", "connection-registry gRPC address")
	fs.StringVar(&c.RegistryTokenFile, "registry-token-file", "", "file holding the bearer token for the registry (not needed with -dial-cert)")
	c.Dial.RegisterFlags(fs)
	fs.IntVar(&c.CacheSize, "cache-size", DefaultCacheSize, "most shared tokens kept")
	fs.StringVar(&c.BrokerAddr, "broker-addr", "", `every broker of this deployment, this one included, as the other services dial them: "host:port,host:port" or "dns:///name:port" (the headless Service); each connection then has one broker that exchanges its tokens and signs its JWTs, and the others ask it (over mutual TLS with -dial-cert, else with -registry-token-file's service token); empty: this broker works alone`)
	fs.StringVar(&c.FleetSelf, "fleet-self", "", "this broker's address as -broker-addr lists it: host:port, or a host (its pod's IP) and -grpc-addr's port")
	c.Log.RegisterFlags(fs)
	fs.BoolVar(&c.LoadtestEcho, "loadtest-echo", false, "serve ghconnect.loadtest.v1.EchoService to token clients: the baseline of make loadtest (a reply of any size up to 1 MiB, and nothing else)")
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Callers.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Vault.Validate(); err != nil {
		errs = append(errs, err)
	}
	for name, v := range map[string]string{"grpc-addr": c.GRPCAddr, "policy": c.PolicyFile, "github-url": c.GitHubURL, "registry-addr": c.RegistryAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("-%s is required", name))
		}
	}
	if err := c.Dial.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RegistryTokenFile == "" && !c.Dial.HasCert() {
		errs = append(errs, errors.New("-registry-token-file or -dial-cert is required"))
	}
	if (c.BrokerAddr != "") != (c.FleetSelf != "") {
		errs = append(errs, errors.New("-broker-addr and -fleet-self go together"))
	}
	if c.BrokerAddr != "" && !c.Dial.HasCert() && c.RegistryTokenFile == "" {
		errs = append(errs, errors.New("-broker-addr needs -dial-cert (or -registry-token-file, the broker's service token): the brokers of a fleet call each other as principal broker"))
	}
	if c.CacheSize < 1 || c.CacheSize >= MaxCacheSize {
		errs = append(errs, fmt.Errorf("-cache-size must be between 1 and %d", MaxCacheSize-1))
	}
	return errors.Join(errs...)
}

// Run serves the broker until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	ctx, logger, end, err := server.Begin(ctx, "broker", cfg.Log)
	if err != nil {
		return err
	}
	defer end()
	guard, grpcOpts, tlsFiles, err := cfg.Callers.Load()
	if err != nil {
		return err
	}
	defer tlsFiles.Close()
	policy, err := LoadPolicy(cfg.PolicyFile)
	if err != nil {
		return err
	}
	if err := policy.GrantRoles(guard.Rules); err != nil {
		return err
	}
	vaultSession, err := cfg.Vault.Login(ctx, logger)
	if err != nil {
		return err
	}
	dialer, err := dial.New(cfg.Dial)
	if err != nil {
		return err
	}
	defer dialer.Close()
	conn, err := dialer.Dial(cfg.RegistryAddr, cfg.RegistryTokenFile)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer logging.Close(logger, "the registry connection", conn)

	var db *sqldb.DB
	if cfg.DatabaseURL != "" {
		if db, err = OpenDatabase(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		defer logging.Close(logger, "the database", db)
	}
	srv := server.New(server.Options{Logger: logger, Guard: guard, Audited: AuditedMethods, RequestChecks: RequestChecks, ExtraGRPCOptions: grpcOpts})
	b, err := New(Options{Vault: vaultSession, GitHubURL: cfg.GitHubURL, GitHubWebURL: cfg.GitHubWebURL, Database: db, Policy: policy, CacheSize: cfg.CacheSize, Registerer: srv.Registry,
		Fleet: FleetOptions{Peers: cfg.BrokerAddr, Self: fleetSelf(cfg.FleetSelf, cfg.GRPCAddr), TokenFile: peerToken(cfg)}, Dialer: dialer})
	if err != nil {
		return err
	}
	NewServer(b).Register(srv)
	if err := vaultSession.Register(srv.Registry); err != nil {
		return err
	}
	if err := tlsFiles.RegisterExpiry(srv.Registry, "server"); err != nil {
		return err
	}
	if cfg.LoadtestEcho {
		if err := loadecho.Register(srv.GRPC, guard.Rules, "token-client"); err != nil {
			return err
		}
	}
	grpcLis, httpLis, err := server.Listen(cfg.GRPCAddr, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go vaultSession.Run(bg)
	follower := &registrywatch.Follower{Client: registryv1.NewConnectionRegistryServiceClient(conn), After: b.RegistryRevision, Apply: b.ApplyRegistryEvent}
	go follower.Run(bg)
	ran := make(chan struct{})
	go func() { defer close(ran); b.Run(bg) }()
	err = srv.Serve(ctx, grpcLis, httpLis)
	// Graceful stop: the calls have returned; Run writes out their audit
	// events before it returns.
	stop()
	<-ran
	return err
}

// fleetSelf is -fleet-self with -grpc-addr's port when it names a host
// only (a pod's IP, from the downward API).
func fleetSelf(self, grpcAddr string) string {
	if self == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(self); err == nil {
		return self
	}
	if _, port, err := net.SplitHostPort(grpcAddr); err == nil {
		return net.JoinHostPort(self, port)
	}
	return self
}

// peerToken is the bearer token a broker shows the others of its fleet:
// its service token, when it has no client certificate.
func peerToken(cfg Config) string {
	if cfg.Dial.HasCert() {
		return ""
	}
	return cfg.RegistryTokenFile
}
