package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ghconnect/ghconnect/services/broker"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func wantCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), contains) {
		t.Fatalf("got %v, want %v containing %q", err, code, contains)
	}
}

func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.RetryDelay.AsDuration()
		}
	}
	return -1
}

// repoNamesWith lists what a token reaches, asking the emulator.
func repoNamesWith(e *brokertest.Env, t *testing.T, token string) []string {
	c := github.NewClient(nil).WithAuthToken(token)
	c.BaseURL, _ = url.Parse(e.Emu.URL + "/")
	repos, _, err := c.Apps.ListRepos(context.Background(), nil)
	if err != nil {
		t.Fatalf("using the token at GitHub: %v", err)
	}
	var out []string
	for _, r := range repos.Repositories {
		out = append(out, r.GetName())
	}
	sort.Strings(out)
	return out
}

func TestIssueDownscopedAndCached(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	resp, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"beta", "alpha"}, Permissions: map[string]string{"contents": "read"}})
	if err != nil {
		t.Fatal(err)
	}
	// The emulator accepted the Vault-signed RS256 JWT and minted a token
	// for exactly the scope asked.
	if diff := cmp.Diff([]string{"alpha", "beta"}, repoNamesWith(e, t, resp.Token)); diff != "" {
		t.Errorf("token reaches (-want +got):\n%s", diff)
	}
	if resp.Permissions["contents"] != "read" || resp.RepositorySelection != "selected" || len(resp.Repositories) != 2 || time.Until(resp.ExpireTime.AsTime()) < 55*time.Minute {
		t.Errorf("response: %v", resp)
	}
	// The same scope, asked differently (order, case): served from cache.
	again, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"ALPHA", "beta"}, Permissions: map[string]string{"contents": "read"}})
	if err != nil || again.Token != resp.Token {
		t.Fatalf("second request: %v (same token: %v)", err, again.GetToken() == resp.Token)
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
	// Nothing asked: everything the policy allows, on every repository.
	all, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"contents": "read", "issues": "read", "metadata": "read"}, all.Permissions); diff != "" {
		t.Errorf("default permissions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"alpha", "beta", "gamma"}, repoNamesWith(e, t, all.Token)); diff != "" {
		t.Errorf("default repositories (-want +got):\n%s", diff)
	}
	// One Vault signature served all three exchanges... of the two made.
	if st := e.Broker.Stats(); st.Signs != 1 || st.Exchanges != 2 {
		t.Errorf("stats %+v, want 1 sign and 2 exchanges", st)
	}
	ss, err := e.Client.GetSigningStatus(e.Ctx(t, "ops"), &brokerv1.GetSigningStatusRequest{ConnectionId: e.ConnID})
	if err != nil || ss.TransitKey != e.KeyName || ss.CurrentVersion != 1 || ss.LastSignTime == nil {
		t.Errorf("signing status: %v %v", ss, err)
	}
}

func TestMinLifetimeForcesFreshToken(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	first, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	if err != nil {
		t.Fatal(err)
	}
	// Pretend the cached token is older: only 10 minutes left.
	e.Broker.ShortenCached(10 * time.Minute)
	short, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, MinLifetime: durationpb.New(5 * time.Minute)})
	if err != nil || short.Token != first.Token {
		t.Fatalf("10 minutes left covers 5: %v", err)
	}
	long, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, MinLifetime: durationpb.New(30 * time.Minute)})
	if err != nil || long.Token == first.Token {
		t.Fatalf("30 minutes wanted, 10 left: %v (same token: %v)", err, long.GetToken() == first.Token)
	}
}

