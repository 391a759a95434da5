package featuregate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/loadecho"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/services/featuregate/ghactions"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the feature gate's configuration; every field has a flag and a
// GHCONNECT_FEATUREGATE_* environment variable.
type Config struct {
	GRPCAddr    string
	HTTPAddr    string
	DatabaseURL string
	Callers     auth.Callers
	// RegistryAddr is the registry's gRPC address; RegistryTokenFile holds
	// the bearer token the gate watches it with.
	RegistryAddr      string
	RegistryTokenFile string
	// BrokerAddr, BrokerTokenFile and GitHubURL enable unified search:
	// read-only tokens from the broker, searches at the GitHub API.
	BrokerAddr      string
	BrokerTokenFile string
	GitHubURL       string
	// OutboxMax bounds the unified-contributions outbox (rows);
	// ReportContributions answers RESOURCE_EXHAUSTED beyond it.
	OutboxMax int
	// Upload times the unified-contributions uploader. The defaults suit
	// GitHub.com; the end-to-end tests shorten them so that an outage of
	// minutes and a lease handed over fit in seconds.
	Upload UploadFlags
	// Advisories times Dependabot's advisory sync, as Upload does the
	// uploader.
	Advisories AdvisoryFlags
	// Actions configures GitHub.com actions' cache and calls.
	Actions ActionsFlags
	// Licenses times license sync's uploads, Stats Server Statistics'.
	Licenses, Stats JobFlags
	// Dial is the TLS of the calls to the registry and the broker.
	Dial dial.Flags
	Log  logging.Options
	// LoadtestEcho serves the load tests' baseline (pkg/loadecho) to
	// feature clients.
	LoadtestEcho bool
}

// EnvPrefix prefixes the feature gate's environment variables.
const EnvPrefix = "GHCONNECT_FEATUREGATE"

// RegisterFlags binds c to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:7003", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:7103", "listen address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&c.DatabaseURL, "database", "sqlite:.data/featuregate.db", `"sqlite:PATH" or "postgres://…"`)
	c.Callers.RegisterFlags(fs)
	fs.StringVar(&c.RegistryAddr, "registry-addr", "127.0.0.1:7001", "connection-registry gRPC address")
	fs.StringVar(&c.RegistryTokenFile, "registry-token-file", "", "file holding the bearer token for the registry")
	fs.StringVar(&c.BrokerAddr, "broker-addr", "", "token-broker gRPC address (empty: unified search answers UNAVAILABLE)")
	fs.StringVar(&c.BrokerTokenFile, "broker-token-file", "", "file holding the bearer token for the broker")
	fs.StringVar(&c.GitHubURL, "github-url", "https://api.github.com/", "GitHub API base URL (unified search, unified contributions)")
	fs.IntVar(&c.OutboxMax, "contributions-outbox-max", DefaultOutboxMax, "most rows the unified-contributions outbox holds before ReportContributions answers RESOURCE_EXHAUSTED")
	c.Upload.RegisterFlags(fs)
	c.Advisories.RegisterFlags(fs)
	c.Actions.RegisterFlags(fs)
	c.Licenses.RegisterFlags(fs, "license-sync", "license sync")
	c.Stats.RegisterFlags(fs, "server-stats", "the server statistics upload")
	c.Dial.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
	fs.BoolVar(&c.LoadtestEcho, "loadtest-echo", false, "serve ghconnect.loadtest.v1.EchoService to feature clients: the baseline of make loadtest (a reply of any size up to 1 MiB, and nothing else)")
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	for flagName, v := range map[string]string{"grpc-addr": c.GRPCAddr, "database": c.DatabaseURL, "registry-addr": c.RegistryAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("-%s is required", flagName))
		}
	}
	if err := c.Callers.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Dial.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RegistryTokenFile == "" && !c.Dial.HasCert() {
		errs = append(errs, errors.New("-registry-token-file or -dial-cert is required"))
	}
	if c.OutboxMax < 1 {
		errs = append(errs, errors.New("-contributions-outbox-max must be at least 1"))
	}
	if err := c.Upload.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Advisories.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Actions.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Licenses.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Stats.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BrokerAddr != "" && c.BrokerTokenFile == "" && !c.Dial.HasCert() {
		errs = append(errs, errors.New("-broker-token-file or -dial-cert is required with -broker-addr"))
	}
	return errors.Join(errs...)
}

