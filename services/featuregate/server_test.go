package featuregate_test

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	search        = featuregatev1.Feature_FEATURE_UNIFIED_SEARCH
	contributions = featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS
	dependabot    = featuregatev1.Feature_FEATURE_DEPENDABOT_ALERTS
)

type env struct {
	reg    *registrytest.Env
	store  *featuregate.Store
	gate   featuregatev1.FeatureGateServiceClient
	conn   *grpc.ClientConn
	tokens map[string]string
}

func (e *env) ctx(t testing.TB, who string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.tokens[who])
}

// start runs a registry and a feature gate (following it) on real stores.
func start(t *testing.T, dsn string) *env { return startWith(t, dsn, nil) }

func startWith(t testing.TB, dsn string, extra func(*grpc.Server, *auth.Rules)) *env {
	t.Helper()
	return startOpts(t, dsn, featuregate.Options{}, extra)
}

// startOpts is startWith with the gate's options (its poll interval is
// 50ms unless opts names one).
func startOpts(t testing.TB, dsn string, opts featuregate.Options, extra func(*grpc.Server, *auth.Rules)) *env {
	t.Helper()
	reg := registrytest.StartConnected(t, testenv.SQLite(t), registrytest.StartBackends(t), "featuregate")
	return serveGate(t, reg, dsn, opts, extra, true)
}

// serveGate runs a feature gate on dsn beside registry reg; follow says
// whether it follows the registry and keeps its view current by itself
// (a replica that does neither serves what the other gates write).
func serveGate(t testing.TB, reg *registrytest.Env, dsn string, opts featuregate.Options, extra func(*grpc.Server, *auth.Rules), follow bool) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := featuregate.OpenStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tokensFile, tokens := testenv.Tokens(t, "admin", "search-svc", "gateway", "contrib-src")
	authn, err := auth.LoadTokenFile(tokensFile)
	if err != nil {
		t.Fatal(err)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	gate, err := featuregate.NewServer(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	rules := auth.DefaultRules()
	if err := rules.Grant("search-svc", "feature-client"); err != nil {
		t.Fatal(err)
	}
	if err := rules.Grant("contrib-src", "contributions-source"); err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Guard: &auth.Guard{Authn: authn, Rules: rules}, ShutdownTimeout: time.Second, RequestChecks: featuregate.RequestChecks})
	gate.Register(srv)
	if extra != nil {
		extra(srv.GRPC, rules)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ctx, lis, nil) }()
	if follow {
		wg.Add(2)
		go func() { defer wg.Done(); featuregate.FollowRegistry(ctx, reg.Client, reg.Tokens["featuregate"], store) }()
		go func() { defer wg.Done(); gate.Follow(ctx) }()
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		wg.Wait()
		store.Close()
	})
	return &env{reg: reg, store: store, gate: featuregatev1.NewFeatureGateServiceClient(conn), conn: conn, tokens: tokens}
}

// connect creates a CONNECTED connection whose App has perms.
func (e *env) connect(t testing.TB, perms map[string]string) string {
	t.Helper()
	ctx := e.reg.Ctx(t, "alice")
	e.reg.Backends.Emu.AddAccount("octo-org", "Organization")
	c, err := e.reg.Client.CreateConnection(ctx, &registryv1.CreateConnectionRequest{
		RequestId: "r-" + testenv.RandomHex(6), License: e.reg.License,
		Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := c.Connection.Id
	e.reg.ConnectApp(t, id, ghemu.AppSpec{Owner: "octo-org", Permissions: perms}, nil)
	e.eventually(t, "gate sees the connection", func() bool {
		_, err := e.gate.UpdateSettings(e.ctx(t, "admin"), &featuregatev1.UpdateSettingsRequest{ConnectionId: id, Features: []*featuregatev1.FeatureSetting{{Feature: search}}})
		return err == nil && e.check(t, id, "u", search)[0].Reason == featuregatev1.Reason_REASON_DISABLED
	})
	return id
}

func (e *env) eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, cond)
}

