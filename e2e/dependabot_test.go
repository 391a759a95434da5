package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// listAdvisories is the emulator's counter of advisory pages asked for.
const listAdvisories = "GET /advisories"

// emuSend calls one of the emulator's controls with a JSON body (nil:
// none) and wants status want; out, if not nil, takes the answer.
func (s *system) emuSend(method, path string, body any, want int, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.emu+path, rd)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatal(err)
		}
	}
}

// advisorySync is the gate's GET /v1/advisories/sync, as an admin.
func (s *system) advisorySync() map[string]any {
	s.t.Helper()
	st, _ := s.mustREST("GET", "/v1/advisories/sync", nil)["status"].(map[string]any)
	return st
}

func (s *system) switchDependabot(id string, on bool) {
	s.t.Helper()
	s.mustREST("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []map[string]any{{"feature": "FEATURE_DEPENDABOT_ALERTS", "enabled": on}}})
}

// TestDependabotEndToEnd: over the real processes, GitHub.com's
// advisories reach the feature gate only while Dependabot alerts are on,
// and the server's services ask the gate, not GitHub.com. Turned on, a
// full sync runs at once; the copy answers which advisories affect a
// version; turned off in the middle of a run, the run stops and nothing
// more reaches GitHub.com (the emulator's counters), and the page's
// status says so; on again, the next run resumes and takes what
// changed; a disconnect stops it too.
func TestDependabotEndToEnd(t *testing.T) {
	s := startSystem(t)
	var vulnerable struct {
		GHSAID string `json:"ghsa_id"`
	}
	s.emuSend("POST", "/_emu/advisories", map[string]any{"summary": "e2e-pkg runs code it should not",
		"vulnerabilities": []map[string]any{{"package": map[string]string{"ecosystem": "npm", "name": "e2e-pkg"}, "vulnerable_version_range": "< 2.0.0", "first_patched_version": "2.0.0"}}},
		http.StatusCreated, &vulnerable)
	id := s.create()
	s.enable(id) // the App asks for every feature's permissions
	gate := featuregatev1.NewFeatureGateServiceClient(s.grpcAs("search-svc", s.addr("featuregate")))
	ctx := context.Background()
	affected := func(version string) ([]string, error) {
		resp, err := gate.ListAdvisories(ctx, &featuregatev1.ListAdvisoriesRequest{Ecosystem: "npm", Package: "e2e-pkg", Version: version})
		var ids []string
		for _, a := range resp.GetAdvisories() {
			ids = append(ids, a.GhsaId)
		}
		return ids, err
	}

	if _, err := affected("1.5.0"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ListAdvisories while Dependabot alerts are off: %v", err)
	}
	if n := s.emuCounts()[listAdvisories]; n != 0 {
		t.Fatalf("%d advisory requests before the feature was on", n)
	}

	s.switchDependabot(id, true)
	var st map[string]any
	s.eventually("the full sync", func() bool {
		st = s.advisorySync()
		return st["state"] == "ADVISORY_SYNC_STATE_SCHEDULED"
	})
	if st["advisories"] != st["fetched"] || st["fetched"] == nil || st["connectionId"] != id || st["lastError"] != "" {
		t.Errorf("after the full sync: %v", st)
	}
	if got, err := affected("1.5.0"); err != nil || len(got) != 1 || got[0] != vulnerable.GHSAID {
		t.Errorf("e2e-pkg 1.5.0: %v, %v; want %s", got, err, vulnerable.GHSAID)
	}
	if got, err := affected("2.0.0"); err != nil || len(got) != 0 {
		t.Errorf("e2e-pkg 2.0.0 (patched): %v, %v", got, err)
	}
	if n := s.metric("featuregate-http", `ghconnect_featuregate_advisories_sync_runs_total{result="ok"}`); n != 1 {
		t.Errorf("runs that succeeded: %v; want 1", n)
	}

	// Off in the middle of a run: GitHub.com answers slowly.
	s.switchDependabot(id, false)
	s.eventually("the sync is off", func() bool { return s.advisorySync()["state"] == "ADVISORY_SYNC_STATE_OFF" })
	s.emuSend("PATCH", "/_emu/advisories/"+vulnerable.GHSAID, map[string]any{"summary": "e2e-pkg runs code it should not (corrected)"}, http.StatusOK, nil)
	s.emuSend("PUT", "/_emu/faults", map[string]any{"latency_ms": 2000}, http.StatusNoContent, nil)
	before := s.emuCounts()[listAdvisories]
	s.switchDependabot(id, true)
	s.eventually("a run asks GitHub.com", func() bool { return s.emuCounts()[listAdvisories] > before })
	s.switchDependabot(id, false)
	s.eventually("the run stops", func() bool {
		st = s.advisorySync()
		last, _ := st["lastError"].(string)
		return st["state"] == "ADVISORY_SYNC_STATE_OFF" && strings.HasPrefix(last, "stopped")
	})
	s.emuSend("PUT", "/_emu/faults", map[string]any{}, http.StatusNoContent, nil)
	stopped := s.emuCounts()[listAdvisories]
	time.Sleep(time.Second) // what a run would ask in a second, were it still going
	if n := s.emuCounts()[listAdvisories]; n != stopped {
		t.Errorf("%d advisory requests after the feature was turned off", n-stopped)
	}
	if n := s.metric("featuregate-http", `ghconnect_featuregate_advisories_sync_runs_total{result="stopped"}`); n != 1 {
		t.Errorf("runs stopped: %v; want 1", n)
	}

	// On again: the run at once takes the correction, and only what
	// changed since the cursor.
	s.switchDependabot(id, true)
	s.eventually("the incremental sync", func() bool {
		st = s.advisorySync()
		return st["state"] == "ADVISORY_SYNC_STATE_SCHEDULED" && st["lastError"] == ""
	})
	if st["changed"] != "1" {
		t.Errorf("incremental run: %v; want 1 changed", st)
	}
	resp, err := gate.ListAdvisories(ctx, &featuregatev1.ListAdvisoriesRequest{Ecosystem: "npm", Package: "e2e-pkg", Version: "1.0.0"})
	if err != nil || len(resp.Advisories) != 1 || !strings.HasSuffix(resp.Advisories[0].Summary, "(corrected)") {
		t.Errorf("after the incremental sync: %v, %v", resp, err)
	}

	// A disconnect stops it: nothing is due.
	s.mustREST("POST", "/v1/connections/"+id+":disconnect", map[string]any{"reason": "the end of the Dependabot test"})
	s.eventually("the sync is off after the disconnect", func() bool {
		st = s.advisorySync()
		return st["state"] == "ADVISORY_SYNC_STATE_OFF" && st["nextRunTime"] == nil
	})
}
