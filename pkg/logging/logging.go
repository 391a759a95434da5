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

// FromContext returns the context's logger, or a no-op logger: code that
// logs never has to check for nil.
func FromContext(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok {
		return l
	}
	return zap.NewNop()
}

// Fingerprint is the hex SHA-256 of a secret: the only form in which a token
// may be identified in logs, audit events and metrics.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
