package registry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Config is the registry's configuration; every field has a flag and a
// GHCONNECT_REGISTRY_* environment variable.
type Config struct {
	GRPCAddr string
	HTTPAddr string
	// DatabaseURL is "sqlite:PATH" (default) or "postgres://…".
	DatabaseURL string
	// Callers authenticate with bearer tokens or client certificates.
	Callers auth.Callers
	// LicenseIssuersFile lists the Ed25519 keys licenses must be signed by.
	LicenseIssuersFile string
	// ServerHostname and ServerVersion are the server's own, required:
	// every connection records them, as on GHES (no request names them).
	// LicenseFile is the server's license, used when a request brings
	// none.
	ServerHostname string
	ServerVersion  string
	LicenseFile    string
	// Enabling and disconnecting GitHub Connect need Vault and GitHub; the
	// broker and feature gate addresses make disconnect revoke tokens and
	// wait for features to be off.
	// Vault: the registry's own login (AppRole or a Vault Agent token
	// file); no address turns enabling off.
	Vault        vaultauth.Flags
	TransitMount string
	// KeyCheckEvery is how often the App keys' versions in Vault are
	// compared with the record (a rotation done in Vault is followed).
	KeyCheckEvery    time.Duration
	GitHubURL        string
	GitHubWebURL     string
	BrokerAddr       string
	FeatureGateAddr  string
	ServiceTokenFile string
	// Dial is the TLS of the calls to the broker and the feature gate.
	Dial           dial.Flags
	ReconcileEvery time.Duration
	OrphanKeyGrace time.Duration
	// LeaderRetry is how often a replica that does not hold a lease (the
	// reconciler's, the key follower's) tries to take it; on PostgreSQL
	// only one replica at a time runs those loops.
	LeaderRetry time.Duration
	Log         logging.Options
	// crash: only in a test build (go build -tags crashpoints), where a
	// crash test ends the process after a step.
	crash crashConfig
}

// EnvPrefix prefixes the registry's environment variables.
const EnvPrefix = "GHCONNECT_REGISTRY"

