package ghemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

// peopleWorld adds people to the world: mona is a member of octo-org and of
// elsewhere (where the App is not installed) and has the App on her own
// dotfiles; hubot is only a collaborator on octo-org/private-repo.
func peopleWorld(t *testing.T, opts ghemu.Options) (*world, int64) {
	w := newWorld(t, opts)
	e := w.emu
	e.AddMember("octo-org", "mona")
	if u := e.AddUser("hubot"); u.Type != "User" || u.ID == 0 {
		t.Fatalf("AddUser: %+v", u)
	}
	if err := e.AddCollaborator("octo-org", "private-repo", "hubot"); err != nil {
		t.Fatal(err)
	}
	e.AddRepo(ghemu.RepoSpec{Owner: "elsewhere", Name: "hidden", Private: true, Files: map[string]string{"h.txt": "connect hidden"}})
	e.AddMember("elsewhere", "mona")
	e.AddRepo(ghemu.RepoSpec{Owner: "mona", Name: "dotfiles", Private: true, Files: map[string]string{"rc": "connect dotfiles"}})
	inst, err := e.Install(w.appID, "mona", nil, []string{"dotfiles"})
	if err != nil {
		t.Fatal(err)
	}
	return w, inst.ID
}

// searchRepos is the sorted set of repositories a code search for
// "connect" finds with auth.
func (w *world) searchRepos(t *testing.T, auth string) []string {
	t.Helper()
	res, _, err := w.client(auth).Search.Code(context.Background(), "connect", &github.SearchOptions{ListOptions: github.ListOptions{PerPage: 100}})
	if err != nil {
		t.Fatalf("search as %s: %v", auth, err)
	}
	set := map[string]bool{}
	for _, r := range res.CodeResults {
		set[r.GetRepository().GetFullName()] = true
	}
	issues, _, err := w.client(auth).Search.Issues(context.Background(), "connect", nil)
	if err != nil {
		t.Fatalf("issue search as %s: %v", auth, err)
	}
	for _, is := range issues.Issues {
		set["issue:"+strings.TrimPrefix(is.GetRepositoryURL(), "https://api.github.com/repos/")] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (w *world) userRepos(t *testing.T, auth string, instID int64) ([]string, int) {
	t.Helper()
	repos, _, err := w.client(auth).Apps.ListUserRepos(context.Background(), instID, nil)
	if err != nil {
		return nil, statusOf(err)
	}
	var out []string
	for _, r := range repos.Repositories {
		out = append(out, r.GetFullName())
	}
	sort.Strings(out)
	return out, http.StatusOK
}

// appCall calls an /applications route with the App's client credentials.
func (w *world) appCall(t *testing.T, method, path, secret string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, w.emu.URL+"/applications/"+w.clientID(t)+path, bytes.NewReader(raw))
	req.SetBasicAuth(w.clientID(t), secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.github+json")
	return sendJSON(t, req)
}

// sendJSON sends req and returns the status and the JSON object answered
// (nil when the answer is not one).
func sendJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	// A body that is no JSON object leaves out nil: callers look at the
	// status first.
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestUserTokens(t *testing.T) {
	w, monaInst := peopleWorld(t, ghemu.Options{})
	ctx := context.Background()
	mona := "Bearer " + str(w.userToken(t, "mona")["access_token"])
	hubotTok := w.userToken(t, "hubot")
	hubot := "token " + str(hubotTok["access_token"])

	// GET /user: the person.
	u, _, err := w.client(mona).Users.Get(ctx, "")
	if err != nil || u.GetLogin() != "mona" || u.GetType() != "User" {
		t.Fatalf("GET /user: %v %v", u, err)
	}
	if _, _, err := w.client("token "+w.token(t, nil).GetToken()).Users.Get(ctx, ""); statusOf(err) != http.StatusForbidden {
		t.Errorf("GET /user with an installation token: %v, want 403", err)
	}
	if _, _, err := w.client("").Users.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("GET /user without a token: %v, want 401", err)
	}
	if _, _, err := w.client(mona).Apps.ListRepos(ctx, nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("GET /installation/repositories with a user token: %v, want 403", err)
	}

	// Installations the person reaches: their own and their organizations'.
	ids := func(auth string) []int64 {
		list, _, err := w.client(auth).Apps.ListUserInstallations(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, i := range list {
			out = append(out, i.GetID())
		}
		return out
	}
	if diff := cmp.Diff([]int64{w.instID, monaInst}, ids(mona)); diff != "" {
		t.Errorf("mona's installations (-want +got):\n%s", diff)
	}
	if got := ids(hubot); len(got) != 0 {
		t.Errorf("hubot's installations: %v", got)
	}
	if got, _ := w.userRepos(t, mona, w.instID); !cmp.Equal(got, []string{"octo-org/other-private", "octo-org/private-repo", "octo-org/public-repo"}) {
		t.Errorf("mona's octo-org repositories: %v", got)
	}
	if got, _ := w.userRepos(t, mona, monaInst); !cmp.Equal(got, []string{"mona/dotfiles"}) {
		t.Errorf("mona's own repositories: %v", got)
	}
	for _, id := range []int64{w.entInstID, 999999} {
		if _, status := w.userRepos(t, mona, id); status != http.StatusNotFound {
			t.Errorf("installation %d: %d, want 404", id, status)
		}
	}

	// Search: public repositories, and private ones the person can read AND
	// the App's installations cover.
	public := []string{"issue:octo-org/public-repo", "octo-org/public-repo"}
	if diff := cmp.Diff(sorted(append([]string{"issue:octo-org/private-repo", "mona/dotfiles", "octo-org/other-private", "octo-org/private-repo"}, public...)), w.searchRepos(t, mona)); diff != "" {
		t.Errorf("mona's search (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sorted(append([]string{"issue:octo-org/private-repo", "octo-org/private-repo"}, public...)), w.searchRepos(t, hubot)); diff != "" {
		t.Errorf("hubot's search (-want +got):\n%s", diff)
	}
	// Leaving the organization takes its private repositories away at once.
	w.emu.RemoveMember("octo-org", "mona")
	if diff := cmp.Diff(sorted(append([]string{"mona/dotfiles"}, public...)), w.searchRepos(t, mona)); diff != "" {
		t.Errorf("mona's search after leaving (-want +got):\n%s", diff)
	}
	w.emu.AddMember("octo-org", "mona")
	w.emu.RemoveCollaborator("octo-org", "private-repo", "hubot")
	if diff := cmp.Diff(public, w.searchRepos(t, hubot)); diff != "" {
		t.Errorf("hubot's search after removal (-want +got):\n%s", diff)
	}

	// Expiry: the access token is refused; its refresh token still works.
	w.emu.ExpireUserTokens("hubot")
	if _, _, err := w.client(hubot).Users.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("expired token: %v, want 401", err)
	}
	if w.emu.UserTokenRevoked(str(hubotTok["access_token"])) || w.emu.LiveUserTokens("hubot") != 0 {
		t.Error("an expired token counts as revoked or live")
	}
	refresh := url.Values{"client_id": {w.clientID(t)}, "client_secret": {testSecret}, "grant_type": {"refresh_token"}, "refresh_token": {str(hubotTok["refresh_token"])}}
	fresh := w.exchange(t, refresh)
	if _, _, err := w.client("token "+str(fresh["access_token"])).Users.Get(ctx, ""); err != nil {
		t.Errorf("refreshed token: %v", err)
	}
	// The person revokes the App on GitHub.com: everything stops.
	w.emu.RevokeGrant(w.clientID(t), "hubot")
	if _, _, err := w.client("token "+str(fresh["access_token"])).Users.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("token after RevokeGrant: %v, want 401", err)
	}
	if got := w.exchange(t, with(refresh, "refresh_token", str(fresh["refresh_token"]))); got["error"] != "bad_refresh_token" {
		t.Errorf("refresh after RevokeGrant: %v", got)
	}
	if !w.emu.UserTokenRevoked(str(fresh["access_token"])) || w.emu.Authorized(w.clientID(t), "hubot") {
		t.Error("RevokeGrant left the token or the grant")
	}
	if n := w.emu.LiveUserTokens("mona"); n != 1 {
		t.Errorf("mona's live tokens: %d, want 1", n)
	}
	// A person's requests count against their own limit.
	w.emu.SetRateLimitUsed("user:"+strconv.FormatInt(u.GetID(), 10), 5000)
	if _, _, err := w.client(mona).Users.Get(ctx, ""); statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "user ID") {
		t.Errorf("person over the limit: %v, want 403", err)
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func with(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for key, vals := range v {
		out[key] = vals
	}
	out.Set(k, val)
	return out
}

func TestApplicationsRoutes(t *testing.T) {
	w, _ := peopleWorld(t, ghemu.Options{})
	ctx := context.Background()
	first := w.userToken(t, "mona")
	tok := str(first["access_token"])

	// Scoped tokens: one installation's account, some repositories.
	for _, tc := range []struct {
		name   string
		secret string
		body   map[string]any
		status int
	}{
		{"wrong secret", "nope", map[string]any{"access_token": tok, "target": "octo-org"}, http.StatusNotFound},
		{"unknown token", testSecret, map[string]any{"access_token": "ghu_nope", "target": "octo-org"}, http.StatusNotFound},
		{"no target", testSecret, map[string]any{"access_token": tok}, http.StatusUnprocessableEntity},
		{"target without the App", testSecret, map[string]any{"access_token": tok, "target": "elsewhere"}, http.StatusUnprocessableEntity},
		{"repository beyond the installation", testSecret, map[string]any{"access_token": tok, "target": "octo-org", "repositories": []string{"sub-repo"}}, http.StatusUnprocessableEntity},
		{"permission beyond the installation", testSecret, map[string]any{"access_token": tok, "target": "octo-org", "permissions": map[string]string{"issues": "write"}}, http.StatusUnprocessableEntity},
	} {
		if status, body := w.appCall(t, http.MethodPost, "/token/scoped", tc.secret, tc.body); status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, status, body, tc.status)
		}
	}
	status, auth := w.appCall(t, http.MethodPost, "/token/scoped", testSecret, map[string]any{
		"access_token": tok, "target": "octo-org", "repositories": []string{"private-repo"}, "permissions": map[string]string{"contents": "read"}})
	scoped := str(auth["token"])
	if status != http.StatusOK || !strings.HasPrefix(scoped, "ghu_") || scoped == tok || str(auth["token_last_eight"]) != scoped[len(scoped)-8:] {
		t.Fatalf("scoped: %d %v", status, auth)
	}
	if inst, _ := auth["installation"].(map[string]any); inst["repository_selection"] != "selected" {
		t.Errorf("scoped installation: %v", auth["installation"])
	}
	if got, _ := w.userRepos(t, "token "+scoped, w.instID); !cmp.Equal(got, []string{"octo-org/private-repo"}) {
		t.Errorf("scoped token's repositories: %v", got)
	}
	if diff := cmp.Diff([]string{"issue:octo-org/private-repo", "issue:octo-org/public-repo", "octo-org/private-repo", "octo-org/public-repo"}, w.searchRepos(t, "token "+scoped)); diff != "" {
		t.Errorf("scoped token's search (-want +got):\n%s", diff)
	}
	if list, _, err := w.client("token "+scoped).Apps.ListUserInstallations(ctx, nil); err != nil || len(list) != 1 || list[0].GetID() != w.instID {
		t.Errorf("scoped token's installations: %v %v", list, err)
	}

	// DELETE token: that token only.
	if status, _ := w.appCall(t, http.MethodDelete, "/token", testSecret, map[string]any{"access_token": scoped}); status != http.StatusNoContent {
		t.Errorf("DELETE token: %d", status)
	}
	if _, _, err := w.client("token "+scoped).Users.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("deleted token: %v", err)
	}
	if _, _, err := w.client("token "+tok).Users.Get(ctx, ""); err != nil {
		t.Errorf("the other token: %v", err)
	}
	if status, _ := w.appCall(t, http.MethodDelete, "/token", "nope", map[string]any{"access_token": tok}); status != http.StatusNotFound {
		t.Errorf("DELETE token with a wrong secret: %d", status)
	}
	// DELETE grant: every token and refresh token of the person.
	second := w.userToken(t, "mona")
	if status, _ := w.appCall(t, http.MethodDelete, "/grant", testSecret, map[string]any{"access_token": tok}); status != http.StatusNoContent {
		t.Errorf("DELETE grant: %d", status)
	}
	for _, v := range []string{tok, str(second["access_token"])} {
		if _, _, err := w.client("token "+v).Users.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
			t.Errorf("token after grant deletion: %v", err)
		}
	}
	refresh := url.Values{"client_id": {w.clientID(t)}, "client_secret": {testSecret}, "grant_type": {"refresh_token"}, "refresh_token": {str(second["refresh_token"])}}
	if got := w.exchange(t, refresh); got["error"] != "bad_refresh_token" {
		t.Errorf("refresh after grant deletion: %v", got)
	}
	if w.emu.LiveUserTokens("mona") != 0 || w.emu.Authorized(w.clientID(t), "mona") {
		t.Error("grant deletion left something live")
	}
}

