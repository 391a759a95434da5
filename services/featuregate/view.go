package featuregate

import (
	"context"
	"sync"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
)

// view is the in-memory copy of every connection's latest snapshot
// (settings and whether it is connected) that Check answers from. It is
// rebuilt from the event table, so every replica converges on the same
// state, and refreshed right after local writes so a caller reads its own
// change.
type view struct {
	store *Store

	refresh sync.Mutex // one refresher at a time
	mu      sync.RWMutex
	rev     int64
	conns   map[string]*featuregatev1.WatchResponse
}

func newView(store *Store) *view {
	return &view{store: store, conns: map[string]*featuregatev1.WatchResponse{}}
}

const viewBatch = 1000

// catchUp applies every snapshot committed since the last one applied.
func (v *view) catchUp(ctx context.Context) error {
	v.refresh.Lock()
	defer v.refresh.Unlock()
	for {
		v.mu.RLock()
		after := v.rev
		v.mu.RUnlock()
		snaps, err := v.store.Snapshots(ctx, after, "", viewBatch)
		if err != nil {
			return err
		}
		if len(snaps) == 0 {
			return nil
		}
		v.mu.Lock()
		for _, s := range snaps {
			v.conns[s.Settings.GetConnectionId()] = s
			v.rev = s.Revision
		}
		v.mu.Unlock()
		if len(snaps) < viewBatch {
			return nil
		}
	}
}

// get returns the connection's latest snapshot, or nil if the gate has
// never seen it connected.
func (v *view) get(id string) *featuregatev1.WatchResponse {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.conns[id]
}

// follow keeps the view current until ctx ends: at once after a local
// commit, within poll after another replica's.
func (v *view) follow(ctx context.Context, poll time.Duration, onErr func(error)) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		changed := v.store.Changed()
		if err := v.catchUp(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}
