package ghemu_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

// world is a seeded emulator: an organization with three repositories, an
// enterprise with an organization of its own, and an App installed on both.
type world struct {
	emu       *ghemu.TestServer
	key       *rsa.PrivateKey
	appID     int64
	instID    int64
	entInstID int64
}

var (
	keyOnce sync.Once
	keys    []*rsa.PrivateKey
)

// testKeys are generated once per test binary: RSA generation is slow.
func testKeys(_ testing.TB) []*rsa.PrivateKey {
	keyOnce.Do(func() {
		for i := 0; i < 3; i++ {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys = append(keys, k)
		}
	})
	return keys
}

func newWorld(t *testing.T, opts ghemu.Options) *world {
	t.Helper()
	w := &world{emu: ghemu.StartForTest(t, opts), key: testKeys(t)[0]}
	e := w.emu
	e.AddAccount("octo-org", "Organization")
	e.AddAccount("mona", "User")
	e.AddOrgToEnterprise("octo-sub", "octo-corp")
	e.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "public-repo", Files: map[string]string{"README.md": "hello connect world", "src/main.go": "package main // connect"}, Issues: []ghemu.IssueSpec{{Title: "Connect is slow", Body: "unified search"}}})
	e.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "private-repo", Private: true, Files: map[string]string{"secret.txt": "connect internals"}, Issues: []ghemu.IssueSpec{{Title: "private connect issue"}}})
	e.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "other-private", Private: true, Files: map[string]string{"x.txt": "connect other"}})
	e.AddRepo(ghemu.RepoSpec{Owner: "octo-sub", Name: "sub-repo"})
	var err error
	w.appID, err = e.AddApp(ghemu.AppSpec{ID: 4242, Slug: "ghconnect-test", Name: "ghconnect test", Owner: "octo-org", ClientSecret: testSecret, CallbackURLs: []string{testCallback, testCallback2}, Permissions: map[string]string{"contents": "write", "issues": "read", "metadata": "read"}}, &w.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := e.Install(w.appID, "octo-org", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.instID = inst.ID
	ent, err := e.Install(w.appID, "octo-corp", map[string]string{"metadata": "read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.entInstID = ent.ID
	return w
}

// appJWT signs an App JWT the way the token broker does.
func appJWT(key *rsa.PrivateKey, iss any, iat, exp time.Time) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "iat": iat.Unix(), "exp": exp.Unix()})
	s, err := tok.SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

type bearer struct {
	auth string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", b.auth)
	return http.DefaultTransport.RoundTrip(r)
}

func (w *world) client(auth string) *github.Client {
	c := github.NewClient(&http.Client{Transport: bearer{auth}})
	c.BaseURL, _ = url.Parse(w.emu.URL + "/")
	return c
}

func (w *world) appClient() *github.Client {
	now := time.Now()
	return w.client("Bearer " + appJWT(w.key, strconv.FormatInt(w.appID, 10), now.Add(-time.Minute), now.Add(9*time.Minute)))
}

func (w *world) token(t *testing.T, opts *github.InstallationTokenOptions) *github.InstallationToken {
	t.Helper()
	if opts == nil {
		opts = &github.InstallationTokenOptions{}
	}
	tok, _, err := w.appClient().Apps.CreateInstallationToken(context.Background(), w.instID, opts)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return tok
}

func statusOf(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) {
		return er.Response.StatusCode
	}
	var rl *github.RateLimitError
	if errors.As(err, &rl) {
		return rl.Response.StatusCode
	}
	var ab *github.AbuseRateLimitError
	if errors.As(err, &ab) {
		return ab.Response.StatusCode
	}
	return 0
}

