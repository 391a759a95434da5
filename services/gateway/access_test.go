package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A huge path is logged cut, with how long it was: a request cannot fill
// the log.
func TestAccessLogCapsThePath(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := accessLog(zap.New(core), newHTTPMetrics(prometheus.NewRegistry()), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	long := "/v1/" + strings.Repeat("a", 1<<20)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", long, nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/connections", nil))
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d lines", len(entries))
	}
	got := entries[0].ContextMap()["path"].(string)
	if len(got) > maxLoggedPath+64 || !strings.HasPrefix(got, "/v1/aaaa") || !strings.Contains(got, "1048580 bytes") {
		t.Errorf("logged path of %d bytes: %.80q…", len(got), got)
	}
	if p := entries[1].ContextMap()["path"]; p != "/v1/connections" {
		t.Errorf("a short path logged as %q", p)
	}
}

// Requests are counted by area and code, with no path in a label: a
// request cannot add series.
func TestRequestsCountedByArea(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := newHTTPMetrics(reg)
	h := accessLog(zap.NewNop(), m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/connections" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	for _, p := range []string{"/v1/connections", "/v1/connections", "/v1/x/" + strings.Repeat("b", 100), "/v1/actions/o/r/tarball/main", "/auth/login", "/connect/setup", "/me", "/app.js", "/healthz"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	for _, c := range []struct {
		area, code string
		want       float64
	}{{"api", "200", 2}, {"api", "404", 1}, {"actions", "404", 1}, {"auth", "404", 1}, {"connect", "404", 1}, {"me", "404", 1}, {"page", "404", 1}, {"health", "404", 1}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.area, c.code)); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.area, c.code, got, c.want)
		}
	}
	// The areas declared up front, and those seen: 7 with 200, 7 with 404.
	if n := testutil.CollectAndCount(m.requests); n != len(areas)+7 {
		t.Errorf("%d series", n)
	}
}
