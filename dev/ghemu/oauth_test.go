package ghemu_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
)

const (
	testSecret    = "test-client-secret"
	testCallback  = "https://ghconnect.example/github/callback"
	testCallback2 = "https://ghconnect.example/other/callback"
	testVerifier  = "a-code-verifier-of-forty-three-characters-at-least"
)

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// clientID is the world's App's client id.
func (w *world) clientID(t testing.TB) string {
	app, ok := w.emu.App(w.appID)
	if !ok {
		t.Fatal("no App")
	}
	return app.ClientID
}

// authorizeURL is the authorize page for the world's App with PKCE.
func (w *world) authorizeURL(t testing.TB, extra url.Values) string {
	q := url.Values{"client_id": {w.clientID(t)}, "redirect_uri": {testCallback}, "state": {"st-1"},
		"code_challenge": {challenge(testVerifier)}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return w.emu.URL + "/login/oauth/authorize?" + q.Encode()
}

// exchange posts a token request as a form with Accept: application/json
// and returns the decoded answer.
func (w *world) exchange(t testing.TB, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.emu.URL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("access_token: %d", resp.StatusCode)
	}
	return out
}

// userToken runs the whole web flow for login and returns the answer.
func (w *world) userToken(t testing.TB, login string) map[string]any {
	t.Helper()
	q := ghemu.Approve(t, nil, w.authorizeURL(t, nil), login)
	if q.Get("code") == "" {
		t.Fatalf("approve as %s: %v", login, q)
	}
	tok := w.exchange(t, url.Values{"client_id": {w.clientID(t)}, "client_secret": {testSecret}, "code": {q.Get("code")},
		"redirect_uri": {testCallback}, "code_verifier": {testVerifier}})
	if !strings.HasPrefix(str(tok["access_token"]), "ghu_") {
		t.Fatalf("token answer: %v", tok)
	}
	return tok
}

func str(v any) string { s, _ := v.(string); return s }

