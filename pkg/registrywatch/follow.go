// Package registrywatch follows the connection registry's Watch stream for
// the services that react to connects and disconnects: it resumes from the
// last revision applied, so a dropped stream or a restart misses nothing,
// and backs off while the registry is away.
package registrywatch

import (
	"context"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// Follower applies registry events.
type Follower struct {
	Client registryv1.ConnectionRegistryServiceClient
	// Token, if set, is a bearer token sent with the stream (callers that
	// dial with pkg/dial have their credentials on the connection).
	Token string
	// After returns the revision applied last (0: from the beginning).
	After func(ctx context.Context) (int64, error)
	// Apply handles one event; an error restarts the stream from After.
	Apply func(ctx context.Context, ev *registryv1.ConnectionEvent) error
}

// Run follows until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	log := logging.FromContext(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := f.once(ctx, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		log.Warn("registry watch interrupted; resuming", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (f *Follower) once(ctx context.Context, progressed func()) error {
	after, err := f.After(ctx)
	if err != nil {
		return err
	}
	if f.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.Token)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.Client.WatchConnections(sctx, &registryv1.WatchConnectionsRequest{AfterRevision: after})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := f.Apply(ctx, resp.GetEvent()); err != nil {
			return err
		}
		progressed()
	}
}
