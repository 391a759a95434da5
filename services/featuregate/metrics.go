package featuregate

import (
	"context"
	"strings"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/prometheus/client_golang/prometheus"
)

// What the dashboards show of the gate's state, read at each scrape: the
// features working on how many connections (from the gate's view, as
// Check answers) and the server users' GitHub.com links by status (from
// the store).
var (
	effectiveDesc = prometheus.NewDesc("ghconnect_featuregate_features_effective",
		"Connections on which each feature works (EFFECTIVE: connected, enabled, with the permissions it needs).", []string{"feature"}, nil)
	linksDesc = prometheus.NewDesc("ghconnect_featuregate_account_links",
		"Server users' GitHub.com account links by status (active, reconnect_needed).", []string{"status"}, nil)
)

type stateCollector struct{ store *Store }

// RegisterStateMetrics exports the features working and the account
// links (stateCollector).
func RegisterStateMetrics(reg prometheus.Registerer, store *Store) {
	reg.MustRegister(stateCollector{store: store})
}

func (stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- effectiveDesc; ch <- linksDesc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	for v, name := range featuregatev1.Feature_name {
		f := featuregatev1.Feature(v)
		if f == featuregatev1.Feature_FEATURE_UNSPECIFIED {
			continue
		}
		ch <- prometheus.MustNewConstMetric(effectiveDesc, prometheus.GaugeValue, float64(len(c.store.view.effective(f))),
			strings.ToLower(strings.TrimPrefix(name, "FEATURE_")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.store.LinkCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(linksDesc, err)
		return
	}
	for v, name := range featuregatev1.LinkStatus_name {
		st := featuregatev1.LinkStatus(v)
		if st == featuregatev1.LinkStatus_LINK_STATUS_UNSPECIFIED {
			continue
		}
		ch <- prometheus.MustNewConstMetric(linksDesc, prometheus.GaugeValue, float64(counts[st]),
			strings.ToLower(strings.TrimPrefix(name, "LINK_STATUS_")))
	}
}

// LinkCounts are the account links of every connection by status.
func (s *Store) LinkCounts(ctx context.Context) (map[featuregatev1.LinkStatus]int64, error) {
	return sqldb.CountsBy[featuregatev1.LinkStatus](ctx, s.db, `SELECT status, COUNT(*) FROM gate_links GROUP BY status`)
}
