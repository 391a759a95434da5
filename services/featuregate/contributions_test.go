package featuregate_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/featuregate/ghactions"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const postContributions = "POST /connect/contributions"

// contribEnv is a broker (with the registry, vaultdev and the emulator
// behind it) and feature gates on one database, each replica with its
// uploader.
type contribEnv struct {
	b       *brokertest.Env
	stores  []*featuregate.Store
	clients []featuregatev1.FeatureGateServiceClient
	// addrs are the replicas' gRPC addresses.
	addrs []string
	// gate is the first replica's client.
	gate featuregatev1.FeatureGateServiceClient
}

func startContributions(t testing.TB, dsn string, replicas int) *contribEnv {
	t.Helper()
	e := startGates(t, dsn, replicas, brokertest.Options{})
	e.setFeature(t, true)
	return e
}

// startGates runs replicas feature gates on dsn, each with its uploader
// and advisory sync (short timings), beside a broker and registry started
// with opts.
func startGates(t testing.TB, dsn string, replicas int, opts brokertest.Options) *contribEnv {
	t.Helper()
	return startGatesWith(t, dsn, replicas, opts, ghactions.Options{RepoTTL: actionsRepoTTL})
}

// startGatesWith is startGates with the actions proxy's options too.
func startGatesWith(t testing.TB, dsn string, replicas int, opts brokertest.Options, act ghactions.Options) *contribEnv {
	t.Helper()
	e := &contribEnv{b: brokertest.Start(t, opts)}
	bconn, err := grpc.NewClient(e.b.Conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(brokerclient.Bearer(e.b.Tokens["search-svc"])))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); bconn.Close() })
	for range replicas {
		store, err := featuregate.OpenStore(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		searcher, err := featuregate.NewSearcher(brokerv1.NewTokenBrokerServiceClient(bconn), e.b.Emu.URL)
		if err != nil {
			t.Fatal(err)
		}
		jobs := featuregate.JobOptions{Poll: 50 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
			LeaseRetry: 200 * time.Millisecond, Registerer: prometheus.NewRegistry()}
		licenses, err := featuregate.NewLicenseSync(store, brokerv1.NewTokenBrokerServiceClient(bconn), e.b.Emu.URL, jobs)
		if err != nil {
			t.Fatal(err)
		}
		jobs.Registerer = prometheus.NewRegistry()
		stats, err := featuregate.NewServerStatistics(store, brokerv1.NewTokenBrokerServiceClient(bconn), e.b.Emu.URL, jobs)
		if err != nil {
			t.Fatal(err)
		}
		act.Registerer = prometheus.NewRegistry()
		actions, err := featuregate.NewActions(store, brokerv1.NewTokenBrokerServiceClient(bconn), e.b.Emu.URL, act)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { actions.Close() })
		gate, err := featuregate.NewServer(store, featuregate.Options{Searcher: searcher, Actions: actions, PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		up, err := featuregate.NewUploader(store, brokerv1.NewTokenBrokerServiceClient(bconn), e.b.Emu.URL, featuregate.UploaderOptions{
			Poll: 50 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, LeaseRetry: 200 * time.Millisecond, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		adv, err := featuregate.NewAdvisorySync(store, brokerv1.NewTokenBrokerServiceClient(bconn), e.b.Emu.URL, featuregate.AdvisorySyncOptions{
			Poll: 50 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, LeaseRetry: 200 * time.Millisecond,
			PerPage: 50, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		srv := server.New(server.Options{ShutdownTimeout: time.Second})
		gate.Register(srv)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(7)
		go func() { defer wg.Done(); srv.Serve(ctx, lis, nil) }()
		go func() {
			defer wg.Done()
			featuregate.FollowRegistry(ctx, e.b.Reg.Client, e.b.Reg.Tokens["alice"], store)
		}()
		go func() { defer wg.Done(); gate.Follow(ctx) }()
		go func() { defer wg.Done(); up.Run(ctx) }()
		go func() { defer wg.Done(); adv.Run(ctx) }()
		go func() { defer wg.Done(); licenses.Run(ctx) }()
		go func() { defer wg.Done(); stats.Run(ctx) }()
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(); store.Close() })
		e.stores = append(e.stores, store)
		e.addrs = append(e.addrs, lis.Addr().String())
		e.clients = append(e.clients, featuregatev1.NewFeatureGateServiceClient(conn))
	}
	e.gate = e.clients[0]
	return e
}

// setFeature switches unified contributions, once every replica's gate
// has caught up with the registry.
func (e *contribEnv) setFeature(t testing.TB, on bool) {
	t.Helper()
	e.switchFeature(t, contributions, on)
}

// switchFeature switches feature f, once every replica's gate has caught
// up with the registry.
func (e *contribEnv) switchFeature(t testing.TB, f featuregatev1.Feature, on bool) {
	t.Helper()
	testenv.EventuallyErr(t, contribWait, featuregatev1.Feature_name[int32(f)]+" switched", func() error {
		_, err := e.gate.UpdateSettings(context.Background(), &featuregatev1.UpdateSettingsRequest{ConnectionId: e.b.ConnID, Features: []*featuregatev1.FeatureSetting{{Feature: f, Enabled: on}}})
		return err
	})
}

func (e *contribEnv) consent(t *testing.T, user string, in bool) {
	t.Helper()
	if _, err := e.gate.SetUserConsent(context.Background(), &featuregatev1.SetUserConsentRequest{ConnectionId: e.b.ConnID, User: user, Feature: contributions, OptedIn: in}); err != nil {
		t.Fatal(err)
	}
}

// sending links user to a new GitHub.com person login and opts them in.
func (e *contribEnv) sending(t *testing.T, user, login string) {
	t.Helper()
	e.b.Emu.AddUser(login)
	linkAccount(t, e.gate, e.b.ConnID, user, login)
	e.consent(t, user, true)
}

func (e *contribEnv) report(t *testing.T, counts ...*featuregatev1.ContributionCount) *featuregatev1.ReportContributionsResponse {
	t.Helper()
	resp, err := e.gate.ReportContributions(context.Background(), &featuregatev1.ReportContributionsRequest{ConnectionId: e.b.ConnID, Counts: counts})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// profileIs waits until the GitHub.com profile of login shows want.
func (e *contribEnv) profileIs(t *testing.T, login string, want map[string]int64) {
	t.Helper()
	testenv.EventuallyErr(t, contribWait, login+"'s profile shows the counts", func() error {
		if diff := cmp.Diff(want, e.b.Emu.Contributions(login)); diff != "" {
			return errors.New(diff)
		}
		return nil
	})
}

func (e *contribEnv) outboxEmpty(t *testing.T) {
	t.Helper()
	testenv.EventuallyErr(t, contribWait, "the outbox is empty", func() error {
		n, err := e.stores[0].OutboxSize(context.Background())
		if err == nil && n != 0 {
			err = fmt.Errorf("%d rows in the outbox", n)
		}
		return err
	})
}

// contribWait is how long the contributions tests wait for the uploader
// and the replicas' gates.
const contribWait = 20 * time.Second

// day is n days before today (UTC), as ReportContributions takes it.
func day(n int) string { return time.Now().UTC().AddDate(0, 0, -n).Format(time.DateOnly) }

func count(user string, daysAgo int, n int64) *featuregatev1.ContributionCount {
	return &featuregatev1.ContributionCount{User: user, Day: day(daysAgo), Count: n}
}

// TestContributionsReachTheProfile: counts of a linked, opted-in user go
// to their GitHub.com profile; a corrected day replaces the old count; a
// repeat changes nothing; a linked user who did not opt in and a user who
// never linked send nothing; opting in sends the stored year; opting out
// and unlinking remove what was sent; nothing leaves while the feature is
// off, nor while the user's link needs reconnecting, and what waited
// leaves when it works again.
func TestContributionsReachTheProfile(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startContributions(t, dsn, 1)
		emu := e.b.Emu
		emu.AddUser("mona-cloud")
		emu.AddUser("eve-cloud")
		emu.AddUser("hubot-cloud")
		linkAccount(t, e.gate, e.b.ConnID, "mona", "mona-cloud")
		linkAccount(t, e.gate, e.b.ConnID, "eve", "eve-cloud")
		e.consent(t, "mona", true)
		// hubot signed in to the server and never linked.
		if _, err := e.gate.RegisterUsers(context.Background(), &featuregatev1.RegisterUsersRequest{Users: []string{"hubot"}}); err != nil {
			t.Fatal(err)
		}

		resp := e.report(t, count("mona", 0, 3), count("mona", 1, 5), count("mona", 364, 1), count("eve", 0, 7), count("hubot", 2, 4))
		if resp.Changed != 5 || resp.Queued != 3 {
			t.Errorf("first report: %v, want 5 changed, 3 queued", resp)
		}
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 3, day(1): 5, day(364): 1})
		// A corrected day replaces the old count; a repeat changes nothing.
		if resp := e.report(t, count("mona", 1, 6), count("mona", 0, 3)); resp.Changed != 1 || resp.Queued != 1 {
			t.Errorf("correction: %v", resp)
		}
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 3, day(1): 6, day(364): 1})
		e.outboxEmpty(t)
		posts := emu.Count(postContributions)
		if resp := e.report(t, count("mona", 1, 6), count("mona", 0, 3), count("eve", 0, 7)); resp.Changed != 0 || resp.Queued != 0 {
			t.Errorf("repeat: %v", resp)
		}
		// hubot links and opts in: his stored counts follow.
		linkAccount(t, e.gate, e.b.ConnID, "hubot", "hubot-cloud")
		e.consent(t, "hubot", true)
		e.profileIs(t, "hubot-cloud", map[string]int64{day(2): 4})
		if n := emu.Count(postContributions); n != posts+1 {
			t.Errorf("%d posts after the repeat and hubot's opt-in, want %d", n, posts+1)
		}
		if got := emu.Contributions("eve-cloud"); len(got) != 0 {
			t.Errorf("eve did not opt in, yet her profile shows %v", got)
		}
		// Opting out removes what was sent; opting in again sends it again.
		e.consent(t, "mona", false)
		e.profileIs(t, "mona-cloud", map[string]int64{})
		e.consent(t, "mona", true)
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 3, day(1): 6, day(364): 1})
		// Nothing leaves while the feature is off; it leaves when it is on
		// again.
		e.setFeature(t, false)
		e.outboxEmpty(t)
		posts = emu.Count(postContributions)
		e.report(t, count("mona", 0, 9))
		if n, err := e.stores[0].OutboxSize(context.Background()); err != nil || n != 1 {
			t.Fatalf("outbox while off: %d %v", n, err)
		}
		e.setFeature(t, true)
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 9, day(1): 6, day(364): 1})
		if n := emu.Count(postContributions); n != posts+1 {
			t.Errorf("%d posts for one count after the feature came back, want %d", n, posts+1)
		}
		// A link GitHub.com no longer accepts holds mona's counts back
		// until she links again.
		e.outboxEmpty(t)
		if err := featuregate.MarkLinkBroken(context.Background(), e.stores[0], e.b.ConnID, "mona"); err != nil {
			t.Fatal(err)
		}
		if r := e.report(t, count("mona", 0, 10)); r.Queued != 1 {
			t.Errorf("a count of a link to reconnect: %v, want it queued", r)
		}
		posts = emu.Count(postContributions)
		e.report(t, count("hubot", 2, 5)) // others' counts still leave
		e.profileIs(t, "hubot-cloud", map[string]int64{day(2): 5})
		if got := emu.Contributions("mona-cloud")[day(0)]; got != 9 || emu.Count(postContributions) != posts+1 {
			t.Errorf("mona's count left while her link needs reconnecting: %d", got)
		}
		linkAccount(t, e.gate, e.b.ConnID, "mona", "mona-cloud")
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 10, day(1): 6, day(364): 1})
		// Unlinking removes what was sent.
		if _, err := e.gate.UnlinkAccount(context.Background(), &featuregatev1.UnlinkAccountRequest{ConnectionId: e.b.ConnID, User: "mona"}); err != nil {
			t.Fatal(err)
		}
		e.profileIs(t, "mona-cloud", map[string]int64{})
		e.profileIs(t, "hubot-cloud", map[string]int64{day(2): 5})
		e.outboxEmpty(t)
	})
}