func TestConcurrentMissesMakeOneExchange(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{Emu: ghemu.Options{}})
	e.Emu.SetFaults(ghemu.Faults{Latency: 50 * time.Millisecond})
	var wg sync.WaitGroup
	tokens := make([]string, 100)
	errs := make([]error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"gamma"}, Permissions: map[string]string{"metadata": "read"}})
			tokens[i], errs[i] = resp.GetToken(), err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || tokens[i] != tokens[0] {
			t.Fatalf("request %d: %v (same token %v)", i, err, tokens[i] == tokens[0])
		}
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 1 {
		t.Errorf("100 concurrent requests made %d exchanges, want 1", n)
	}
	if st := e.Broker.Stats(); st.Signs != 1 {
		t.Errorf("%d Vault signs, want 1", st.Signs)
	}
}

func TestKeyRotationWithoutFailedRequests(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	ctx := context.Background()
	stop := make(chan struct{})
	var failures []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	// Callers keep asking for new scopes (misses) through the rotation.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			perms := []map[string]string{{"contents": "read"}, {"issues": "read"}, {"metadata": "read"}, {"contents": "read", "issues": "read"}}[w]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e.Broker.ForgetJWT(e.ConnID) // every request signs anew
				e.Broker.DropCached(e.ConnID)
				if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{[]string{"alpha", "beta", "gamma"}[i%3]}, Permissions: perms}); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond) // the callers' pace
			}
		}()
	}
	stopCallers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopCallers() // a failed step ends the test; the callers end with it
	step := func(name string, f func() error) {
		time.Sleep(150 * time.Millisecond) // traffic runs between steps, to catch a failure at each
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The registry's key follower records what it finds in Vault, as it
	// does every few seconds in production; the broker follows the record.
	follow := func() error { return e.Reg.Connector.FollowKeys(ctx) }
	// status waits until the broker's signing status satisfies ok.
	status := func(what string, ok func(*brokerv1.GetSigningStatusResponse) bool) {
		t.Helper()
		testenv.EventuallyErr(t, 5*time.Second, what, func() error {
			ss, err := e.Client.GetSigningStatus(e.Ctx(t, "ops"), &brokerv1.GetSigningStatusRequest{ConnectionId: e.ConnID})
			if err == nil && !ok(ss) {
				err = fmt.Errorf("signing status %v", ss)
			}
			return err
		})
	}
	// 1. The operator imports the new key as version 2: GitHub does not
	// know it yet, so it is pending and version 1 keeps signing.
	step("import v2", func() error {
		_, _, err := e.Transit.ImportKeyVersion(ctx, e.KeyName, brokertest.PEM(brokertest.AppKey(1)))
		return err
	})
	step("follow v2", follow)
	status("v2 pending", func(ss *brokerv1.GetSigningStatusResponse) bool {
		return ss.GetPendingVersion() == 2 && ss.GetCurrentVersion() == 1
	})
	// 2. GitHub learns the new key: version 2 signs.
	step("register on GitHub", func() error { _, err := e.Emu.AddAppKey(e.AppID, &brokertest.AppKey(1).PublicKey); return err })
	step("adopt v2", follow)
	status("v2 signs", func(ss *brokerv1.GetSigningStatusResponse) bool { return ss.GetCurrentVersion() == 2 })
	// 3. The old key is dropped at GitHub and retired in Vault.
	step("drop v1 at GitHub", func() error { e.Emu.RemoveAppKey(e.AppID, &brokertest.AppKey(0).PublicKey); return nil })
	step("retire v1", func() error { return e.Transit.RetireVersionsBelow(ctx, e.KeyName, 2) })
	step("record retirement", follow)
	time.Sleep(200 * time.Millisecond) // traffic after the last step too
	stopCallers()
	if len(failures) > 0 {
		t.Errorf("%d requests failed during rotation; first: %v", len(failures), failures[0])
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n < 20 {
		t.Errorf("only %d exchanges during the rotation; the test did not exercise it", n)
	}
}

func TestVaultDown(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{OwnVault: true})
	cached, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Vault.Stop()
	e.Broker.ForgetJWT(e.ConnID)
	hit, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	if err != nil || hit.Token != cached.Token {
		t.Fatalf("cached token while Vault is down: %v", err)
	}
	start := time.Now()
	_, err = e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"beta"}})
	wantCode(t, err, codes.Unavailable, "Vault")
	if retryDelay(err) <= 0 || time.Since(start) > 2*time.Second {
		t.Errorf("new scope with Vault down: retry hint %v after %v", retryDelay(err), time.Since(start))
	}
}

