package featuregate_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestUnifiedSearch runs searches end to end: the gate asks the broker for
// a read-only token (signed through vaultdev), and searches the GitHub
// emulator with it.
func TestUnifiedSearch(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "docs", Files: map[string]string{"guide.md": "how to connect the server"}, Issues: []ghemu.IssueSpec{{Title: "connect docs are thin"}}})
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "vault-notes", Private: true, Files: map[string]string{"notes.md": "connect internals"}, Issues: []ghemu.IssueSpec{{Title: "private connect bug"}}})
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "other-org", Name: "open", Files: map[string]string{"x.md": "connect elsewhere"}})
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "other-org", Name: "hidden", Private: true, Files: map[string]string{"y.md": "connect hidden"}})

	ctx, cancel := context.WithCancel(context.Background())
	store, err := featuregate.OpenStore(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	bconn, err := grpc.NewClient(b.Conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(brokerclient.Bearer(b.Tokens["search-svc"])))
	if err != nil {
		t.Fatal(err)
	}
	searcher, err := featuregate.NewSearcher(brokerv1.NewTokenBrokerServiceClient(bconn), b.Emu.URL)
	if err != nil {
		t.Fatal(err)
	}
	gate, err := featuregate.NewServer(store, featuregate.Options{Searcher: searcher, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{ShutdownTimeout: time.Second})
	gate.Register(srv)
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); srv.Serve(ctx, lis, nil) }()
	go func() { defer wg.Done(); featuregate.FollowRegistry(ctx, b.Reg.Client, b.Reg.Tokens["alice"], store) }()
	go func() { defer wg.Done(); gate.Follow(ctx) }()
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	t.Cleanup(func() { conn.Close(); bconn.Close(); cancel(); wg.Wait(); store.Close() })
	client := featuregatev1.NewFeatureGateServiceClient(conn)
	cctx := context.Background()

	search := func(user string, kind featuregatev1.SearchKind) ([]string, error) {
		resp, err := client.Search(cctx, &featuregatev1.SearchRequest{ConnectionId: b.ConnID, User: user, Query: "connect", Kind: kind})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range resp.Results {
			if r.Source != "github.com" {
				t.Errorf("result without its source: %v", r)
			}
			out = append(out, r.Repository)
		}
		sort.Strings(out)
		return out, nil
	}
	set := func(f *featuregatev1.FeatureSetting) {
		t.Helper()
		// Refused until the gate has caught up with the registry.
		testenv.EventuallyErr(t, 10*time.Second, "the gate takes the search setting", func() error {
			_, err := client.UpdateSettings(cctx, &featuregatev1.UpdateSettingsRequest{ConnectionId: b.ConnID, Features: []*featuregatev1.FeatureSetting{f}})
			return err
		})
	}

	set(&featuregatev1.FeatureSetting{Feature: featuregatev1.Feature_FEATURE_UNIFIED_SEARCH, Enabled: false})
	if _, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("search while disabled: %v", err)
	}
	set(&featuregatev1.FeatureSetting{Feature: featuregatev1.Feature_FEATURE_UNIFIED_SEARCH, Enabled: true})
	public := []string{"octo-org/docs", "other-org/open"}
	if got, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(public, got) {
		t.Errorf("public search: %v %v", got, err)
	}
	set(&featuregatev1.FeatureSetting{Feature: featuregatev1.Feature_FEATURE_UNIFIED_SEARCH, Enabled: true, IncludePrivate: true})
	if got, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(public, got) {
		t.Errorf("private allowed but user not linked: %v %v", got, err)
	}
	// People on GitHub.com: mona is a collaborator on the private
	// vault-notes, eve has no access to it.
	b.Emu.AddUser("mona-cloud")
	b.Emu.AddUser("eve-cloud")
	if err := b.Emu.AddCollaborator("octo-org", "vault-notes", "mona-cloud"); err != nil {
		t.Fatal(err)
	}
	mona := linkAccount(t, client, b.ConnID, "mona", "mona-cloud")
	if mona.GithubLogin != "mona-cloud" || mona.GithubId <= 0 || mona.Status != featuregatev1.LinkStatus_LINK_STATUS_ACTIVE {
		t.Fatalf("mona's link: %v", mona)
	}
	linkAccount(t, client, b.ConnID, "eve", "eve-cloud")
	withPrivate := []string{"octo-org/docs", "octo-org/vault-notes", "other-org/open"}
	if got, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(withPrivate, got) {
		t.Errorf("linked user with access: %v %v", got, err)
	}
	if got, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_ISSUES); err != nil || !cmp.Equal([]string{"octo-org/docs", "octo-org/vault-notes"}, got) {
		t.Errorf("issues: %v %v", got, err)
	}
	// eve is linked but may not see vault-notes on GitHub.com: neither
	// may she here (the App's installation can, which once sufficed).
	if got, err := search("eve", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(public, got) {
		t.Errorf("linked user without access sees: %v %v", got, err)
	}
	if got, err := search("eve", featuregatev1.SearchKind_SEARCH_KIND_ISSUES); err != nil || !cmp.Equal([]string{"octo-org/docs"}, got) {
		t.Errorf("linked user without access sees issues: %v %v", got, err)
	}
	if got, err := search("hubot", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(public, got) {
		t.Errorf("unlinked user sees private: %v %v", got, err)
	}
	// mona loses her access on GitHub.com: her next search shows it.
	b.Emu.RemoveCollaborator("octo-org", "vault-notes", "mona-cloud")
	if got, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(public, got) {
		t.Errorf("after mona's access was removed: %v %v", got, err)
	}
	// mona revokes the App on GitHub.com: her link needs reconnecting,
	// and she still gets public results.
	if err := b.Emu.AddCollaborator("octo-org", "vault-notes", "mona-cloud"); err != nil {
		t.Fatal(err)
	}
	app, _ := b.Emu.App(b.AppID)
	b.Emu.RevokeGrant(app.ClientID, "mona-cloud")
	resp, err := client.Search(cctx, &featuregatev1.SearchRequest{ConnectionId: b.ConnID, User: "mona", Query: "connect", Kind: featuregatev1.SearchKind_SEARCH_KIND_CODE})
	if err != nil || len(resp.Results) != len(public) || !strings.Contains(resp.PrivateNotice, "connected again") {
		t.Errorf("after mona revoked the App: %v %v", resp, err)
	}
	if l, err := client.GetAccountLink(cctx, &featuregatev1.GetAccountLinkRequest{ConnectionId: b.ConnID, User: "mona"}); err != nil || l.Link.Status != featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED {
		t.Errorf("mona's link after she revoked the App: %v %v", l, err)
	}
	// She connects again and sees private results again.
	linkAccount(t, client, b.ConnID, "mona", "mona-cloud")
	if got, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); err != nil || !cmp.Equal(withPrivate, got) {
		t.Errorf("after reconnecting: %v %v", got, err)
	}
	// A link cannot be asserted: the RPC that took one is gone.
	err = conn.Invoke(cctx, "/ghconnect.featuregate.v1.FeatureGateService/LinkAccount", &featuregatev1.GetAccountLinkRequest{ConnectionId: b.ConnID, User: "eve"}, &featuregatev1.GetAccountLinkResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("LinkAccount: %v", err)
	}
	if _, err := client.Search(cctx, &featuregatev1.SearchRequest{ConnectionId: b.ConnID, User: "mona", Query: "", Kind: featuregatev1.SearchKind_SEARCH_KIND_CODE}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty query: %v", err)
	}
	// The broker minted one read-only installation token for all of it.
	if n := b.Emu.Count(brokertest.AccessTokens); n != 1 {
		t.Errorf("%d token exchanges for the searches, want 1", n)
	}
	if _, err := b.Reg.Client.Disconnect(b.Reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: b.ConnID}); err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyErr(t, 10*time.Second, "search is refused after the disconnect", func() error {
		if _, err := search("mona", featuregatev1.SearchKind_SEARCH_KIND_CODE); status.Code(err) != codes.FailedPrecondition {
			return fmt.Errorf("search answered %v", err)
		}
		return nil
	})
}

// linkAccount links server user to the GitHub.com account login as the
// person does it: the gate starts, the person signs in on GitHub.com and
// approves, GitHub.com sends the browser back with a code.
func linkAccount(t *testing.T, client featuregatev1.FeatureGateServiceClient, conn, user, login string) *featuregatev1.AccountLink {
	t.Helper()
	ctx := context.Background()
	start, err := client.StartAccountLink(ctx, &featuregatev1.StartAccountLinkRequest{ConnectionId: conn, User: user, RedirectUri: brokertest.UserCallback})
	if err != nil {
		t.Fatalf("start linking %s: %v", user, err)
	}
	q := ghemu.Approve(t, registrytest.Browser(), start.AuthorizeUrl, login)
	if q.Get("state") != start.State {
		t.Fatalf("GitHub.com sent back state %q", q.Get("state"))
	}
	done, err := client.CompleteAccountLink(ctx, &featuregatev1.CompleteAccountLinkRequest{User: user, State: q.Get("state"), Code: q.Get("code")})
	if err != nil {
		t.Fatalf("complete linking %s: %v", user, err)
	}
	if done.ConnectionId != conn || done.Link.GithubLogin != login {
		t.Fatalf("linked %v", done)
	}
	return done.Link
}
