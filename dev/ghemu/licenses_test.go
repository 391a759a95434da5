package ghemu_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

// licToken mints a token of the world's App for an installation.
func (w *world) licToken(t *testing.T, instID int64) string {
	t.Helper()
	tok, _, err := w.appClient().Apps.CreateInstallationToken(context.Background(), instID, &github.InstallationTokenOptions{})
	if err != nil {
		t.Fatalf("create token for installation %d: %v", instID, err)
	}
	return tok.GetToken()
}

// licCall sends a raw body (none if empty) with a token (none if empty)
// and returns the status, the JSON object answered and the headers.
func (w *world) licCall(t *testing.T, method, path, token, body string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, w.emu.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

type licUser struct {
	UserIDSHA256 string   `json:"user_id_sha256"`
	EmailSHA256s []string `json:"email_sha256s"`
}

// licServerUser is a server user as our server sends it: hashes only.
func licServerUser(id string, emails ...string) licUser {
	u := licUser{UserIDSHA256: ghemu.LicenseHash(id), EmailSHA256s: []string{}}
	for _, m := range emails {
		u.EmailSHA256s = append(u.EmailSHA256s, ghemu.LicenseEmailHash(m))
	}
	return u
}

func licBatch(users ...licUser) string {
	raw, _ := json.Marshal(map[string]any{"users": users})
	return string(raw)
}

// licStart starts a sync and returns its id.
func (w *world) licStart(t *testing.T, token, serverID, hostname string) string {
	t.Helper()
	code, out, _ := w.licCall(t, "POST", "/connect/license-syncs", token, fmt.Sprintf(`{"server_id": %q, "hostname": %q}`, serverID, hostname))
	if code != http.StatusCreated || out["status"] != "in_progress" || str(out["id"]) == "" {
		t.Fatalf("start a sync of %s: %d %v", serverID, code, out)
	}
	return str(out["id"])
}

// licSync runs a whole sync: start, one batch per argument, complete.
func (w *world) licSync(t *testing.T, token, serverID string, batches ...[]licUser) {
	t.Helper()
	id := w.licStart(t, token, serverID, serverID+".example.com")
	for _, b := range batches {
		if code, out, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", token, licBatch(b...)); code != http.StatusOK {
			t.Fatalf("upload to %s: %d %v", serverID, code, out)
		}
	}
	if code, out, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", token, "{}"); code != http.StatusOK {
		t.Fatalf("complete %s: %d %v", serverID, code, out)
	}
}

// licConsumed reads consumed-licenses (one page) as an enterprise admin.
func (w *world) licConsumed(t *testing.T, token, query string) (map[string]any, []map[string]any, http.Header) {
	t.Helper()
	code, out, h := w.licCall(t, "GET", "/enterprises/octo-corp/consumed-licenses"+query, token, "")
	if code != http.StatusOK {
		t.Fatalf("consumed-licenses%s: %d %v", query, code, out)
	}
	var users []map[string]any
	for _, u := range out["users"].([]any) {
		users = append(users, u.(map[string]any))
	}
	return out, users, h
}

// licInstances reads license-sync-status.
func (w *world) licInstances(t *testing.T, token string) []any {
	t.Helper()
	code, out, _ := w.licCall(t, "GET", "/enterprises/octo-corp/license-sync-status", token, "")
	if code != http.StatusOK {
		t.Fatalf("license-sync-status: %d %v", code, out)
	}
	return out["server_instances"].([]any)
}