func TestUserTokenTTL(t *testing.T) {
	w, _ := peopleWorld(t, ghemu.Options{UserTokenTTL: time.Minute})
	tok := w.userToken(t, "mona")
	if tok["expires_in"] != 60.0 {
		t.Errorf("expires_in %v, want 60", tok["expires_in"])
	}
	w.emu.SetFaults(ghemu.Faults{ClockOffset: 2 * time.Minute})
	_, _, err := w.client("token "+str(tok["access_token"])).Users.Get(context.Background(), "")
	if statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "Bad credentials") {
		t.Errorf("expired: %v, want 401 Bad credentials", err)
	}
}

func TestPeopleSeedControlsAndState(t *testing.T) {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	seed := `{"users": ["mona", "hubot"], "members": {"octo-org": ["mona"]}, "collaborators": {"octo-org/secret": ["hubot"]},
		"repositories": [{"owner": "octo-org", "name": "secret", "private": true, "files": {"a.txt": "connect secret"}}, {"owner": "octo-org", "name": "other", "private": true, "files": {"b.txt": "connect other"}}],
		"apps": [{"id": 77, "slug": "people-app", "owner": "octo-org", "client_secret": "s3", "callback_urls": ["https://svc.example/cb"]}],
		"installations": [{"app": 77, "account": "octo-org"}]}`
	resp, err := http.Post(emu.URL+"/_emu/seed", "application/json", strings.NewReader(seed))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed: %v %v", resp, err)
	}
	app, _ := emu.App(77)
	if app.ClientSecret != "s3" || !cmp.Equal(app.CallbackURLs, []string{"https://svc.example/cb"}) || app.ClientID == "" {
		t.Errorf("seeded App: %+v", app)
	}
	w := &world{emu: emu, appID: 77}
	login := func(who string) string {
		q := ghemu.Approve(t, nil, emu.URL+"/login/oauth/authorize?client_id="+app.ClientID, who)
		tok := w.exchange(t, url.Values{"client_id": {app.ClientID}, "client_secret": {"s3"}, "code": {q.Get("code")}})
		return str(tok["access_token"])
	}
	monaTok, hubotTok := login("mona"), login("hubot")
	if diff := cmp.Diff([]string{"octo-org/other", "octo-org/secret"}, w.searchRepos(t, "token "+monaTok)); diff != "" {
		t.Errorf("mona (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"octo-org/secret"}, w.searchRepos(t, "token "+hubotTok)); diff != "" {
		t.Errorf("hubot (-want +got):\n%s", diff)
	}
	do := func(method, path string) *http.Response {
		req, _ := http.NewRequest(method, emu.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	decode := func(resp *http.Response) map[string]any {
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: %v", resp.Request.URL.Path, err)
		}
		return m
	}
	// The same controls over HTTP.
	if m := decode(do(http.MethodPost, "/_emu/users/octocat")); m["login"] != "octocat" || m["type"] != "User" {
		t.Errorf("POST /_emu/users: %v", m)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPut, "/_emu/orgs/octo-org/members/octocat"},
		{http.MethodDelete, "/_emu/orgs/octo-org/members/mona"},
		{http.MethodPut, "/_emu/repos/octo-org/other/collaborators/hubot"},
		{http.MethodDelete, "/_emu/repos/octo-org/secret/collaborators/hubot"},
	} {
		if resp := do(c.method, c.path); resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if resp := do(http.MethodPut, "/_emu/repos/octo-org/nope/collaborators/hubot"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("collaborator on a missing repository: %d", resp.StatusCode)
	}
	if got := w.searchRepos(t, "token "+monaTok); len(got) != 0 {
		t.Errorf("mona after leaving: %v", got)
	}
	if diff := cmp.Diff([]string{"octo-org/other"}, w.searchRepos(t, "token "+hubotTok)); diff != "" {
		t.Errorf("hubot after the swap (-want +got):\n%s", diff)
	}
	if m := decode(do(http.MethodGet, "/_emu/users/mona/tokens")); m["live"] != 1.0 {
		t.Errorf("live: %v", m)
	}
	do(http.MethodPost, "/_emu/users/mona/expire-tokens")
	if m := decode(do(http.MethodGet, "/_emu/users/mona/tokens")); m["live"] != 0.0 {
		t.Errorf("live after expiry: %v", m)
	}
	if m := decode(do(http.MethodGet, "/_emu/user-tokens/"+monaTok)); m["revoked"] != false {
		t.Errorf("expired counts as revoked: %v", m)
	}
	do(http.MethodDelete, "/_emu/grants/"+app.ClientID+"/hubot")
	if m := decode(do(http.MethodGet, "/_emu/user-tokens/"+hubotTok)); m["revoked"] != true {
		t.Errorf("revoked grant: %v", m)
	}

	// The state file keeps people, memberships, collaborators, grants and
	// live refresh tokens.
	q := ghemu.Approve(t, nil, emu.URL+"/login/oauth/authorize?client_id="+app.ClientID, "octocat")
	tok := w.exchange(t, url.Values{"client_id": {app.ClientID}, "client_secret": {"s3"}, "code": {q.Get("code")}})
	path := filepath.Join(t.TempDir(), "state.json")
	if err := emu.SaveState(path); err != nil {
		t.Fatal(err)
	}
	again := ghemu.StartForTest(t, ghemu.Options{})
	if err := again.LoadState(path); err != nil {
		t.Fatal(err)
	}
	w2 := &world{emu: again, appID: 77}
	if !again.Authorized(app.ClientID, "octocat") || again.Authorized(app.ClientID, "hubot") {
		t.Error("grants not restored")
	}
	fresh := w2.exchange(t, url.Values{"client_id": {app.ClientID}, "client_secret": {"s3"}, "grant_type": {"refresh_token"}, "refresh_token": {str(tok["refresh_token"])}})
	if diff := cmp.Diff([]string{"octo-org/other", "octo-org/secret"}, w2.searchRepos(t, "token "+str(fresh["access_token"]))); diff != "" {
		t.Errorf("octocat after restart (-want +got):\n%s", diff)
	}
	if app2, _ := again.App(77); !cmp.Equal(app2.CallbackURLs, app.CallbackURLs) || app2.ClientSecret != "s3" {
		t.Errorf("App after restart: %+v", app2)
	}
}
