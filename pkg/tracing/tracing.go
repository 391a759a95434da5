// Package tracing gives every ghconnect service the same OpenTelemetry
// traces: one trace from a gateway request through the registry, the
// broker and the feature gate down to their Vault and GitHub.com calls,
// exported over OTLP/gRPC. It is off unless an OTLP endpoint is named in
// the environment; off, nothing is instrumented and nothing is sent.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// The standard OpenTelemetry variables: either endpoint turns export on
// (for example http://127.0.0.1:4317, an OTLP/gRPC receiver such as Jaeger
// all-in-one); the exporter reads the rest of its OTEL_EXPORTER_OTLP_*
// settings (headers, timeout, TLS) itself. OTEL_SDK_DISABLED=true keeps it
// off whatever the endpoints say.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envDisabled       = "OTEL_SDK_DISABLED"
)

// on is set once by Setup, before a service builds its servers and
// clients: each asks it whether to instrument.
var on atomic.Bool

// Enabled reports whether Setup turned export on in this process.
func Enabled() bool { return on.Load() }

// Configured reports whether the environment asks for export.
func Configured() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv(envDisabled)), "true") {
		return false
	}
	return os.Getenv(EnvEndpoint) != "" || os.Getenv(EnvTracesEndpoint) != ""
}

// FlushTimeout bounds how long stop waits for the last spans to go out.
const FlushTimeout = 5 * time.Second

// Setup installs the process's tracer provider (the service's name as its
// resource, a batch processor in front of the OTLP/gRPC exporter) and the
// W3C trace-context propagator, when the environment names an endpoint.
// Call it first in a service's Run, before its servers and clients are
// built. The returned stop flushes the spans still queued and closes the
// exporter, logging what fails; defer it. Without an endpoint Setup
// installs nothing and stop does nothing.
func Setup(ctx context.Context, service string, log *zap.Logger) (stop func(), err error) {
	if !Configured() {
		return func() {}, nil
	}
	// The exporter connects lazily: a collector not up yet costs spans,
	// never the service's start.
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("tracing: resource: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(redactingExporter{exp}),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	on.Store(true)
	log.Info("exporting traces over OTLP")
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("flushing traces", zap.Error(err))
		}
	}, nil
}

// grpcOptions are the stats handlers' options: health checks (probes,
// polled every few seconds) make no spans, and no message events.
func grpcOptions() []otelgrpc.Option {
	return []otelgrpc.Option{otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))}
}

// ServerOptions instrument a gRPC server: a server span per call, child
// of the caller's span. None when tracing is off.
func ServerOptions() []grpc.ServerOption {
	if !Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(grpcOptions()...))}
}

// DialOptions instrument a gRPC client connection: a client span per call,
// its context sent to the server. None when tracing is off.
func DialOptions() []grpc.DialOption {
	if !Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(grpcOptions()...))}
}

// Transport makes every request through base a client span (base nil:
// http.DefaultTransport) carrying the trace context to the server. It
// returns base itself when tracing is off.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if !Enabled() {
		return base
	}
	return otelhttp.NewTransport(base)
}

// Handler makes every request to h a server span named by its method and
// route pattern (never its raw path or query), child of the caller's span
// when the request carries one. It returns h itself when tracing is off.
func Handler(h http.Handler, operation string) http.Handler {
	if !Enabled() {
		return h
	}
	inner := otelhttp.NewHandler(withRoute(h), operation, otelhttp.WithSpanNameFormatter(spanName))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, new(string))))
	})
}

type routeKey struct{}

// withRoute records the route h's mux matched (it sets r.Pattern as it
// routes) as the span's http.route, unless SetRoute named a finer one.
func withRoute(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if p, ok := r.Context().Value(routeKey{}).(*string); ok && *p == "" && r.Pattern != "" {
			route := r.Pattern
			if _, path, ok := strings.Cut(route, " "); ok {
				route = path
			}
			trace.SpanFromContext(r.Context()).SetAttributes(semconv.HTTPRoute(route))
		}
	})
}

// SetRoute names the request's span by route, a template such as
// /v1/connections/{id}, for a handler that routes below the pattern the
// server's mux matched (grpc-gateway's under /v1/).
func SetRoute(ctx context.Context, method, route string) {
	if p, ok := ctx.Value(routeKey{}).(*string); ok {
		*p = method + " " + route
		trace.SpanFromContext(ctx).SetAttributes(semconv.HTTPRoute(route))
	}
}

// spanName is a server span's name: the route SetRoute gave, else the
// method and the mux's pattern, else the method.
func spanName(_ string, r *http.Request) string {
	if p, ok := r.Context().Value(routeKey{}).(*string); ok && *p != "" {
		return *p
	}
	method := r.Method
	if !knownMethods[method] {
		method = "HTTP" // any other word is the caller's to choose
	}
	switch {
	case r.Pattern == "":
		return method
	case strings.Contains(r.Pattern, " "):
		return r.Pattern // it names its method
	default:
		return method + " " + r.Pattern
	}
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}
