package registry

import (
	"context"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/prometheus/client_golang/prometheus"
)

// The leases of the loops that run in one replica at a time.
const (
	leaseReconciler  = "registry-reconciler"
	leaseKeyFollower = "registry-key-follower"
)

type loopMetrics struct {
	// leader is 1 while this replica holds the lease, per lease.
	leader map[string]prometheus.Gauge
	// runs counts the leased loops' passes (Reconcile, FollowKeys).
	runs *prometheus.CounterVec
}

func newLoopMetrics(reg prometheus.Registerer) *loopMetrics {
	m := &loopMetrics{
		leader: map[string]prometheus.Gauge{
			leaseReconciler: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_registry_reconciler_leader",
				Help: "1 while this replica holds the reconciler's lease (finishes interrupted disconnects, deletes orphan keys)."}),
			leaseKeyFollower: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_registry_key_follower_leader",
				Help: "1 while this replica holds the key follower's lease (follows App key versions in Vault)."}),
		},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_registry_loop_runs_total",
			Help: "Passes of the leased loops, by loop (reconciler, key_follower)."}, []string{"loop"}),
	}
	reg.MustRegister(m.leader[leaseReconciler], m.leader[leaseKeyFollower], m.runs)
	return m
}

// runLeased runs loop while this replica holds the lease called name,
// until ctx ends; the loop's context ends when the lease is lost.
func runLeased(ctx context.Context, store *Store, name string, retry time.Duration, m *loopMetrics, loop func(context.Context)) {
	l := store.Lease(name)
	l.Retry = retry
	l.OnChange = sqldb.GaugeOnChange(m.leader[name])
	l.Run(ctx, loop)
}