func TestGitHubDown(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	cached, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Emu.SetFaults(ghemu.Faults{ServerErrors: 1000})
	if hit, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}}); err != nil || hit.Token != cached.Token {
		t.Fatalf("cached token while GitHub is down: %v", err)
	}
	_, err = e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"beta"}})
	wantCode(t, err, codes.Unavailable, "GitHub.com")
	before := e.Emu.Count(brokertest.AccessTokens)
	// Within the pause, further new scopes fail without calling GitHub.
	_, err = e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"gamma"}})
	wantCode(t, err, codes.Unavailable, "retry in")
	if retryDelay(err) <= 0 || e.Emu.Count(brokertest.AccessTokens) != before {
		t.Errorf("no fail-fast: delay %v, calls %d -> %d", retryDelay(err), before, e.Emu.Count(brokertest.AccessTokens))
	}
	// What the alerts read: GitHub.com's answers by class, its rate
	// limit, and the hit's own time.
	for class, want := range map[string]float64{"2xx": 1, "5xx": 1, "4xx": 0, "none": 0} {
		if got := testenv.Sample(t, e.Metrics, "ghconnect_broker_github_responses_total", "class", class); got != want {
			t.Errorf("responses %s: %v, want %v", class, got, want)
		}
	}
	inst := strconv.FormatInt(e.InstID, 10)
	if got := testenv.Sample(t, e.Metrics, "ghconnect_broker_github_ratelimit_limit", "installation", inst); got <= 0 {
		t.Errorf("rate limit per hour: %v", got)
	}
	if got := testenv.Sample(t, e.Metrics, "ghconnect_broker_cache_hit_seconds"); got != 1 {
		t.Errorf("hits timed: %v, want 1", got)
	}
}

func TestRateLimitHonoured(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	e.Emu.SetFaults(ghemu.Faults{SecondaryLimit: 1, RetryAfter: 42 * time.Second})
	_, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	wantCode(t, err, codes.Unavailable, "secondary rate limit")
	if d := retryDelay(err); d < 41*time.Second || d > 42*time.Second {
		t.Errorf("retry hint %v, want GitHub's 42s", d)
	}
	calls := e.Emu.Count(brokertest.AccessTokens)
	for range 5 {
		_, err = e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"beta"}})
		wantCode(t, err, codes.Unavailable, "retry in")
	}
	if e.Emu.Count(brokertest.AccessTokens) != calls {
		t.Errorf("requests during Retry-After reached GitHub")
	}
}

func TestClockSkewCorrected(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	e.Emu.SetFaults(ghemu.Faults{ClockOffset: 12 * time.Minute})
	if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}}); err != nil {
		t.Fatalf("with GitHub's clock 12 minutes ahead: %v", err)
	}
}

