package featuregate

import (
	"context"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// FollowRegistry mirrors the registry's connections into the store until
// ctx ends: it watches from the last revision applied, so a restart or a
// dropped stream misses nothing, and backs off while the registry is away.
func FollowRegistry(ctx context.Context, client registryv1.ConnectionRegistryServiceClient, token string, store *Store) {
	log := logging.FromContext(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := followOnce(ctx, client, token, store, func() { backoff = 100 * time.Millisecond })
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

func followOnce(ctx context.Context, client registryv1.ConnectionRegistryServiceClient, token string, store *Store, progressed func()) error {
	after, err := store.RegistryCursor(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token))
	defer cancel()
	stream, err := client.WatchConnections(sctx, &registryv1.WatchConnectionsRequest{AfterRevision: after})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		ev := resp.GetEvent()
		c := ev.GetConnection()
		st := connState{
			Connected:   c.GetState() == registryv1.ConnectionState_CONNECTION_STATE_CONNECTED,
			Permissions: c.GetApp().GetPermissions(),
		}
		if err := store.ApplyConnection(ctx, ev.GetConnectionId(), st, ev.GetRevision()); err != nil {
			return err
		}
		progressed()
	}
}