// TestLicenseSync: a server's users arrive in two batches and replace, on
// completion, what GitHub.com knew of the server; consumed-licenses then
// lists the enterprise's members, a member whose verified email a server
// user has merged with that user (one license), and the unmatched server
// users, each their own entry; pages and the Link header; the sync status
// before, during and after; what was received; the counts. StartForTest
// fails the test on any contract violation of the public routes.
func TestLicenseSync(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	e.AddMember("octo-sub", "mona")
	e.AddMember("octo-sub", "hubot")
	e.AddMember("octo-org", "outsider") // not an organization of the enterprise
	if err := e.SetEmails("mona", "Mona@Example.com", "mona@home.example"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetEmails("outsider", "dev@corp.example"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetSeats("octo-corp", 250); err != nil {
		t.Fatal(err)
	}
	tok := w.licToken(t, w.entInstID)

	if got := w.licInstances(t, tok); len(got) != 0 {
		t.Errorf("status before any sync: %v", got)
	}
	id := w.licStart(t, tok, "ghes-1", "ghes.example.com")
	inProgress := w.licInstances(t, tok)
	if len(inProgress) != 1 {
		t.Fatalf("status of a running first sync: %v", inProgress)
	}
	first := inProgress[0].(map[string]any)
	if first["server_id"] != "ghes-1" || first["hostname"] != "ghes.example.com" || first["last_sync"].(map[string]any)["status"] != "in_progress" {
		t.Errorf("status of a running first sync: %v", first)
	}

	// mona's primary on the server differs in case and spaces from her
	// verified address on GitHub.com: one person. The others match nobody
	// of the enterprise (outsider's organization is not the enterprise's).
	monaServer := licServerUser("1", " MONA@example.COM ", "mona.lisa@corp.example")
	batch1 := []licUser{monaServer, licServerUser("2", "hubot-server@corp.example")}
	batch2 := []licUser{licServerUser("3"), licServerUser("4", "dev@corp.example")}
	for i, b := range [][]licUser{batch1, batch2} {
		code, out, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", tok, licBatch(b...))
		if code != http.StatusOK || out["received"] != float64(2) || out["total"] != float64(2*(i+1)) {
			t.Fatalf("batch %d: %d %v", i+1, code, out)
		}
	}
	// Until completion, GitHub.com counts only its own people.
	if n, s := e.ConsumedLicenses("octo-corp"); n != 2 || s != 0 {
		t.Errorf("before completion: %d consumed, %d server users; want 2, 0", n, s)
	}
	code, out, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", tok, "")
	if code != http.StatusOK || !cmp.Equal(out, map[string]any{"status": "success", "users": float64(4)}) {
		t.Fatalf("complete: %d %v", code, out)
	}
	if n, s := e.ConsumedLicenses("octo-corp"); n != 5 || s != 4 {
		t.Errorf("after completion: %d consumed, %d server users; want 5, 4", n, s)
	}

	body, users, _ := w.licConsumed(t, tok, "")
	if body["total_seats_purchased"] != float64(250) || body["total_seats_consumed"] != float64(5) || len(users) != 5 {
		t.Fatalf("consumed-licenses: %v", body)
	}
	wantMona := map[string]any{
		"github_com_login": "mona", "github_com_name": nil, "github_com_user": true,
		"github_com_profile": "https://github.com/mona", "github_com_member_roles": []any{"octo-sub:Member"},
		"enterprise_server_user": true, "enterprise_server_user_ids": []any{monaServer.UserIDSHA256},
		"enterprise_server_emails": []any{}, "license_type": "enterprise", "total_user_accounts": float64(2),
		"github_com_verified_domain_emails": []any{}, "github_com_enterprise_roles": []any{},
		"github_com_orgs_with_pending_invites": []any{}, "github_com_saml_name_id": nil, "github_com_two_factor_auth": nil,
		"visual_studio_subscription_user": false, "visual_studio_license_status": "", "visual_studio_subscription_email": "",
	}
	if diff := cmp.Diff(wantMona, users[1]); diff != "" {
		t.Errorf("mona's entry (-want +got):\n%s", diff)
	}
	if u := users[0]; u["github_com_login"] != "hubot" || u["enterprise_server_user"] != false || u["total_user_accounts"] != float64(1) || len(u["enterprise_server_user_ids"].([]any)) != 0 {
		t.Errorf("hubot's entry: %v", u)
	}
	for i, want := range []string{"2", "3", "4"} {
		u := users[2+i]
		if u["github_com_user"] != false || u["enterprise_server_user"] != true || u["github_com_login"] != "" || u["total_user_accounts"] != float64(1) ||
			!cmp.Equal(u["enterprise_server_user_ids"], []any{ghemu.LicenseHash(want)}) || !cmp.Equal(u["enterprise_server_emails"], []any{}) {
			t.Errorf("server user %s's entry: %v", want, u)
		}
	}

	// Pages: the totals on every page, the users of that page.
	body, page1, h := w.licConsumed(t, tok, "?per_page=2")
	if body["total_seats_consumed"] != float64(5) || len(page1) != 2 || page1[0]["github_com_login"] != "hubot" ||
		!strings.Contains(h.Get("Link"), `page=3&per_page=2>; rel="last"`) || !strings.Contains(h.Get("Link"), `rel="next"`) {
		t.Errorf("page 1 of 2 a page: %v %v Link %q", body["total_seats_consumed"], page1, h.Get("Link"))
	}
	body, page3, h := w.licConsumed(t, tok, "?per_page=2&page=3")
	if body["total_seats_consumed"] != float64(5) || len(page3) != 1 || !cmp.Equal(page3[0]["enterprise_server_user_ids"], []any{ghemu.LicenseHash("4")}) ||
		strings.Contains(h.Get("Link"), `rel="next"`) || !strings.Contains(h.Get("Link"), `rel="prev"`) {
		t.Errorf("page 3 of 2 a page: %v Link %q", page3, h.Get("Link"))
	}
	// The enterprise's id names it too.
	ent := e.AddAccount("octo-corp", "Enterprise")
	if code, out, _ := w.licCall(t, "GET", "/enterprises/"+strconv.FormatInt(ent.ID, 10)+"/consumed-licenses", tok, ""); code != http.StatusOK || out["total_seats_consumed"] != float64(5) {
		t.Errorf("by enterprise id: %d %v", code, out)
	}

	done := w.licInstances(t, tok)[0].(map[string]any)["last_sync"].(map[string]any)
	if at, err := time.Parse(time.RFC3339, str(done["date"])); err != nil || time.Since(at) > time.Minute || done["status"] != "success" || done["error"] != "" {
		t.Errorf("status after completion: %v", done)
	}

	// A completed sync takes nothing more.
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", tok, ""); code != http.StatusUnprocessableEntity {
		t.Errorf("completing twice: %d", code)
	}
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", tok, licBatch(licServerUser("9"))); code != http.StatusUnprocessableEntity {
		t.Errorf("uploading to a completed sync: %d", code)
	}

	// Every users body received, as sent, in order (the refused one too).
	var want []json.RawMessage
	for _, b := range []string{licBatch(batch1...), licBatch(batch2...), licBatch(licServerUser("9"))} {
		want = append(want, json.RawMessage(b))
	}
	if got := e.LicenseUploads("octo-corp"); !cmp.Equal(got, want) {
		t.Errorf("LicenseUploads:\n got %s\nwant %s", got, want)
	}
	resp, err := http.Get(w.emu.URL + "/_emu/enterprises/octo-corp/license-uploads")
	if err != nil {
		t.Fatal(err)
	}
	var shown []licUser
	var batches []struct {
		Users []licUser `json:"users"`
	}
	err = json.NewDecoder(resp.Body).Decode(&batches)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		shown = append(shown, b.Users...)
	}
	if !cmp.Equal(shown, append(append(batch1, batch2...), licServerUser("9"))) {
		t.Errorf("GET /_emu/enterprises/octo-corp/license-uploads: %v", shown)
	}

	for route, want := range map[string]int{
		"POST /connect/license-syncs":                          1,
		"POST /connect/license-syncs/{sync_id}/users":          3,
		"POST /connect/license-syncs/{sync_id}/complete":       2,
		"GET /enterprises/{enterprise}/consumed-licenses":      4,
		"GET /enterprises/{enterprise}/license-sync-status":    3,
		"GET /enterprises/{enterprise}/license-sync-status/x":  0,
		"POST /connect/license-syncs/{sync_id}/users/unknown/": 0,
	} {
		if got := e.Count(route); got != want {
			t.Errorf("Count(%q) = %d, want %d", route, got, want)
		}
	}
}