// UploadFlags are the uploader's timings (UploaderOptions) as flags.
type UploadFlags struct {
	Poll, MinBackoff, MaxBackoff, LeaseRetry time.Duration
}

// RegisterFlags binds f to fs, with UploaderOptions' defaults.
func (f *UploadFlags) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&f.Poll, "contributions-poll", 5*time.Second, "how often the uploader looks for counts another replica queued")
	fs.DurationVar(&f.MinBackoff, "contributions-min-backoff", time.Second, "first wait after GitHub.com failed to take counts; it doubles up to -contributions-max-backoff")
	fs.DurationVar(&f.MaxBackoff, "contributions-max-backoff", 5*time.Minute, "longest wait between tries while GitHub.com fails to take counts")
	fs.DurationVar(&f.LeaseRetry, "contributions-lease-retry", 5*time.Second, "how often a replica that does not upload tries to take over (PostgreSQL)")
}

// Validate refuses timings NewUploader would silently replace.
func (f *UploadFlags) Validate() error {
	return validateTimings("contributions", map[string]time.Duration{"poll": f.Poll, "min-backoff": f.MinBackoff,
		"max-backoff": f.MaxBackoff, "lease-retry": f.LeaseRetry})
}

func (f *UploadFlags) options(reg prometheus.Registerer) UploaderOptions {
	return UploaderOptions{Poll: f.Poll, MinBackoff: f.MinBackoff, MaxBackoff: f.MaxBackoff, LeaseRetry: f.LeaseRetry, Registerer: reg}
}

// AdvisoryFlags are the advisory sync's timings (AdvisorySyncOptions) as
// flags.
type AdvisoryFlags struct {
	Every, Poll, MinBackoff, MaxBackoff, LeaseRetry time.Duration
}

// RegisterFlags binds f to fs, with AdvisorySyncOptions' defaults.
func (f *AdvisoryFlags) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&f.Every, "advisories-every", time.Hour, "time between advisory syncs that succeeded (Dependabot alerts); one also starts when the feature starts working")
	fs.DurationVar(&f.Poll, "advisories-poll", 5*time.Second, "how often the advisory sync looks at the feature's state set on another replica")
	fs.DurationVar(&f.MinBackoff, "advisories-min-backoff", 30*time.Second, "first wait after an advisory sync failed; it doubles up to -advisories-max-backoff")
	fs.DurationVar(&f.MaxBackoff, "advisories-max-backoff", 30*time.Minute, "longest wait between advisory syncs while they fail")
	fs.DurationVar(&f.LeaseRetry, "advisories-lease-retry", 5*time.Second, "how often a replica that does not sync advisories tries to take over (PostgreSQL)")
}

// Validate refuses timings NewAdvisorySync would silently replace.
func (f *AdvisoryFlags) Validate() error {
	return validateTimings("advisories", map[string]time.Duration{"every": f.Every, "poll": f.Poll, "min-backoff": f.MinBackoff,
		"max-backoff": f.MaxBackoff, "lease-retry": f.LeaseRetry})
}

func (f *AdvisoryFlags) options(reg prometheus.Registerer) AdvisorySyncOptions {
	return AdvisorySyncOptions{Every: f.Every, Poll: f.Poll, MinBackoff: f.MinBackoff, MaxBackoff: f.MaxBackoff, LeaseRetry: f.LeaseRetry, Registerer: reg}
}

// JobFlags are a Job's timings (JobOptions) as flags -<prefix>-every and
// so on.
type JobFlags struct {
	prefix                                          string
	Every, Poll, MinBackoff, MaxBackoff, LeaseRetry time.Duration
}

