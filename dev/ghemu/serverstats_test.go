package ghemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

// statsItem is one valid Server Statistics item: every field of the
// server-statistics schema.
func statsItem(server, date string, users int) map[string]any {
	return map[string]any{
		"server_id":       server,
		"collection_date": date,
		"schema_version":  "20230306",
		"ghes_version":    "3.15.2",
		"host_name":       "github.example.com",
		"github_connect":  map[string]any{"features_enabled": []any{"license_usage_sync", "server_statistics"}},
		"ghe_stats": map[string]any{
			"comments":   map[string]any{"total_commit_comments": 10, "total_gist_comments": 1, "total_issue_comments": 40, "total_pull_request_comments": 25},
			"gists":      map[string]any{"total_gists": 3, "private_gists": 1, "public_gists": 2},
			"hooks":      map[string]any{"total_hooks": 2, "active_hooks": 1, "inactive_hooks": 1},
			"issues":     map[string]any{"total_issues": 30, "open_issues": 12, "closed_issues": 18},
			"milestones": map[string]any{"total_milestones": 4, "open_milestones": 1, "closed_milestones": 3},
			"orgs":       map[string]any{"total_orgs": 5, "disabled_orgs": 0, "total_teams": 9, "total_team_members": 21},
			"pages":      map[string]any{"total_pages": 1},
			"pulls":      map[string]any{"total_pulls": 50, "merged_pulls": 40, "mergeable_pulls": 6, "unmergeable_pulls": 4},
			"repos":      map[string]any{"total_repos": 12, "root_repos": 10, "fork_repos": 2, "org_repos": 8, "total_pushes": 420, "total_wikis": 1},
			"users":      map[string]any{"total_users": users, "admin_users": 2, "suspended_users": 1},
		},
		"dormant_users": map[string]any{"total_dormant_users": 3, "dormancy_threshold": "90 days"},
		"actions_stats": map[string]any{"number_of_repos_using_actions": 6, "percentage_of_repos_using_actions": "50.00"},
		"packages_stats": map[string]any{
			"registry_enabled": true, "registry_v2_enabled": false,
			"ecosystems": []any{map[string]any{
				"name": "npm", "enabled": "TRUE", "published_packages_count": 4, "private_packages_count": 3,
				"public_packages_count": 1, "internal_packages_count": 0, "user_packages_count": 1,
				"organization_packages_count": 3, "daily_download_count": 17, "daily_update_count": 2,
				"daily_delete_count": 0, "daily_create_count": 1,
			}},
		},
	}
}

// instToken mints an installation token of the world's App.
func (w *world) instToken(t *testing.T, instID int64) string {
	t.Helper()
	tok, _, err := w.appClient().Apps.CreateInstallationToken(context.Background(), instID, &github.InstallationTokenOptions{})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return tok.GetToken()
}

// statsUpload posts body (raw bytes as they are, anything else as JSON) to
// the private upload route.
func (w *world) statsUpload(t *testing.T, token string, body any) (int, map[string]any) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		raw, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(http.MethodPost, w.emu.URL+"/connect/server-statistics", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	return sendJSON(t, req)
}

// statsRead calls the public read-back; items is nil unless it answered
// 200.
func (w *world) statsRead(t *testing.T, token, account, query string) (code int, items []map[string]any, body []byte) {
	t.Helper()
	u := w.emu.URL + "/enterprise-installation/" + account + "/server-statistics"
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "application/vnd.github+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &items); err != nil {
			t.Fatalf("read-back %s: %v: %s", u, err, body)
		}
	}
	return resp.StatusCode, items, body
}

// serversDays lists items as "server_id/collection_date".
func serversDays(items []map[string]any) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, str(it["server_id"])+"/"+str(it["collection_date"]))
	}
	return out
}

func day(daysAgo int) string {
	return time.Now().UTC().AddDate(0, 0, -daysAgo).Format(time.DateOnly)
}