// TestLicenseSyncReplacement: each completed sync replaces the server's
// users (fewer users, fewer licenses); a new sync abandons an unfinished
// one; while a sync runs after a completed one the status still shows the
// completed one; a person on two servers (the same email) is one license.
func TestLicenseSyncReplacement(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	tok := w.licToken(t, w.entInstID)
	w.licSync(t, tok, "ghes-1", []licUser{licServerUser("1"), licServerUser("2")}, []licUser{licServerUser("3", "ann@corp.example")})
	if n, s := e.ConsumedLicenses("octo-corp"); n != 3 || s != 3 {
		t.Fatalf("first sync: %d consumed, %d server users; want 3, 3", n, s)
	}
	before := w.licInstances(t, tok)[0].(map[string]any)["last_sync"].(map[string]any)

	// An unfinished sync is abandoned by the next one and changes nothing.
	abandoned := w.licStart(t, tok, "ghes-1", "ghes.example.com")
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+abandoned+"/users", tok, licBatch(licServerUser("7"))); code != http.StatusOK {
		t.Fatalf("upload to a running sync: %d", code)
	}
	if got := w.licInstances(t, tok)[0].(map[string]any)["last_sync"]; !cmp.Equal(got, any(before)) {
		t.Errorf("status while a new sync runs: %v, want the completed one %v", got, before)
	}
	id := w.licStart(t, tok, "ghes-1", "ghes-renamed.example.com")
	for _, path := range []string{"/users", "/complete"} {
		if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+abandoned+path, tok, licBatch(licServerUser("8"))); code != http.StatusUnprocessableEntity {
			t.Errorf("%s of an abandoned sync: %d", path, code)
		}
	}
	if n, _ := e.ConsumedLicenses("octo-corp"); n != 3 {
		t.Errorf("with a sync running: %d consumed, want 3 still", n)
	}
	// The new sync has fewer users: on completion, fewer licenses.
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", tok, licBatch(licServerUser("1"))); code != http.StatusOK {
		t.Fatal("upload")
	}
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", tok, ""); code != http.StatusOK {
		t.Fatal("complete")
	}
	if n, s := e.ConsumedLicenses("octo-corp"); n != 1 || s != 1 {
		t.Errorf("after a smaller sync: %d consumed, %d server users; want 1, 1", n, s)
	}
	if got := w.licInstances(t, tok)[0].(map[string]any); got["hostname"] != "ghes-renamed.example.com" {
		t.Errorf("hostname after the new sync: %v", got)
	}

	// A second server: its user with ann's address is ann again (one
	// license, two accounts); its other user is someone else.
	w.licSync(t, tok, "ghes-2", []licUser{licServerUser("1", "ann@corp.example"), licServerUser("5")})
	w.licSync(t, tok, "ghes-1", []licUser{licServerUser("1"), licServerUser("3", " Ann@Corp.example")})
	body, users, _ := w.licConsumed(t, tok, "")
	if body["total_seats_consumed"] != float64(3) || len(users) != 3 {
		t.Fatalf("two servers: %v", body)
	}
	if u := users[1]; u["total_user_accounts"] != float64(2) || !cmp.Equal(u["enterprise_server_user_ids"], []any{ghemu.LicenseHash("3"), ghemu.LicenseHash("1")}) {
		t.Errorf("ann on two servers: %v", u)
	}
	if got := w.licInstances(t, tok); len(got) != 2 || got[1].(map[string]any)["server_id"] != "ghes-2" {
		t.Errorf("status of two servers: %v", got)
	}
}

