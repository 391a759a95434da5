package featuregate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

func benchEnv(b *testing.B) (*env, string) {
	e := startWith(b, testenv.SQLite(b), testenv.Noop("feature-client"))
	id := e.connect(b, allPerms)
	if _, err := e.set(b, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}, &featuregatev1.FeatureSetting{Feature: contributions, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	return e, id
}

// BenchmarkBulkCheckVsNoop: Check of 50 users × 3 features (one needing
// per-user consent, so the store is read) against a no-op method on the
// same server, in alternating rounds of one run.
func BenchmarkBulkCheckVsNoop(b *testing.B) {
	e, id := benchEnv(b)
	users := make([]string, 50)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	req := &featuregatev1.CheckRequest{ConnectionId: id, Users: users, Features: []featuregatev1.Feature{search, contributions, dependabot}}
	ctx := e.ctx(b, "search-svc")
	noop := func(context.Context) error { return testenv.CallNoop(ctx, e.conn) }
	check := func(context.Context) error {
		_, err := e.gate.Check(ctx, req)
		return err
	}
	b.ResetTimer()
	for range b.N {
		cmp, err := testenv.Compare(7, 3000, 16, noop, check, nil)
		if err != nil {
			b.Fatal(err)
		}
		base, cand := cmp.Base, cmp.Cand
		b.ReportMetric(cmp.Ratio, "check/noop")
		b.ReportMetric(cand.OpsPerSec, "checks/s")
		b.ReportMetric(cand.OpsPerSec*150, "decisions/s")
		b.ReportMetric(base.OpsPerSec, "noop-ops/s")
		b.ReportMetric(float64(cand.P50.Microseconds()), "check-p50-µs")
		b.ReportMetric(float64(cand.P99.Microseconds()), "check-p99-µs")
	}
}

// BenchmarkSettingsToWatch: the time from an UpdateSettings call to a
// Watch subscriber receiving the change.
func BenchmarkSettingsToWatch(b *testing.B) {
	e, id := benchEnv(b)
	stream, err := e.gate.Watch(e.ctx(b, "search-svc"), &featuregatev1.WatchRequest{ConnectionId: id})
	if err != nil {
		b.Fatal(err)
	}
	// Drain the history.
	cur, _ := e.gate.GetSettings(e.ctx(b, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
	for {
		w, err := stream.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if w.Settings.Etag == cur.Settings.Etag || w.Settings.UpdateTime.AsTime().Equal(cur.Settings.UpdateTime.AsTime()) {
			break
		}
	}
	b.ResetTimer()
	for range b.N {
		var lat []time.Duration
		for i := range 300 {
			t0 := time.Now()
			if _, err := e.set(b, id, &featuregatev1.FeatureSetting{Feature: dependabot, Enabled: i%2 == 0}); err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(float64(testenv.Percentile(lat, 50).Microseconds()), "p50-µs")
		b.ReportMetric(float64(testenv.Percentile(lat, 99).Microseconds()), "p99-µs")
	}
}

// TestNoopBaselineIsAuthorized keeps BenchmarkBulkCheckVsNoop's baseline
// callable: it passes every interceptor, authorization included.
func TestNoopBaselineIsAuthorized(t *testing.T) {
	e := startWith(t, testenv.SQLite(t), testenv.Noop("feature-client"))
	if err := testenv.CallNoop(e.ctx(t, "search-svc"), e.conn); err != nil {
		t.Fatal(err)
	}
}