// check is Check's answer for one user; every call also asks for the
// compact answer (reasons_only) and fails the test unless it says the
// same.
func (e *env) check(t testing.TB, id, user string, fs ...featuregatev1.Feature) []*featuregatev1.CheckResult {
	t.Helper()
	req := &featuregatev1.CheckRequest{ConnectionId: id, Users: []string{user}, Features: fs}
	resp, err := e.gate.Check(e.ctx(t, "search-svc"), req)
	if err != nil {
		t.Fatal(err)
	}
	sameCompact(t, e, req, resp.Results)
	return resp.Results
}

// sameCompact fails the test unless Check's reasons_only answer to req
// says what results (the full answer) say: the same reasons in the same
// order, no results, and each missing permission once per feature. The
// gate's state may move between the two calls (a test polling for a
// change): then the full answer is read again and the comparison made
// anew, up to five times.
func sameCompact(t testing.TB, e *env, req *featuregatev1.CheckRequest, results []*featuregatev1.CheckResult) {
	t.Helper()
	compact := proto.Clone(req).(*featuregatev1.CheckRequest)
	compact.ReasonsOnly = true
	var problems []string
	for range 5 {
		resp, err := e.gate.Check(e.ctx(t, "search-svc"), compact)
		if err != nil {
			t.Fatal(err)
		}
		problems = compactDiffers(resp, results)
		if len(problems) == 0 {
			return
		}
		again, err := e.gate.Check(e.ctx(t, "search-svc"), req)
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Equal(again.Results, results, protocmp.Transform()) {
			break // the state held still: the answers differ
		}
		results = again.Results
	}
	for _, p := range problems {
		t.Error("reasons_only: " + p)
	}
}

// compactDiffers says how a reasons_only answer differs from the full
// answer results (nothing: they agree).
func compactDiffers(resp *featuregatev1.CheckResponse, results []*featuregatev1.CheckResult) []string {
	if len(resp.Results) != 0 || len(resp.Reasons) != len(results) {
		return []string{fmt.Sprintf("%d results and %d reasons, want 0 and %d", len(resp.Results), len(resp.Reasons), len(results))}
	}
	var out []string
	missing := map[featuregatev1.Feature]map[string]string{}
	for _, m := range resp.Missing {
		if _, twice := missing[m.Feature]; twice {
			out = append(out, fmt.Sprintf("%s missing twice", m.Feature))
		}
		missing[m.Feature] = m.Permissions
	}
	for i, r := range results {
		if resp.Reasons[i] != r.Reason {
			out = append(out, fmt.Sprintf("pair %d (%s, %s) is %s, the full answer %s", i, r.User, r.Feature, resp.Reasons[i], r.Reason))
		}
		if r.Reason == featuregatev1.Reason_REASON_MISSING_PERMISSIONS && !cmp.Equal(missing[r.Feature], r.MissingPermissions) {
			out = append(out, fmt.Sprintf("%s misses %v, the full answer %v", r.Feature, missing[r.Feature], r.MissingPermissions))
		}
	}
	if len(missing) > 0 && !slices.ContainsFunc(results, func(r *featuregatev1.CheckResult) bool {
		return r.Reason == featuregatev1.Reason_REASON_MISSING_PERMISSIONS
	}) {
		out = append(out, fmt.Sprintf("missing %v where nothing misses a permission", missing))
	}
	return out
}

func (e *env) set(t testing.TB, id string, fs ...*featuregatev1.FeatureSetting) (*featuregatev1.Settings, error) {
	resp, err := e.gate.UpdateSettings(e.ctx(t, "admin"), &featuregatev1.UpdateSettingsRequest{ConnectionId: id, Features: fs})
	return resp.GetSettings(), err
}

var allPerms = map[string]string{"contents": "read", "issues": "read", "metadata": "read", "vulnerability_alerts": "read", "members": "read", "organization_administration": "read"}