// TestLicenseSyncRefused: only an enterprise's installation may sync;
// only well-formed hashes and nothing else are taken; syncs of another
// enterprise, and the public routes of another enterprise, are not found.
func TestLicenseSyncRefused(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	tok := w.licToken(t, w.entInstID)
	orgTok := w.licToken(t, w.instID)
	e.AddOrgToEnterprise("other-org", "other-corp")
	other, err := e.Install(w.appID, "other-corp", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherTok := w.licToken(t, other.ID)

	code, out, _ := w.licCall(t, "POST", "/connect/license-syncs", orgTok, `{"server_id": "ghes-1", "hostname": "ghes.example.com"}`)
	if code != http.StatusUnprocessableEntity || out["message"] != "License sync is available only for enterprise accounts" {
		t.Errorf("an organization's installation: %d %v", code, out)
	}
	for name, c := range map[string]struct {
		token, body string
		want        int
	}{
		"no token":        {"", `{"server_id": "a", "hostname": "h"}`, http.StatusUnauthorized},
		"not JSON":        {tok, `{"server_id"`, http.StatusBadRequest},
		"unknown field":   {tok, `{"server_id": "a", "hostname": "h", "users": 3}`, http.StatusUnprocessableEntity},
		"no server id":    {tok, `{"hostname": "h"}`, http.StatusUnprocessableEntity},
		"long server id":  {tok, `{"server_id": "` + strings.Repeat("x", 101) + `", "hostname": "h"}`, http.StatusUnprocessableEntity},
		"no hostname":     {tok, `{"server_id": "a"}`, http.StatusUnprocessableEntity},
		"100 chars is ok": {tok, `{"server_id": "` + strings.Repeat("x", 100) + `", "hostname": "h.example"}`, http.StatusCreated},
	} {
		if code, out, _ := w.licCall(t, "POST", "/connect/license-syncs", c.token, c.body); code != c.want {
			t.Errorf("start, %s: %d %v, want %d", name, code, out, c.want)
		}
	}

	id := w.licStart(t, tok, "ghes-1", "ghes.example.com")
	otherID := w.licStart(t, otherTok, "ghes-1", "ghes.example.com")
	good := licServerUser("1", "a@corp.example")
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", tok, licBatch(good)); code != http.StatusOK {
		t.Fatal("a good batch refused")
	}
	many := make([]licUser, 1001)
	for i := range many {
		many[i] = licServerUser(strconv.Itoa(1000 + i))
	}
	hash := ghemu.LicenseHash("x")
	for name, c := range map[string]struct {
		path, token, body string
		want              int
	}{
		"upper-case hex":       {id, tok, licBatch(licUser{UserIDSHA256: strings.ToUpper(hash), EmailSHA256s: []string{}}), http.StatusUnprocessableEntity},
		"short id hash":        {id, tok, licBatch(licUser{UserIDSHA256: hash[:63]}), http.StatusUnprocessableEntity},
		"plain id":             {id, tok, licBatch(licUser{UserIDSHA256: "42"}), http.StatusUnprocessableEntity},
		"plain email":          {id, tok, licBatch(licUser{UserIDSHA256: hash, EmailSHA256s: []string{"mona@example.com"}}), http.StatusUnprocessableEntity},
		"21 emails":            {id, tok, licBatch(licUser{UserIDSHA256: hash, EmailSHA256s: strings.Fields(strings.Repeat(hash+" ", 21))}), http.StatusUnprocessableEntity},
		"unknown user field":   {id, tok, `{"users": [{"user_id_sha256": "` + hash + `", "email_sha256s": [], "login": "mona"}]}`, http.StatusUnprocessableEntity},
		"unknown batch field":  {id, tok, `{"users": [{"user_id_sha256": "` + hash + `"}], "emails": ["mona@example.com"]}`, http.StatusUnprocessableEntity},
		"no users":             {id, tok, `{"users": []}`, http.StatusUnprocessableEntity},
		"1001 users":           {id, tok, licBatch(many...), http.StatusUnprocessableEntity},
		"twice in a batch":     {id, tok, licBatch(licServerUser("2"), licServerUser("2")), http.StatusUnprocessableEntity},
		"twice in the sync":    {id, tok, licBatch(licServerUser("3"), good), http.StatusUnprocessableEntity},
		"not JSON":             {id, tok, `{"users": [`, http.StatusBadRequest},
		"wrong shape":          {id, tok, `{"users": "all"}`, http.StatusUnprocessableEntity},
		"unknown sync":         {"ls_nope", tok, licBatch(licServerUser("4")), http.StatusNotFound},
		"another enterprise's": {otherID, tok, licBatch(licServerUser("4")), http.StatusNotFound},
		"an organization's":    {id, orgTok, licBatch(licServerUser("4")), http.StatusUnprocessableEntity},
	} {
		if code, out, _ := w.licCall(t, "POST", "/connect/license-syncs/"+c.path+"/users", c.token, c.body); code != c.want {
			t.Errorf("upload, %s: %d %v, want %d", name, code, out, c.want)
		}
	}
	// A refused batch adds nothing, not even its good users.
	code, out, _ = w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", tok, "")
	if code != http.StatusOK || out["users"] != float64(1) {
		t.Errorf("complete after refusals: %d %v, want 1 user", code, out)
	}
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+otherID+"/users", otherTok, licBatch(good)); code != http.StatusOK {
		t.Errorf("the other enterprise's own upload: %d", code)
	}
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+otherID+"/complete", tok, ""); code != http.StatusNotFound {
		t.Errorf("completing another enterprise's sync: %d", code)
	}
	// Received bodies: the good one and the 12 refused JSON ones for this
	// enterprise's sync; not the one that was not JSON, nor those for
	// another enterprise's or an unknown sync, nor the organization's.
	if got := len(e.LicenseUploads("octo-corp")); got != 13 {
		t.Errorf("%d uploads kept, want 13", got)
	}
	if got := len(e.LicenseUploads("other-corp")); got != 1 {
		t.Errorf("%d uploads kept for other-corp, want 1", got)
	}

	// The public routes: only the enterprise's own installation.
	for name, c := range map[string]struct{ path, token string }{
		"an organization's token":  {"/enterprises/octo-corp", orgTok},
		"another enterprise's":     {"/enterprises/octo-corp", otherTok},
		"an unknown enterprise":    {"/enterprises/no-such-corp", tok},
		"an organization's name":   {"/enterprises/octo-sub", tok},
		"another enterprise's, 2 ": {"/enterprises/other-corp", tok},
	} {
		for _, route := range []string{"/consumed-licenses", "/license-sync-status"} {
			if code, out, _ := w.licCall(t, "GET", c.path+route, c.token, ""); code != http.StatusNotFound || out["message"] != "Not Found" {
				t.Errorf("%s%s with %s: %d %v", c.path, route, name, code, out)
			}
		}
	}
	if code, _, _ := w.licCall(t, "GET", "/enterprises/octo-corp/consumed-licenses", "", ""); code != http.StatusUnauthorized {
		t.Errorf("consumed-licenses without a token: %d", code)
	}
}

