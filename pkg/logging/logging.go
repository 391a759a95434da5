// Package logging builds ghconnect's zap loggers, carries them in contexts,
// and guarantees that tokens and private keys never reach a log line: every
// message and string field passes a redaction rule before it is written.
package logging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options selects the logger's shape.
type Options struct {
	// Development gives coloured console output at Debug; otherwise JSON.
	Development bool
	// Level overrides the default level ("debug", "info", "warn", "error").
	Level string
}

// RegisterFlags binds the options to -dev and -log-level.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Development, "dev", false, "development logging (console, debug)")
	fs.StringVar(&o.Level, "log-level", "", "debug, info, warn or error")
}

// New builds a logger whose output is redacted. Writes go to stderr.
func New(opts Options) (*zap.Logger, error) {
	return NewWithSink(opts, zapcore.Lock(os.Stderr))
}

// NewWithSink is New writing to sink, so tests can capture every line.
func NewWithSink(opts Options, sink zapcore.WriteSyncer) (*zap.Logger, error) {
	level := zapcore.InfoLevel
	if opts.Development {
		level = zapcore.DebugLevel
	}
	if opts.Level != "" {
		if err := level.Set(opts.Level); err != nil {
			return nil, fmt.Errorf("logging: level %q: %w", opts.Level, err)
		}
	}
	var enc zapcore.Encoder
	if opts.Development {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	} else {
		cfg := zap.NewProductionEncoderConfig()
		cfg.TimeKey = "time"
		cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	}
	core := zapcore.NewCore(enc, sink, level)
	// No caller annotation: it costs a stack walk per line on hot paths (the
	// broker audits every token it hands out), and messages name their place.
	return zap.New(&redactingCore{core}), nil
}

type ctxKey struct{}

// WithLogger returns a context carrying l.
func WithLogger(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// callLogger is what WithCall puts in a context.
type callLogger struct {
	log    *zap.Logger // base with fields, built on first use
	base   *zap.Logger
	fields []zap.Field
}

// WithCall returns a context carrying a logger for one call: base with the
// call's fields (request id, method). The logger is built only when
// something logs through it (zap's WithLazy), so a call that writes no line
// of its own, as a broker cache hit, pays for no copy of base (about 1 KB
// for the JSON encoder's buffer). fields must not be changed afterwards.
func WithCall(ctx context.Context, base *zap.Logger, fields ...zap.Field) context.Context {
	return context.WithValue(ctx, ctxKey{}, &callLogger{log: base.WithLazy(fields...), base: base, fields: fields})
}

// Close closes c, logging a failure as a warning about what: for what a
// service closes on its way out, when there is nobody left to return an
// error to.
func Close(log *zap.Logger, what string, c io.Closer) {
	if err := c.Close(); err != nil {
		log.Warn("closing "+what, zap.Error(err))
	}
}

// FromContext returns the context's logger, or a no-op logger: code that
// logs never has to check for nil.
func FromContext(ctx context.Context) *zap.Logger {
	switch v := ctx.Value(ctxKey{}).(type) {
	case *zap.Logger:
		return v
	case *callLogger:
		return v.log
	}
	return zap.NewNop()
}

// Call splits the context's logger in two: the logger it derives from and
// the call's fields (for a context of WithLogger, that logger and none).
// A line written to base with fields first reads as one written through
// FromContext(ctx), without building the call's logger: the broker's
// audit writer names the call in each line this way.
func Call(ctx context.Context) (base *zap.Logger, fields []zap.Field) {
	if v, ok := ctx.Value(ctxKey{}).(*callLogger); ok {
		return v.base, v.fields
	}
	return FromContext(ctx), nil
}

// Fingerprint is the hex SHA-256 of a secret: the only form in which a token
// may be identified in logs, audit events and metrics.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