func TestAppEndpoints(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	c := w.appClient()
	app, _, err := c.Apps.Get(ctx, "")
	if err != nil || app.GetID() != w.appID || app.GetSlug() != "ghconnect-test" {
		t.Fatalf("GET /app: %v %v", app, err)
	}
	var ids []int64
	opt := &github.ListOptions{PerPage: 1}
	for {
		page, resp, err := c.Apps.ListInstallations(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range page {
			ids = append(ids, i.GetID())
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	if diff := cmp.Diff([]int64{w.instID, w.entInstID}, ids); diff != "" {
		t.Errorf("paginated installations (-want +got):\n%s", diff)
	}
	inst, _, err := c.Apps.GetInstallation(ctx, w.instID)
	if err != nil || inst.GetAccount().GetLogin() != "octo-org" || inst.GetPermissions().GetContents() != "write" {
		t.Errorf("get installation: %v %v", inst, err)
	}
	if i, _, err := c.Apps.FindOrganizationInstallation(ctx, "octo-org"); err != nil || i.GetID() != w.instID {
		t.Errorf("org installation: %v %v", i, err)
	}
	if i, _, err := c.Apps.FindRepositoryInstallation(ctx, "octo-org", "private-repo"); err != nil || i.GetID() != w.instID {
		t.Errorf("repo installation: %v %v", i, err)
	}
	if _, _, err := c.Apps.FindUserInstallation(ctx, "mona"); statusOf(err) != http.StatusNotFound {
		t.Errorf("user without installation: %v", err)
	}
	// The enterprise endpoint is GHEC-only; go-github v60 has no method.
	req, _ := c.NewRequest("GET", "enterprises/octo-corp/installation", nil)
	var ent github.Installation
	if _, err := c.Do(ctx, req, &ent); err != nil || ent.GetID() != w.entInstID {
		t.Errorf("enterprise installation: %v %v", ent, err)
	}
	if _, _, err := c.Apps.GetInstallation(ctx, 999999); statusOf(err) != http.StatusNotFound {
		t.Errorf("unknown installation: %v", err)
	}
	if _, err := c.Apps.DeleteInstallation(ctx, w.entInstID); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.emu.Installation(w.entInstID); ok {
		t.Errorf("installation still there after DELETE")
	}
	if got := w.emu.Count("GET /app/installations"); got != 2 {
		t.Errorf("counter: %d list calls, want 2", got)
	}
}

func TestTokensAndDownscoping(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	full := w.token(t, nil)
	if !strings.HasPrefix(full.GetToken(), "ghs_") || len(full.GetToken()) != 40 || time.Until(full.GetExpiresAt().Time) < 59*time.Minute {
		t.Fatalf("token shape: %q expires %v", full.GetToken(), full.GetExpiresAt())
	}
	names := func(tok string) []string {
		repos, _, err := w.client("token "+tok).Apps.ListRepos(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range repos.Repositories {
			out = append(out, r.GetName())
		}
		sort.Strings(out)
		return out
	}
	if diff := cmp.Diff([]string{"other-private", "private-repo", "public-repo"}, names(full.GetToken())); diff != "" {
		t.Errorf("full token (-want +got):\n%s", diff)
	}
	// Downscoped by name and id, and to read-only contents.
	var privateID int64
	for _, r := range full.Repositories {
		if r.GetName() == "private-repo" {
			privateID = r.GetID()
		}
	}
	if privateID == 0 {
		inst, _, _ := w.appClient().Apps.GetInstallation(ctx, w.instID)
		_ = inst
		repos, _, _ := w.client("token "+full.GetToken()).Apps.ListRepos(ctx, nil)
		for _, r := range repos.Repositories {
			if r.GetName() == "private-repo" {
				privateID = r.GetID()
			}
		}
	}
	small := w.token(t, &github.InstallationTokenOptions{Repositories: []string{"public-repo"}, RepositoryIDs: []int64{privateID}, Permissions: &github.InstallationPermissions{Contents: github.String("read")}})
	if diff := cmp.Diff([]string{"private-repo", "public-repo"}, names(small.GetToken())); diff != "" {
		t.Errorf("downscoped token (-want +got):\n%s", diff)
	}
	if small.GetPermissions().GetContents() != "read" || len(small.Repositories) != 2 {
		t.Errorf("downscoped token: %+v", small)
	}
	// Beyond the installation: GitHub refuses with 422.
	for name, opts := range map[string]*github.InstallationTokenOptions{
		"unknown repository":   {Repositories: []string{"nope"}},
		"other owner's repo":   {Repositories: []string{"sub-repo"}},
		"permission too high":  {Permissions: &github.InstallationPermissions{Issues: github.String("write")}},
		"permission not given": {Permissions: &github.InstallationPermissions{Actions: github.String("read")}},
	} {
		if _, _, err := w.appClient().Apps.CreateInstallationToken(ctx, w.instID, opts); statusOf(err) != http.StatusUnprocessableEntity {
			t.Errorf("%s: %v, want 422", name, err)
		}
	}
	// Revocation.
	if _, err := w.client("token " + small.GetToken()).Apps.RevokeInstallationToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.client("token "+small.GetToken()).Apps.ListRepos(ctx, nil); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("revoked token: %v", err)
	}
	if !w.emu.TokenRevoked(small.GetToken()) || w.emu.TokenRevoked(full.GetToken()) {
		t.Errorf("TokenRevoked wrong")
	}
	// Expiry: an hour later the full token is refused.
	w.emu.SetFaults(ghemu.Faults{ClockOffset: 61 * time.Minute})
	if _, _, err := w.client("token "+full.GetToken()).Apps.ListRepos(ctx, nil); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("expired token: %v", err)
	}
	if n := w.emu.Count("POST /app/installations/{installation_id}/access_tokens"); n != 6 {
		t.Errorf("access_tokens counted %d, want 6", n)
	}
}

func TestJWTChecks(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	now := time.Now()
	id := strconv.FormatInt(w.appID, 10)
	other := testKeys(t)[1]
	tests := []struct {
		name   string
		auth   string
		status int
		msg    string
	}{
		{"valid, iss as string", "Bearer " + appJWT(w.key, id, now.Add(-time.Minute), now.Add(9*time.Minute)), 200, ""},
		{"valid, iss as number", "Bearer " + appJWT(w.key, w.appID, now.Add(-time.Minute), now.Add(9*time.Minute)), 200, ""},
		{"wrong key", "Bearer " + appJWT(other, id, now.Add(-time.Minute), now.Add(9*time.Minute)), 401, "could not be decoded"},
		{"expired", "Bearer " + appJWT(w.key, id, now.Add(-11*time.Minute), now.Add(-time.Minute)), 401, "'Expiration time' claim ('exp') must be a numeric value representing the future"},
		{"too long", "Bearer " + appJWT(w.key, id, now.Add(-time.Minute), now.Add(20*time.Minute)), 401, "too far in the future"},
		{"issued in the future", "Bearer " + appJWT(w.key, id, now.Add(5*time.Minute), now.Add(9*time.Minute)), 401, "'Issued at' claim"},
		{"unknown app", "Bearer " + appJWT(w.key, "1", now.Add(-time.Minute), now.Add(9*time.Minute)), 401, "'Issuer' claim"},
		{"garbage", "Bearer not.a.jwt", 401, "could not be decoded"},
		{"none", "", 401, "could not be decoded"},
	}
	for _, tt := range tests {
		_, _, err := w.client(tt.auth).Apps.Get(ctx, "")
		if tt.status == 200 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if statusOf(err) != tt.status || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %d %q", tt.name, err, tt.status, tt.msg)
		}
	}
	// An installation token is not an App JWT.
	tok := w.token(t, nil)
	if _, _, err := w.client("token "+tok.GetToken()).Apps.Get(ctx, ""); statusOf(err) != http.StatusForbidden {
		t.Errorf("installation token on /app: %v", err)
	}
	// The emulator's clock running ahead makes a fresh JWT look expired,
	// and its Date header says so.
	w.emu.SetFaults(ghemu.Faults{ClockOffset: 15 * time.Minute})
	_, resp, err := w.appClient().Apps.Get(ctx, "")
	if statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("skewed clock: %v", err)
	}
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	if d := time.Until(date); d < 14*time.Minute || d > 16*time.Minute {
		t.Errorf("Date header %v is not the emulator's clock", date)
	}
}