// TestLicenseSyncFaults: injected faults apply to the upload interface as
// to the API, are counted, and a faulted batch is not received.
func TestLicenseSyncFaults(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	tok := w.licToken(t, w.entInstID)
	e.SetFaults(ghemu.Faults{ServerErrors: 1})
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs", tok, `{"server_id": "a", "hostname": "h.example"}`); code != http.StatusBadGateway {
		t.Errorf("start with a server error injected: %d", code)
	}
	id := w.licStart(t, tok, "a", "h.example")
	e.SetFaults(ghemu.Faults{ServerErrors: 1})
	if code, _, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", tok, licBatch(licServerUser("1"))); code != http.StatusBadGateway {
		t.Errorf("upload with a server error injected: %d", code)
	}
	if got := e.LicenseUploads("octo-corp"); len(got) != 0 {
		t.Errorf("a faulted batch was received: %s", got)
	}
	e.SetFaults(ghemu.Faults{SecondaryLimit: 1})
	if code, _, h := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", tok, ""); code != http.StatusForbidden || h.Get("Retry-After") == "" {
		t.Errorf("complete with a secondary limit injected: %d", code)
	}
	w.licCall(t, "POST", "/connect/license-syncs/"+id+"/users", tok, licBatch(licServerUser("1")))
	if code, out, _ := w.licCall(t, "POST", "/connect/license-syncs/"+id+"/complete", tok, ""); code != http.StatusOK || out["users"] != float64(1) {
		t.Errorf("complete after the faults: %d %v", code, out)
	}
	if got := e.Counts(); got["POST /connect/license-syncs"] != 2 || got["POST /connect/license-syncs/{sync_id}/users"] != 2 || got["POST /connect/license-syncs/{sync_id}/complete"] != 2 {
		t.Errorf("counts: %v", got)
	}
}