func TestDisconnectSwitchesEverythingOffInOneEvent(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := start(t, dsn)
		id := e.connect(t, allPerms)
		if _, err := e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true, IncludePrivate: true},
			&featuregatev1.FeatureSetting{Feature: dependabot, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		for _, r := range e.check(t, id, "mona", search, dependabot) {
			if !r.Effective {
				t.Fatalf("before disconnect: %v", r)
			}
		}
		// Two subscribers, each up to date.
		var streams []grpc.ServerStreamingClient[featuregatev1.WatchResponse]
		var last int64
		for i := 0; i < 2; i++ {
			s, err := e.gate.Watch(e.ctx(t, "search-svc"), &featuregatev1.WatchRequest{ConnectionId: id})
			if err != nil {
				t.Fatal(err)
			}
			for {
				w, err := s.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if on(w.Settings, search) {
					last = w.Revision
					break
				}
			}
			streams = append(streams, s)
		}
		if _, err := e.reg.Client.Disconnect(e.reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		for i, s := range streams {
			w, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if w.Connected || w.Revision <= last {
				t.Errorf("subscriber %d: next event %v, want the disconnect", i, w)
			}
			for _, f := range w.Settings.Features {
				if f.Enabled || f.IncludePrivate {
					t.Errorf("subscriber %d: %v still on in the disconnect event", i, f.Feature)
				}
			}
		}
		for _, r := range e.check(t, id, "mona", search, dependabot, contributions) {
			if r.Effective || r.Reason != featuregatev1.Reason_REASON_NOT_CONNECTED {
				t.Errorf("after disconnect: %v", r)
			}
		}
		// Enabling on a disconnected connection is refused.
		_, err := e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("enable after disconnect: %v", err)
		}
		// Reconnecting (a new connection for the same server and account)
		// starts with everything off.
		if _, err := e.reg.Client.Disconnect(e.reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		again := e.connect(t, allPerms)
		for _, r := range e.check(t, again, "mona", search, dependabot) {
			if r.Effective || r.Reason != featuregatev1.Reason_REASON_DISABLED {
				t.Errorf("after reconnect: %v", r)
			}
		}
	})
}

func on(s *featuregatev1.Settings, f featuregatev1.Feature) bool {
	for _, x := range s.GetFeatures() {
		if x.Feature == f {
			return x.Enabled
		}
	}
	return false
}