func TestAuthorizePage(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	noApp, err := w.emu.AddApp(ghemu.AppSpec{Slug: "no-callbacks", Owner: "octo-org"})
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := w.emu.App(noApp)
	get := func(u string) (*http.Response, string) {
		resp, err := noRedirect().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	// GitHub's documented answers to bad authorization requests.
	for _, tc := range []struct {
		name       string
		url        string
		status     int
		redirectTo string
		query      url.Values
	}{
		{"unknown client_id", w.emu.URL + "/login/oauth/authorize?client_id=Iv1.nope", http.StatusNotFound, "", nil},
		{"App without callback URL", w.emu.URL + "/login/oauth/authorize?client_id=" + bare.ClientID, http.StatusBadRequest, "", nil},
		{"redirect_uri not registered", w.authorizeURL(t, url.Values{"redirect_uri": {"https://evil.example/cb"}}), http.StatusFound, testCallback,
			url.Values{"error": {"redirect_uri_mismatch"}, "state": {"st-1"}}},
		{"plain PKCE", w.authorizeURL(t, url.Values{"code_challenge_method": {"plain"}}), http.StatusFound, testCallback,
			url.Values{"error": {"invalid_request"}, "state": {"st-1"}}},
		{"second callback URL", w.authorizeURL(t, url.Values{"redirect_uri": {testCallback2}}), http.StatusOK, "", nil},
	} {
		resp, body := get(tc.url)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.redirectTo == "" {
			continue
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if !strings.HasPrefix(loc.String(), tc.redirectTo+"?") {
			t.Errorf("%s: redirected to %s", tc.name, loc)
		}
		for k := range tc.query {
			if loc.Query().Get(k) != tc.query.Get(k) {
				t.Errorf("%s: %s=%q, want %q", tc.name, k, loc.Query().Get(k), tc.query.Get(k))
			}
		}
		if loc.Query().Get("error_description") == "" || loc.Query().Get("error_uri") == "" {
			t.Errorf("%s: no error_description or error_uri: %s", tc.name, loc)
		}
	}
	// The page: a real form with labelled fields and the App's name.
	_, page := get(w.authorizeURL(t, nil))
	for _, want := range []string{`<label for="login">Username or email address</label>`, `id="login" name="login"`,
		`<button type="submit" name="decision" value="approve">Authorize ghconnect test</button>`,
		`<button type="submit" name="decision" value="deny" formnovalidate>Cancel</button>`,
		`<input type="hidden" name="state" value="st-1">`, `<html lang="en">`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s:\n%s", want, page)
		}
	}
	// An unknown login: the page again, with an error.
	form := url.Values{"client_id": {w.clientID(t)}, "redirect_uri": {testCallback}, "state": {"s"}, "login": {"nobody"}, "decision": {"approve"}}
	resp, err := noRedirect().PostForm(w.emu.URL+"/login/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `role="alert">Incorrect username or password.`) || !strings.Contains(string(b), `value="nobody"`) {
		t.Errorf("unknown login: %d %s", resp.StatusCode, b)
	}
	// Deny and approve.
	q := ghemu.Deny(t, nil, w.authorizeURL(t, nil), "mona")
	if q.Get("error") != "access_denied" || q.Get("state") != "st-1" || q.Get("error_description") == "" || q.Get("code") != "" {
		t.Errorf("deny: %v", q)
	}
	if w.emu.Authorized(w.clientID(t), "mona") {
		t.Error("denied, yet authorized")
	}
	q = ghemu.Approve(t, nil, w.authorizeURL(t, nil), "mona")
	if len(q.Get("code")) != 20 || q.Get("state") != "st-1" || q.Get("error") != "" {
		t.Errorf("approve: %v", q)
	}
	if !w.emu.Authorized(w.clientID(t), "mona") {
		t.Error("approved, yet not authorized")
	}
	if n := w.emu.Count("GET /login/oauth/authorize"); n != 8 {
		t.Errorf("GET /login/oauth/authorize counted %d, want 8", n)
	}
	if n := w.emu.Count("POST /login/oauth/authorize"); n != 3 {
		t.Errorf("POST /login/oauth/authorize counted %d, want 3", n)
	}
}

func TestAccessTokenExchange(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	cid := w.clientID(t)
	code := func() string { return ghemu.Approve(t, nil, w.authorizeURL(t, nil), "mona").Get("code") }
	good := func(c string) url.Values {
		return url.Values{"client_id": {cid}, "client_secret": {testSecret}, "code": {c}, "redirect_uri": {testCallback}, "code_verifier": {testVerifier}}
	}
	with := func(v url.Values, k, val string) url.Values {
		v.Set(k, val)
		return v
	}
	// GitHub's documented errors: HTTP 200 with error, error_description
	// and error_uri.
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"wrong client secret", with(good(code()), "client_secret", "nope"), "incorrect_client_credentials"},
		{"unknown client id", with(good(code()), "client_id", "Iv1.nope"), "incorrect_client_credentials"},
		{"no client secret", with(good(code()), "client_secret", ""), "incorrect_client_credentials"},
		{"unknown code", good("0123456789abcdef0123"), "bad_verification_code"},
		{"wrong verifier", with(good(code()), "code_verifier", "another-verifier-entirely-of-enough-length-xx"), "bad_verification_code"},
		{"no verifier", with(good(code()), "code_verifier", ""), "bad_verification_code"},
		{"other redirect_uri", with(good(code()), "redirect_uri", testCallback2), "redirect_uri_mismatch"},
		{"unknown refresh token", url.Values{"client_id": {cid}, "client_secret": {testSecret}, "grant_type": {"refresh_token"}, "refresh_token": {"ghr_nope"}}, "bad_refresh_token"},
		{"unknown grant type", with(good(code()), "grant_type", "password"), "unsupported_grant_type"},
	} {
		got := w.exchange(t, tc.form)
		if got["error"] != tc.want || str(got["error_description"]) == "" || !strings.HasPrefix(str(got["error_uri"]), "https://docs.github.com/") || got["access_token"] != nil {
			t.Errorf("%s: %v, want error %s", tc.name, got, tc.want)
		}
	}
	// Success, then the code is spent.
	c := code()
	tok := w.exchange(t, good(c))
	if !strings.HasPrefix(str(tok["access_token"]), "ghu_") || !strings.HasPrefix(str(tok["refresh_token"]), "ghr_") ||
		tok["expires_in"] != 28800.0 || tok["refresh_token_expires_in"] != 15897600.0 || tok["token_type"] != "bearer" || tok["scope"] != "" {
		t.Errorf("token answer: %v", tok)
	}
	if got := w.exchange(t, good(c)); got["error"] != "bad_verification_code" {
		t.Errorf("code used twice: %v", got)
	}
	// Codes last ten minutes.
	c = code()
	w.emu.SetFaults(ghemu.Faults{ClockOffset: 11 * time.Minute})
	if got := w.exchange(t, good(c)); got["error"] != "bad_verification_code" {
		t.Errorf("expired code: %v", got)
	}
	w.emu.SetFaults(ghemu.Faults{})
	// Refresh: a new pair; the old refresh token works once.
	refresh := url.Values{"client_id": {cid}, "client_secret": {testSecret}, "grant_type": {"refresh_token"}, "refresh_token": {str(tok["refresh_token"])}}
	again := w.exchange(t, refresh)
	if !strings.HasPrefix(str(again["access_token"]), "ghu_") || again["access_token"] == tok["access_token"] || again["refresh_token"] == tok["refresh_token"] {
		t.Errorf("refresh: %v", again)
	}
	if got := w.exchange(t, refresh); got["error"] != "bad_refresh_token" {
		t.Errorf("refresh token used twice: %v", got)
	}
	if got := w.exchange(t, with(refresh, "refresh_token", str(again["refresh_token"]))); got["access_token"] == nil {
		t.Errorf("new refresh token: %v", got)
	}
	// Form-encoded by default; JSON bodies are accepted too.
	resp, err := http.PostForm(w.emu.URL+"/login/oauth/access_token", good(code()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form, _ := url.ParseQuery(string(b))
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || !strings.HasPrefix(form.Get("access_token"), "ghu_") || form.Get("expires_in") != "28800" || form.Get("token_type") != "bearer" {
		t.Errorf("form answer: %s %s", resp.Header.Get("Content-Type"), b)
	}
	js, _ := json.Marshal(map[string]string{"client_id": cid, "client_secret": testSecret, "code": code(), "code_verifier": testVerifier})
	req, _ := http.NewRequest(http.MethodPost, w.emu.URL+"/login/oauth/access_token", strings.NewReader(string(js)))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if form, _ := url.ParseQuery(string(b)); !strings.HasPrefix(form.Get("access_token"), "ghu_") {
		t.Errorf("JSON request: %s", b)
	}
	if n := w.emu.Count("POST /login/oauth/access_token"); n != 17 {
		t.Errorf("POST /login/oauth/access_token counted %d, want 17", n)
	}
}