func TestKeyRotation(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	k2 := testKeys(t)[2]
	now := time.Now()
	jwtWith := func(k *rsa.PrivateKey) *github.Client {
		return w.client("Bearer " + appJWT(k, w.appID, now.Add(-time.Minute), now.Add(9*time.Minute)))
	}
	if _, _, err := jwtWith(k2).Apps.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("unregistered key accepted: %v", err)
	}
	if _, err := w.emu.AddAppKey(w.appID, &k2.PublicKey); err != nil {
		t.Fatal(err)
	}
	for i, k := range []*rsa.PrivateKey{w.key, k2} {
		if _, _, err := jwtWith(k).Apps.Get(ctx, ""); err != nil {
			t.Errorf("key %d during rotation: %v", i+1, err)
		}
	}
	w.emu.RemoveAppKey(w.appID, &w.key.PublicKey)
	if _, _, err := jwtWith(w.key).Apps.Get(ctx, ""); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("removed key still accepted: %v", err)
	}
	if _, _, err := jwtWith(k2).Apps.Get(ctx, ""); err != nil {
		t.Errorf("new key after removal of the old: %v", err)
	}
}

func TestRateLimitsAndFaults(t *testing.T) {
	w := newWorld(t, ghemu.Options{RateLimit: 10})
	ctx := context.Background()
	tok := w.token(t, nil)
	tc := w.client("token " + tok.GetToken())
	_, resp, err := tc.Apps.ListRepos(ctx, nil)
	if err != nil || resp.Rate.Limit != 10 || resp.Rate.Remaining != 9 {
		t.Fatalf("rate headers: %+v %v", resp.Rate, err)
	}
	w.emu.SetRateLimitUsed("installation:"+strconv.FormatInt(w.instID, 10), 10)
	_, _, err = tc.Apps.ListRepos(ctx, nil)
	var rl *github.RateLimitError
	if !errors.As(err, &rl) || rl.Rate.Remaining != 0 || rl.Response.StatusCode != http.StatusForbidden {
		t.Errorf("primary limit: %v", err)
	}
	w.emu.SetRateLimitUsed("installation:"+strconv.FormatInt(w.instID, 10), 0)
	// Secondary limit with Retry-After.
	w.emu.SetFaults(ghemu.Faults{SecondaryLimit: 1, RetryAfter: 30 * time.Second})
	_, _, err = w.appClient().Apps.Get(ctx, "")
	var ab *github.AbuseRateLimitError
	if !errors.As(err, &ab) || ab.RetryAfter == nil || *ab.RetryAfter != 30*time.Second {
		t.Errorf("secondary limit: %v", err)
	}
	// A burst of 5xx, then service.
	w.emu.SetFaults(ghemu.Faults{ServerErrors: 2})
	for i := 0; i < 2; i++ {
		if _, _, err := w.appClient().Apps.Get(ctx, ""); statusOf(err) != http.StatusBadGateway {
			t.Errorf("error %d of the burst: %v", i+1, err)
		}
	}
	if _, _, err := w.appClient().Apps.Get(ctx, ""); err != nil {
		t.Errorf("after the burst: %v", err)
	}
	// Replication lag: a fresh token is refused for a moment.
	w.emu.SetFaults(ghemu.Faults{ReplicationLag: 300 * time.Millisecond})
	fresh := w.token(t, nil)
	if _, _, err := w.client("token "+fresh.GetToken()).Apps.ListRepos(ctx, nil); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("token during replication lag: %v", err)
	}
	time.Sleep(350 * time.Millisecond) // the replication lag passes
	if _, _, err := w.client("token "+fresh.GetToken()).Apps.ListRepos(ctx, nil); err != nil {
		t.Errorf("token after replication lag: %v", err)
	}
	// Latency.
	w.emu.SetFaults(ghemu.Faults{Latency: 100 * time.Millisecond})
	start := time.Now()
	if _, _, err := w.appClient().Apps.Get(ctx, ""); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("latency not applied: %v after %v", err, time.Since(start))
	}
	rate, _, err := tc.RateLimit.Get(ctx)
	if err != nil || rate.Core == nil {
		t.Errorf("rate_limit: %v %v", rate, err)
	}
	meta, _, err := w.client("").Meta.Get(ctx)
	if err != nil || meta.VerifiablePasswordAuthentication == nil {
		t.Errorf("meta: %v %v", meta, err)
	}
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestManifestFlow drives the pages with AutoApprove: they act at once
// (pages_test.go shows them).
func TestManifestFlow(t *testing.T) {
	w := newWorld(t, ghemu.Options{AutoApprove: true})
	ctx := context.Background()
	manifest, _ := json.Marshal(map[string]any{
		"name": "GHES Connect", "url": "https://ghes.example.com", "redirect_url": "https://ghes.example.com/connect/callback",
		"setup_url": "https://ghes.example.com/connect/setup", "default_permissions": map[string]string{"contents": "read", "metadata": "read"},
		"callback_urls": []string{"https://ghes.example.com/connect/github/user-callback"},
	})
	post := func() *http.Response {
		resp, err := noRedirect().PostForm(w.emu.URL+"/organizations/octo-org/settings/apps/new?state=st-1", url.Values{"manifest": {string(manifest)}, "state": {"st-1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Path != "/connect/callback" || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("manifest post: %d %v", resp.StatusCode, loc)
	}
	code := loc.Query().Get("code")
	conv, _, err := w.client("").Apps.CompleteAppManifest(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if conv.GetPEM() == "" || conv.GetClientSecret() == "" || conv.GetWebhookSecret() == "" || conv.GetOwner().GetLogin() != "octo-org" {
		t.Fatalf("conversion: %+v", conv)
	}
	if _, _, err := w.client("").Apps.CompleteAppManifest(ctx, code); statusOf(err) != http.StatusNotFound {
		t.Errorf("second conversion of one code: %v", err)
	}
	// The manifest's callback URLs are the App's, for user authorization;
	// App returns the secret the conversion did.
	if app, ok := w.emu.App(conv.GetID()); !ok || app.ClientSecret != conv.GetClientSecret() || app.ClientID != conv.GetClientID() ||
		!cmp.Equal(app.CallbackURLs, []string{"https://ghes.example.com/connect/github/user-callback"}) {
		t.Errorf("manifest App: %+v", app)
	}
	block, _ := pem.Decode([]byte(conv.GetPEM()))
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("PEM is not PKCS#1")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// Installing sends the browser to the setup URL with the installation.
	ir, err := noRedirect().Get(w.emu.URL + "/apps/" + conv.GetSlug() + "/installations/new?state=st-2")
	if err != nil {
		t.Fatal(err)
	}
	ir.Body.Close()
	setup, _ := url.Parse(ir.Header.Get("Location"))
	instID, _ := strconv.ParseInt(setup.Query().Get("installation_id"), 10, 64)
	if ir.StatusCode != http.StatusFound || setup.Path != "/connect/setup" || setup.Query().Get("setup_action") != "install" || instID == 0 {
		t.Fatalf("install: %d %v", ir.StatusCode, setup)
	}
	now := time.Now()
	c := w.client("Bearer " + appJWT(key, conv.GetID(), now.Add(-time.Minute), now.Add(9*time.Minute)))
	inst, _, err := c.Apps.GetInstallation(ctx, instID)
	if err != nil || inst.GetPermissions().GetContents() != "read" {
		t.Fatalf("installation with the new App's key: %v %v", inst, err)
	}
	// A code expires after an hour. (App names are unique: another one.)
	first := manifest
	manifest, _ = json.Marshal(map[string]any{"name": "GHES Connect 2", "url": "https://ghes.example.com", "redirect_url": "https://ghes.example.com/connect/callback"})
	resp = post()
	late, _ := url.Parse(resp.Header.Get("Location"))
	w.emu.SetFaults(ghemu.Faults{ClockOffset: 61 * time.Minute})
	if late.Query().Get("code") == "" {
		t.Fatalf("second manifest refused: %v", resp.Status)
	}
	if _, _, err := w.client("").Apps.CompleteAppManifest(ctx, late.Query().Get("code")); statusOf(err) != http.StatusNotFound {
		t.Errorf("expired code: %v", err)
	}
	// A name already taken is refused, as GitHub.com does.
	manifest = first
	if dup := post(); dup.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("duplicate App name: %d", dup.StatusCode)
	}
}

// codeHits are the "repo:path" hits of a code search, sorted.
func codeHits(t *testing.T, c *github.Client, q string) []string {
	t.Helper()
	res, _, err := c.Search.Code(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res.CodeResults {
		out = append(out, r.GetRepository().GetName()+":"+r.GetPath())
	}
	sort.Strings(out)
	return out
}

func TestSearch(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	repoNames := func(c *github.Client, q string) []string { return codeHits(t, c, q) }
	anon := w.client("")
	if diff := cmp.Diff([]string{"public-repo:README.md", "public-repo:src/main.go"}, repoNames(anon, "connect")); diff != "" {
		t.Errorf("anonymous search sees (-want +got):\n%s", diff)
	}
	scoped := w.token(t, &github.InstallationTokenOptions{Repositories: []string{"private-repo"}})
	if diff := cmp.Diff([]string{"private-repo:secret.txt", "public-repo:README.md", "public-repo:src/main.go"}, repoNames(w.client("token "+scoped.GetToken()), "connect org:octo-org")); diff != "" {
		t.Errorf("token search sees (-want +got):\n%s", diff)
	}
	issues, _, err := w.client("token "+scoped.GetToken()).Search.Issues(ctx, "connect", nil)
	if err != nil || issues.GetTotal() != 2 {
		t.Errorf("issues: %v %v", issues, err)
	}
	if _, _, err := anon.Search.Code(ctx, "org:octo-org", nil); statusOf(err) != http.StatusUnprocessableEntity {
		t.Errorf("code search without words: %v", err)
	}
}

func TestContractBites(t *testing.T) {
	c, err := ghemu.SharedContract()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []error
	w := newWorld(t, ghemu.Options{Contract: c, OnViolation: func(err error) { mu.Lock(); seen = append(seen, err); mu.Unlock() }})
	ctx := context.Background()

	// A malformed request: a permission level GitHub does not have.
	req, _ := w.appClient().NewRequest("POST", "app/installations/"+strconv.FormatInt(w.instID, 10)+"/access_tokens", map[string]any{"permissions": map[string]string{"contents": "destroy"}})
	// Each is refused (the errors below): what counts is the violation the
	// contract records.
	_, _ = w.appClient().Do(ctx, req, nil)
	// go-github v60 sends the JSON null for nil options: also malformed.
	_, _, _ = w.appClient().Apps.CreateInstallationToken(ctx, w.instID, nil)
	// A route GitHub does not have.
	if resp, err := http.Get(w.emu.URL + "/app/nonsense"); err == nil {
		resp.Body.Close()
	}
	mu.Lock()
	got := append([]error(nil), seen...)
	mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("want 3 violations (bad permission, null body, unknown route), got %d: %v", len(got), got)
	}
	for i, want := range []string{"request POST /app/installations", "request POST /app/installations", "no emulator route"} {
		if !strings.Contains(got[i].Error(), want) {
			t.Errorf("violation %d = %v, want it to mention %q", i, got[i], want)
		}
	}

	// A malformed response: an installation whose id is a string.
	r, _ := http.NewRequest("GET", "http://127.0.0.1/app/installations/1", nil)
	r.Header.Set("Accept", "application/vnd.github.v3+json")
	bad := []byte(`{"id":"one","app_id":1}`)
	if err := c.Check(r, nil, 200, http.Header{"Content-Type": {"application/json"}}, bad); err == nil || !strings.Contains(err.Error(), "response 200") {
		t.Errorf("malformed response passed: %v", err)
	}
	// And a well-formed exchange passes.
	good, _ := json.Marshal(map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
	if err := c.Check(r, nil, 404, http.Header{"Content-Type": {"application/json"}}, good); err != nil {
		t.Errorf("well-formed 404: %v", err)
	}
}

func TestOrganizationProfile(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	anon := w.client("")
	want := w.emu.AddAccount("octo-org", "Organization")
	org, _, err := anon.Organizations.Get(ctx, "Octo-Org")
	if err != nil || org.GetLogin() != "octo-org" || org.GetID() != want.ID || org.GetType() != "Organization" {
		t.Errorf("organization: %v %v", org, err)
	}
	// A user and an enterprise are no organizations; nor is a login nobody has.
	for _, login := range []string{"mona", "octo-corp", "no-such-org"} {
		if _, _, err := anon.Organizations.Get(ctx, login); statusOf(err) != http.StatusNotFound {
			t.Errorf("%s: %v, want 404", login, err)
		}
	}
}

// GET /apps/{app_slug}: a private App exists only for its own account's
// tokens, a public one for anyone; once its owner deletes it, for no one.
func TestGetAppBySlug(t *testing.T) {
	c, err := ghemu.SharedContract()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var violations []error
	w := newWorld(t, ghemu.Options{Contract: c, OnViolation: func(err error) { mu.Lock(); violations = append(violations, err); mu.Unlock() }})
	defer func() {
		if len(violations) > 0 {
			t.Errorf("contract violations: %v", violations)
		}
	}()
	app, ok := w.emu.App(w.appID)
	if !ok {
		t.Fatal("no App")
	}
	anyone := w.client("")
	if _, _, err := anyone.Apps.Get(context.Background(), app.Slug); statusOf(err) != http.StatusNotFound {
		t.Errorf("a private App seen without a token: %v", err)
	}
	tok := w.token(t, nil)
	own := w.client("token " + tok.GetToken())
	got, _, err := own.Apps.Get(context.Background(), app.Slug)
	if err != nil || got.GetID() != w.appID {
		t.Fatalf("its own account's token: %v %v", got, err)
	}
	other, err := w.emu.AddApp(ghemu.AppSpec{Owner: "mona", Slug: "public-one", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := anyone.Apps.Get(context.Background(), "public-one"); err != nil || got.GetID() != other {
		t.Errorf("a public App: %v %v", got, err)
	}
	w.emu.DeleteApp(w.appID)
	if _, _, err := own.Apps.Get(context.Background(), app.Slug); statusOf(err) == http.StatusOK || err == nil {
		t.Errorf("a deleted App is still there: %v", err)
	}
	if w.emu.AppExists(w.appID) {
		t.Error("the App exists after DeleteApp")
	}
}
