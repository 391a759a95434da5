package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refreshRoute is the emulator's counter of token exchanges and refreshes.
const refreshRoute = "POST /login/oauth/access_token"

// A person's access token expires on GitHub.com while three brokers share
// the grant in one database: 100 callers spread over the brokers report
// the refused token at once, and GitHub.com sees exactly one refresh;
// every caller gets the same new token, which GitHub.com accepts. After
// it, no process log and no database holds a user token, a refresh token
// or the App's client secret in plaintext.
func TestUserTokenRefreshAcrossBrokers(t *testing.T) {
	s := startReplicated(t)
	var brokers []string
	for i := 1; i <= replicas["broker"]; i++ {
		brokers = append(brokers, s.addr(replica("broker", i)))
	}
	userTokenRefresh(t, s, s.list("featuregate"), brokers)
}

// The same on one broker on SQLite, and the same scan.
func TestUserTokenRefreshOneBroker(t *testing.T) {
	s := startSystem(t)
	userTokenRefresh(t, s, s.addr("featuregate"), []string{s.addr("broker")})
}

// userTokenRefresh connects an App, links server user mona to GitHub.com
// account mona-cloud through the feature gate (gates), expires mona's
// token and has 100 callers over brokers ask for it with the refused
// token's SHA-256; then it stops the system and scans it for secrets.
func userTokenRefresh(t *testing.T, s *system, gates string, brokers []string) {
	start := time.Now()
	id := s.create()
	s.enable(id)
	s.emuDo("POST", "/_emu/users/mona-cloud", http.StatusOK)

	// The callers ask as the feature gate, which the broker's policy lets
	// act for users.
	var clients []brokerv1.TokenBrokerServiceClient
	for _, b := range brokers {
		clients = append(clients, brokerv1.NewTokenBrokerServiceClient(s.grpcAs("featuregate", b)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Each broker learns through the registry's Watch that the connection
	// is CONNECTED: then it answers that mona has no grant yet.
	for i, c := range clients {
		s.eventually(brokers[i]+" knows the connection", func() bool { //nolint:gosec // G602: clients has one entry per broker
			_, err := c.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona"})
			if code := status.Code(err); code != codes.FailedPrecondition && code != codes.NotFound {
				t.Fatalf("mona's token before the link: %v", err)
			}
			return status.Code(err) == codes.NotFound
		})
	}
	// search-svc, a feature client, links the person.
	search := s.grpcAs("search-svc", gates)
	link := s.linkAccount(featuregatev1.NewFeatureGateServiceClient(search), id, "mona", "mona-cloud")
	if link.GetLink().GetGithubLogin() != "mona-cloud" {
		t.Fatalf("linked %v, want mona-cloud", link.GetLink())
	}
	first, err := clients[0].IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona"})
	if err != nil {
		t.Fatalf("mona's token: %v", err)
	}
	old := first.GetToken()
	if code, login := s.githubUser(old); code != http.StatusOK || login != "mona-cloud" {
		t.Fatalf("GET /user with mona's token: %d %q", code, login)
	}
	s.emuDo("POST", "/_emu/users/mona-cloud/expire-tokens", http.StatusNoContent)
	if code, _ := s.githubUser(old); code != http.StatusUnauthorized {
		t.Fatalf("GET /user with the expired token: %d, want 401", code)
	}
	sum := sha256.Sum256([]byte(old))
	refused := hex.EncodeToString(sum[:])
	s.emuDo("POST", "/_emu/counts/reset", http.StatusNoContent)

	const callers = 100
	tokens, errs := make([]string, callers), make([]error, callers)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			resp, err := clients[i%len(clients)].IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", RefusedTokenSha256: refused})
			tokens[i], errs[i] = resp.GetToken(), err
		}()
	}
	asked := time.Now()
	close(gate)
	wg.Wait()
	took := time.Since(asked)

	failed := 0
	distinct := map[string]int{}
	for i := range callers {
		if errs[i] != nil {
			if failed == 0 {
				t.Errorf("caller %d (broker %s): %v", i, brokers[i%len(brokers)], errs[i])
			}
			failed++
			continue
		}
		distinct[tokens[i]]++
	}
	if failed != 0 {
		t.Errorf("%d of %d callers failed", failed, callers)
	}
	refreshes := s.emuCounts()[refreshRoute]
	if refreshes != 1 {
		t.Errorf("%d %s reached GitHub.com for %d callers over %d brokers, want 1", refreshes, refreshRoute, callers, len(brokers))
	}
	if len(distinct) != 1 {
		t.Errorf("the callers got %d different tokens, want one", len(distinct))
	}
	var fresh string
	for tok := range distinct {
		fresh = tok
	}
	if fresh == old {
		t.Errorf("the callers got the refused token back")
	} else if code, login := s.githubUser(fresh); code != http.StatusOK || login != "mona-cloud" {
		t.Errorf("GET /user with the new token: %d %q, want 200 mona-cloud", code, login)
	}
	t.Logf("%d callers over %d brokers: %d refresh(es) on GitHub.com, %d failed, %d token(s), in %v (test so far %v)",
		callers, len(brokers), refreshes, failed, len(distinct), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	dumps := s.scanForSecrets(old, fresh)
	// The scan saw the grant: mona's row, its tokens as Vault ciphertext.
	for _, want := range []string{"github_login=mona-cloud", "access_ciphertext=vault:v", "refresh_ciphertext=vault:v"} {
		if !strings.Contains(dumps["broker"], want) {
			t.Errorf("the broker's database holds no %q: the scan missed the grant", want)
		}
	}
}

// grpcAs dials addr (a list balances over it) with principal's
// certificate; the connection closes with the test.
func (s *system) grpcAs(principal, addr string) *grpc.ClientConn {
	s.t.Helper()
	d, err := dial.New(dial.Flags{CA: s.pki.CA(), Cert: s.pki.Cert(principal), Key: s.pki.Key(principal)})
	if err != nil {
		s.t.Fatal(err)
	}
	cc, err := d.Dial(addr, "")
	if err != nil {
		d.Close()
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cc.Close(); d.Close() })
	return cc
}

// linkAccount links server user to GitHub.com account login the way a
// server does: StartAccountLink, the person approves the App on
// GitHub.com in a browser, CompleteAccountLink with what GitHub.com sent
// back.
func (s *system) linkAccount(gate featuregatev1.FeatureGateServiceClient, id, user, login string) *featuregatev1.CompleteAccountLinkResponse {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The App sends people back to the gateway's user callback (the
	// manifest's callback_urls).
	redirect := s.gw + "/connect/user/callback"
	var started *featuregatev1.StartAccountLinkResponse
	var lastErr error
	// The gates and the brokers learn that the connection is CONNECTED
	// through the registry's Watch.
	s.eventually("the feature gate starts account links", func() bool {
		started, lastErr = gate.StartAccountLink(ctx, &featuregatev1.StartAccountLinkRequest{ConnectionId: id, User: user, RedirectUri: redirect})
		if lastErr != nil && status.Code(lastErr) != codes.FailedPrecondition {
			s.t.Fatalf("StartAccountLink: %v", lastErr)
		}
		return lastErr == nil
	})
	back := s.approveOnGitHub(started.GetAuthorizeUrl(), login)
	if !strings.HasPrefix(back.String(), redirect+"?") {
		s.t.Fatalf("GitHub.com sent the browser to %s, want %s", back, redirect)
	}
	q := back.Query()
	if q.Get("state") != started.GetState() || q.Get("code") == "" {
		s.t.Fatalf("GitHub.com sent back %v", q)
	}
	done, err := gate.CompleteAccountLink(ctx, &featuregatev1.CompleteAccountLinkRequest{User: user, State: q.Get("state"), Code: q.Get("code")})
	if err != nil {
		s.t.Fatalf("CompleteAccountLink: %v", err)
	}
	return done
}

// formField is a hidden input of the emulator's authorize page.
var formField = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// approveOnGitHub plays the person's browser on GitHub.com's authorize
// page: it signs in as login, presses "Authorize" and returns where
// GitHub.com redirects.
func (s *system) approveOnGitHub(authorizeURL, login string) *url.URL {
	s.t.Helper()
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page, err := browser.Get(authorizeURL)
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK {
		s.t.Fatalf("authorize page: %d %s", page.StatusCode, body)
	}
	form := url.Values{}
	for _, m := range formField.FindAllStringSubmatch(string(body), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	form.Set("login", login)
	form.Set("decision", "approve")
	action, _ := url.Parse(authorizeURL)
	action.Path, action.RawQuery = "/login/oauth/authorize", ""
	back, err := url.Parse(next(s.t)(browser.PostForm(action.String(), form)))
	if err != nil {
		s.t.Fatal(err)
	}
	return back
}

// emuDo calls one of the emulator's controls and wants status want.
func (s *system) emuDo(method, path string, want int) {
	s.t.Helper()
	s.emuSend(method, path, nil, want, nil)
}

// emuCounts are the emulator's request counters by route.
func (s *system) emuCounts() map[string]int {
	counts := map[string]int{}
	s.emuJSON("/_emu/counts", &counts)
	return counts
}

// githubUser is GET /user with a user token: the status and the login.
func (s *system) githubUser(token string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.emu+"/user", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct{ Login string }
	// An error's body leaves Login empty: callers look at the status.
	_ = json.NewDecoder(resp.Body).Decode(&me)
	return resp.StatusCode, me.Login
}

// scanForSecrets stops the system and fails the test if a process log or
// a service's database holds a user access token (ghu_), a refresh token
// (ghr_), one of tokens or an App's client secret in plaintext. The
// client secrets are the emulator's own, from the state file it writes
// when it stops. It returns each database's rows as text, by name.
func (s *system) scanForSecrets(tokens ...string) map[string]string {
	s.t.Helper()
	for n := range s.procs {
		if n != "ghemu" && n != "vaultdev" {
			s.stop(n)
		}
	}
	s.stop("ghemu")
	s.stop("vaultdev")
	state := readFile(s.t, filepath.Join(s.dir, "ghemu-state.json"))
	var emu struct {
		Apps []struct{ ClientID, ClientSecret string }
	}
	if err := json.Unmarshal([]byte(state), &emu); err != nil {
		s.t.Fatalf("the emulator's state: %v", err)
	}
	secrets := map[string]string{"a user access token (ghu_)": "ghu_", "a refresh token (ghr_)": "ghr_"}
	for i, tok := range tokens {
		if tok != "" {
			secrets[fmt.Sprintf("user token %d", i+1)] = tok
		}
	}
	for _, a := range emu.Apps {
		if a.ClientSecret != "" {
			secrets["the client secret of App "+a.ClientID] = a.ClientSecret
		}
	}
	if len(secrets) < 3 {
		s.t.Fatalf("the emulator keeps no App client secret")
	}
	// The admin's sign-in: the gateway keeps only the session id's SHA-256.
	if gw, err := url.Parse(s.gw); err == nil {
		for _, c := range s.browser.Jar.Cookies(gw) {
			if c.Name == "ghconnect_session" {
				secrets["the admin's session id"] = c.Value
			}
		}
	}
	if _, ok := secrets["the admin's session id"]; !ok {
		s.t.Fatal("the admin's browser holds no session")
	}
	// Vault transit takes plaintext in base64: an audit log or a request
	// log showing it would show it so.
	for what, v := range maps.Clone(secrets) {
		if !strings.HasSuffix(v, "_") {
			secrets[what+" in base64"] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	}
	// GitHub.com keeps the live refresh token, so there is one to find.
	if !strings.Contains(state, "ghr_") {
		s.t.Fatal("the emulator's state holds no refresh token")
	}

	var found []string
	logs, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	for _, f := range logs {
		raw, err := os.ReadFile(f)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, what := range findSecrets(secrets, string(raw)) {
			found = append(found, filepath.Base(f)+": "+what)
		}
	}
	names := make([]string, 0, len(s.dbs))
	for n := range s.dbs {
		names = append(names, n)
	}
	sort.Strings(names)
	rows, dumps := 0, map[string]string{}
	for _, n := range names {
		tables, count := s.dumpDB(s.dbs[n])
		rows += count
		for table, text := range tables {
			dumps[n] += text
			for _, what := range findSecrets(secrets, text) {
				found = append(found, fmt.Sprintf("%s database, table %s: %s", n, table, what))
			}
		}
	}
	sort.Strings(found)
	for _, f := range found {
		s.t.Errorf("plaintext secret: %s", f)
	}
	s.t.Logf("secret scan: %d log files, %d databases (%d rows), %d needles: %d found", len(logs), len(names), rows, len(secrets), len(found))
	return dumps
}

// findSecrets names the secrets text holds (never their values).
func findSecrets(secrets map[string]string, text string) []string {
	var out []string
	for what, v := range secrets {
		if strings.Contains(text, v) {
			out = append(out, what)
		}
	}
	sort.Strings(out)
	return out
}

// dumpDB renders every row of every table of the database dsn as text,
// by table, and counts the rows.
func (s *system) dumpDB(dsn string) (map[string]string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	list := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect == sqldb.Postgres {
		list = `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
			WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`
	}
	var tables []string
	r, err := db.QueryContext(ctx, list)
	if err != nil {
		s.t.Fatal(err)
	}
	for r.Next() {
		var name string
		if err := r.Scan(&name); err != nil {
			s.t.Fatal(err)
		}
		tables = append(tables, name)
	}
	r.Close()
	if len(tables) == 0 {
		s.t.Fatalf("no tables in %s", dsn)
	}
	out, total := map[string]string{}, 0
	for _, table := range tables {
		query := "SELECT * FROM " + table
		if db.Dialect == sqldb.SQLite {
			query = `SELECT * FROM "` + strings.ReplaceAll(table, `"`, `""`) + `"`
		}
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			s.t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var b strings.Builder
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				s.t.Fatalf("%s: %v", table, err)
			}
			for i, v := range vals {
				if raw, ok := v.([]byte); ok {
					v = string(raw)
				}
				fmt.Fprintf(&b, "%s=%v\t", cols[i], v)
			}
			b.WriteByte('\n')
			total++
		}
		if err := rows.Err(); err != nil {
			s.t.Fatalf("%s: %v", table, err)
		}
		rows.Close()
		out[table] = b.String()
	}
	return out, total
}