func TestPolicyRefusals(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	for _, tt := range []struct {
		name, who string
		req       *brokerv1.IssueTokenRequest
		code      codes.Code
		msg       string
	}{
		{"no policy", "stranger", &brokerv1.IssueTokenRequest{}, codes.PermissionDenied, `caller "stranger" has no token policy`},
		{"other connection", "elsewhere", &brokerv1.IssueTokenRequest{}, codes.PermissionDenied, "may not use connection"},
		{"permission too high", "search-svc", &brokerv1.IssueTokenRequest{Permissions: map[string]string{"contents": "write"}}, codes.PermissionDenied, "may not have contents:write"},
		{"permission not granted", "search-svc", &brokerv1.IssueTokenRequest{Permissions: map[string]string{"actions": "read"}}, codes.PermissionDenied, "may not have actions:read"},
		{"repository not allowed", "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"beta"}}, codes.PermissionDenied, "may not access repository beta"},
		{"ids not allowed", "deploy-svc", &brokerv1.IssueTokenRequest{RepositoryIds: []int64{1}}, codes.PermissionDenied, "repositories only"},
		{"exclusive not allowed", "search-svc", &brokerv1.IssueTokenRequest{Exclusive: true}, codes.PermissionDenied, "exclusive"},
		{"unknown connection", "search-svc", &brokerv1.IssueTokenRequest{ConnectionId: "nope"}, codes.FailedPrecondition, "not CONNECTED"},
		{"bad permission", "search-svc", &brokerv1.IssueTokenRequest{Permissions: map[string]string{"contents": "all"}}, codes.InvalidArgument, "permissions"},
		{"bad repo", "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"a/b"}}, codes.InvalidArgument, "repositories"},
		{"long lifetime", "search-svc", &brokerv1.IssueTokenRequest{MinLifetime: durationpb.New(2 * time.Hour)}, codes.InvalidArgument, "min_lifetime"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Issue(t, tt.who, tt.req)
			wantCode(t, err, tt.code, tt.msg)
		})
	}
	if _, err := e.Client.IssueToken(context.Background(), &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 0 {
		t.Errorf("refused requests made %d exchanges", n)
	}
	// A scope GitHub refuses: PermissionDenied with GitHub's reason, not cached.
	e.Emu.AddRepo(ghemu.RepoSpec{Owner: "someone-else", Name: "theirs"})
	for i := range 2 {
		_, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"nope"}})
		wantCode(t, err, codes.PermissionDenied, "not accessible to the parent installation")
		if n := e.Emu.Count(brokertest.AccessTokens); n != i+1 {
			t.Errorf("refused scope was cached: %d exchanges after %d requests", n, i+1)
		}
	}
}

func TestDisconnectRevokesEverything(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	var tokens []string
	for _, req := range []*brokerv1.IssueTokenRequest{{Repositories: []string{"alpha"}}, {Repositories: []string{"beta"}}} {
		resp, err := e.Issue(t, "search-svc", req)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, resp.Token)
	}
	ex, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, ex.Token)
	if _, err := e.Reg.Client.Disconnect(e.Reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: e.ConnID}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "every token is revoked at GitHub after the disconnect", func() bool {
		for _, tok := range tokens {
			if !e.Emu.TokenRevoked(tok) {
				return false
			}
		}
		return true
	})
	if e.Broker.Stats().Cached != 0 {
		t.Errorf("cache still holds %d tokens", e.Broker.Stats().Cached)
	}
	_, err = e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	wantCode(t, err, codes.FailedPrecondition, "not CONNECTED")
}

func TestExclusiveTokens(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	a, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Exclusive: true})
	if err != nil || a.Token == b.Token || !a.Exclusive {
		t.Fatalf("exclusive tokens are shared: %v", err)
	}
	shared, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Client.RevokeToken(e.Ctx(t, "ops"), &brokerv1.RevokeTokenRequest{Token: a.Token})
	wantCode(t, err, codes.PermissionDenied, "another caller")
	_, err = e.Client.RevokeToken(e.Ctx(t, "search-svc"), &brokerv1.RevokeTokenRequest{Token: shared.Token})
	wantCode(t, err, codes.FailedPrecondition, "exclusive")
	if _, err := e.Client.RevokeToken(e.Ctx(t, "deploy-svc"), &brokerv1.RevokeTokenRequest{Token: a.Token}); err != nil {
		t.Fatal(err)
	}
	if !e.Emu.TokenRevoked(a.Token) || e.Emu.TokenRevoked(b.Token) || e.Emu.TokenRevoked(shared.Token) {
		t.Errorf("revoked the wrong tokens")
	}
	_, err = e.Client.RevokeToken(e.Ctx(t, "deploy-svc"), &brokerv1.RevokeTokenRequest{Token: a.Token})
	wantCode(t, err, codes.NotFound, "no live token")
	// An admin revokes the rest of the connection.
	_, err = e.Client.RevokeConnectionTokens(e.Ctx(t, "search-svc"), &brokerv1.RevokeConnectionTokensRequest{ConnectionId: e.ConnID})
	wantCode(t, err, codes.PermissionDenied, "may not call")
	res, err := e.Client.RevokeConnectionTokens(e.Ctx(t, "ops"), &brokerv1.RevokeConnectionTokensRequest{ConnectionId: e.ConnID})
	if err != nil || res.Revoked != 2 || !e.Emu.TokenRevoked(b.Token) || !e.Emu.TokenRevoked(shared.Token) {
		t.Errorf("revoke all: %v %v", res, err)
	}
}

