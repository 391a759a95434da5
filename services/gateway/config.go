package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"go.uber.org/zap"
)

// Config is the gateway's configuration; every field has a flag and a
// GHCONNECT_GATEWAY_* environment variable.
type Config struct {
	Addr string
	// HTTPAddr serves /metrics, /healthz and /readyz apart from the
	// public listener, as the other services' -http-addr (empty: none).
	HTTPAddr string
	// MaxConnsPerClient caps the connections one client address holds.
	MaxConnsPerClient int
	Upstreams         Upstreams
	ServiceTokenFile  string
	// TLSCert and TLSKey make the gateway serve HTTPS (re-read when they
	// change); without them it serves plain HTTP, for loopback only.
	TLSCert string
	TLSKey  string
	Log     logging.Options
}

// EnvPrefix prefixes the gateway's environment variables.
const EnvPrefix = "GHCONNECT_GATEWAY"

// RegisterFlags binds c to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8180", "listen address of /metrics, /healthz and /readyz, apart from -addr (empty: not served)")
	fs.IntVar(&c.MaxConnsPerClient, "max-conns-per-client", 256, "most connections one client address may hold open (more are closed at once)")
	fs.StringVar(&c.Upstreams.Registry, "registry-addr", "127.0.0.1:7001", "connection-registry gRPC address")
	fs.StringVar(&c.Upstreams.Broker, "broker-addr", "", "token-broker gRPC address (empty: not served)")
	fs.StringVar(&c.Upstreams.FeatureGate, "featuregate-addr", "", "feature-gate gRPC address (empty: not served)")
	fs.StringVar(&c.Upstreams.GitHubWebURL, "github-web-url", "https://github.com", "GitHub web URL the admin page links to (the GitHub App's settings); the registry's -github-web-url")
	fs.StringVar(&c.ServiceTokenFile, "service-token-file", "", "file holding the gateway's bearer token (for GitHub.com's redirects back; not needed with -dial-cert)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "HTTPS certificate (PEM, re-read when it changes); without it the gateway serves plain HTTP")
	fs.StringVar(&c.TLSKey, "tls-key", "", "HTTPS private key (PEM), in the folder of -tls-cert")
	c.Upstreams.Dial.RegisterFlags(fs)
	c.Upstreams.SSO.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("-addr is required")
	}
	if c.MaxConnsPerClient < 0 {
		return errors.New("-max-conns-per-client must not be negative (0: no cap)")
	}
	if c.Upstreams.Registry == "" && c.Upstreams.Broker == "" && c.Upstreams.FeatureGate == "" {
		return errors.New("at least one upstream address is required")
	}
	if u, err := url.Parse(c.Upstreams.GitHubWebURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("-github-web-url must be an absolute http(s) URL")
	}
	if (c.TLSCert != "") != (c.TLSKey != "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	return errors.Join(c.Upstreams.Dial.Validate(), c.Upstreams.SSO.Validate())
}

// Run serves the gateway until ctx is done, then drains requests for up to
// 10 s.
func Run(ctx context.Context, cfg Config) error {
	ctx, logger, end, err := server.Begin(ctx, "gateway", cfg.Log)
	if err != nil {
		return err
	}
	defer end()
	if cfg.ServiceTokenFile != "" {
		if cfg.Upstreams.ServiceToken, err = config.ReadSecret(cfg.ServiceTokenFile); err != nil {
			return err
		}
	}
	g, err := New(ctx, cfg.Upstreams)
	if err != nil {
		return err
	}
	defer logging.Close(logger, "the gateway's upstreams", g)
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.MaxConnsPerClient > 0 {
		lis = limitPerClient(lis, cfg.MaxConnsPerClient)
	}
	// One idle limit for HTTP/1.1 keep-alives and HTTP/2 connections
	// alike (Go's HTTP/2 server takes IdleTimeout too).
	reg := newMetricsRegistry()
	m := newHTTPMetrics(reg)
	srv := &http.Server{
		Handler:           tracing.Handler(accessLog(logger, m, g), "gateway"),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		files, err := auth.LoadTLSFiles(cfg.TLSCert, cfg.TLSKey, "")
		if err != nil {
			_ = lis.Close() // the TLS files' error is the one to report
			return err
		}
		defer files.Close()
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: files.Certificate}
		scheme = "https"
		if err := files.RegisterExpiry(reg, "server"); err != nil {
			_ = lis.Close()
			return err
		}
	}
	errc := make(chan error, 2)
	if cfg.HTTPAddr != "" {
		side, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			_ = lis.Close()
			return fmt.Errorf("-http-addr: %w", err)
		}
		sideSrv := &http.Server{Handler: sideHandler(reg, g), ReadHeaderTimeout: 10 * time.Second}
		// Closed last, after the public listener's graceful stop: scrapes
		// and probes have nothing to lose.
		defer func() { _ = sideSrv.Close() }()
		go func() {
			if err := sideSrv.Serve(side); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		logger.Info("serving metrics and health", zap.String("http_addr", side.Addr().String()))
	}
	go func() {
		if scheme == "https" {
			errc <- srv.ServeTLS(lis, "", "")
		} else {
			errc <- srv.Serve(lis)
		}
	}()
	logger.Info("serving", zap.String("addr", lis.Addr().String()), zap.String("scheme", scheme))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// accessLog logs each request's method, path, status and duration, and
// counts it in m; never headers or bodies, which carry credentials and
// licenses.
func accessLog(l *zap.Logger, m *httpMetrics, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.observe(r.URL.Path, rec.status, time.Since(start))
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		l.Info("http", zap.String("method", r.Method), zap.String("path", capped(r.URL.Path)), zap.Int("status", rec.status), zap.Duration("duration", time.Since(start)))
	})
}

// maxLoggedPath is the most of a path the access log writes.
const maxLoggedPath = 512

// capped is p, or its start and its length when it is too long to log.
func capped(p string) string {
	if len(p) <= maxLoggedPath {
		return p
	}
	cut := strings.ToValidUTF8(p[:maxLoggedPath], "")
	return fmt.Sprintf("%s… (%d bytes)", cut, len(p))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush keeps streaming (Watch) responses flowing through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
