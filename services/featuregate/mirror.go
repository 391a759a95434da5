package featuregate

import (
	"context"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/registrywatch"
)

// FollowRegistry mirrors the registry's connections into the store until
// ctx ends, resuming from the last registry revision the store applied.
func FollowRegistry(ctx context.Context, client registryv1.ConnectionRegistryServiceClient, token string, store *Store) {
	f := &registrywatch.Follower{
		Client: client,
		Token:  token,
		After:  store.RegistryCursor,
		Apply: func(ctx context.Context, ev *registryv1.ConnectionEvent) error {
			c := ev.GetConnection()
			return store.ApplyConnection(ctx, ev.GetConnectionId(), connState{
				Connected:    c.GetState() == registryv1.ConnectionState_CONNECTION_STATE_CONNECTED,
				Permissions:  c.GetApp().GetPermissions(),
				AccountLogin: c.GetAccount().GetLogin(),
				AccountKind:  c.GetAccount().GetKind().String(),
				// What the registry's server settings say.
				ServerHostname: c.GetServerHostname(),
				ServerVersion:  c.GetServerVersion(),
				Etag:           c.GetEtag(),
			}, ev.GetRevision())
		},
	}
	f.Run(ctx)
}
