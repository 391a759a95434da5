package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestFeatureJobsEndToEnd: over the real processes, with the server
// connected to the enterprise octo-corp, license sync and Server
// Statistics send nothing while off (the emulator's counters), and once
// on send at once: the server's users, hashed, which GitHub.com counts
// once per person, and its aggregate counts, which GitHub.com holds for
// the day; each status says so, and the admin page shows both (a Chromium
// check, jobs.test.mjs, screenshots in .artifacts/ui-jobs). Off again,
// nothing more is sent.
func TestFeatureJobsEndToEnd(t *testing.T) {
	t.Parallel() // it mostly waits
	s := startSystem(t)
	id := s.createKind("ACCOUNT_KIND_ENTERPRISE", "octo-corp")
	s.enable(id)
	// lab-cloud, a member of octo-labs (an organization of octo-corp),
	// also has an account on the server under the same address.
	s.emuSend("POST", "/_emu/users/lab-cloud", nil, http.StatusOK, nil)
	s.emuSend("PUT", "/_emu/orgs/octo-labs/members/lab-cloud", nil, http.StatusNoContent, nil)
	s.emuSend("PUT", "/_emu/users/lab-cloud/emails", map[string]any{"emails": []string{"lab@corp.example"}}, http.StatusNoContent, nil)
	if code, out := s.restAs("contrib-source", "POST", "/v1/license-sync/users:report", map[string]any{"users": []map[string]any{
		{"userId": "1", "emails": []string{"Lab@Corp.example"}}, {"userId": "2", "emails": []string{"solo@corp.example"}}}}); code != http.StatusOK || out["licensedUsers"] != "2" {
		t.Fatalf("reporting licensed users: %d %v", code, out)
	}
	if code, out := s.restAs("contrib-source", "POST", "/v1/server-statistics:report", map[string]any{"statistics": map[string]any{
		"gheStats": map[string]any{"users": map[string]any{"totalUsers": "2", "adminUsers": "1"}, "repos": map[string]any{"totalRepos": "7"}}}}); code != http.StatusOK {
		t.Fatalf("reporting statistics: %d %v", code, out)
	}
	// The admin may not report for the server.
	if code, _ := s.rest("POST", "/v1/server-statistics:report", map[string]any{"statistics": map[string]any{"gheStats": map[string]any{}}}); code != http.StatusForbidden {
		t.Errorf("the admin reporting statistics: %d, want 403", code)
	}
	counts := s.emuCounts()
	if counts["POST /connect/license-syncs"] != 0 || counts["POST /connect/server-statistics"] != 0 {
		t.Fatalf("sent while off: %v", counts)
	}

	for _, f := range []string{"FEATURE_LICENSE_SYNC", "FEATURE_SERVER_STATISTICS"} {
		s.eventually(f+" switched on", func() bool {
			code, _ := s.rest("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []map[string]any{{"feature": f, "enabled": true}}})
			return code == http.StatusOK
		})
	}
	var lic, stats map[string]any
	s.eventually("both sent", func() bool {
		lic, _ = s.mustREST("GET", "/v1/license-sync/status", nil)["status"].(map[string]any)
		stats, _ = s.mustREST("GET", "/v1/server-statistics/status", nil)["status"].(map[string]any)
		lj, _ := lic["job"].(map[string]any)
		sj, _ := stats["job"].(map[string]any)
		return lj["state"] == "JOB_STATE_SCHEDULED" && sj["state"] == "JOB_STATE_SCHEDULED"
	})
	// lab-cloud counted once; solo on the server only.
	if lic["seatsConsumed"] != "2" || lic["githubSyncStatus"] != "success" || lic["licensedUsers"] != "2" {
		t.Errorf("license sync: %v", lic)
	}
	if stats["githubDays"] != "1" || stats["githubLastDate"] == "" {
		t.Errorf("server statistics: %v", stats)
	}

	if dir := uiTestDirIf(t); dir != "" {
		s.runUITest(dir, "jobs.test.mjs", "ui-jobs")
	}

	for _, f := range []string{"FEATURE_LICENSE_SYNC", "FEATURE_SERVER_STATISTICS"} {
		s.switchFeature(id, f, false)
	}
	s.eventually("both off", func() bool {
		lic, _ = s.mustREST("GET", "/v1/license-sync/status", nil)["status"].(map[string]any)
		stats, _ = s.mustREST("GET", "/v1/server-statistics/status", nil)["status"].(map[string]any)
		return lic["job"].(map[string]any)["state"] == "JOB_STATE_OFF" && stats["job"].(map[string]any)["state"] == "JOB_STATE_OFF"
	})
	before := s.emuCounts()
	time.Sleep(time.Second) // several of the jobs' polls
	after := s.emuCounts()
	for _, route := range []string{"POST /connect/license-syncs", "POST /connect/server-statistics"} {
		if after[route] != before[route] {
			t.Errorf("%s after the features were turned off: %d more", route, after[route]-before[route])
		}
	}
}
