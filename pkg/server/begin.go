package server

import (
	"context"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"go.uber.org/zap"
)

// Begin is what every service's Run does first: its logger, naming the
// service in each line and carried by the returned context, and its
// tracing (off unless the environment configures an exporter). end
// flushes the last spans, then the log; call it as Run returns.
func Begin(ctx context.Context, service string, log logging.Options) (_ context.Context, _ *zap.Logger, end func(), err error) {
	logger, err := logging.New(log)
	if err != nil {
		return ctx, nil, nil, err
	}
	logger = logger.With(zap.String("service", service))
	ctx = logging.WithLogger(ctx, logger)
	stopTracing, err := tracing.Setup(ctx, service, logger)
	if err != nil {
		_ = logger.Sync()
		return ctx, nil, nil, err
	}
	return ctx, logger, func() {
		stopTracing()
		_ = logger.Sync()
	}, nil
}
