package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Operators rotate the App key in Vault: GitHub.com generates a new key in
// the App's settings, they import it as a new version (transit
// import_version), later delete the old one there and retire it in Vault
// (min_encryption_version). The key follower keeps the record in step:
//   - a version newer than the record's is adopted once GitHub.com accepts
//     a JWT it signed (the older ones stay as the fallback), and until then
//     the record says so (pending_version, notice);
//   - versions retired in Vault leave the record.
// The broker follows the record through the registry's Watch.

const keyFollower = "system:key-follower"

// FollowKeys compares every CONNECTED connection's key with Vault once.
func (c *Connector) FollowKeys(ctx context.Context) error {
	conns, err := c.Store.InState(ctx, stateConnected)
	if err != nil {
		return err
	}
	var errs []error
	for _, conn := range conns {
		if err := c.followKey(ctx, conn); err != nil {
			errs = append(errs, fmt.Errorf("connection %s: %w", conn.Id, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Connector) followKey(ctx context.Context, conn *registryv1.Connection) error {
	tk := conn.GetTransitKey()
	if tk == nil || conn.GetApp().GetAppId() == 0 || len(tk.Versions) == 0 {
		return nil
	}
	info, err := c.Transit.Key(ctx, keyName(conn.Id))
	if err != nil {
		return err
	}
	newest := int(slices.Max(tk.Versions))
	// Versions the operator retired in Vault no longer sign.
	kept := slices.DeleteFunc(slices.Clone(tk.Versions), func(v int32) bool { return int(v) < info.MinVersion })

	switch {
	case info.Latest > newest:
		if c.acceptedByGitHub(ctx, conn, info.Latest) {
			reason := fmt.Sprintf("key version %d imported in Vault is accepted by GitHub.com and now signs", info.Latest)
			if len(kept) > 0 {
				reason += fmt.Sprintf("; version %d stays as the fallback until it is retired in Vault (min_encryption_version)", kept[len(kept)-1])
			}
			return c.updateKey(ctx, conn.Id, keyVersionAdopted(append(kept, int32(info.Latest))), reason) //nolint:gosec // G115: at most vaulttransit.MaxKeyVersion
		}
		if int(tk.PendingVersion) == info.Latest {
			return nil // still waiting, as the record says
		}
		notice := fmt.Sprintf("key version %d is in Vault but GitHub.com does not accept it yet: GitHub.com accepts only keys it generated for this App, so import the key generated in the App's settings; version %d keeps signing", info.Latest, newest)
		return c.updateKey(ctx, conn.Id, keyVersionPending(int32(info.Latest), notice), notice) //nolint:gosec // G115: at most vaulttransit.MaxKeyVersion
	case len(kept) < len(tk.Versions) && len(kept) > 0:
		reason := fmt.Sprintf("key versions below %d were retired in Vault", info.MinVersion)
		return c.updateKey(ctx, conn.Id, keyVersionsRetired(kept), reason)
	case tk.PendingVersion != 0 && info.Latest <= newest:
		return c.updateKey(ctx, conn.Id, keyVersionPendingCleared(), "the record's key versions match Vault again")
	}
	return nil
}

// acceptedByGitHub asks GitHub.com for the App with a JWT signed by
// version.
func (c *Connector) acceptedByGitHub(ctx context.Context, conn *registryv1.Connection, version int) bool {
	jwt, err := c.appJWT(ctx, conn.App.GetAppId(), keyName(conn.Id), version)
	if err != nil {
		return false
	}
	var app ghApp
	return c.call(ctx, jwt, http.MethodGet, "app", &app) == nil && app.ID == conn.App.GetAppId()
}

func (c *Connector) updateKey(ctx context.Context, id string, m Move, reason string) error {
	_, err := c.Store.Update(ctx, id, "", m, Change{Actor: keyFollower, Reason: reason})
	if err == nil {
		logging.FromContext(ctx).Info(reason, zap.String("connection_id", id), zap.String("action", m.Action()))
	}
	return err
}

// followKeys runs FollowKeys every period.
func followKeys(ctx context.Context, c *Connector, every time.Duration, runs prometheus.Counter, ok prometheus.Gauge) {
	log := logging.FromContext(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		runs.Inc()
		switch err := c.FollowKeys(ctx); {
		case err == nil:
			ok.SetToCurrentTime()
		case ctx.Err() == nil:
			log.Warn("following App keys in Vault", zap.Error(err))
		}
	}
}