func TestConsentAndLinking(t *testing.T) {
	t.Parallel()
	e := start(t, testenv.SQLite(t))
	id := e.connect(t, allPerms)
	if _, err := e.set(t, id, &featuregatev1.FeatureSetting{Feature: contributions, Enabled: true}, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	// Per-user calls come from an internal service (GHES on behalf of its users).
	svc := e.ctx(t, "search-svc")
	reasonOf := func(user string) featuregatev1.Reason { return e.check(t, id, user, contributions)[0].Reason }
	steps := []struct {
		name string
		do   func() error
		want featuregatev1.Reason
	}{
		{"nothing yet", func() error { return nil }, featuregatev1.Reason_REASON_NOT_LINKED},
		{"opted in, not linked", func() error {
			_, err := e.gate.SetUserConsent(svc, &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "mona", Feature: contributions, OptedIn: true})
			return err
		}, featuregatev1.Reason_REASON_NOT_LINKED},
		{"linked and opted in", func() error {
			return featuregate.Link(context.Background(), e.store, id, "mona", "mona-cloud", 77, "search-svc")
		}, featuregatev1.Reason_REASON_EFFECTIVE},
		{"opted out", func() error {
			_, err := e.gate.SetUserConsent(svc, &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "mona", Feature: contributions, OptedIn: false})
			return err
		}, featuregatev1.Reason_REASON_NO_CONSENT},
		{"opted in again", func() error {
			_, err := e.gate.SetUserConsent(svc, &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "mona", Feature: contributions, OptedIn: true})
			return err
		}, featuregatev1.Reason_REASON_EFFECTIVE},
		{"GitHub.com no longer accepts the link", func() error {
			return featuregate.MarkLinkBroken(context.Background(), e.store, id, "mona")
		}, featuregatev1.Reason_REASON_RECONNECT_NEEDED},
		{"unlinked", func() error {
			_, err := e.gate.UnlinkAccount(svc, &featuregatev1.UnlinkAccountRequest{ConnectionId: id, User: "mona"})
			return err
		}, featuregatev1.Reason_REASON_NOT_LINKED},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := reasonOf("mona"); got != s.want {
			t.Errorf("%s: reason %v, want %v", s.name, got, s.want)
		}
	}
	// Unified search needs no consent for public results.
	if r := e.check(t, id, "hubot", search)[0]; !r.Effective {
		t.Errorf("search for an unlinked user: %v", r)
	}
	// One GitHub.com account, one server user.
	if err := featuregate.Link(context.Background(), e.store, id, "mona", "mona-cloud", 77, "search-svc"); err != nil {
		t.Fatal(err)
	}
	if err := featuregate.Link(context.Background(), e.store, id, "hubot", "mona-cloud", 77, "search-svc"); !errors.Is(err, featuregate.ErrLinkTaken) {
		t.Errorf("second link of one account: %v", err)
	}
	_, err := e.gate.UnlinkAccount(svc, &featuregatev1.UnlinkAccountRequest{ConnectionId: id, User: "hubot"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unlink of an unlinked user: %v", err)
	}
	// Bulk: users × features, users outer.
	bulk := &featuregatev1.CheckRequest{ConnectionId: id, Users: []string{"mona", "hubot"}, Features: []featuregatev1.Feature{search, contributions, dependabot}}
	resp, err := e.gate.Check(svc, bulk)
	if err != nil {
		t.Fatal(err)
	}
	sameCompact(t, e, bulk, resp.Results)
	var got []string
	for _, r := range resp.Results {
		got = append(got, r.User+"/"+strings.TrimPrefix(r.Feature.String(), "FEATURE_")+"/"+strings.TrimPrefix(r.Reason.String(), "REASON_"))
	}
	want := []string{"mona/UNIFIED_SEARCH/EFFECTIVE", "mona/UNIFIED_CONTRIBUTIONS/EFFECTIVE", "mona/DEPENDABOT_ALERTS/DISABLED",
		"hubot/UNIFIED_SEARCH/EFFECTIVE", "hubot/UNIFIED_CONTRIBUTIONS/NOT_LINKED", "hubot/DEPENDABOT_ALERTS/DISABLED"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bulk check (-want +got):\n%s", diff)
	}
}

func TestMissingPermissionsRefused(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := start(t, dsn)
		id := e.connect(t, map[string]string{"contents": "read", "issues": "read", "metadata": "read"})
		before, err := e.gate.GetSettings(e.ctx(t, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}, &featuregatev1.FeatureSetting{Feature: dependabot, Enabled: true})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "vulnerability_alerts:read") {
			t.Fatalf("enable without permission: %v", err)
		}
		var pf *errdetails.PreconditionFailure
		for _, d := range status.Convert(err).Details() {
			if x, ok := d.(*errdetails.PreconditionFailure); ok {
				pf = x
			}
		}
		if pf == nil || pf.Violations[0].Subject != "dependabot_alerts" {
			t.Errorf("no precondition detail naming the feature: %v", pf)
		}
		after, _ := e.gate.GetSettings(e.ctx(t, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
		if before.Settings.Etag != after.Settings.Etag || on(after.Settings, search) {
			t.Errorf("refused change changed settings: %v -> %v", before.Settings, after.Settings)
		}
	})
}

func TestConcurrentSettingsChanges(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := start(t, dsn)
		id := e.connect(t, allPerms)
		cur, err := e.gate.GetSettings(e.ctx(t, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, f := range []featuregatev1.Feature{search, dependabot} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.gate.UpdateSettings(e.ctx(t, "admin"), &featuregatev1.UpdateSettingsRequest{ConnectionId: id, Etag: cur.Settings.Etag,
					Features: []*featuregatev1.FeatureSetting{{Feature: f, Enabled: true}}})
			}()
		}
		wg.Wait()
		got := []codes.Code{status.Code(errs[0]), status.Code(errs[1])}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if diff := cmp.Diff([]codes.Code{codes.OK, codes.Aborted}, got); diff != "" {
			t.Fatalf("one winner, one conflict (-want +got):\n%s", diff)
		}
		after, _ := e.gate.GetSettings(e.ctx(t, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
		if on(after.Settings, search) == on(after.Settings, dependabot) {
			t.Errorf("both or neither change applied: %v", after.Settings)
		}
	})
}