func TestRefreshAheadAndBoundedCache(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{Tweak: func(o *broker.Options) {
		o.RefreshAhead = 59*time.Minute + 59*time.Second
		o.RefreshEvery = 100 * time.Millisecond
		o.CacheSize = 2
	}})
	first, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
	if err != nil {
		t.Fatal(err)
	}
	// The renewal happens in the background: callers keep getting the
	// cached token, quickly, until the new one replaces it.
	testenv.Eventually(t, 10*time.Second, "the token is renewed ahead of expiry", func() bool {
		t0 := time.Now()
		next, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("a caller waited %v", d)
		}
		return next.Token != first.Token
	})
	for _, r := range []string{"beta", "gamma"} {
		if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{r}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Broker.Stats().Cached; n != 2 {
		t.Errorf("cache holds %d, bound is 2", n)
	}
}

func TestClientTransport(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	e.Emu.SetFaults(ghemu.Faults{ReplicationLag: 400 * time.Millisecond})
	tr := &brokerclient.Transport{Broker: authed{e.Client, e.Tokens["search-svc"]}, Request: &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID, Repositories: []string{"beta"}}}
	gh := github.NewClient(&http.Client{Transport: tr})
	gh.BaseURL, _ = url.Parse(e.Emu.URL + "/")
	repos, _, err := gh.Apps.ListRepos(context.Background(), nil)
	if err != nil || len(repos.Repositories) != 1 || repos.Repositories[0].GetName() != "beta" {
		t.Fatalf("go-github through the broker transport: %v %v", repos, err)
	}
	if _, _, err := gh.Apps.ListRepos(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 1 {
		t.Errorf("transport made %d exchanges, want 1", n)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	var issued []string
	for _, who := range []string{"search-svc", "deploy-svc"} {
		resp, err := e.Issue(t, who, &brokerv1.IssueTokenRequest{Exclusive: who == "deploy-svc"})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, resp.Token)
	}
	if _, err := e.Issue(t, "stranger", &brokerv1.IssueTokenRequest{}); err == nil {
		t.Fatal("a token issued to a stranger")
	}
	if _, err := e.Client.RevokeToken(e.Ctx(t, "deploy-svc"), &brokerv1.RevokeTokenRequest{Token: issued[1]}); err != nil {
		t.Fatal(err)
	}
	e.Broker.FlushAudit()
	logs := e.Logs.String()
	secrets := append([]string{string(brokertest.PEM(brokertest.AppKey(0)))[40:120], e.Vault.Token}, issued...)
	for _, tok := range e.Tokens {
		secrets = append(secrets, tok)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret reached the logs: %.8s…", s)
		}
	}
	for _, want := range []string{`"msg":"token issued"`, `"msg":"token refused"`, `"token_sha256":"`, `"cache":"miss"`, `"caller":"stranger"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
}

// Every audit line names its call, with the request id the caller sent and
// the method, as the access log does: an issuance from the cache, a miss
// and a refusal.
func TestAuditNamesTheCall(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	ask := func(who, id string) {
		ctx := metadata.AppendToOutgoingContext(e.Ctx(t, who), server.RequestIDHeader, id)
		// Issued or refused, each call is audited: the audit is checked.
		_, _ = e.Client.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID, Repositories: []string{"alpha"}})
	}
	ask("search-svc", "audit-miss")
	ask("search-svc", "audit-hit")
	ask("stranger", "audit-refused")
	e.Broker.FlushAudit()
	want := map[string]string{"audit-miss": "token issued", "audit-hit": "token issued", "audit-refused": "token refused"}
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil || ev["audit"] != true {
			continue
		}
		id, _ := ev["request_id"].(string)
		if ev["msg"] == want[id] && ev["method"] == brokerv1.TokenBrokerService_IssueToken_FullMethodName {
			delete(want, id)
		}
	}
	if len(want) > 0 {
		t.Errorf("no audit line names calls %v:\n%s", want, e.Logs.String())
	}
}

// distinctScopes adds n repositories to the emulator and asks for a token
// for each, all at once, as search-svc; it returns the failures.
func distinctScopes(t testing.TB, e *brokertest.Env, n int) []error {
	for i := range n {
		e.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: fmt.Sprintf("scope-%04d", i), Private: true})
	}
	ctx := e.Ctx(t, "search-svc")
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := e.Client.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID,
				Repositories: []string{fmt.Sprintf("scope-%04d", i)}, Permissions: map[string]string{"metadata": "read"}})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func TestDistinctScopesAtOnceShareOneSign(t *testing.T) {
	// 1,000 exchanges at once on two shared cores, under the race
	// detector, can take the emulator past the broker's 10 s per request:
	// what is counted here is Vault signs, not latency, so the exchanges
	// get a minute.
	e := brokertest.Start(t, brokertest.Options{Tweak: func(o *broker.Options) {
		o.HTTPClient = &http.Client{Timeout: time.Minute}
	}})
	if errs := distinctScopes(t, e, 1000); len(errs) > 0 {
		t.Fatalf("%d requests failed; first: %v", len(errs), errs[0])
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 1000 {
		t.Errorf("%d exchanges, want 1000", n)
	}
	if st := e.Broker.Stats(); st.Signs != 1 {
		t.Errorf("1000 distinct scopes at once made %d Vault signs, want 1", st.Signs)
	}
}

// TestHealth: GetHealth says what a connection's tokens depend on as it
// is now: Vault up, sealed; GitHub.com up (with the rate limit its last
// answer carried), failing; and the last sign.
func TestHealth(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{OwnVault: true})
	health := func() *brokerv1.GetHealthResponse {
		t.Helper()
		h, err := e.Client.GetHealth(e.Ctx(t, "ops"), &brokerv1.GetHealthRequest{ConnectionId: e.ConnID})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}}); err != nil {
		t.Fatal(err)
	}
	h := health()
	if v := h.GetVault(); !v.GetReachable() || v.GetSealed() || v.GetError() != "" {
		t.Errorf("healthy Vault: %v", v)
	}
	if g := h.GetGithub(); !g.GetReachable() || g.GetStatusCode() != 200 || g.GetRateLimitLimit() <= 0 || g.GetRateLimitRemaining() <= 0 || g.GetRateLimitTime() == nil {
		t.Errorf("healthy GitHub.com: %v", g)
	}
	if h.GetLastSignTime() == nil || h.GetLastSignError() != "" {
		t.Errorf("after a sign: %v, %q", h.GetLastSignTime(), h.GetLastSignError())
	}

	e.Emu.SetFaults(ghemu.Faults{ServerErrors: 1000})
	if g := health().GetGithub(); g.GetReachable() || g.GetStatusCode() != 502 || !strings.Contains(g.GetError(), "502") {
		t.Errorf("GitHub.com failing: %v", g)
	}
	e.Emu.SetFaults(ghemu.Faults{})

	e.Vault.Seal(t)
	if v := health().GetVault(); v.GetReachable() != true || !v.GetSealed() {
		t.Errorf("sealed Vault: %v", v)
	}
	e.Vault.Unseal(t)

	_, err := e.Client.GetHealth(e.Ctx(t, "ops"), &brokerv1.GetHealthRequest{ConnectionId: "00000000-0000-4000-8000-000000000000"})
	wantCode(t, err, codes.NotFound, "does not know")
}
