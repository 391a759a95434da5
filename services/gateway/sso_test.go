package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/oidcdev"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// ssoSystem is a registry, the development identity provider and the
// settings of gateways signing people in through it: every gateway made
// with gateway() shares its sessions database and its public URL, as the
// replicas of one deployment do.
type ssoSystem struct {
	t      *testing.T
	reg    *registrytest.Env
	issuer string
	// secretFile holds the gateway's client secret at the provider.
	secretFile string
	dsn        string
	// public is the gateway's URL as browsers reach it.
	public string
	// clock is the gateways' time; log, their logger, writes to logs.
	clock *clock
	log   *zap.Logger
	logs  *observer.ObservedLogs
}

// clock is a test's time: now, moved on by advance.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newSSOSystem starts the registry and the provider for gateways reached at
// public and keeping sessions in dsn.
func newSSOSystem(t *testing.T, dsn, public string) *ssoSystem {
	reg := registrytest.Start(t, testenv.SQLite(t), "gateway")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secretFile := t.TempDir() + "/secret"
	if err := os.WriteFile(secretFile, []byte("s3cret-of-the-client\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	idp, err := oidcdev.Start(ln, oidcdev.Options{ClientID: "ghconnect-gateway", ClientSecret: "s3cret-of-the-client"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	core, logs := observer.New(zapcore.DebugLevel)
	return &ssoSystem{t: t, reg: reg, issuer: idp.Issuer(), secretFile: secretFile, dsn: dsn, public: public, clock: &clock{},
		log: zap.New(core), logs: logs}
}

// gateway builds one gateway of s; the caller serves and closes it.
func (s *ssoSystem) gateway() *Gateway {
	s.t.Helper()
	g, err := New(logging.WithLogger(context.Background(), s.log), Upstreams{Registry: s.reg.Addr, ServiceToken: s.reg.Tokens["gateway"], SSO: SSO{
		Issuer: s.issuer, ClientID: "ghconnect-gateway", ClientSecretFile: s.secretFile, PublicURL: s.public,
		GroupsClaim: "groups", AdminGroups: "ghconnect-admins", AuditorGroups: "ghconnect-auditors", SessionTTL: time.Hour,
		Database: s.dsn,
	}})
	if err != nil {
		s.t.Fatal(err)
	}
	g.sso.now = s.clock.now // before it serves anything
	return g
}

// listen is a loopback listener; a gateway's public URL must be known
// before it is built, so tests listen first and serve after.
func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startSSO is one gateway, on SQLite, served at the public URL itself.
func startSSO(t *testing.T) *ssoSystem {
	ln := listen(t)
	s := newSSOSystem(t, testenv.SQLite(t), "http://"+ln.Addr().String())
	g := s.gateway()
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	})
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: g}}
	ts.Start()
	t.Cleanup(ts.Close)
	return s
}

// browser is a cookie-keeping client, as a person's browser is.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signIn goes through the real redirect flow: the gateway's /auth/login,
// the provider's sign-in page, its form, the code back to the gateway.
func (s *ssoSystem) signIn(login, groups string) (*browser, int, string) {
	return s.signInVia(login, groups, nil)
}

// signInVia is signIn with between run after the provider's sign-in page
// is shown and before the person answers it (and the provider sends the
// browser back to the gateway).
func (s *ssoSystem) signInVia(login, groups string, between func()) (*browser, int, string) {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: s.t, c: &http.Client{Jar: jar}, base: s.public}
	resp, err := b.c.Get(s.public + "/auth/login")
	if err != nil {
		s.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "Development identity provider") {
		s.t.Fatalf("no sign-in page: %d %s", resp.StatusCode, page)
	}
	if between != nil {
		between()
	}
	form := url.Values{"dev_login": {login}, "dev_groups": {groups}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Add(unescape(m[1]), unescape(m[2]))
	}
	resp, err = b.c.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && (resp.Request.URL.Path == "/" || resp.Request.URL.Path == "/me") {
		code, info := b.get("/auth/session")
		if code != http.StatusOK {
			s.t.Fatalf("signed in but no session: %d %v", code, info)
		}
		b.csrf, _ = info["csrf_token"].(string)
	}
	return b, resp.StatusCode, string(body)
}

func unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func (b *browser) do(method, path, body string, header map[string]string) (int, map[string]any) {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, b.base+path, rd)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

func (b *browser) get(path string) (int, map[string]any) { return b.do("GET", path, "", nil) }