// TestContributionsSurviveAnOutage: while GitHub.com fails (5xx, then a
// secondary rate limit with Retry-After) the counts wait in the outbox and
// arrive, all of them, once it answers again.
func TestContributionsSurviveAnOutage(t *testing.T) {
	t.Parallel()
	e := startContributions(t, testenv.SQLite(t), 1)
	emu := e.b.Emu
	e.sending(t, "mona", "mona-cloud")
	// A first count, so the App's token is minted before the outage.
	e.report(t, count("mona", 40, 1))
	want := map[string]int64{day(40): 1}
	e.profileIs(t, "mona-cloud", want)
	e.outboxEmpty(t)
	posts := emu.Count(postContributions)
	emu.SetFaults(ghemu.Faults{ServerErrors: 4})
	var counts []*featuregatev1.ContributionCount
	for i := range 30 {
		counts = append(counts, count("mona", i, int64(i+1)))
		want[day(i)] = int64(i + 1)
	}
	e.report(t, counts...)
	e.profileIs(t, "mona-cloud", want)
	if n := emu.Count(postContributions) - posts; n != 5 {
		t.Errorf("%d posts through the outage, want 5 (4 answered 502, then the batch)", n)
	}
	e.outboxEmpty(t)
	// A secondary rate limit: the uploader waits as GitHub.com says.
	emu.SetFaults(ghemu.Faults{SecondaryLimit: 1, RetryAfter: time.Second})
	posts = emu.Count(postContributions)
	start := time.Now()
	e.report(t, count("mona", 0, 100))
	want[day(0)] = 100
	e.profileIs(t, "mona-cloud", want)
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("sent again after %v, before GitHub.com's Retry-After of 1 s", waited)
	}
	if n := emu.Count(postContributions); n != posts+2 {
		t.Errorf("%d posts for the rate-limited count, want 2 (refused, then taken)", n-posts)
	}
}

