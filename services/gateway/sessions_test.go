package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

// sessionSchema is the sessions' migrations: each test's PostgreSQL
// database is a clone of a template testenv migrated once.
var sessionSchema = testenv.Schema{Service: "gateway", Files: migrationFiles, Dir: "migrations"}

// cluster is the gateway deployed as replicas: gateways sharing one
// sessions database and one public URL, behind a front (the load
// balancer) that browsers and the provider's redirects reach and that
// sends each request to the replica the test routes it to.
type cluster struct {
	*ssoSystem
	to       atomic.Pointer[url.URL]
	replicas map[string]*httptest.Server
	gateways map[string]*Gateway
}

func startCluster(t *testing.T, dsn string, names ...string) *cluster {
	ln := listen(t)
	c := &cluster{ssoSystem: newSSOSystem(t, dsn, "http://"+ln.Addr().String()), replicas: map[string]*httptest.Server{}, gateways: map[string]*Gateway{}}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(c.to.Load()) }}
	front := &httptest.Server{Listener: ln, Config: &http.Server{Handler: proxy}}
	front.Start()
	t.Cleanup(front.Close)
	for _, n := range names {
		c.start(n)
	}
	t.Cleanup(func() {
		for n := range c.replicas {
			c.stop(n)
		}
	})
	return c
}

// start builds and serves replica name (again, after stop).
func (c *cluster) start(name string) {
	g := c.gateway()
	c.gateways[name], c.replicas[name] = g, httptest.NewServer(g)
}

// stop ends replica name: its server, then its gateway (the database
// handle with it).
func (c *cluster) stop(name string) {
	c.replicas[name].Close()
	c.gateways[name].Close()
	delete(c.replicas, name)
	delete(c.gateways, name)
}

// route sends what reaches the front from now on to replica name.
func (c *cluster) route(name string) {
	u, err := url.Parse(c.replicas[name].URL)
	if err != nil {
		c.t.Fatal(err)
	}
	c.to.Store(u)
}

// Sessions are the deployment's, not a replica's: a person signed in
// through one gateway goes on through another and through restarts of
// both, a sign-in started on one completes on the other, and signing out
// anywhere signs out everywhere.
func TestSessionsAcrossReplicasAndRestarts(t *testing.T) {
	sessionSchema.Stores(t, func(t *testing.T, dsn string) {
		c := startCluster(t, dsn, "a", "b")
		c.route("a")
		admin, code, _ := c.signIn("grace@example.com", "ghconnect-admins")
		if code != http.StatusOK || admin.csrf == "" {
			t.Fatalf("sign-in through a: %d", code)
		}

		// b knows the session a made, its CSRF token included.
		c.route("b")
		if code, info := admin.get("/auth/session"); code != http.StatusOK || info["user"] != "grace@example.com" || info["csrf_token"] != admin.csrf {
			t.Fatalf("the session through b: %d %v", code, info)
		}
		if code, body := admin.post("/v1/connections", createBody(c.reg.License)); code != http.StatusOK {
			t.Fatalf("a change through b: %d %v", code, body)
		}

		// Both stop and start again: still signed in, on either.
		c.stop("a")
		c.stop("b")
		c.start("a")
		c.start("b")
		for _, r := range []string{"a", "b"} {
			c.route(r)
			if code, body := admin.get("/v1/connections"); code != http.StatusOK {
				t.Fatalf("after both restarted, through %s: %d %v", r, code, body)
			}
		}

		// A sign-in started on a: the provider sends the browser back to b.
		c.route("a")
		auditor, code, page := c.signInVia("ada@example.com", "ghconnect-auditors", func() { c.route("b") })
		if code != http.StatusOK || auditor.csrf == "" {
			t.Fatalf("sign-in started on a, completed on b: %d %s", code, page)
		}

		// Signing out through a ends the session on b; the other person's
		// stays.
		c.route("a")
		if code, _ := admin.do("POST", "/auth/logout", "", map[string]string{"X-CSRF-Token": admin.csrf, "Origin": c.public}); code != http.StatusNoContent {
			t.Fatalf("sign-out through a: %d", code)
		}
		c.route("b")
		if code, _ := admin.get("/auth/session"); code != http.StatusUnauthorized {
			t.Fatalf("the signed-out session through b: %d", code)
		}
		if code, _ := admin.get("/v1/connections"); code != http.StatusUnauthorized {
			t.Fatalf("an API call on the signed-out session through b: %d", code)
		}
		if code, info := auditor.get("/auth/session"); code != http.StatusOK || info["user"] != "ada@example.com" {
			t.Fatalf("the other person's session through b: %d %v", code, info)
		}
	})
}

