package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Disconnecting: features off, tokens revoked, the App's installation
// removed, the transit key deleted, each step recorded so that a retry, a
// restart or another replica resumes where it stopped; and the reconciler
// that finishes interrupted disconnects and deletes orphan keys.

// The steps of a disconnect, in order.
const (
	stepFeaturesOff         = "features_off"
	stepTokensRevoked       = "tokens_revoked"
	stepInstallationRemoved = "installation_removed"
	stepKeyDeleted          = "key_deleted"
)

// Disconnect runs (or resumes) the disconnect, recording each step; with
// an etag, only while the connection is still as the caller saw it.
func (c *Connector) Disconnect(ctx context.Context, id, reason, etag string, ch Change) (*registryv1.Connection, error) {
	lock, _ := c.running.LoadOrStore(id, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	conn, err := c.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != conn.Etag {
		return nil, staleView(conn)
	}
	if disconnected(conn) {
		return conn, nil
	}
	if begin := beginDisconnect(); begin.check(conn) == nil {
		why := ch
		why.Reason = reason
		if conn, err = c.take(ctx, id, etag, begin, why); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{stepFeaturesOff, func() error { return c.featuresOff(ctx, conn) }},
		{stepTokensRevoked, func() error { return c.revokeTokens(ctx, conn) }},
		{stepInstallationRemoved, func() error { return c.removeInstallation(ctx, conn) }},
		{stepKeyDeleted, func() error {
			// The key named by the connection's own id, whatever its
			// record says; none (an enable that never imported one) is
			// nothing to delete.
			return c.Transit.DeleteKey(ctx, keyName(conn.Id))
		}},
	}
	for _, s := range steps {
		if slices.Contains(conn.DisconnectSteps, s.name) {
			continue
		}
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("disconnect step %s: %w", s.name, err)
		}
		next, err := c.take(ctx, id, "", disconnectStep(s.name), ch)
		if errors.Is(err, errAlreadyDone) {
			next, err = c.Store.Get(ctx, id)
		}
		if err != nil {
			return nil, err
		}
		conn = next
	}
	out, err := c.take(ctx, id, "", completeDisconnect(), ch)
	if errors.Is(err, errAlreadyDone) {
		return c.Store.Get(ctx, id)
	}
	if err == nil {
		c.observeDisconnect(ctx, out)
	}
	return out, err
}

// staleView is the refusal of a change asked from a view of the
// connection that is out of date, saying what it is now.
func staleView(now *registryv1.Connection) error {
	return fmt.Errorf("%w: it is %s now", ErrConflict, stateName(now.State))
}

// featuresOff waits until the feature gate, which watches this registry,
// shows every feature off for the connection.
func (c *Connector) featuresOff(ctx context.Context, conn *registryv1.Connection) error {
	if c.Gate == nil {
		return nil
	}
	deadline := c.now().Add(15 * time.Second)
	for {
		st, err := c.Gate.GetSettings(ctx, &featuregatev1.GetSettingsRequest{ConnectionId: conn.Id})
		if err == nil {
			on := false
			for _, f := range st.GetSettings().GetFeatures() {
				on = on || f.GetEnabled()
			}
			if !on {
				return nil
			}
		}
		if c.now().After(deadline) {
			return errors.New("the feature gate still shows features on")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Connector) revokeTokens(ctx context.Context, conn *registryv1.Connection) error {
	if c.Broker == nil {
		return nil
	}
	_, err := c.Broker.RevokeConnectionTokens(ctx, &brokerv1.RevokeConnectionTokensRequest{ConnectionId: conn.Id})
	return err
}

// removeInstallation deletes the App's installation on GitHub.com; one
// already gone counts as removed.
func (c *Connector) removeInstallation(ctx context.Context, conn *registryv1.Connection) error {
	if conn.InstallationId == 0 || conn.App == nil {
		return nil
	}
	jwt, err := c.appJWT(ctx, conn.App.GetAppId(), keyName(conn.Id), signingVersion(conn))
	if errors.Is(err, vaulttransit.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	err = c.deleteInstallation(ctx, jwt, conn.InstallationId)
	if errors.Is(err, ErrGitHubNotFound) {
		return nil
	}
	return err
}

// Reconcile finishes interrupted disconnects and deletes transit keys that
// belong to no connection (or to one that can no longer use them).
func (c *Connector) Reconcile(ctx context.Context) error {
	log := logging.FromContext(ctx)
	pending, err := c.Store.InState(ctx, stateDisconnecting)
	if err != nil {
		return err
	}
	for _, conn := range pending {
		ch, err := c.Store.ResumeChange(ctx, conn.Id, "system:reconciler")
		if err != nil {
			return err
		}
		if _, err := c.Disconnect(ctx, conn.Id, "", "", ch); err != nil {
			log.Warn("resuming a disconnect failed", zap.String("connection_id", conn.Id), zap.Error(err))
		}
	}
	keys, err := c.Transit.ListKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		id, ok := strings.CutPrefix(k, vaulttransit.AppKeyPrefix)
		if !ok {
			continue
		}
		conn, err := c.Store.Get(ctx, id)
		if orphan := errors.Is(err, ErrNotFound) || (err == nil && !holdsKey(conn)); !orphan {
			continue
		}
		// An enable in progress imports the key a moment before it records
		// the App: only a key older than the grace period is an orphan.
		if info, err := c.Transit.Key(ctx, k); err != nil || info.Created.IsZero() || c.now().Sub(info.Created) < c.orphanGrace() {
			continue
		}
		if err := c.Transit.DeleteKey(ctx, k); err != nil {
			log.Warn("deleting an orphan transit key failed", zap.String("transit_key", k), zap.Error(err))
			continue
		}
		log.Info("deleted an orphan transit key", zap.String("transit_key", k))
	}
	return nil
}

func (c *Connector) orphanGrace() time.Duration {
	if c.OrphanGrace > 0 {
		return c.OrphanGrace
	}
	return 10 * time.Minute
}

// reconcile runs the connector's reconciler now and then every period.
func reconcile(ctx context.Context, c *Connector, every time.Duration, runs prometheus.Counter, ok prometheus.Gauge) {
	log := logging.FromContext(ctx)
	for {
		runs.Inc()
		switch err := c.Reconcile(ctx); {
		case err == nil:
			ok.SetToCurrentTime()
		case ctx.Err() == nil:
			log.Warn("reconciling", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