// TestContributionsOneUploader: two replicas on one PostgreSQL database;
// one holds the uploader's lease, so each batch is posted once.
func TestContributionsOneUploader(t *testing.T) {
	t.Parallel()
	e := startContributions(t, featuregate.Schema.Postgres(t), 2)
	emu := e.b.Emu
	e.sending(t, "mona", "mona-cloud")
	want := map[string]int64{}
	for i := range 5 {
		// Reported to either replica, one batch at a time.
		resp, err := e.clients[i%2].ReportContributions(context.Background(), &featuregatev1.ReportContributionsRequest{ConnectionId: e.b.ConnID, Counts: []*featuregatev1.ContributionCount{count("mona", i, 10)}})
		if err != nil || resp.Queued != 1 {
			t.Fatalf("report %d: %v %v", i, resp, err)
		}
		want[day(i)] = 10
		e.profileIs(t, "mona-cloud", want)
		e.outboxEmpty(t)
	}
	if n := emu.Count(postContributions); n != 5 {
		t.Errorf("%d posts for 5 batches: sent twice", n)
	}
}

// TestContributionsRefused: a batch with any bad entry is refused with
// field violations and stores nothing; a full outbox refuses too.
func TestContributionsRefused(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		// The outbox takes 4 rows: the batches below queue 3 before one
		// would go beyond.
		e := startOpts(t, dsn, featuregate.Options{OutboxMax: 4}, nil)
		id := e.connect(t, allPerms)
		ctx := context.Background()
		if err := featuregate.Link(ctx, e.store, id, "mona", "mona-cloud", 77, "search-svc"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.gate.SetUserConsent(e.ctx(t, "search-svc"), &featuregatev1.SetUserConsentRequest{ConnectionId: id, User: "mona", Feature: contributions, OptedIn: true}); err != nil {
			t.Fatal(err)
		}
		report := func(counts ...*featuregatev1.ContributionCount) (*featuregatev1.ReportContributionsResponse, error) {
			return e.gate.ReportContributions(e.ctx(t, "contrib-src"), &featuregatev1.ReportContributionsRequest{ConnectionId: id, Counts: counts})
		}
		good := count("mona", 0, 1)
		many := make([]*featuregatev1.ContributionCount, 10001)
		for i := range many {
			many[i] = &featuregatev1.ContributionCount{User: "u" + strings.Repeat("x", i%7) + string(rune('a'+i%26)), Day: day(i % 300), Count: 1}
		}
		bad := map[string]struct {
			counts []*featuregatev1.ContributionCount
			field  string
		}{
			"the day after tomorrow": {[]*featuregatev1.ContributionCount{good, count("mona", -2, 1)}, "counts[1].day"},
			"366 days ago":           {[]*featuregatev1.ContributionCount{good, count("mona", 366, 1)}, "counts[1].day"},
			"not a date":             {[]*featuregatev1.ContributionCount{good, {User: "mona", Day: "12/01/2026", Count: 1}}, "counts[1].day"},
			"negative":               {[]*featuregatev1.ContributionCount{good, count("mona", 1, -1)}, "counts[1].count"},
			"bad user":               {[]*featuregatev1.ContributionCount{good, count("a b", 1, 1)}, "counts[1].user"},
			"a day twice":            {[]*featuregatev1.ContributionCount{good, count("mona", 0, 2)}, "counts[1]"},
			"not a server user":      {[]*featuregatev1.ContributionCount{good, count("eve", 1, 1), count("nobody", 1, 1)}, "counts[1].user"},
			"empty":                  {nil, "counts"},
			"over 10,000":            {many, "counts"},
		}
		for name, c := range bad {
			_, err := report(c.counts...)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
				continue
			}
			var fields []string
			for _, d := range status.Convert(err).Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.FieldViolations {
						fields = append(fields, v.Field)
					}
				}
			}
			if len(fields) == 0 || fields[0] != c.field {
				t.Errorf("%s: violations %v, want %s first", name, fields, c.field)
			}
		}
		// A connection the gate never heard of from the registry.
		if _, err := e.gate.ReportContributions(e.ctx(t, "contrib-src"), &featuregatev1.ReportContributionsRequest{ConnectionId: "c-nope", Counts: []*featuregatev1.ContributionCount{good}}); status.Code(err) != codes.NotFound {
			t.Errorf("counts for an unknown connection: %v, want NotFound", err)
		}
		// eve signs in: the gateway registers her, and her counts are
		// taken from then on, linked or not.
		for _, users := range [][]string{nil, {"eve", "eve"}, {"eve", "a b"}} {
			if _, err := e.gate.RegisterUsers(e.ctx(t, "admin"), &featuregatev1.RegisterUsersRequest{Users: users}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("register %q: %v, want InvalidArgument", users, err)
			}
		}
		if r, err := e.gate.RegisterUsers(e.ctx(t, "admin"), &featuregatev1.RegisterUsersRequest{Users: []string{"eve"}}); err != nil || r.Added != 1 {
			t.Fatalf("register eve: %v %v", r, err)
		}
		if _, err := report(count("nobody", 1, 1)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "nobody is not a user of this server") {
			t.Errorf("a login nobody registered: %v", err)
		}
		// Tomorrow is fine (clocks differ); so is 365 days ago.
		if resp, err := report(count("mona", -1, 1), count("mona", 365, 1)); err != nil || resp.Changed != 2 {
			t.Errorf("tomorrow and 365 days ago: %v %v", resp, err)
		}
		// Nothing of the refused batches was stored: good is new.
		if resp, err := report(good); err != nil || resp.Changed != 1 || resp.Queued != 1 {
			t.Errorf("after the refusals: %v %v", resp, err)
		}
		// The outbox holds 3 rows and takes 4: a batch that would go
		// beyond is refused whole, and stores nothing.
		_, err := report(count("mona", 10, 1), count("mona", 11, 1))
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "outbox is full") {
			t.Fatalf("outbox full: %v", err)
		}
		// Counts of a user who is not sending take no room.
		if resp, err := report(count("eve", 10, 1)); err != nil || resp.Queued != 0 {
			t.Errorf("a count kept, not queued, with the outbox full: %v %v", resp, err)
		}
		if resp, err := report(count("mona", 10, 1)); err != nil || resp.Changed != 1 {
			t.Errorf("one row of room for one, nothing of the refused batch stored: %v %v", resp, err)
		}
		if _, err := report(count("mona", 11, 1)); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("no room left: %v", err)
		}
		// The gauge shows the outbox's size.
		reg := prometheus.NewRegistry()
		featuregate.RegisterOutboxGauge(reg, e.store)
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetName() != "ghconnect_featuregate_contributions_outbox_rows" || mfs[0].Metric[0].GetGauge().GetValue() != 4 {
			t.Errorf("outbox gauge: %v %v", mfs, err)
		}
	})
}
