package broker_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tokenRoute is GitHub.com's OAuth token endpoint, as the emulator counts
// it: each code exchange and each refresh is one call.
const tokenRoute = "POST /login/oauth/access_token"

// authorize runs person login's authorization of the harness App for
// server user user, through the broker's RPCs: the response of
// CompleteUserAuthorization, or its error.
func authorize(t testing.TB, e *brokertest.Env, user, login string) (*brokerv1.CompleteUserAuthorizationResponse, error) {
	t.Helper()
	ctx := e.Ctx(t, "search-svc")
	start, err := e.Client.StartUserAuthorization(ctx, &brokerv1.StartUserAuthorizationRequest{ConnectionId: e.ConnID, User: user, RedirectUri: brokertest.UserCallback})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	u, _ := url.Parse(start.AuthorizeUrl)
	if q := u.Query(); q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") != start.State {
		t.Fatalf("authorize URL without PKCE or state: %s", start.AuthorizeUrl)
	}
	q := ghemu.Approve(t, registrytest.Browser(), start.AuthorizeUrl, login)
	return e.Client.CompleteUserAuthorization(ctx, &brokerv1.CompleteUserAuthorizationRequest{User: user, State: q.Get("state"), Code: q.Get("code")})
}

// whoIs asks GitHub.com who a user token belongs to.
func whoIs(t *testing.T, e *brokertest.Env, token string) int {
	req, _ := http.NewRequest("GET", e.Emu.URL+"/user", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestUserAuthorization(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	e.Emu.AddUser("mona-cloud")
	e.Emu.AddUser("eve-cloud")
	ctx := e.Ctx(t, "search-svc")

	got, err := authorize(t, e, "mona", "mona-cloud")
	if err != nil {
		t.Fatal(err)
	}
	g := got.Grant
	if g.GithubLogin != "mona-cloud" || g.GithubId <= 0 || g.User != "mona" || g.ConnectionId != e.ConnID || g.Status != brokerv1.UserGrantStatus_USER_GRANT_STATUS_ACTIVE {
		t.Fatalf("grant: %v", g)
	}
	tok, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"})
	if err != nil || !strings.HasPrefix(tok.Token, "ghu_") || tok.GithubLogin != "mona-cloud" {
		t.Fatalf("user token: %v %v", tok, err)
	}
	if code := whoIs(t, e, tok.Token); code != http.StatusOK {
		t.Fatalf("GitHub.com refuses the user token: %d", code)
	}
	if n := e.Emu.Count(tokenRoute); n != 1 {
		t.Errorf("%d calls to the token endpoint, want 1 (the code exchange)", n)
	}
	// A caller asking for less gets a token GitHub.com limited.
	e.Emu.AddMember("octo-org", "mona-cloud")
	if got := reposOf(t, e, tok.Token); !slices.Equal(got, []string{"octo-org/alpha", "octo-org/beta", "octo-org/gamma"}) {
		t.Fatalf("mona's token reaches %v", got)
	}
	small, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona", Repositories: []string{"beta"}, Permissions: map[string]string{"contents": "read"}})
	if err != nil || small.Token == tok.Token {
		t.Fatalf("scoped token: %v %v", small, err)
	}
	if got := reposOf(t, e, small.Token); !slices.Equal(got, []string{"octo-org/beta"}) {
		t.Errorf("the scoped token reaches %v", got)
	}
	if _, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona", Permissions: map[string]string{"administration": "write"}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a scope beyond the installation: %v", err)
	}

	// A replayed redirect is refused and changes nothing.
	start, _ := e.Client.StartUserAuthorization(ctx, &brokerv1.StartUserAuthorizationRequest{ConnectionId: e.ConnID, User: "eve", RedirectUri: brokertest.UserCallback})
	q := ghemu.Approve(t, registrytest.Browser(), start.AuthorizeUrl, "eve-cloud")
	// Another person's browser cannot use eve's state.
	if _, err := e.Client.CompleteUserAuthorization(ctx, &brokerv1.CompleteUserAuthorizationRequest{User: "mallory", State: q.Get("state"), Code: q.Get("code")}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("another person's state: %v", err)
	}
	if _, err := e.Client.CompleteUserAuthorization(ctx, &brokerv1.CompleteUserAuthorizationRequest{User: "eve", State: q.Get("state"), Code: q.Get("code")}); err != nil {
		t.Fatalf("eve: %v", err)
	}
	if _, err := e.Client.CompleteUserAuthorization(ctx, &brokerv1.CompleteUserAuthorizationRequest{User: "eve", State: q.Get("state"), Code: q.Get("code")}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("replayed redirect: %v", err)
	}

	// One GitHub.com account, one server user: mona's account for hubot
	// is refused, and mona's link stays.
	if _, err := authorize(t, e, "hubot", "mona-cloud"); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second server user for one account: %v", err)
	}
	if g, err := e.Client.GetUserGrant(ctx, &brokerv1.GetUserGrantRequest{ConnectionId: e.ConnID, User: "mona"}); err != nil || g.Grant.Status != brokerv1.UserGrantStatus_USER_GRANT_STATUS_ACTIVE {
		t.Errorf("mona after hubot's attempt: %v %v", g, err)
	}
	if _, err := e.Client.GetUserGrant(ctx, &brokerv1.GetUserGrantRequest{ConnectionId: e.ConnID, User: "hubot"}); status.Code(err) != codes.NotFound {
		t.Errorf("hubot: %v", err)
	}

	// A caller whose policy has no user tokens gets none.
	if _, err := e.Client.IssueUserToken(e.Ctx(t, "deploy-svc"), &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("deploy-svc: %v", err)
	}
	// Bad input is refused with field errors.
	for name, req := range map[string]*brokerv1.StartUserAuthorizationRequest{
		"no user":        {ConnectionId: e.ConnID, RedirectUri: brokertest.UserCallback},
		"bad user":       {ConnectionId: e.ConnID, User: "a b", RedirectUri: brokertest.UserCallback},
		"relative URI":   {ConnectionId: e.ConnID, User: "mona", RedirectUri: "/connect/user/callback"},
		"javascript URI": {ConnectionId: e.ConnID, User: "mona", RedirectUri: "javascript:alert(1)"},
		"no connection":  {ConnectionId: "", User: "mona", RedirectUri: brokertest.UserCallback},
	} {
		if _, err := e.Client.StartUserAuthorization(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Unlinking revokes the grant on GitHub.com and keeps nothing.
	if r, err := e.Client.RevokeUserGrant(ctx, &brokerv1.RevokeUserGrantRequest{ConnectionId: e.ConnID, User: "mona"}); err != nil || !r.Revoked {
		t.Fatalf("revoke: %v %v", r, err)
	}
	if code := whoIs(t, e, tok.Token); code != http.StatusUnauthorized {
		t.Errorf("mona's token after unlinking: %d", code)
	}
	if _, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"}); status.Code(err) != codes.NotFound {
		t.Errorf("token after unlinking: %v", err)
	}

	// No token in plaintext in the database or the logs.
	noTokenIn(t, "the logs", e.Logs.String())
	noTokenIn(t, "the database", dump(t, e))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// reposOf lists the repositories a user token reaches in the harness's
// installation, as GitHub.com answers.
func reposOf(t *testing.T, e *brokertest.Env, token string) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/user/installations/%d/repositories", e.Emu.URL, e.InstID), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Repositories []struct {
			FullName string `json:"full_name"`
		} `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("repositories of a user token: %d %v", resp.StatusCode, err)
	}
	var names []string
	for _, r := range out.Repositories {
		names = append(names, r.FullName)
	}
	slices.Sort(names)
	return names
}

// noTokenIn fails if text holds a GitHub user or refresh token.
func noTokenIn(t *testing.T, where, text string) {
	t.Helper()
	for _, p := range []string{"ghu_", "ghr_"} {
		if i := strings.Index(text, p); i >= 0 {
			t.Errorf("%s hold a token: …%s…", where, text[max(0, i-40):min(len(text), i+20)])
		}
	}
}

// dump is every row of the broker's user tables, as text.
func dump(t *testing.T, e *brokertest.Env) string {
	var b strings.Builder
	for _, table := range []string{"user_grants", "user_authorizations"} {
		rows, err := e.DB.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

// One refresh across replicas: three brokers on one database, 100 callers
// at once asking for a person's expired token. The refresh token works
// once, so a second refresh would break the link.
func TestUserTokenRefreshOnceAcrossReplicas(t *testing.T) {
	broker.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := brokertest.Start(t, brokertest.Options{Database: dsn})
		e.Emu.AddUser("mona-cloud")
		if _, err := authorize(t, e, "mona", "mona-cloud"); err != nil {
			t.Fatal(err)
		}
		// Two more replicas on the same database, following the same
		// registry.
		replicas := []*brokertest.Env{e, e.Replica(t), e.Replica(t)}
		// Every replica's clock is past the token's expiry.
		for _, r := range replicas {
			r.Broker.SetUserClock(func() time.Time { return time.Now().Add(8 * time.Hour) })
		}
		// storm has 100 callers at once ask the replicas for mona's token,
		// saying GitHub.com refused the one of fingerprint refused (if
		// any); it returns the one token they all got.
		storm := func(what, refused string) string {
			t.Helper()
			e.Emu.ResetCounts()
			var wg sync.WaitGroup
			var mu sync.Mutex
			tokens := map[string]int{}
			var failed []error
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := replicas[i%len(replicas)]
					resp, err := r.Client.IssueUserToken(r.Ctx(t, "search-svc"), &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona", RefusedTokenSha256: refused})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed = append(failed, err)
						return
					}
					tokens[resp.Token]++
				}()
			}
			wg.Wait()
			if len(failed) > 0 {
				t.Fatalf("%s: %d of 100 calls failed; first: %v", what, len(failed), failed[0])
			}
			if n := e.Emu.Count(tokenRoute); n != 1 {
				t.Errorf("%s: %d refreshes reached GitHub.com, want 1", what, n)
			}
			if len(tokens) != 1 {
				t.Errorf("%s: %d different tokens handed out, want 1", what, len(tokens))
			}
			for tok := range tokens {
				if code := whoIs(t, e, tok); code != http.StatusOK {
					t.Errorf("%s: the refreshed token is refused: %d", what, code)
				}
				return tok
			}
			return ""
		}
		first := storm("expired", "")
		// GitHub.com refuses that token (the person's token expired early
		// there): every caller says so, one refresh follows.
		e.Emu.ExpireUserTokens("mona-cloud")
		if second := storm("refused", sha256Hex(first)); second == first {
			t.Errorf("the refused token was handed out again")
		}
	})
}

// A person who revokes the App on GitHub.com needs to reconnect: the next
// refresh is refused, the grant says so, and nothing else breaks.
func TestUserGrantRevokedOnGitHub(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	e.Emu.AddUser("mona-cloud")
	e.Emu.AddUser("eve-cloud")
	for _, p := range [][2]string{{"mona", "mona-cloud"}, {"eve", "eve-cloud"}} {
		if _, err := authorize(t, e, p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	ctx := e.Ctx(t, "search-svc")
	held, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := e.Emu.App(e.AppID)
	e.Emu.RevokeGrant(app.ClientID, "mona-cloud")
	if code := whoIs(t, e, held.Token); code != http.StatusUnauthorized {
		t.Fatalf("GitHub.com still takes the revoked token: %d", code)
	}
	// GitHub.com refuses mona's token: the caller says which.
	_, err = e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona", RefusedTokenSha256: sha256Hex(held.Token)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "connect") {
		t.Fatalf("after the person revoked the App: %v", err)
	}
	if g, err := e.Client.GetUserGrant(ctx, &brokerv1.GetUserGrantRequest{ConnectionId: e.ConnID, User: "mona"}); err != nil || g.Grant.Status != brokerv1.UserGrantStatus_USER_GRANT_STATUS_RECONNECT_NEEDED {
		t.Errorf("grant after the refused refresh: %v %v", g, err)
	}
	// eve and installation tokens go on.
	if _, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "eve"}); err != nil {
		t.Errorf("eve: %v", err)
	}
	if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}}); err != nil {
		t.Errorf("installation token: %v", err)
	}
	// mona connects again.
	if _, err := authorize(t, e, "mona", "mona-cloud"); err != nil {
		t.Fatalf("reconnecting: %v", err)
	}
	if _, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"}); err != nil {
		t.Errorf("after reconnecting: %v", err)
	}
}

// A disconnect unlinks everyone: grants are revoked on GitHub.com and
// deleted.
func TestDisconnectRevokesUserGrants(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	e.Emu.AddUser("mona-cloud")
	if _, err := authorize(t, e, "mona", "mona-cloud"); err != nil {
		t.Fatal(err)
	}
	tok, err := e.Client.IssueUserToken(e.Ctx(t, "search-svc"), &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reg.Client.Disconnect(e.Reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: e.ConnID}); err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyErr(t, 10*time.Second, "the disconnect revokes the token and deletes the grant", func() error {
		if code, rows := whoIs(t, e, tok.Token), dump(t, e); code != http.StatusUnauthorized || strings.Contains(rows, "user_grants") {
			return fmt.Errorf("the token answers %d; the tables hold: %s", code, rows)
		}
		return nil
	})
}
