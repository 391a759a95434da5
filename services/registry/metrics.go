package registry

import (
	"context"
	"strings"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/prometheus/client_golang/prometheus"
)

// The registry's state, as alerts need it: how many connections are in
// each state, how long the oldest disconnect has been under way and how
// long the oldest new key version has waited for GitHub.com. Read from the
// store at each scrape (a handful of rows), so every replica reports the
// same figures; alerts take the max.
var (
	connectionsDesc = prometheus.NewDesc("ghconnect_registry_connections",
		"Connections by state (pending, connected, disconnecting, disconnected).", []string{"state"}, nil)
	disconnectingDesc = prometheus.NewDesc("ghconnect_registry_disconnecting_oldest_seconds",
		"Seconds since the oldest disconnect still under way (DISCONNECTING) began; 0 when none is.", nil, nil)
	pendingDesc = prometheus.NewDesc("ghconnect_registry_key_version_pending_oldest_seconds",
		"Seconds since a key version in Vault that GitHub.com does not accept yet was first found, the oldest such; 0 when none waits.", nil, nil)
	scrapeErrDesc = prometheus.NewDesc("ghconnect_registry_state_scrape_errors",
		"1 when the store could not be read for this scrape's state figures.", nil, nil)
)

// stateCollector reads the store at each scrape.
type stateCollector struct {
	store *Store
	now   func() time.Time
}

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionsDesc, disconnectingDesc, pendingDesc, scrapeErrDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0.0
	counts, err := c.store.countByState(ctx)
	if err != nil {
		failed = 1
	}
	for state, label := range stateLabels {
		if err == nil && state != registryv1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
			ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(counts[state]), label)
		}
	}
	// Only the live connections' records are read: DISCONNECTING ones for
	// when their disconnect began, CONNECTED ones (the key follower's) for
	// a pending key version.
	var oldestDisc, oldestPending time.Duration
	disconnecting, err := c.store.InState(ctx, stateDisconnecting)
	if err != nil {
		failed = 1
	}
	for _, conn := range disconnecting {
		if began, _, ok := c.store.eventTimes(ctx, conn.Id, func(ev *registryv1.ConnectionEvent) bool { return ev.ActionKind == actionBeginDisconnect }); ok {
			oldestDisc = max(oldestDisc, c.now().Sub(began))
		}
	}
	connected, err := c.store.InState(ctx, stateConnected)
	if err != nil {
		failed = 1
	}
	for _, conn := range connected {
		v := conn.GetTransitKey().GetPendingVersion()
		if v == 0 {
			continue
		}
		// When the version was first found pending: the oldest such event.
		if _, found, ok := c.store.eventTimes(ctx, conn.Id, func(ev *registryv1.ConnectionEvent) bool {
			return ev.ActionKind == actionKeyVersionPending && ev.GetConnection().GetTransitKey().GetPendingVersion() == v
		}); ok {
			oldestPending = max(oldestPending, c.now().Sub(found))
		}
	}
	ch <- prometheus.MustNewConstMetric(disconnectingDesc, prometheus.GaugeValue, oldestDisc.Seconds())
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, oldestPending.Seconds())
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, failed)
}

// historyLookBack bounds how many of a connection's newest events a scrape
// reads to find when something began.
const historyLookBack = 200

// eventTimes are the times of the newest and the oldest of conn's events
// that match, among its newest historyLookBack (ok: one matched).
func (s *Store) eventTimes(ctx context.Context, conn string, match func(*registryv1.ConnectionEvent) bool) (newest, oldest time.Time, ok bool) {
	evs, err := s.History(ctx, sqldb.HistoryScope{ConnectionID: conn, NewestFirst: true}, 0, historyLookBack)
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	for _, ev := range evs {
		if !match(ev) {
			continue
		}
		if !ok {
			newest, ok = ev.EventTime.AsTime(), true
		}
		oldest = ev.EventTime.AsTime()
	}
	return newest, oldest, ok
}

// countByState counts the connections in each state, in the database.
func (s *Store) countByState(ctx context.Context) (map[registryv1.ConnectionState]int64, error) {
	return sqldb.CountsBy[registryv1.ConnectionState](ctx, s.db, `SELECT state, COUNT(*) FROM connections GROUP BY state`)
}

// connectorMetrics are what the connector's work records.
type connectorMetrics struct {
	// disconnects: how long each finished disconnect took, from
	// begin_disconnect to DISCONNECTED.
	disconnects prometheus.Histogram
	// lastSuccess: Unix time of each leased loop's last pass without an
	// error, by loop.
	lastSuccess *prometheus.GaugeVec
}

func newConnectorMetrics(reg prometheus.Registerer) *connectorMetrics {
	m := &connectorMetrics{
		disconnects: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ghconnect_registry_disconnect_seconds",
			Help:    "How long finished disconnects took, from begin_disconnect to DISCONNECTED.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ghconnect_registry_loop_last_success_seconds",
			Help: "Unix time of the last pass without an error of each leased loop (reconciler, key_follower), on the replica that ran it."}, []string{"loop"}),
	}
	reg.MustRegister(m.disconnects, m.lastSuccess)
	return m
}

// registerState exports the store's state figures (stateCollector).
func registerState(reg prometheus.Registerer, store *Store) {
	reg.MustRegister(stateCollector{store: store, now: time.Now})
}

// observeDisconnect records how long conn's finished disconnect took.
func (c *Connector) observeDisconnect(ctx context.Context, conn *registryv1.Connection) {
	if c.metrics == nil || conn.GetDisconnectTime() == nil {
		return
	}
	if began, _, ok := c.Store.eventTimes(ctx, conn.Id, func(ev *registryv1.ConnectionEvent) bool { return ev.ActionKind == actionBeginDisconnect }); ok {
		c.metrics.disconnects.Observe(conn.DisconnectTime.AsTime().Sub(began).Seconds())
	}
}

// stateLabels are the states as metric labels: "connected" for CONNECTION_STATE_CONNECTED.
var stateLabels = func() map[registryv1.ConnectionState]string {
	out := map[registryv1.ConnectionState]string{}
	for v, n := range registryv1.ConnectionState_name {
		out[registryv1.ConnectionState(v)] = strings.ToLower(strings.TrimPrefix(n, "CONNECTION_STATE_"))
	}
	return out
}()