// RegisterFlags binds f to fs under prefix, with JobOptions' defaults;
// what words the job in the flags' help.
func (f *JobFlags) RegisterFlags(fs *flag.FlagSet, prefix, what string) {
	f.prefix = prefix
	fs.DurationVar(&f.Every, prefix+"-every", 24*time.Hour, "time between "+what+" runs that succeeded; one also starts when the feature starts working")
	fs.DurationVar(&f.Poll, prefix+"-poll", 5*time.Second, "how often "+what+" looks at the feature's state set on another replica")
	fs.DurationVar(&f.MinBackoff, prefix+"-min-backoff", 30*time.Second, "first wait after a "+what+" run failed; it doubles up to -"+prefix+"-max-backoff")
	fs.DurationVar(&f.MaxBackoff, prefix+"-max-backoff", 30*time.Minute, "longest wait between "+what+" runs while they fail")
	fs.DurationVar(&f.LeaseRetry, prefix+"-lease-retry", 5*time.Second, "how often a replica that does not run "+what+" tries to take over (PostgreSQL)")
}

// Validate refuses timings newJob would silently replace.
func (f *JobFlags) Validate() error {
	return validateTimings(f.prefix, map[string]time.Duration{"every": f.Every, "poll": f.Poll, "min-backoff": f.MinBackoff,
		"max-backoff": f.MaxBackoff, "lease-retry": f.LeaseRetry})
}

func (f *JobFlags) options(reg prometheus.Registerer) JobOptions {
	return JobOptions{Every: f.Every, Poll: f.Poll, MinBackoff: f.MinBackoff, MaxBackoff: f.MaxBackoff, LeaseRetry: f.LeaseRetry, Registerer: reg}
}

// ActionsFlags configure GitHub.com actions (ghactions.Options) as flags.
type ActionsFlags struct {
	CacheDir               string
	CacheMiB, MaxMiB       int64
	RepoTTL, DownloadLimit time.Duration
}

// RegisterFlags binds f to fs, with ghactions.Options' defaults.
func (f *ActionsFlags) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.CacheDir, "actions-cache-dir", "", "directory of this replica's cache of GitHub.com actions' tarballs (empty: a temporary one, removed at exit)")
	fs.Int64Var(&f.CacheMiB, "actions-cache-mib", 2048, "most MiB the actions cache keeps; the least recently used go first")
	fs.Int64Var(&f.MaxMiB, "actions-max-mib", 1024, "largest action tarball downloaded from GitHub.com, in MiB")
	fs.DurationVar(&f.RepoTTL, "actions-repo-ttl", time.Minute, "how long what GitHub.com said of an action's repository (there, public, owner verified) is believed; a pinned SHA in the cache is served without a call within it")
	fs.DurationVar(&f.DownloadLimit, "actions-download-timeout", 10*time.Minute, "longest download of one action tarball from GitHub.com")
}

// Validate refuses values NewProxy would silently replace.
func (f *ActionsFlags) Validate() error {
	var errs []error
	if f.CacheMiB <= 0 || f.MaxMiB <= 0 {
		errs = append(errs, errors.New("-actions-cache-mib and -actions-max-mib must be positive"))
	}
	if f.RepoTTL <= 0 || f.DownloadLimit <= 0 {
		errs = append(errs, errors.New("-actions-repo-ttl and -actions-download-timeout must be positive"))
	}
	return errors.Join(errs...)
}

func (f *ActionsFlags) options(reg prometheus.Registerer) ghactions.Options {
	return ghactions.Options{CacheDir: f.CacheDir, CacheBytes: f.CacheMiB << 20, MaxBytes: f.MaxMiB << 20,
		RepoTTL: f.RepoTTL, DownloadTimeout: f.DownloadLimit, Registerer: reg}
}

// validateTimings checks the timing flags -prefix-name: each positive,
// max-backoff not below min-backoff.
func validateTimings(prefix string, d map[string]time.Duration) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(d)) {
		if d[name] <= 0 {
			errs = append(errs, fmt.Errorf("-%s-%s must be positive", prefix, name))
		}
	}
	if d["max-backoff"] < d["min-backoff"] {
		errs = append(errs, fmt.Errorf("-%s-max-backoff must not be below -%s-min-backoff", prefix, prefix))
	}
	return errors.Join(errs...)
}