// Include-private is a setting of its own, as on GHES: switching unified
// search off keeps it (without effect), and switching search back on finds
// it again.
func TestIncludePrivateSurvivesSearchOffAndOn(t *testing.T) {
	t.Parallel()
	e := start(t, testenv.SQLite(t))
	id := e.connect(t, allPerms)
	type setting struct{ Enabled, IncludePrivate bool }
	steps := []struct {
		name   string
		set    setting
		reason featuregatev1.Reason
	}{
		{"on, with private", setting{true, true}, featuregatev1.Reason_REASON_EFFECTIVE},
		{"off, private kept", setting{false, true}, featuregatev1.Reason_REASON_DISABLED},
		{"on again", setting{true, true}, featuregatev1.Reason_REASON_EFFECTIVE},
		{"private off", setting{true, false}, featuregatev1.Reason_REASON_EFFECTIVE},
		{"off", setting{false, false}, featuregatev1.Reason_REASON_DISABLED},
		{"private on while off", setting{false, true}, featuregatev1.Reason_REASON_DISABLED},
	}
	for _, s := range steps {
		if _, err := e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: s.set.Enabled, IncludePrivate: s.set.IncludePrivate}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		resp, err := e.gate.GetSettings(e.ctx(t, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		var got setting
		for _, f := range resp.Settings.Features {
			if f.Feature == search {
				got = setting{f.Enabled, f.IncludePrivate}
			}
		}
		if diff := cmp.Diff(s.set, got); diff != "" {
			t.Errorf("%s: stored setting (-want +got):\n%s", s.name, diff)
		}
		if r := e.check(t, id, "mona", search)[0]; r.Reason != s.reason {
			t.Errorf("%s: check %v, want %v", s.name, r.Reason, s.reason)
		}
	}
}

func TestValidationAndAuth(t *testing.T) {
	t.Parallel()
	e := start(t, testenv.SQLite(t))
	id := e.connect(t, allPerms)
	ctx := e.ctx(t, "admin")
	// Per-user calls come from an internal service (GHES on behalf of its users).
	svc := e.ctx(t, "search-svc")
	calls := map[string]func() error{
		"no features": func() error {
			_, err := e.gate.UpdateSettings(ctx, &featuregatev1.UpdateSettingsRequest{ConnectionId: id})
			return err
		},
		"unknown feature": func() error {
			_, err := e.gate.UpdateSettings(ctx, &featuregatev1.UpdateSettingsRequest{ConnectionId: id, Features: []*featuregatev1.FeatureSetting{{Feature: 99, Enabled: true}}})
			return err
		},
		"private on the wrong feature": func() error {
			_, err := e.gate.UpdateSettings(ctx, &featuregatev1.UpdateSettingsRequest{ConnectionId: id, Features: []*featuregatev1.FeatureSetting{{Feature: dependabot, Enabled: true, IncludePrivate: true}}})
			return err
		},
		"consent for a feature without opt-in": func() error {
			_, err := e.gate.SetUserConsent(svc, &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "mona", Feature: search, OptedIn: true})
			return err
		},
		"link without a callback": func() error {
			_, err := e.gate.StartAccountLink(svc, &featuregatev1.StartAccountLinkRequest{ConnectionId: id, User: "mona"})
			return err
		},
		"link completed without a code": func() error {
			_, err := e.gate.CompleteAccountLink(svc, &featuregatev1.CompleteAccountLinkRequest{User: "mona", State: "s"})
			return err
		},
		"bad user": func() error {
			_, err := e.gate.Check(svc, &featuregatev1.CheckRequest{ConnectionId: id, Users: []string{"a b"}, Features: []featuregatev1.Feature{search}})
			return err
		},
		"check without users": func() error {
			_, err := e.gate.Check(svc, &featuregatev1.CheckRequest{ConnectionId: id, Features: []featuregatev1.Feature{search}})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	after, _ := e.gate.GetSettings(ctx, &featuregatev1.GetSettingsRequest{ConnectionId: id})
	if on(after.Settings, dependabot) {
		t.Errorf("rejected requests changed settings")
	}
	_, err := e.gate.Check(context.Background(), &featuregatev1.CheckRequest{ConnectionId: id, Users: []string{"mona"}, Features: []featuregatev1.Feature{search}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v", err)
	}
}

// The App the registry creates must be able to serve every feature.
func TestAppPermissionsCoverEveryFeature(t *testing.T) {
	t.Parallel()
	resp, err := (&featuregate.Server{}).ListFeatures(context.Background(), &featuregatev1.ListFeaturesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range resp.Features {
		if missing := permissions.Missing(registry.AppPermissions, f.Permissions); len(missing) > 0 {
			t.Errorf("%v needs %v beyond the App's permissions", f.Feature, missing)
		}
	}
}

// A person on their own page (forwarded by the gateway with the role
// account-holder) reaches only their own link, consents, checks, searches
// and contributions status (not the connection's); an
// admin may unlink anyone, and the history names the admin.
func TestAccountHolderActsForThemselves(t *testing.T) {
	t.Parallel()
	e := start(t, testenv.SQLite(t))
	id := e.connect(t, map[string]string{"contents": "read", "issues": "read", "metadata": "read"})
	ctx := context.Background()
	for i, p := range []string{"mona", "eve"} {
		if err := featuregate.Link(ctx, e.store, id, p, p+"-cloud", int64(70+i), "search-svc"); err != nil {
			t.Fatal(err)
		}
	}
	as := func(person, roles string) context.Context {
		return metadata.AppendToOutgoingContext(e.ctx(t, "gateway"), auth.UserHeader, person, auth.RolesHeader, roles)
	}
	mona := as("mona", "account-holder")
	if l, err := e.gate.GetAccountLink(mona, &featuregatev1.GetAccountLinkRequest{ConnectionId: id, User: "mona"}); err != nil || l.Link.GithubLogin != "mona-cloud" {
		t.Fatalf("mona's own link: %v %v", l, err)
	}
	refused := map[string]func() error{
		"read eve's link": func() error {
			_, err := e.gate.GetAccountLink(mona, &featuregatev1.GetAccountLinkRequest{ConnectionId: id, User: "eve"})
			return err
		},
		"unlink eve": func() error {
			_, err := e.gate.UnlinkAccount(mona, &featuregatev1.UnlinkAccountRequest{ConnectionId: id, User: "eve"})
			return err
		},
		"start a link for eve": func() error {
			_, err := e.gate.StartAccountLink(mona, &featuregatev1.StartAccountLinkRequest{ConnectionId: id, User: "eve", RedirectUri: "https://ghes.example.com/connect/user/callback"})
			return err
		},
		"check eve": func() error {
			_, err := e.gate.Check(mona, &featuregatev1.CheckRequest{ConnectionId: id, Users: []string{"mona", "eve"}, Features: []featuregatev1.Feature{search}})
			return err
		},
		"search as eve": func() error {
			_, err := e.gate.Search(mona, &featuregatev1.SearchRequest{ConnectionId: id, User: "eve", Query: "x", Kind: featuregatev1.SearchKind_SEARCH_KIND_CODE})
			return err
		},
		"opt eve in": func() error {
			_, err := e.gate.SetUserConsent(mona, &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "eve", Feature: contributions, OptedIn: true})
			return err
		},
		"read eve's contributions status": func() error {
			_, err := e.gate.GetContributionsStatus(mona, &featuregatev1.GetContributionsStatusRequest{ConnectionId: id, User: "eve"})
			return err
		},
		"read the connection's contributions status": func() error {
			_, err := e.gate.GetContributionsStatus(mona, &featuregatev1.GetContributionsStatusRequest{ConnectionId: id})
			return err
		},
		"register eve": func() error {
			_, err := e.gate.RegisterUsers(mona, &featuregatev1.RegisterUsersRequest{Users: []string{"mona", "eve"}})
			return err
		},
		"change settings": func() error {
			_, err := e.gate.UpdateSettings(mona, &featuregatev1.UpdateSettingsRequest{ConnectionId: id, Features: []*featuregatev1.FeatureSetting{{Feature: search, Enabled: true}}})
			return err
		},
	}
	for name, call := range refused {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("mona may %s: %v", name, err)
		}
	}
	if _, err := e.gate.GetAccountLink(e.ctx(t, "search-svc"), &featuregatev1.GetAccountLinkRequest{ConnectionId: id, User: "eve"}); err != nil {
		t.Fatalf("eve's link after mona's attempts: %v", err)
	}
	if _, err := e.gate.SetUserConsent(mona, &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "mona", Feature: contributions, OptedIn: true}); err != nil {
		t.Fatalf("mona opts herself in: %v", err)
	}
	st, err := e.gate.GetContributionsStatus(mona, &featuregatev1.GetContributionsStatusRequest{ConnectionId: id, User: "mona"})
	if err != nil || !st.User.OptedIn || !st.User.Linked || st.Connection != nil {
		t.Fatalf("mona's own contributions status (and no connection part): %v %v", st, err)
	}
	st, err = e.gate.GetContributionsStatus(as("grace@example.com", "auditor"), &featuregatev1.GetContributionsStatusRequest{ConnectionId: id})
	if err != nil || st.Connection.GetOptedInUsers() != 1 || st.User != nil {
		t.Fatalf("an auditor's view of the connection: %v %v", st, err)
	}
	// An admin unlinks eve, and the history says who.
	if _, err := e.gate.UnlinkAccount(as("grace@example.com", "admin"), &featuregatev1.UnlinkAccountRequest{ConnectionId: id, User: "eve"}); err != nil {
		t.Fatalf("admin unlinks eve: %v", err)
	}
	h, err := e.gate.ListSettingsHistory(e.ctx(t, "admin"), &featuregatev1.ListSettingsHistoryRequest{ConnectionId: id, NewestFirst: true, PageSize: 1})
	if err != nil || len(h.Events) != 1 || h.Events[0].Action != "unlink_account" || h.Events[0].Actor != "grace@example.com" || h.Events[0].Via != "gateway" {
		t.Fatalf("the admin's unlink in the history: %v %v", h, err)
	}
	// A disconnect unlinks everyone left.
	if _, err := e.reg.Client.Disconnect(e.reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	e.eventually(t, "mona is unlinked by the disconnect", func() bool {
		_, err := e.gate.GetAccountLink(e.ctx(t, "search-svc"), &featuregatev1.GetAccountLinkRequest{ConnectionId: id, User: "mona"})
		return status.Code(err) == codes.NotFound
	})
}

// The permissions of the features an administrator chose, together, as
// the admin page asks the App for them: each at the highest level any
// needs; nothing chosen, nothing asked (the registry's default applies).
func TestChosenFeaturesPermissions(t *testing.T) {
	e := start(t, testenv.SQLite(t))
	for _, tc := range []struct {
		chosen []featuregatev1.Feature
		want   map[string]string
	}{
		{nil, nil},
		{[]featuregatev1.Feature{dependabot}, map[string]string{"vulnerability_alerts": "read"}},
		{[]featuregatev1.Feature{search, dependabot, featuregatev1.Feature_FEATURE_SERVER_STATISTICS},
			map[string]string{"contents": "read", "issues": "read", "metadata": "read", "vulnerability_alerts": "read", "organization_administration": "read"}},
	} {
		resp, err := e.gate.ListFeatures(e.ctx(t, "admin"), &featuregatev1.ListFeaturesRequest{Chosen: tc.chosen})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, resp.ChosenPermissions, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.chosen, diff)
		}
		if len(resp.Features) != 6 {
			t.Errorf("%v: %d features listed, want every one", tc.chosen, len(resp.Features))
		}
	}
	if _, err := e.gate.ListFeatures(e.ctx(t, "admin"), &featuregatev1.ListFeaturesRequest{Chosen: []featuregatev1.Feature{0}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an unspecified feature chosen: %v", err)
	}
}
