package featuregate

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
)

// view is the in-memory copy of every connection's latest snapshot
// (settings and whether it is connected) that Check answers from. It is
// rebuilt from the event table, so every replica converges on the same
// state, and refreshed right after local writes so a caller reads its own
// change.
type view struct {
	// feed reads the event table after a revision; changed is closed by
	// this replica's next commit.
	feed    func(ctx context.Context, after int64, limit int) ([]feedEvent, error)
	changed func() <-chan struct{}

	refresh sync.Mutex // one refresher at a time
	// asks counts calls of catchUp; covered is the count when the last
	// successful refresh began, so a caller that asked before then is
	// served by it and need not query again. Both are guarded by refresh
	// (asks is also read and bumped atomically before taking it).
	asks    atomic.Int64
	covered int64
	mu      sync.RWMutex
	rev     int64
	conns   map[string]*featuregatev1.WatchResponse
	// users holds each connection's per-user facts, so Check never reads
	// the database.
	users map[string]map[string]*userState
}

type userState struct {
	linked bool
	// broken: GitHub.com no longer accepts the link's authorization.
	broken  bool
	optedIn map[featuregatev1.Feature]bool
}

func newView(feed func(ctx context.Context, after int64, limit int) ([]feedEvent, error), changed func() <-chan struct{}) *view {
	return &view{feed: feed, changed: changed, conns: map[string]*featuregatev1.WatchResponse{}, users: map[string]map[string]*userState{}}
}

const viewBatch = 1000

// catchUp applies every event committed before it was called. Callers
// that arrive while a refresh runs share the next one.
func (v *view) catchUp(ctx context.Context) error {
	ask := v.asks.Add(1)
	v.refresh.Lock()
	defer v.refresh.Unlock()
	if ask <= v.covered {
		return nil
	}
	start := v.asks.Load()
	if err := v.read(ctx); err != nil {
		return err
	}
	v.covered = start
	return nil
}

// read applies every event committed since the last one applied. Callers
// hold v.refresh.
func (v *view) read(ctx context.Context) error {
	for {
		v.mu.RLock()
		after := v.rev
		v.mu.RUnlock()
		evs, err := v.feed(ctx, after, viewBatch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		v.mu.Lock()
		for _, ev := range evs {
			v.apply(ev)
			v.rev = ev.revision
		}
		v.mu.Unlock()
		if len(evs) < viewBatch {
			return nil
		}
	}
}

// apply folds one event into the view. Callers hold v.mu.
func (v *view) apply(ev feedEvent) {
	if ev.snapshot != nil {
		v.conns[ev.connection] = ev.snapshot
	}
	var d struct {
		User    string `json:"user"`
		Feature string `json:"feature"`
		OptedIn bool   `json:"opted_in"`
	}
	switch ev.action {
	case actionSetConsent, actionLinkAccount, actionUnlinkAccount, actionLinkBroken:
		if json.Unmarshal([]byte(ev.detail), &d) != nil || d.User == "" {
			return
		}
	default:
		return
	}
	users := v.users[ev.connection]
	if users == nil {
		users = map[string]*userState{}
		v.users[ev.connection] = users
	}
	u := users[d.User]
	if u == nil {
		u = &userState{optedIn: map[featuregatev1.Feature]bool{}}
		users[d.User] = u
	}
	switch ev.action {
	case actionSetConsent:
		u.optedIn[featureByName(d.Feature)] = d.OptedIn
	case actionLinkAccount:
		u.linked, u.broken = true, false
	case actionUnlinkAccount:
		u.linked, u.broken = false, false
	case actionLinkBroken:
		u.broken = true
	}
}

// facts returns what Check needs of users on a connection.
func (v *view) facts(conn string, users []string) userFacts {
	v.mu.RLock()
	defer v.mu.RUnlock()
	f := userFacts{links: map[string]*featuregatev1.AccountLink{}, optedIn: map[string]map[featuregatev1.Feature]bool{}}
	for _, name := range users {
		u := v.users[conn][name]
		if u == nil {
			continue
		}
		if u.linked {
			st := featuregatev1.LinkStatus_LINK_STATUS_ACTIVE
			if u.broken {
				st = featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED
			}
			f.links[name] = &featuregatev1.AccountLink{User: name, Status: st}
		}
		opted := make(map[featuregatev1.Feature]bool, len(u.optedIn))
		for k, on := range u.optedIn {
			opted[k] = on
		}
		f.optedIn[name] = opted
	}
	return f
}

// effective lists the connections on which feature f works, by id.
func (v *view) effective(f featuregatev1.Feature) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var ids []string
	for id, snap := range v.conns {
		if st, _ := featureState(snap, f); st == featuregatev1.Reason_REASON_EFFECTIVE {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// revision is the last event the view has applied.
func (v *view) revision() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.rev
}

// get returns the connection's latest snapshot, or nil if the gate has
// never seen it connected.
func (v *view) get(id string) *featuregatev1.WatchResponse {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.conns[id]
}

// update catches up, logging a failure: the next commit or poll tries
// again.
func (v *view) update(ctx context.Context) {
	if err := v.catchUp(ctx); err != nil && ctx.Err() == nil {
		logging.FromContext(ctx).Warn("refreshing feature view", zap.Error(err))
	}
}

// follow keeps the view current until ctx ends: at once after a local
// commit, within poll after another replica's.
func (v *view) follow(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		changed := v.changed()
		v.update(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}