// startSignIn signs login in at the provider through the front and stops
// at the provider's redirect back: it returns that callback URL (the code
// and the state) and the browser's state cookie.
func (c *cluster) startSignIn(login string) (string, *http.Cookie) {
	c.t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := client.Get(c.public + "/auth/login")
	if err != nil {
		c.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"dev_login": {login}, "dev_groups": {"ghconnect-admins"}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Add(unescape(m[1]), unescape(m[2]))
	}
	resp, err = client.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	u, err := url.Parse(callback)
	if resp.StatusCode != http.StatusFound || err != nil || u.Path != "/auth/callback" {
		c.t.Fatalf("the provider answered %d, to %q", resp.StatusCode, callback)
	}
	for _, ck := range jar.Cookies(u) {
		if ck.Name == loginCookie {
			return callback, ck
		}
	}
	c.t.Fatal("no sign-in cookie in the browser")
	return "", nil
}

// callback brings the provider's answer to replica name, with the
// browser's state cookie; it returns the status and where it redirects
// to, or the page.
func (c *cluster) callback(name, callback string, state *http.Cookie) (int, string) {
	c.t.Helper()
	u, err := url.Parse(callback)
	if err != nil {
		c.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", c.replicas[name].URL+u.RequestURI(), nil)
	req.AddCookie(state)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		return resp.StatusCode, resp.Header.Get("Location")
	}
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(page)
}

// A sign-in is used once in the whole deployment: the provider's answer
// taken by one replica is refused by every other, later or at the same
// moment.
func TestSignInIsSingleUseAcrossReplicas(t *testing.T) {
	const stale = "This sign-in link is no longer valid"
	sessionSchema.Stores(t, func(t *testing.T, dsn string) {
		c := startCluster(t, dsn, "a", "b")
		c.route("a")
		cb, state := c.startSignIn("grace@example.com")
		if code, to := c.callback("b", cb, state); code != http.StatusFound || to != "/" {
			t.Fatalf("the callback on b of a sign-in started on a: %d %s", code, to)
		}
		for _, r := range []string{"a", "b"} {
			if code, page := c.callback(r, cb, state); code != http.StatusBadRequest || !strings.Contains(page, stale) {
				t.Errorf("the callback replayed on %s: %d %s", r, code, page)
			}
		}

		// Both replicas get the same answer at once: one signs the person
		// in, the other refuses it before asking the provider.
		cb, state = c.startSignIn("ada@example.com")
		var wg sync.WaitGroup
		codes, pages := make([]int, 2), make([]string, 2)
		for i, r := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], pages[i] = c.callback(r, cb, state)
			}()
		}
		wg.Wait()
		won, lost := 0, 0
		for i := range codes {
			switch {
			case codes[i] == http.StatusFound && pages[i] == "/":
				won++
			case codes[i] == http.StatusBadRequest && strings.Contains(pages[i], stale):
				lost++
			}
		}
		if won != 1 || lost != 1 {
			t.Errorf("the same callback on both at once: %v %q", codes, pages)
		}
	})
}

// sessionCookieOf is the session id in b's cookie jar.
func (c *cluster) sessionCookieOf(b *browser) string {
	c.t.Helper()
	u, _ := url.Parse(c.public)
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	c.t.Fatal("no session cookie in the browser")
	return ""
}