// TestServerStatisticsUploadAndRead: items uploaded for an organization
// and an enterprise come back by collection date through the public,
// contract-checked read-back (StartForTest fails on any violation), in
// the default last-365-days range or the one asked for; a second upload
// for the same server and day replaces the first.
func TestServerStatisticsUploadAndRead(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	org, ent := w.instToken(t, w.instID), w.instToken(t, w.entInstID)
	d1, d2, old := day(10), day(9), day(400)

	uploads := []struct {
		token, server, date string
		want                int
	}{
		{org, "srv-a", d2 + "T23:59:59Z", http.StatusCreated},
		{org, "srv-a", d1 + "T23:59:59Z", http.StatusCreated},
		{org, "srv-b", d1, http.StatusCreated}, // a date alone is fine too
		{org, "srv-a", old + "T23:59:59Z", http.StatusCreated},
		{ent, "srv-e", d1 + "T23:59:59Z", http.StatusCreated},
	}
	for _, u := range uploads {
		code, out := w.statsUpload(t, u.token, statsItem(u.server, u.date, 100))
		if code != u.want || !cmp.Equal(out, map[string]any{"server_id": u.server, "collection_date": u.date}) {
			t.Fatalf("upload %s %s: %d %v", u.server, u.date, code, out)
		}
	}
	// The same server and day again (another time of the day): replaced.
	code, out := w.statsUpload(t, org, statsItem("srv-a", d1+"T12:00:00Z", 150))
	if code != http.StatusOK || out["server_id"] != "srv-a" {
		t.Fatalf("re-upload: %d %v", code, out)
	}

	code, items, body := w.statsRead(t, org, "octo-org", "")
	if code != http.StatusOK {
		t.Fatalf("read-back: %d %s", code, body)
	}
	// By collection date: srv-b's date alone is its midnight, before
	// srv-a's noon of the same day. The item of 400 days ago is outside
	// the default range.
	want := []string{"srv-b/" + d1, "srv-a/" + d1 + "T12:00:00Z", "srv-a/" + d2 + "T23:59:59Z"}
	if diff := cmp.Diff(want, serversDays(items)); diff != "" {
		t.Errorf("default range (-want +got):\n%s\n%s", diff, body)
	}
	if len(items) == 3 {
		users := items[1]["ghe_stats"].(map[string]any)["users"].(map[string]any)["total_users"]
		if users != float64(150) {
			t.Errorf("the re-upload did not replace: total_users %v", users)
		}
	}
	// The Go API and the control show every stored item, the old one too.
	stored := e.ServerStatistics("octo-org")
	if len(stored) != 4 {
		t.Fatalf("ServerStatistics: %d items, want 4", len(stored))
	}
	var first map[string]any
	if err := json.Unmarshal(stored[0], &first); err != nil || first["collection_date"] != old+"T23:59:59Z" {
		t.Errorf("oldest stored item first: %s", stored[0])
	}

	ranges := map[string][]string{
		"date_start=" + d2:                                              {"srv-a/" + d2 + "T23:59:59Z"},
		"date_start=" + d1 + "&date_end=" + d1:                          {"srv-b/" + d1, "srv-a/" + d1 + "T12:00:00Z"},
		"date_start=" + old + "&date_end=" + old:                        {"srv-a/" + old + "T23:59:59Z"},
		"date_start=" + old:                                             {"srv-a/" + old + "T23:59:59Z"}, // 365 days from date_start
		"date_end=" + day(11):                                           {},
		"date_start=" + d1 + "T00:00:00Z&date_end=" + d2 + "T01:00:00Z": {"srv-b/" + d1, "srv-a/" + d1 + "T12:00:00Z", "srv-a/" + d2 + "T23:59:59Z"},
	}
	for q, want := range ranges {
		code, items, body := w.statsRead(t, org, "octo-org", q)
		if code != http.StatusOK {
			t.Errorf("%s: %d %s", q, code, body)
			continue
		}
		if diff := cmp.Diff(want, serversDays(items)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", q, diff)
		}
	}
	for _, q := range []string{"date_start=yesterday", "date_end=2026-13-01", "date_start=" + d1 + "&date_end=" + old, "date_start=" + old + "&date_end=" + d1} {
		if code, _, body := w.statsRead(t, org, "octo-org", q); code != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422: %s", q, code, body)
		}
	}

	// The enterprise's statistics are its own.
	code, items, body = w.statsRead(t, ent, "octo-corp", "")
	if code != http.StatusOK || !cmp.Equal(serversDays(items), []string{"srv-e/" + d1 + "T23:59:59Z"}) {
		t.Errorf("enterprise read-back: %d %s", code, body)
	}
	if code, items, _ := w.statsRead(t, org, "OCTO-ORG", "date_start="+d2); code != http.StatusOK || len(items) != 1 {
		t.Errorf("login in another case: %d %d items", code, len(items))
	}
}