// Run serves the feature gate until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	ctx, logger, end, err := server.Begin(ctx, "featuregate", cfg.Log)
	if err != nil {
		return err
	}
	defer end()
	guard, grpcOpts, tlsFiles, err := cfg.Callers.Load()
	if err != nil {
		return err
	}
	defer tlsFiles.Close()
	dialer, err := dial.New(cfg.Dial)
	if err != nil {
		return err
	}
	defer dialer.Close()
	store, err := OpenStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer logging.Close(logger, "the database", store)
	conn, err := dialer.Dial(cfg.RegistryAddr, cfg.RegistryTokenFile)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer logging.Close(logger, "the registry connection", conn)

	opts := Options{OutboxMax: cfg.OutboxMax}
	srv := server.New(server.Options{Logger: logger, Guard: guard, ExtraGRPCOptions: grpcOpts, RequestChecks: RequestChecks})
	if err := tlsFiles.RegisterExpiry(srv.Registry, "server"); err != nil {
		return err
	}
	if cfg.LoadtestEcho {
		if err := loadecho.Register(srv.GRPC, guard.Rules, "feature-client"); err != nil {
			return err
		}
	}
	var uploader *Uploader
	var advisorySync *AdvisorySync
	var licenses, stats *Job
	if cfg.BrokerAddr != "" {
		bconn, err := dialer.Dial(cfg.BrokerAddr, cfg.BrokerTokenFile)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		defer logging.Close(logger, "the broker connection", bconn)
		searcher, err := NewSearcher(brokerv1.NewTokenBrokerServiceClient(bconn), cfg.GitHubURL)
		if err != nil {
			return err
		}
		opts.Searcher = searcher
		// Unified contributions leave as the App too; without a broker
		// counts are kept and queued, and wait.
		if uploader, err = NewUploader(store, brokerv1.NewTokenBrokerServiceClient(bconn), cfg.GitHubURL, cfg.Upload.options(srv.Registry)); err != nil {
			return err
		}
		// So do Dependabot's advisory downloads.
		if advisorySync, err = NewAdvisorySync(store, brokerv1.NewTokenBrokerServiceClient(bconn), cfg.GitHubURL, cfg.Advisories.options(srv.Registry)); err != nil {
			return err
		}
		// And runners' actions.
		if opts.Actions, err = NewActions(store, brokerv1.NewTokenBrokerServiceClient(bconn), cfg.GitHubURL, cfg.Actions.options(srv.Registry)); err != nil {
			return err
		}
		defer logging.Close(logger, "the actions cache", opts.Actions)
		// License sync's uploads.
		if licenses, err = NewLicenseSync(store, brokerv1.NewTokenBrokerServiceClient(bconn), cfg.GitHubURL, cfg.Licenses.options(srv.Registry)); err != nil {
			return err
		}
		// Server Statistics' uploads.
		if stats, err = NewServerStatistics(store, brokerv1.NewTokenBrokerServiceClient(bconn), cfg.GitHubURL, cfg.Stats.options(srv.Registry)); err != nil {
			return err
		}
	}
	gate, err := NewServer(store, opts)
	if err != nil {
		return err
	}
	RegisterOutboxGauge(srv.Registry, store)
	RegisterStateMetrics(srv.Registry, store)
	gate.Register(srv)
	grpcLis, httpLis, err := server.Listen(cfg.GRPCAddr, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go FollowRegistry(bg, registryv1.NewConnectionRegistryServiceClient(conn), "", store)
	go gate.Follow(bg)
	if uploader != nil {
		go uploader.Run(bg)
		go advisorySync.Run(bg)
		go licenses.Run(bg)
		go stats.Run(bg)
	}
	return srv.Serve(ctx, grpcLis, httpLis)
}
