package gateway

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
)

// Config is the gateway's configuration; every field has a flag and a
// GHCONNECT_GATEWAY_* environment variable.
type Config struct {
	Addr             string
	Upstreams        Upstreams
	ServiceTokenFile string
	Log              logging.Options
}

// EnvPrefix prefixes the gateway's environment variables.
const EnvPrefix = "GHCONNECT_GATEWAY"

// RegisterFlags binds c to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.Upstreams.Registry, "registry-addr", "127.0.0.1:7001", "connection-registry gRPC address")
	fs.StringVar(&c.Upstreams.Broker, "broker-addr", "", "token-broker gRPC address (empty: not served)")
	fs.StringVar(&c.Upstreams.FeatureGate, "featuregate-addr", "", "feature-gate gRPC address (empty: not served)")
	fs.StringVar(&c.ServiceTokenFile, "service-token-file", "", "file holding the gateway's bearer token (for GitHub.com's redirects back)")
	c.Log.RegisterFlags(fs)
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("-addr is required")
	}
	if c.Upstreams == (Upstreams{}) {
		return errors.New("at least one upstream address is required")
	}
	return nil
}

// Run serves the gateway until ctx is done, then drains requests for up to
// 10 s.
func Run(ctx context.Context, cfg Config) error {
	logger, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer logger.Sync()
	logger = logger.With(zap.String("service", "gateway"))
	if cfg.ServiceTokenFile != "" {
		raw, err := os.ReadFile(cfg.ServiceTokenFile)
		if err != nil {
			return err
		}
		cfg.Upstreams.ServiceToken = strings.TrimSpace(string(raw))
	}
	g, err := New(ctx, cfg.Upstreams)
	if err != nil {
		return err
	}
	defer g.Close()
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           accessLog(logger, g),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	logger.Info("serving", zap.String("addr", lis.Addr().String()))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// accessLog logs each request's method, path, status and duration; never
// headers or bodies, which carry credentials and licenses.
func accessLog(l *zap.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		l.Info("http", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", rec.status), zap.Duration("duration", time.Since(start)))
	})
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