// TestLicenseControls: people's emails and enterprises' seats, by Go,
// HTTP and seed.
func TestLicenseControls(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	tok := w.licToken(t, w.entInstID)
	if body, _, _ := w.licConsumed(t, tok, ""); body["total_seats_purchased"] != float64(ghemu.DefaultSeats) || ghemu.DefaultSeats != 100 {
		t.Errorf("default seats: %v", body["total_seats_purchased"])
	}
	put := func(path, body string) int {
		req, _ := http.NewRequest("PUT", w.emu.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	e.AddUser("hubot")
	for _, c := range []struct {
		name, path, body string
		want             int
	}{ // in order: later ones depend on earlier ones
		{"seats", "/_emu/enterprises/octo-corp/seats", `{"seats": 7}`, http.StatusNoContent},
		{"negative seats", "/_emu/enterprises/octo-corp/seats", `{"seats": -1}`, http.StatusUnprocessableEntity},
		{"no seats", "/_emu/enterprises/octo-corp/seats", `{}`, http.StatusUnprocessableEntity},
		{"seats not JSON", "/_emu/enterprises/octo-corp/seats", `{`, http.StatusBadRequest},
		{"unknown ent", "/_emu/enterprises/nope/seats", `{"seats": 7}`, http.StatusNotFound},
		{"an org's seats", "/_emu/enterprises/octo-org/seats", `{"seats": 7}`, http.StatusNotFound},
		{"emails", "/_emu/users/mona/emails", `{"emails": ["mona@example.com", "m@home.example"]}`, http.StatusNoContent},
		{"taken email", "/_emu/users/hubot/emails", `{"emails": ["MONA@example.com"]}`, http.StatusUnprocessableEntity},
		{"not an email", "/_emu/users/hubot/emails", `{"emails": ["hubot"]}`, http.StatusUnprocessableEntity},
		{"an org's emails", "/_emu/users/octo-org/emails", `{"emails": ["org@example.com"]}`, http.StatusUnprocessableEntity},
		{"unknown person", "/_emu/users/nobody/emails", `{"emails": ["n@example.com"]}`, http.StatusNotFound},
		{"emails not JSON", "/_emu/users/hubot/emails", `[`, http.StatusBadRequest},
		{"own email, again", "/_emu/users/mona/emails", `{"emails": ["mona@example.com"]}`, http.StatusNoContent},
		{"hubot, free email", "/_emu/users/hubot/emails", `{"emails": ["m@home.example"]}`, http.StatusNoContent},
	} {
		if got := put(c.path, c.body); got != c.want {
			t.Errorf("%s: PUT %s %s: %d, want %d", c.name, c.path, c.body, got, c.want)
		}
	}
	if body, _, _ := w.licConsumed(t, tok, ""); body["total_seats_purchased"] != float64(7) {
		t.Errorf("seats after the control: %v", body["total_seats_purchased"])
	}
	if err := e.SetSeats("octo-corp", 0); err != nil {
		t.Fatal(err)
	}
	if body, _, _ := w.licConsumed(t, tok, ""); body["total_seats_purchased"] != float64(0) {
		t.Errorf("seats set to 0: %v", body["total_seats_purchased"])
	}
	if err := e.SetEmails("hubot"); err != nil {
		t.Errorf("clearing emails: %v", err)
	}
	if err := e.SetEmails("mona", "hubot@example.com"); err != nil {
		t.Errorf("a free address: %v", err)
	}

	// The seed: emails create people, seats enterprises.
	s := ghemu.StartForTest(t, ghemu.Options{})
	var seed ghemu.SeedData
	if err := json.Unmarshal([]byte(`{"organizations": [{"login": "acme-eng", "enterprise": "acme"}],
		"members": {"acme-eng": ["ann"]}, "emails": {"ann": ["ann@acme.example"], "bob": ["bob@acme.example"]},
		"seats": {"acme": 42}}`), &seed); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(seed); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEmails("bob", "ann@acme.example"); err == nil {
		t.Error("bob took ann's seeded address")
	}
	if n, _ := s.ConsumedLicenses("acme"); n != 1 {
		t.Errorf("seeded enterprise: %d consumed, want 1 (ann)", n)
	}
	if err := s.SetSeats("acme", 43); err != nil {
		t.Errorf("seeded enterprise's seats: %v", err)
	}

	// Emails and seats are kept in -state files (they are accounts').
	path := t.TempDir() + "/state.json"
	if err := s.SaveState(path); err != nil {
		t.Fatal(err)
	}
	restored := ghemu.New(ghemu.Options{})
	if err := restored.LoadState(path); err != nil {
		t.Fatal(err)
	}
	if err := restored.SetEmails("bob", "ann@acme.example"); err == nil {
		t.Error("after a restart, bob took ann's address")
	}
	if a := restored.AddAccount("acme", "Enterprise"); a.Seats == nil || *a.Seats != 43 || !cmp.Equal(restored.AddUser("ann").Emails, []string{"ann@acme.example"}) {
		t.Errorf("after a restart: seats %v", a.Seats)
	}
}