// post sends a state-changing request as the page does, with the CSRF
// token and this origin.
func (b *browser) post(path, body string) (int, map[string]any) {
	return b.do("POST", path, body, map[string]string{"X-CSRF-Token": b.csrf, "Origin": b.base, "Content-Type": "application/json"})
}

func TestSingleSignOnRolesAndCSRF(t *testing.T) {
	s := startSSO(t)

	// Nobody signed in: the API and the session say so.
	anon := &browser{t: t, c: &http.Client{}, base: s.public}
	if code, info := anon.get("/auth/session"); code != http.StatusUnauthorized || info["sso"] != true {
		t.Fatalf("anonymous session: %d %v", code, info)
	}
	if code, _ := anon.get("/v1/connections"); code != http.StatusUnauthorized {
		t.Fatalf("anonymous API call: %d", code)
	}

	admin, _, _ := s.signIn("grace@example.com", "staff,ghconnect-admins")
	if code, info := admin.get("/auth/session"); code != http.StatusOK || info["user"] != "grace@example.com" || info["roles"].([]any)[0] != "admin" {
		t.Fatalf("admin session: %d %v", code, info)
	}
	// A state-changing call without the CSRF token, or from another
	// origin, is refused before it reaches the registry.
	create := createBody(s.reg.License)
	if code, _ := admin.do("POST", "/v1/connections", create, map[string]string{"Content-Type": "application/json"}); code != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", code)
	}
	if code, _ := admin.do("POST", "/v1/connections", create, map[string]string{"X-CSRF-Token": admin.csrf, "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("foreign origin: %d", code)
	}
	code, body := admin.post("/v1/connections", create)
	if code != http.StatusOK {
		t.Fatalf("admin create: %d %v", code, body)
	}
	conn := body["connection"].(map[string]any)
	if conn["createdBy"] != "grace@example.com" {
		t.Errorf("created by %v, want the person", conn["createdBy"])
	}

	// An auditor reads everything and changes nothing.
	auditor, _, _ := s.signIn("ada@example.com", "ghconnect-auditors")
	if code, body := auditor.get("/v1/connections/" + conn["id"].(string) + "/history"); code != http.StatusOK {
		t.Fatalf("auditor history: %d %v", code, body)
	}
	if code, body := auditor.post("/v1/connections/"+conn["id"].(string)+":disconnect", `{}`); code != http.StatusForbidden {
		t.Fatalf("auditor disconnect: %d %v", code, body)
	}

	// Someone in neither group is a server user: their own page, their
	// login from the login claim, and no administration.
	mallory, code, page := s.signIn("mallory@example.com", "staff")
	if code != http.StatusOK || !strings.Contains(page, "Your GitHub.com account") {
		t.Fatalf("no group: %d %s", code, page)
	}
	if code, info := mallory.get("/auth/session"); code != http.StatusOK || info["login"] != "mallory" || info["roles"] != nil {
		t.Fatalf("server user's session: %d %v", code, info)
	}
	if code, _ := mallory.get("/v1/connections"); code != http.StatusForbidden {
		t.Fatalf("server user lists connections: %d", code)
	}
	if code, _ := mallory.post("/v1/connections/"+conn["id"].(string)+":disconnect", `{}`); code != http.StatusForbidden {
		t.Fatalf("server user disconnects: %d", code)
	}

	// A bearer caller cannot pose as a person through metadata headers.
	api := rest{t: t, base: s.public, token: s.reg.Tokens["alice"]}
	req, _ := http.NewRequest("GET", s.public+"/v1/connections/"+conn["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+api.token)
	req.Header.Set("Grpc-Metadata-X-Ghconnect-User", "grace@example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bearer call with a spoofed person header: %d (the header should be dropped)", resp.StatusCode)
	}

	// A callback from the provider that this browser did not start is refused.
	if code, _ := admin.get("/auth/callback?state=forged&code=x"); code != http.StatusBadRequest {
		t.Fatalf("forged callback: %d", code)
	}

	// Signing out ends the session.
	if code, _ := admin.do("POST", "/auth/logout", "", map[string]string{"X-CSRF-Token": admin.csrf}); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := admin.get("/v1/connections"); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

// A code the identity provider refuses is the browser's to retry (400),
// not an outage (502).
func TestSignInWithARefusedCode(t *testing.T) {
	s := startSSO(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(s.public + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || to.Query().Get("state") == "" {
		t.Fatalf("login redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = c.Get(s.public + "/auth/callback?" + url.Values{"state": {to.Query().Get("state")}, "code": {"not-a-code"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(page), "Start again") {
		t.Errorf("a refused code: %d %s", resp.StatusCode, page)
	}
}