// count is how many rows of table match where (args as $1, …).
func count(t *testing.T, db *sqldb.DB, table, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The database holds no session id or state, only their SHA-256; a
// session or sign-in past its time is refused and its row deleted, and
// the rows nobody comes back for are swept.
func TestSessionsExpireAndAreSwept(t *testing.T) {
	sessionSchema.Stores(t, func(t *testing.T, dsn string) {
		c := startCluster(t, dsn, "a")
		c.route("a")
		db, err := sqldb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		grace, _, _ := c.signIn("grace@example.com", "ghconnect-admins")
		ada, _, _ := c.signIn("ada@example.com", "ghconnect-auditors")
		cbX, stateX := c.startSignIn("x@example.com")
		c.startSignIn("y@example.com")

		id := c.sessionCookieOf(grace)
		if count(t, db, "sessions", "id_hash = $1", hashID(id)) != 1 || count(t, db, "sign_ins", "state_hash = $1", hashID(stateX.Value)) != 1 {
			t.Fatal("the session and the sign-in are not kept under their SHA-256")
		}
		for _, secret := range []string{id, stateX.Value} {
			if n := count(t, db, "sessions", "id_hash = $1 OR person = $1 OR login = $1 OR roles = $1 OR csrf_token = $1", secret) +
				count(t, db, "sign_ins", "state_hash = $1 OR verifier = $1 OR nonce = $1 OR return_to = $1", secret); n != 0 {
				t.Fatal("a session id or a state is stored as it is")
			}
		}

		// An hour on (the sessions' time) and more: all of it expired.
		c.clock.advance(time.Hour + sweepEvery)
		if code, _ := grace.get("/auth/session"); code != http.StatusUnauthorized {
			t.Fatalf("an expired session: %d", code)
		}
		if count(t, db, "sessions", "id_hash = $1", hashID(id)) != 0 {
			t.Error("the expired session read was not deleted")
		}
		if code, page := c.callback("a", cbX, stateX); code != http.StatusBadRequest || !strings.Contains(page, "no longer valid") {
			t.Errorf("an expired sign-in's callback: %d %s", code, page)
		}
		// ada never comes back, nor does y: a new sign-in sweeps them.
		if count(t, db, "sessions", "true") != 1 || count(t, db, "sign_ins", "true") != 1 {
			t.Fatal("rows nobody read went before the sweep")
		}
		c.startSignIn("z@example.com")
		if n, m := count(t, db, "sessions", "true"), count(t, db, "sign_ins", "true"); n != 0 || m != 1 {
			t.Errorf("after the sweep: %d sessions, %d sign-ins; want none and z's", n, m)
		}
		if code, _ := ada.get("/auth/session"); code != http.StatusUnauthorized {
			t.Errorf("a swept session: %d", code)
		}
	})
}

// When the sessions database fails, people are told to try again (503),
// not signed out (401), and the log names the failure but no secret.
func TestSessionsDatabaseDown(t *testing.T) {
	c := startCluster(t, testenv.SQLite(t), "a")
	c.route("a")
	admin, _, _ := c.signIn("grace@example.com", "ghconnect-admins")
	id := c.sessionCookieOf(admin)
	c.gateways["a"].sso.store.db.Close()
	if code, _ := admin.get("/auth/session"); code != http.StatusServiceUnavailable {
		t.Errorf("/auth/session: %d", code)
	}
	if code, _ := admin.get("/v1/connections"); code != http.StatusServiceUnavailable {
		t.Errorf("an API call: %d", code)
	}
	if code, _ := admin.do("POST", "/auth/logout", "", map[string]string{"X-CSRF-Token": admin.csrf}); code != http.StatusServiceUnavailable {
		t.Errorf("sign-out: %d", code)
	}
	resp, err := http.Get(c.public + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("sign-in: %d", resp.StatusCode)
	}
	if c.logs.FilterMessageSnippet("sessions database").Len() == 0 {
		t.Error("the failures were not logged")
	}
	for _, e := range c.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, id) || strings.Contains(line, admin.csrf) {
			t.Errorf("a secret in the log: %s", line)
		}
	}
}

// A -database that is neither a SQLite file nor a PostgreSQL URL is
// refused with the flag's name, before anything is opened; one that
// cannot be opened stops the gateway with the reason.
func TestSessionsDatabaseFlag(t *testing.T) {
	sso := SSO{Issuer: "https://idp.example.com", ClientID: "c", PublicURL: "https://gw.example.com", AdminGroups: "admins", SessionTTL: time.Hour}
	for dsn, want := range map[string]string{
		"sqlite:.data/gateway.db":               "",
		"postgres://u@db.example.com/gateway":   "",
		"postgresql://u@db.example.com/gateway": "",
		"":                                      "-database is required with -oidc-issuer",
		"sqlite:":                               `-database must be "sqlite:PATH"`,
		"sqlite::memory:":                       `-database must be "sqlite:PATH"`,
		"mysql://u@db.example.com/gateway":      `-database must be "sqlite:PATH"`,
		".data/gateway.db":                      `-database must be "sqlite:PATH"`,
		"postgres://u@db.example.com:port/gateway\n": "-database: not a valid postgres:// URL",
	} {
		sso.Database = dsn
		err := sso.Validate()
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("-database %q: %v, want %q", dsn, err, want)
		}
	}
	// Without single sign-on the gateway keeps no sessions.
	if err := (&SSO{Database: ""}).Validate(); err != nil {
		t.Errorf("no single sign-on, no database: %v", err)
	}

	ln := listen(t)
	s := newSSOSystem(t, "postgres://nobody@"+ln.Addr().String()+"/gateway?sslmode=disable&connect_timeout=5", "http://127.0.0.1:1")
	ln.Close() // nothing listens there now
	_, err := New(context.Background(), Upstreams{Registry: s.reg.Addr, SSO: SSO{Issuer: s.issuer, ClientID: "c", PublicURL: s.public, AdminGroups: "admins", SessionTTL: time.Hour, Database: s.dsn}})
	if err == nil || !strings.Contains(err.Error(), "sessions database") {
		t.Errorf("an unreachable database: %v", err)
	}
}
