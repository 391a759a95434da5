package e2e

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/deploy/monitoring"
)

// exported are the metric names a service's /metrics declares (its
// "# TYPE" lines), a histogram's and a summary's series named as such.
func (s *system) exported(name string) map[string]bool {
	s.t.Helper()
	resp, err := http.Get("http://" + s.addr(name+"-http") + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("%s /metrics: %s", name, resp.Status)
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		out[f[2]] = true
		switch f[3] {
		case "histogram":
			out[f[2]+"_bucket"], out[f[2]+"_sum"], out[f[2]+"_count"] = true, true, true
		case "summary":
			out[f[2]+"_sum"], out[f[2]+"_count"] = true, true
		}
	}
	if err := sc.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// TestMonitoringNamesExportedMetrics: every metric deploy/monitoring's
// rules and dashboards name is exported by a running service, so no alert
// or panel watches a series that never exists. The system runs with a
// connection enabled and a token issued, as in production; a metric a
// rule needs must show from the start (label values declared up front),
// not only after its first event.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	queries, err := monitoring.Queries()
	if err != nil {
		t.Fatal(err)
	}
	want, err := monitoring.MetricNames(queries)
	if err != nil {
		t.Fatal(err)
	}
	s := startSystem(t)
	s.enabledWithAToken()
	have := map[string]string{}
	for _, svc := range []string{"registry", "broker", "featuregate", "gateway"} {
		for n := range s.exported(svc) {
			have[n] = svc
		}
	}
	for _, n := range want {
		if have[n] == "" {
			t.Errorf("%s: named by deploy/monitoring, exported by no service", n)
		}
	}
	if t.Failed() {
		t.Logf("the services export %d names", len(have))
	}
}

// enabledWithAToken enables a connection and waits for the broker to
// issue a token for it (so it has signed and exchanged once), and returns
// its id.
func (s *system) enabledWithAToken() string {
	s.t.Helper()
	id := s.create()
	s.enable(id)
	s.eventually("the broker issues a token", func() bool {
		code, _ := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/tokens", map[string]any{"repositories": []string{"hello-world"}, "permissions": map[string]string{"contents": "read"}})
		return code == 200
	})
	return id
}