// TestServerStatisticsValidation: only what the server-statistics schema
// defines can be uploaded; anything else is refused with a 422 naming the
// field, and nothing refused is stored, while ServerStatisticsUploads
// shows every body as it arrived.
func TestServerStatisticsValidation(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	org := w.instToken(t, w.instID)
	d := day(3) + "T23:59:59Z"
	with := func(change func(item map[string]any)) map[string]any {
		item := statsItem("srv-a", d, 100)
		change(item)
		return item
	}
	sub := func(item map[string]any, keys ...string) map[string]any {
		m := item
		for _, k := range keys {
			m = m[k].(map[string]any)
		}
		return m
	}
	refused := []struct {
		name  string
		body  any
		field string // the field the first error names
		code  string
	}{
		{"extra top-level property", with(func(it map[string]any) { it["repository_names"] = []any{"octo/secret"} }), "repository_names", "invalid"},
		{"extra property in ghe_stats.users", with(func(it map[string]any) { sub(it, "ghe_stats", "users")["logins"] = []any{"mona"} }), "ghe_stats.users.logins", "invalid"},
		{"extra property in an ecosystem", with(func(it map[string]any) {
			sub(it, "packages_stats")["ecosystems"].([]any)[0].(map[string]any)["package_names"] = "left-pad"
		}), "packages_stats.ecosystems[0].package_names", "invalid"},
		{"GitHub's example's advisory_db_stats", with(func(it map[string]any) { it["advisory_db_stats"] = map[string]any{} }), "advisory_db_stats", "invalid"},
		{"missing server_id", with(func(it map[string]any) { delete(it, "server_id") }), "server_id", "missing_field"},
		{"empty server_id", with(func(it map[string]any) { it["server_id"] = "" }), "server_id", "invalid"},
		{"missing collection_date", with(func(it map[string]any) { delete(it, "collection_date") }), "collection_date", "missing_field"},
		{"bad collection_date", with(func(it map[string]any) { it["collection_date"] = "14/12/2021" }), "collection_date", "invalid"},
		{"missing schema_version", with(func(it map[string]any) { delete(it, "schema_version") }), "schema_version", "missing_field"},
		{"a count that is text", with(func(it map[string]any) { sub(it, "ghe_stats", "users")["total_users"] = "many" }), "ghe_stats.users.total_users", "invalid"},
		{"a fraction", with(func(it map[string]any) { sub(it, "ghe_stats", "pulls")["total_pulls"] = 1.5 }), "ghe_stats.pulls.total_pulls", "invalid"},
		{"an ecosystem outside the enum", with(func(it map[string]any) {
			sub(it, "packages_stats")["ecosystems"].([]any)[0].(map[string]any)["name"] = "pypi"
		}), "packages_stats.ecosystems[0].name", "invalid"},
		{"an array of items", []any{statsItem("srv-a", d, 100)}, "", "invalid"},
		{"a member twice", []byte(`{"server_id":"srv-a","server_id":"srv-x","collection_date":"` + d + `","schema_version":"20230306"}`), "server_id", "invalid"},
	}
	var sent [][]byte
	for _, c := range refused {
		raw, ok := c.body.([]byte)
		if !ok {
			raw, _ = json.Marshal(c.body)
		}
		sent = append(sent, raw)
		code, out := w.statsUpload(t, org, raw)
		if code != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422: %v", c.name, code, out)
			continue
		}
		errs, _ := out["errors"].([]any)
		if out["message"] != "Validation Failed" || len(errs) == 0 {
			t.Errorf("%s: %v", c.name, out)
			continue
		}
		first, _ := errs[0].(map[string]any)
		if first["field"] != c.field || first["code"] != c.code || str(first["message"]) == "" {
			t.Errorf("%s: first error %v, want field %q code %q (all: %v)", c.name, first, c.field, c.code, errs)
		}
	}
	for _, raw := range [][]byte{[]byte("not json"), []byte(`{"server_id": "srv-a"} {}`), {}} {
		sent = append(sent, raw)
		if code, out := w.statsUpload(t, org, raw); code != http.StatusBadRequest {
			t.Errorf("body %q: %d, want 400: %v", raw, code, out)
		}
	}
	if got := e.ServerStatistics("octo-org"); len(got) != 0 {
		t.Errorf("refused items were stored: %s", got)
	}
	// The minimal item: the three required fields.
	minimal := []byte(`{"server_id":"srv-a","collection_date":"` + d + `","schema_version":"20230306"}`)
	sent = append(sent, minimal)
	if code, out := w.statsUpload(t, org, minimal); code != http.StatusCreated {
		t.Errorf("minimal item: %d %v", code, out)
	}
	got := e.ServerStatisticsUploads("octo-org")
	if len(got) != len(sent) {
		t.Fatalf("ServerStatisticsUploads: %d bodies, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("upload %d: %q, want %q", i, got[i], sent[i])
		}
	}
	if stored := e.ServerStatistics("octo-org"); len(stored) != 1 || !bytes.Equal(stored[0], minimal) {
		t.Errorf("stored: %s", stored)
	}
	// An installation on a personal account cannot upload.
	inst, err := e.Install(w.appID, "mona", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := w.statsUpload(t, w.instToken(t, inst.ID), statsItem("srv-m", d, 1)); code != http.StatusForbidden {
		t.Errorf("upload for a user account: %d %v", code, out)
	}
	if got := e.ServerStatistics("mona"); len(got) != 0 {
		t.Errorf("stored for mona: %s", got)
	}
}

