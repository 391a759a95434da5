package featuregate_test

import (
	"context"
	"testing"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/prometheus/client_golang/prometheus"
)

// TestStateMetrics: the dashboards' "features on" and "links" follow the
// gate: a feature switched on counts its connection once the gate sees
// it, and links count by status.
func TestStateMetrics(t *testing.T) {
	e := start(t, testenv.SQLite(t))
	reg := prometheus.NewPedanticRegistry()
	featuregate.RegisterStateMetrics(reg, e.store)
	if got := testenv.Sample(t, reg, "ghconnect_featuregate_features_effective", "feature", "unified_search"); got != 0 {
		t.Fatalf("search on %v connections before any", got)
	}
	id := e.connect(t, allPerms)
	if _, err := e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the gate counts search on", func() bool {
		return testenv.Sample(t, reg, "ghconnect_featuregate_features_effective", "feature", "unified_search") == 1
	})
	if got := testenv.Sample(t, reg, "ghconnect_featuregate_features_effective", "feature", "dependabot_alerts"); got != 0 {
		t.Errorf("Dependabot alerts on %v connections, switched on nowhere", got)
	}
	links := []*featuregatev1.AccountLink{{User: "mona", GithubLogin: "mona-cloud", GithubId: 1}, {User: "hubot", GithubLogin: "hubot-cloud", GithubId: 2}}
	if err := featuregate.LinkOptedIn(context.Background(), e.store, id, links); err != nil {
		t.Fatal(err)
	}
	if got := testenv.Sample(t, reg, "ghconnect_featuregate_account_links", "status", "active"); got != 2 {
		t.Errorf("%v active links, want 2", got)
	}
	if got := testenv.Sample(t, reg, "ghconnect_featuregate_account_links", "status", "reconnect_needed"); got != 0 {
		t.Errorf("%v links needing a reconnect, want 0", got)
	}
}