// RegisterFlags binds cfg to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:7001", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:7101", "listen address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&c.DatabaseURL, "database", "sqlite:.data/registry.db", `"sqlite:PATH" or "postgres://…"`)
	c.Callers.RegisterFlags(fs)
	fs.StringVar(&c.LicenseIssuersFile, "license-issuers", "", "file of trusted license issuer keys (base64 Ed25519, one per line)")
	fs.StringVar(&c.ServerHostname, "server-hostname", "", "this server's hostname, recorded by its connection (required)")
	fs.StringVar(&c.ServerVersion, "server-version", "", "this server's version, recorded by its connection (required)")
	fs.StringVar(&c.LicenseFile, "license-file", "", "this server's license file, the default of new connections")
	c.Vault.RegisterFlags(fs, "")
	fs.StringVar(&c.TransitMount, "transit-mount", "transit", "Vault transit mount holding the App keys")
	fs.StringVar(&c.GitHubURL, "github-url", "https://api.github.com/", "GitHub API base URL")
	fs.StringVar(&c.GitHubWebURL, "github-web-url", "https://github.com", "GitHub web URL browsers are sent to")
	fs.StringVar(&c.BrokerAddr, "broker-addr", "", "token-broker gRPC address, to revoke tokens on disconnect")
	fs.StringVar(&c.FeatureGateAddr, "featuregate-addr", "", "feature-gate gRPC address, to confirm features are off on disconnect")
	fs.StringVar(&c.ServiceTokenFile, "service-token-file", "", "file holding the registry's bearer token for the broker and feature gate (not needed with -dial-cert)")
	c.Dial.RegisterFlags(fs)
	fs.DurationVar(&c.KeyCheckEvery, "key-check-every", 30*time.Second, "how often a new App key version imported in Vault is looked for")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", time.Minute, "how often interrupted disconnects and orphan keys are looked for")
	fs.DurationVar(&c.OrphanKeyGrace, "orphan-key-grace", 10*time.Minute, "age after which a key of a PENDING connection without an App is an orphan")
	fs.DurationVar(&c.LeaderRetry, "leader-retry", 5*time.Second, "how often a replica that is not the reconciler's (or key follower's) leader tries to become it (PostgreSQL)")
	c.Log.RegisterFlags(fs)
	c.crash.registerFlags(fs)
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
	if err := c.Callers.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.LicenseIssuersFile == "" {
		errs = append(errs, errors.New("-license-issuers is required"))
	}
	// The server's own hostname and version: no request names them.
	switch err := validate.Hostname(c.ServerHostname); {
	case c.ServerHostname == "":
		errs = append(errs, errors.New("-server-hostname is required: this server's hostname, which its connection records"))
	case err != nil:
		errs = append(errs, fmt.Errorf("-server-hostname: %w", err))
	}
	switch err := validate.ServerVersion(c.ServerVersion); {
	case c.ServerVersion == "":
		errs = append(errs, errors.New("-server-version is required: this server's version (such as 3.14.2), which its connection records"))
	case err != nil:
		errs = append(errs, fmt.Errorf("-server-version: %w", err))
	}
	if c.Vault.Addr != "" {
		if err := c.Vault.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.KeyCheckEvery <= 0 {
		errs = append(errs, errors.New("-key-check-every must be positive"))
	}
	if err := c.Dial.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.LeaderRetry <= 0 {
		errs = append(errs, errors.New("-leader-retry must be positive"))
	}
	if (c.BrokerAddr != "" || c.FeatureGateAddr != "") && c.ServiceTokenFile == "" && !c.Dial.HasCert() {
		errs = append(errs, errors.New("-service-token-file or -dial-cert is required with -broker-addr or -featuregate-addr"))
	}
	if err := c.crash.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run serves the registry until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	ctx, logger, end, err := server.Begin(ctx, "registry", cfg.Log)
	if err != nil {
		return err
	}
	defer end()

	guard, grpcOpts, tlsFiles, err := cfg.Callers.Load()
	if err != nil {
		return err
	}
	defer tlsFiles.Close()
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
	defer logging.Close(logger, "the database", store)

	api, err := url.Parse(strings.TrimSuffix(cfg.GitHubURL, "/") + "/")
	if err != nil || api.Host == "" {
		return errors.New("-github-url is not a URL")
	}
	hc := &http.Client{Transport: tracing.Transport(&http.Transport{Proxy: http.ProxyFromEnvironment}), Timeout: 15 * time.Second}

	srv := server.New(server.Options{Logger: logger, Guard: guard, ExtraGRPCOptions: grpcOpts})
	if err := tlsFiles.RegisterExpiry(srv.Registry, "server"); err != nil {
		return err
	}
	gh := &GitHub{API: api, HTTP: hc}
	opts := Options{Issuers: issuers, GitHub: gh, Defaults: Defaults{Hostname: cfg.ServerHostname, Version: cfg.ServerVersion}}
	if cfg.LicenseFile != "" {
		raw, err := os.ReadFile(cfg.LicenseFile)
		if err != nil {
			return fmt.Errorf("-license-file: %w", err)
		}
		opts.Defaults.License = string(raw)
	}
	registerState(srv.Registry, store)
	if cfg.Vault.Addr != "" {
		connector, closeAll, err := newConnector(ctx, cfg, store, *gh, srv.Registry)
		if err != nil {
			return err
		}
		defer closeAll()
		connector.crash = cfg.crash
		connector.OrphanGrace = cfg.OrphanKeyGrace
		opts.Connector = connector
	}
	reg, err := NewServer(store, opts)
	if err != nil {
		return err
	}
	reg.Register(srv)
	if connector := opts.Connector; connector != nil {
		// Every replica serves; the reconciler and the key follower run in
		// one replica at a time (the holder of each lease), so replicas do
		// not race through the same disconnect or write the same history
		// event twice.
		// On the way out the leases are given back before the store closes.
		m := newLoopMetrics(srv.Registry)
		lctx, stopLeases := context.WithCancel(ctx)
		var leased sync.WaitGroup
		defer func() { stopLeases(); leased.Wait() }()
		leased.Go(func() {
			runLeased(lctx, store, leaseReconciler, cfg.LeaderRetry, m, func(ctx context.Context) {
				reconcile(ctx, connector, cfg.ReconcileEvery, m.runs.WithLabelValues("reconciler"), connector.metrics.lastSuccess.WithLabelValues("reconciler"))
			})
		})
		leased.Go(func() {
			runLeased(lctx, store, leaseKeyFollower, cfg.LeaderRetry, m, func(ctx context.Context) {
				followKeys(ctx, connector, cfg.KeyCheckEvery, m.runs.WithLabelValues("key_follower"), connector.metrics.lastSuccess.WithLabelValues("key_follower"))
			})
		})
	}
	grpcLis, httpLis, err := server.Listen(cfg.GRPCAddr, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, grpcLis, httpLis)
}

func newConnector(ctx context.Context, cfg Config, store *Store, gh GitHub, reg prometheus.Registerer) (*Connector, func(), error) {
	session, err := cfg.Vault.Login(ctx, logging.FromContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	if err := session.Register(reg); err != nil {
		return nil, nil, err
	}
	vctx, stopVault := context.WithCancel(context.Background())
	vaultDone := make(chan struct{})
	go func() { session.Run(vctx); close(vaultDone) }()
	transit := vaulttransit.New(session, cfg.TransitMount)
	c := &Connector{Store: store, Transit: transit, GitHubAPI: gh.API, GitHubWeb: cfg.GitHubWebURL, HTTP: gh.HTTP, metrics: newConnectorMetrics(reg)}
	dialer, err := dial.New(cfg.Dial)
	if err != nil {
		stopVault()
		<-vaultDone
		return nil, nil, err
	}
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, cc := range conns {
			logging.Close(logging.FromContext(ctx), "a connection to "+cc.Target(), cc)
		}
		dialer.Close()
		stopVault()
		<-vaultDone
	}
	dial := func(addr string) (*grpc.ClientConn, error) {
		cc, err := dialer.Dial(addr, cfg.ServiceTokenFile)
		if err == nil {
			conns = append(conns, cc)
		}
		return cc, err
	}
	if cfg.BrokerAddr != "" {
		cc, err := dial(cfg.BrokerAddr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		c.Broker = brokerv1.NewTokenBrokerServiceClient(cc)
	}
	if cfg.FeatureGateAddr != "" {
		cc, err := dial(cfg.FeatureGateAddr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		c.Gate = featuregatev1.NewFeatureGateServiceClient(cc)
	}
	return c, closeAll, nil
}
