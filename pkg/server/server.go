// Package server is the process skeleton every ghconnect service shares: a
// gRPC server with grpc.health.v1, reflection and the interceptor chain
// (recovery, request id, logging, metrics, authentication, the requests'
// rules), an HTTP side listener for /metrics and health, and graceful
// shutdown.
package server

import (
	// Our messages marshal without reflection, on every hop.
	_ "github.com/ghconnect/ghconnect/pkg/codec"

	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	mwlogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Options configures a Server.
type Options struct {
	Logger *zap.Logger
	// Guard authenticates and authorizes callers; nil lets every call
	// through (tests of services that have no callers' identity to check).
	Guard *auth.Guard
	// Public are the methods reachable without credentials; nil means
	// auth.DefaultPublic.
	Public auth.Public
	// Audited are methods that write their own audit event per call; their
	// successful calls get no second, generic log line.
	Audited []string
	// ShutdownTimeout bounds graceful shutdown; 0 means 10 s.
	ShutdownTimeout time.Duration
	// RequestChecks check their request types in place of protovalidate:
	// the same rules, as Go code (see RequestCheck).
	RequestChecks []RequestCheck
	// ExtraGRPCOptions are appended to the server's options.
	ExtraGRPCOptions []grpc.ServerOption
}

// Server is a gRPC server plus its HTTP side listener.
type Server struct {
	GRPC     *grpc.Server
	Health   *health.Server
	Registry *prometheus.Registry
	HTTP     *http.ServeMux

	logger          *zap.Logger
	shutdownTimeout time.Duration
	stopping        chan struct{}
}

// Stopping is closed when shutdown begins. Long-lived streams (Watch)
// end on it, so graceful stop is not held up by subscribers that would
// otherwise never hang up; they reconnect to another replica.
func (s *Server) Stopping() <-chan struct{} { return s.stopping }

// New builds a server; register services on s.GRPC, then call Serve.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Public == nil {
		opts.Public = auth.DefaultPublic
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)

	// Logging and metrics sit outside authentication so refused calls are
	// logged and counted like any other.
	audited := map[string]bool{}
	for _, m := range opts.Audited {
		audited[m] = true
	}
	logCalls := selector.MatchFunc(logged)
	calls := callLog(audited)
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(panicked(opts.Logger)),
		requestIDUnary(opts.Logger),
		selector.UnaryServerInterceptor(mwlogging.UnaryServerInterceptor(calls, logOptions()...), logCalls),
		m.unary,
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(panicked(opts.Logger)),
		requestIDStream(opts.Logger),
		selector.StreamServerInterceptor(mwlogging.StreamServerInterceptor(calls, logOptions()...), logCalls),
		m.stream,
	}
	if opts.Guard != nil {
		// Authenticate, note who it is for the log line, then authorize:
		// a refused call is logged with its caller's name.
		guarded := selector.MatchFunc(opts.Public.Guarded)
		admit := opts.Guard.Admit(notePrincipal)
		unary = append(unary, selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(admit), guarded))
		stream = append(stream, selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(admit), guarded))
	}
	// Requests are checked against their .proto rules once the caller is
	// known and allowed: a stranger learns nothing of what a valid request
	// looks like.
	rules := newRequestRules(opts.RequestChecks...)
	unary = append(unary, rules.unary)
	stream = append(stream, rules.stream)
	// Recovery again innermost, so a handler's panic reaches logging and
	// metrics as the Internal error the caller gets; the outer one guards the
	// interceptors themselves.
	unary = append(unary, recovery.UnaryServerInterceptor(panicked(opts.Logger)))
	stream = append(stream, recovery.StreamServerInterceptor(panicked(opts.Logger)))
	gopts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}, tracing.ServerOptions()...)
	gopts = append(gopts, opts.ExtraGRPCOptions...)
	gs := grpc.NewServer(gopts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		resp, err := hs.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return &Server{
		GRPC:            gs,
		Health:          hs,
		Registry:        reg,
		HTTP:            mux,
		logger:          opts.Logger,
		shutdownTimeout: opts.ShutdownTimeout,
		stopping:        make(chan struct{}),
	}
}

// Serve serves gRPC on grpcLis and the side HTTP mux on httpLis (which may
// be nil) until ctx is done, then shuts down gracefully: health goes
// NOT_SERVING first so load balancers stop sending, in-flight calls finish
// within the shutdown timeout, and the HTTP listener closes last.
func (s *Server) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	errc := make(chan error, 2)
	go func() { errc <- s.GRPC.Serve(grpcLis) }()
	var hsrv *http.Server
	if httpLis != nil {
		hsrv = &http.Server{Handler: s.HTTP, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- hsrv.Serve(httpLis) }()
	}
	s.logger.Info("serving", zap.String("grpc_addr", grpcLis.Addr().String()), zap.Stringer("http_addr", addrOf(httpLis)))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.Health.Shutdown()
	close(s.stopping)
	stopped := make(chan struct{})
	go func() { s.GRPC.GracefulStop(); close(stopped) }()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.logger.Warn("graceful stop timed out; closing remaining calls")
		s.GRPC.Stop()
	}
	if hsrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
		defer cancel()
		if err := hsrv.Shutdown(sctx); err != nil {
			serveErr = errors.Join(serveErr, fmt.Errorf("http shutdown: %w", err))
		}
	}
	if errors.Is(serveErr, http.ErrServerClosed) || errors.Is(serveErr, grpc.ErrServerStopped) {
		serveErr = nil
	}
	s.logger.Info("stopped")
	return serveErr
}

// Listen opens the gRPC and HTTP listeners; an empty httpAddr opens none.
func Listen(grpcAddr, httpAddr string) (grpcLis, httpLis net.Listener, err error) {
	grpcLis, err = net.Listen("tcp", grpcAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen grpc %s: %w", grpcAddr, err)
	}
	if httpAddr == "" {
		return grpcLis, nil, nil
	}
	httpLis, err = net.Listen("tcp", httpAddr)
	if err != nil {
		_ = grpcLis.Close() // the failed listen is the error to report
		return nil, nil, fmt.Errorf("listen http %s: %w", httpAddr, err)
	}
	return grpcLis, httpLis, nil
}

type addrStringer struct{ net.Listener }

func (a addrStringer) String() string {
	if a.Listener == nil {
		return ""
	}
	return a.Addr().String()
}

func addrOf(l net.Listener) fmt.Stringer { return addrStringer{l} }
