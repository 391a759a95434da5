package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RequestIDHeader carries a request id in and out of every call.
const RequestIDHeader = "x-request-id"

func recoverUnary(l *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				l.Error("panic in handler", zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(l *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				l.Error("panic in handler", zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

// requestContext gives the call a request id (the caller's, if well formed)
// and a logger carrying it, built only if the call logs (logging.WithCall).
func requestContext(ctx context.Context, base *zap.Logger, method string) context.Context {
	id := ""
	if v := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(v) > 0 && validate.RequestID(v[0]) == nil {
		id = v[0]
	} else {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	return logging.WithCall(ctx, base, zap.String("request_id", id), zap.String("method", method))
}

func requestIDUnary(l *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(requestContext(ctx, l, info.FullMethod), req)
	}
}

func requestIDStream(l *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &ctxStream{ServerStream: ss, ctx: requestContext(ss.Context(), l, info.FullMethod)})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func isHealth(method string) bool { return strings.HasPrefix(method, "/grpc.health.v1.") }

// levelFor logs client faults at Warn and our own at Error.
func levelFor(c codes.Code) zapcore.Level {
	switch c {
	case codes.OK:
		return zapcore.InfoLevel
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return zapcore.ErrorLevel
	default:
		return zapcore.WarnLevel
	}
}

func logCall(ctx context.Context, method string, start time.Time, err error, audited map[string]bool) {
	if isHealth(method) || (err == nil && audited[method]) {
		return
	}
	st := status.Convert(err)
	fields := []zap.Field{zap.String("code", st.Code().String()), zap.Duration("duration", time.Since(start))}
	if p, ok := auth.FromContext(ctx); ok {
		fields = append(fields, zap.String("principal", p.Name))
		if p.Via != "" {
			fields = append(fields, zap.String("via", p.Via))
		}
	}
	if err != nil {
		fields = append(fields, zap.String("error", st.Message()))
	}
	logging.FromContext(ctx).Log(levelFor(st.Code()), "call", fields...)
}

func logUnary(audited map[string]bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		// The principal is only known inside the auth interceptor, so it
		// reports back through this holder.
		holder := &principalHolder{}
		resp, err := handler(context.WithValue(ctx, holderKey{}, holder), req)
		logCall(holder.into(ctx), info.FullMethod, start, err, audited)
		return resp, err
	}
}

func logStream(audited map[string]bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		holder := &principalHolder{}
		err := handler(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), holderKey{}, holder)})
		logCall(holder.into(ss.Context()), info.FullMethod, start, err, audited)
		return err
	}
}

type holderKey struct{}

type principalHolder struct{ p *auth.Principal }

func (h *principalHolder) into(ctx context.Context) context.Context {
	if h.p == nil {
		return ctx
	}
	return auth.WithPrincipal(ctx, *h.p)
}

// notePrincipal, run just inside authentication, hands the caller's
// identity out to the logging interceptor.
func notePrincipal(ctx context.Context) {
	if h, ok := ctx.Value(holderKey{}).(*principalHolder); ok {
		if p, ok := auth.FromContext(ctx); ok {
			h.p = &p
		}
	}
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ghconnect_grpc_requests_total",
			Help: "gRPC calls handled, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ghconnect_grpc_request_duration_seconds",
			Help:    "gRPC call latency by method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *metrics) observe(method string, start time.Time, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe(info.FullMethod, start, err)
	return resp, err
}

func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.observe(info.FullMethod, start, err)
	return err
}
