package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
)

type rest struct {
	t     *testing.T
	base  string
	token string
}

func (r rest) do(method, path, body string) (int, map[string]any, http.Header) {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out, resp.Header
}

func start(t *testing.T) (*registrytest.Env, *httptest.Server) {
	return serve(t, registrytest.Start(t, testenv.SQLite(t)))
}

// startConnected is start with a registry that enables and disconnects
// against the GitHub emulator and vaultdev.
func startConnected(t *testing.T) (*registrytest.Env, *httptest.Server) {
	b := registrytest.StartBackends(t)
	b.Emu.AddAccount("octo-org", "Organization")
	return serve(t, registrytest.StartConnected(t, testenv.SQLite(t), b))
}

// serve runs a gateway in front of reg until the test ends; it calls the
// registry as "gateway" when reg has a token for that principal.
func serve(t *testing.T, reg *registrytest.Env) (*registrytest.Env, *httptest.Server) {
	g, err := New(context.Background(), Upstreams{Registry: reg.Addr, ServiceToken: reg.Tokens["gateway"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	})
	ts := httptest.NewServer(g)
	t.Cleanup(ts.Close)
	return reg, ts
}

func createBody(license string) string {
	b, _ := json.Marshal(map[string]any{
		"requestId": "rest-1",
		"license":   license,
		"account":   map[string]any{"kind": "ACCOUNT_KIND_ORGANIZATION", "login": "octo-org"},
	})
	return string(b)
}

func TestRESTLifecycle(t *testing.T) {
	reg, ts := startConnected(t)
	api := rest{t: t, base: ts.URL, token: reg.Tokens["alice"]}

	code, body, _ := api.do("POST", "/v1/connections", createBody(reg.License))
	if code != http.StatusOK {
		t.Fatalf("create: %d %v", code, body)
	}
	conn := body["connection"].(map[string]any)
	id := conn["id"].(string)
	if conn["state"] != "CONNECTION_STATE_PENDING" || conn["createdBy"] != "alice" {
		t.Fatalf("create returned %v", conn)
	}

	code, body, _ = api.do("GET", "/v1/connections?states=CONNECTION_STATE_PENDING&pageSize=10", "")
	if code != http.StatusOK || len(body["connections"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, body)
	}
	code, body, _ = api.do("GET", "/v1/connections/"+id, "")
	if code != http.StatusOK || body["connection"].(map[string]any)["id"] != id {
		t.Fatalf("get: %d %v", code, body)
	}
	// Enabling as the administrator's browser does: the manifest goes to
	// GitHub.com, which sends the browser back with a code.
	code, body, _ = api.do("POST", "/v1/connections/"+id+":startAppManifest", `{"callbackUrl":"https://ghes.example.com/connect/callback"}`)
	if code != http.StatusOK {
		t.Fatalf("startAppManifest: %d %v", code, body)
	}
	q := registrytest.Redirect(t)(registrytest.Browser().PostForm(body["postUrl"].(string), url.Values{"manifest": {body["manifest"].(string)}}))
	code, body, _ = api.do("POST", "/v1/connect:completeAppManifest", fmt.Sprintf(`{"code":%q,"state":%q}`, q.Get("code"), q.Get("state")))
	if code != http.StatusOK {
		t.Fatalf("completeAppManifest: %d %v", code, body)
	}
	// Installing the App: GitHub.com sends the browser to the setup URL,
	// whose redirect completes the installation.
	inst, state := reg.Backends.Install(t, body["installUrl"].(string))
	code, body, _ = api.do("POST", "/v1/connect:completeInstallation", fmt.Sprintf(`{"installationId":"%d","state":%q}`, inst, state))
	if code != http.StatusOK || body["connection"].(map[string]any)["state"] != "CONNECTION_STATE_CONNECTED" {
		t.Fatalf("completeInstallation: %d %v", code, body)
	}
	// No route records an App or a key, or moves the state, outside the
	// flows: those RPCs are gone (a recorded key name once let disconnect
	// delete any ghconnect-* key in Vault).
	for _, side := range []string{":registerApp", ":updateKeyVersions", ":beginDisconnect"} {
		body := `{"app":{"appId":"7","slug":"x"},"transitKey":{"mount":"transit","name":"ghconnect-secrets","versions":[1]},"versions":[1]}`
		if code, body, _ := api.do("POST", "/v1/connections/"+id+side, body); code < 400 {
			t.Errorf("POST %s: %d %v, want a refusal", side, code, body)
		}
	}
	if code, body, _ = api.do("GET", "/v1/connections/"+id, ""); code != http.StatusOK || body["connection"].(map[string]any)["state"] != "CONNECTION_STATE_CONNECTED" || body["connection"].(map[string]any)["app"].(map[string]any)["slug"] == "x" {
		t.Fatalf("after the refused calls: %d %v", code, body)
	}
	code, body, _ = api.do("POST", "/v1/connections/"+id+":disconnect", `{"reason":"test"}`)
	if code != http.StatusOK || body["connection"].(map[string]any)["state"] != "CONNECTION_STATE_DISCONNECTED" {
		t.Fatalf("disconnect: %d %v", code, body)
	}
	// A move the state does not allow is a 400 with the reason.
	code, body, _ = api.do("POST", "/v1/connections/"+id+":startAppManifest", `{"callbackUrl":"https://ghes.example.com/connect/callback"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "must be PENDING") {
		t.Fatalf("illegal transition: %d %v", code, body)
	}
	code, _, _ = api.do("GET", "/v1/connections/"+id+"/history", "")
	if code != http.StatusOK {
		t.Fatalf("history: %d", code)
	}
	code, body, _ = api.do("GET", "/v1/connections/nope", "")
	if code != http.StatusNotFound {
		t.Fatalf("missing: %d %v", code, body)
	}
}

func TestRESTValidationIs400WithFieldViolations(t *testing.T) {
	reg, ts := start(t)
	api := rest{t: t, base: ts.URL, token: reg.Tokens["alice"]}
	bad := strings.Replace(createBody(reg.License), "octo-org", "octo--org", 1)
	code, body, _ := api.do("POST", "/v1/connections", bad)
	if code != http.StatusBadRequest {
		t.Fatalf("code %d %v", code, body)
	}
	raw, _ := json.Marshal(body["details"])
	if !strings.Contains(string(raw), `"field":"account.login"`) || !strings.Contains(string(raw), "BadRequest") {
		t.Errorf("details lack the field violation: %s", raw)
	}
	// The server's hostname is its own: a client that still names one is
	// told the request has no such field.
	code, body, _ = api.do("POST", "/v1/connections", strings.Replace(createBody(reg.License), `{`, `{"serverHostname":"ghes.example.com",`, 1))
	if msg, _ := body["message"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "serverHostname") {
		t.Errorf("a request naming the hostname: %d %v", code, body)
	}
	code, body, _ = api.do("POST", "/v1/connections", `{"requestId": 5`)
	if code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d %v", code, body)
	}
	code, body, _ = api.do("POST", "/v1/connections", `{"requestId":"x","unknownField":1}`)
	if code != http.StatusBadRequest {
		t.Errorf("unknown field: %d %v", code, body)
	}
	if list, _, _ := reg.Store.List(context.Background(), 10, "", nil); len(list) != 0 {
		t.Errorf("bad requests created %d connections", len(list))
	}
}

func TestRESTAuthentication(t *testing.T) {
	reg, ts := start(t)
	for name, token := range map[string]string{"none": "", "wrong": "not-a-token"} {
		api := rest{t: t, base: ts.URL, token: token}
		code, _, hdr := api.do("POST", "/v1/connections", createBody(reg.License))
		if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: create %d %q, want 401 with a Bearer challenge", name, code, hdr.Get("WWW-Authenticate"))
		}
		if code, _, _ := api.do("GET", "/v1/connections", ""); code != http.StatusUnauthorized {
			t.Errorf("%s: list %d, want 401", name, code)
		}
	}
	if list, _, _ := reg.Store.List(context.Background(), 10, "", nil); len(list) != 0 {
		t.Errorf("unauthenticated requests created %d connections", len(list))
	}
}

func TestOpenAPIAndHealth(t *testing.T) {
	_, ts := start(t)
	api := rest{t: t, base: ts.URL}
	code, body, _ := api.do("GET", "/openapi.json", "")
	if code != http.StatusOK || body["swagger"] != "2.0" {
		t.Fatalf("openapi: %d", code)
	}
	paths, _ := body["paths"].(map[string]any)
	if _, ok := paths["/v1/connections/{id}"]; !ok {
		t.Errorf("openapi lacks /v1/connections/{id}")
	}
	if code, _, _ := api.do("GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("healthz %d", code)
	}
	if code, _, _ := api.do("GET", "/readyz", ""); code != http.StatusOK {
		t.Errorf("readyz %d", code)
	}
}

func TestReadyzFailsWhenUpstreamIsDown(t *testing.T) {
	g, err := New(context.Background(), Upstreams{Registry: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "registry") {
		t.Errorf("readyz with registry down: %d %q", rec.Code, rec.Body.String())
	}
}

func TestRESTWatchStreams(t *testing.T) {
	reg, ts := startConnected(t)
	api := rest{t: t, base: ts.URL, token: reg.Tokens["alice"]}
	code, body, _ := api.do("POST", "/v1/connections", createBody(reg.License))
	if code != http.StatusOK {
		t.Fatalf("create: %d %v", code, body)
	}
	id := body["connection"].(map[string]any)["id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/connections:watch", nil)
	req.Header.Set("Authorization", "Bearer "+reg.Tokens["bob"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	// The history first, then a change made while the stream is open.
	wantEvent(t, lines, "create", "alice")
	if code, body, _ := api.do("POST", "/v1/connections/"+id+":disconnect", `{}`); code != http.StatusOK {
		t.Fatalf("disconnect: %d %v", code, body)
	}
	wantEvent(t, lines, "begin_disconnect", "alice")
}

func wantEvent(t *testing.T, lines *bufio.Reader, action, actor string) {
	t.Helper()
	line, err := lines.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Result struct {
			Event struct {
				Action string `json:"action"`
				Actor  string `json:"actor"`
			} `json:"event"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(line), &msg); err != nil || msg.Result.Event.Action != action || msg.Result.Event.Actor != actor {
		t.Fatalf("watch line %q: %v", line, err)
	}
}

// A redirect from GitHub.com that was already handled (a reload, Back, a
// second tab) lands on the admin page, which shows the current state with
// a notice; a broken one, or a refusal of another kind, is still reported;
// one cancelled on GitHub.com lands there too, saying which step.
func TestReplayedCallbacksLandOnTheAdminPage(t *testing.T) {
	gatewayURL := func(reg *registrytest.Env) string {
		_, ts := serve(t, reg)
		return ts.URL
	}
	// The registry refuses these at its state check, before it would ask
	// GitHub.com or Vault: its connector needs its store only.
	withConnector := gatewayURL(registrytest.StartWith(t, testenv.SQLite(t), func(o *registry.Options, st *registry.Store) {
		o.Connector = &registry.Connector{Store: st}
	}, "gateway"))
	withoutConnector := gatewayURL(registrytest.Start(t, testenv.SQLite(t), "gateway"))
	used := strings.Repeat("5e", 24)
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, url string
		code      int
		location  string
	}{
		{"setup replayed", withConnector + "/connect/setup?installation_id=5&state=" + used, http.StatusSeeOther, "/?callback=stale"},
		{"manifest callback replayed", withConnector + "/connect/callback?code=c0de&state=" + used, http.StatusSeeOther, "/?callback=stale"},
		{"setup without a state", withConnector + "/connect/setup?installation_id=5", http.StatusBadRequest, ""},
		{"registry cannot enable", withoutConnector + "/connect/setup?installation_id=5&state=" + used, http.StatusBadRequest, ""},
		// Cancelled on GitHub.com: back to the page, which says so; the
		// registry is not asked (the state stays unused).
		{"creation cancelled", withoutConnector + "/connect/callback?error=access_denied&state=" + used, http.StatusSeeOther, "/?callback=cancelled&step=create"},
		{"installation cancelled", withoutConnector + "/connect/setup?error=access_denied&state=" + used, http.StatusSeeOther, "/?callback=cancelled&step=install"},
	} {
		resp, err := browser.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s: %d to %q, want %d to %q (%s)", tc.name, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location, body)
		}
		if tc.code == http.StatusBadRequest && !strings.Contains(string(body), "could not be enabled") {
			t.Errorf("%s: the failure is not reported: %s", tc.name, body)
		}
	}
}

func TestAdminPageFiles(t *testing.T) {
	_, ts := start(t)
	for path, want := range map[string]string{"/favicon.ico": "image/x-icon", "/favicon.svg": "image/svg+xml", "/config.json": "application/json", "/": "text/html; charset=utf-8"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != want {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	if resp, err := http.Get(ts.URL + "/nothing-here"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown path: %v %v", resp, err)
	}
}
