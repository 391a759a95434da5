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
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	mwlogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
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

// panicked answers a handler's (or an interceptor's) panic: logged with
// its stack, Internal to the caller, who learns nothing of it.
func panicked(l *zap.Logger) recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		l.Error("panic in handler", zap.String("method", method), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
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
	// The id in the answer's headers is a courtesy: without a stream to
	// set it on (a handler called directly) the call goes on without it.
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
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

// logOptions make go-grpc-middleware's logging interceptor write one line
// per finished call, at levelFor's level, with the fields callLog reads.
func logOptions() []mwlogging.Option {
	return []mwlogging.Option{
		mwlogging.WithLogOnEvents(mwlogging.FinishCall),
		mwlogging.WithLevels(func(c codes.Code) mwlogging.Level {
			switch levelFor(c) {
			case zapcore.InfoLevel:
				return mwlogging.LevelInfo
			case zapcore.WarnLevel:
				return mwlogging.LevelWarn
			}
			return mwlogging.LevelError
		}),
		mwlogging.WithDurationField(func(d time.Duration) mwlogging.Fields { return mwlogging.Fields{"duration", d} }),
		// The status's message only: constant texts (pkg/apierr), never
		// a wrapped cause.
		mwlogging.WithErrorFields(func(err error) mwlogging.Fields {
			return mwlogging.Fields{"error", status.Convert(err).Message()}
		}),
	}
}

// callLog writes the logging interceptor's line through the call's own
// logger (request_id, method; redacted like every line) as "call" with
// code, duration, principal, via and error, the fields it always had: the
// interceptor's own grpc.* fields are left out. A successful call of an
// audited method writes its audit event instead.
func callLog(audited map[string]bool) mwlogging.Logger {
	return mwlogging.LoggerFunc(func(ctx context.Context, lvl mwlogging.Level, _ string, kv ...any) {
		var code, principal, via, msg string
		var took time.Duration
		for it := mwlogging.Fields(kv).Iterator(); it.Next(); {
			switch k, v := it.At(); k {
			case "grpc.code":
				code, _ = v.(string)
			case "duration":
				took, _ = v.(time.Duration)
			case "principal":
				principal, _ = v.(string)
			case "via":
				via, _ = v.(string)
			case "error":
				msg, _ = v.(string)
			}
		}
		if method, _ := grpc.Method(ctx); code == codes.OK.String() && audited[method] {
			return
		}
		fields := make([]zap.Field, 0, 5)
		fields = append(fields, zap.String("code", code), zap.Duration("duration", took))
		if principal != "" {
			fields = append(fields, zap.String("principal", principal))
		}
		if via != "" {
			fields = append(fields, zap.String("via", via))
		}
		if msg != "" {
			fields = append(fields, zap.String("error", msg))
		}
		level := zapcore.InfoLevel
		switch {
		case lvl >= mwlogging.LevelError:
			level = zapcore.ErrorLevel
		case lvl >= mwlogging.LevelWarn:
			level = zapcore.WarnLevel
		}
		logging.FromContext(ctx).Log(level, "call", fields...)
	})
}

// notePrincipal hands the caller, once known, to the call's log line
// (go-grpc-middleware's logging fields, which the line reads when the
// call ends).
func notePrincipal(ctx context.Context, p auth.Principal) {
	f := mwlogging.Fields{"principal", p.Name}
	if p.Via != "" {
		f = append(f, "via", p.Via)
	}
	mwlogging.AddFields(ctx, f)
}

// logged selects the calls that get a line: all but health checks.
func logged(_ context.Context, c interceptors.CallMeta) bool { return !isHealth(c.FullMethod()) }

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