// TestServerStatisticsAccess: who may read what, faults and counters on
// the upload route, and the /_emu/ controls.
func TestServerStatisticsAccess(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	org, ent := w.instToken(t, w.instID), w.instToken(t, w.entInstID)
	d := day(1) + "T23:59:59Z"
	if code, out := w.statsUpload(t, org, statsItem("srv-a", d, 100)); code != http.StatusCreated {
		t.Fatalf("upload: %d %v", code, out)
	}
	e.ResetCounts()

	notFound := map[string]struct{ token, account string }{
		"another account's token (enterprise reads the org)": {ent, "octo-org"},
		"another account's token (org reads the enterprise)": {org, "octo-corp"},
		"an enterprise's organization":                       {ent, "octo-sub"},
		"unknown account":                                    {org, "no-such-org"},
		"a user account":                                     {org, "mona"},
	}
	for name, c := range notFound {
		code, _, body := w.statsRead(t, c.token, c.account, "")
		var out map[string]any
		_ = json.Unmarshal(body, &out)
		if code != http.StatusNotFound || out["message"] != "Not Found" {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if code, _, _ := w.statsRead(t, "", "octo-org", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, out := w.statsUpload(t, "", statsItem("srv-a", d, 100)); code != http.StatusUnauthorized {
		t.Errorf("upload without a token: %d %v", code, out)
	}

	// Faults apply to the private upload route as to the API; the body is
	// still among what the server sent.
	e.SetFaults(ghemu.Faults{ServerErrors: 1})
	faulted := statsItem("srv-a", day(2)+"T23:59:59Z", 100)
	if code, _ := w.statsUpload(t, org, faulted); code != http.StatusBadGateway {
		t.Errorf("with a server error injected: %d", code)
	}
	if got := e.ServerStatistics("octo-org"); len(got) != 1 {
		t.Errorf("the faulted upload was stored: %d items", len(got))
	}
	if code, _ := w.statsUpload(t, org, faulted); code != http.StatusCreated {
		t.Errorf("retry after the fault: %d", code)
	}
	if n := e.Count("POST /connect/server-statistics"); n != 3 {
		t.Errorf("%d uploads counted, want 3", n)
	}
	if n := e.Count("GET /enterprise-installation/{enterprise_or_org}/server-statistics"); n != len(notFound)+1 {
		t.Errorf("%d reads counted, want %d", n, len(notFound)+1)
	}
	if got := e.ServerStatisticsUploads("octo-org"); len(got) != 3 {
		t.Errorf("uploads of octo-org: %d, want 3 (the first, the faulted one, the retry)", len(got))
	}
	if code, out := w.statsUpload(t, org, []byte("not json")); code != http.StatusBadRequest {
		t.Errorf("not JSON: %d %v", code, out)
	}

	// Over HTTP for the binary.
	get := func(path string) []json.RawMessage {
		t.Helper()
		resp, err := http.Get(w.emu.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return out
	}
	stored := get("/_emu/server-statistics/octo-org")
	if diff := cmp.Diff(e.ServerStatistics("octo-org"), stored, cmp.Comparer(func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })); diff != "" || len(stored) != 2 {
		t.Errorf("GET /_emu/server-statistics/octo-org (-Go API +HTTP):\n%s", diff)
	}
	up := get("/_emu/server-statistics/octo-org/uploads")
	if len(up) != 4 || string(up[3]) != `"not json"` {
		t.Errorf("GET /_emu/server-statistics/octo-org/uploads: %s", up)
	}
	if got := get("/_emu/server-statistics/nobody"); len(got) != 0 {
		t.Errorf("an unknown account's items: %s", got)
	}
	if got := get("/_emu/server-statistics/octo-corp/uploads"); len(got) != 0 {
		t.Errorf("octo-corp's uploads: %s", got)
	}
	if !strings.Contains(string(up[0]), `"srv-a"`) {
		t.Errorf("first upload: %s", up[0])
	}
}
