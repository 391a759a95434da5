package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

const (
	// postContributions is the emulator's counter of uploads.
	postContributions = "POST /connect/contributions"
	unifiedContribs   = featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS
	// uploadRetries is the gate's counter of uploads GitHub.com failed.
	uploadRetries = `ghconnect_featuregate_contributions_uploads_total{kind="set",result="retry"}`
	uploadLeader  = "ghconnect_featuregate_contributions_uploader_leader"
	outboxRows    = "ghconnect_featuregate_contributions_outbox_rows"
)

// contribs is a server's view of unified contributions over real
// processes: the feature client (links, opt-ins) and the contribution
// source, each balanced over the gates.
type contribs struct {
	s      *system
	id     string
	client featuregatev1.FeatureGateServiceClient
	source featuregatev1.FeatureGateServiceClient
}

// useGate points both callers at one gate (the other was killed).
func (c *contribs) useGate(name string) {
	c.client = featuregatev1.NewFeatureGateServiceClient(c.s.grpcAs("search-svc", c.s.addr(name)))
	c.source = featuregatev1.NewFeatureGateServiceClient(c.s.grpcAs("contrib-source", c.s.addr(name)))
}

// day is n days before today (UTC), as ReportContributions takes it.
func day(n int) string { return time.Now().UTC().AddDate(0, 0, -n).Format(time.DateOnly) }

// days are the counts of user for the days 0 to n-1 days ago, made by
// count from the day's age, and the profile they should make.
func days(user string, n int, count func(int) int64) ([]*featuregatev1.ContributionCount, map[string]int64) {
	var counts []*featuregatev1.ContributionCount
	profile := map[string]int64{}
	for i := range n {
		counts = append(counts, &featuregatev1.ContributionCount{User: user, Day: day(i), Count: count(i)})
		profile[day(i)] = count(i)
	}
	return counts, profile
}

func (c *contribs) report(counts ...*featuregatev1.ContributionCount) *featuregatev1.ReportContributionsResponse {
	c.s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.source.ReportContributions(ctx, &featuregatev1.ReportContributionsRequest{ConnectionId: c.id, Counts: counts})
	if err != nil {
		c.s.t.Fatalf("ReportContributions: %v", err)
	}
	return resp
}

func (c *contribs) consent(user string, in bool) {
	c.s.t.Helper()
	if _, err := c.client.SetUserConsent(context.Background(), &featuregatev1.SetUserConsentRequest{ConnectionId: c.id, User: user, Feature: unifiedContribs, OptedIn: in}); err != nil {
		c.s.t.Fatalf("SetUserConsent %s %v: %v", user, in, err)
	}
}

// profile is a person's GitHub.com profile: count by day.
func (s *system) profile(login string) map[string]int64 {
	got := map[string]int64{}
	s.emuJSON("/_emu/users/"+login+"/contributions", &got)
	return got
}

// profileIs waits until login's profile holds exactly want, and says what
// differs if it never does.
func (s *system) profileIs(login string, want map[string]int64) {
	s.t.Helper()
	testenv.EventuallyErr(s.t, 20*time.Second, login+"'s profile holds the counts", func() error {
		if got := s.profile(login); !maps.Equal(got, want) {
			return errors.New(profileDiff(got, want))
		}
		return nil
	})
}

// profileDiff counts the days lost, wrong and extra, with an example.
func profileDiff(got, want map[string]int64) string {
	var lost, wrong, extra []string
	for d, n := range want {
		switch g, ok := got[d]; {
		case !ok:
			lost = append(lost, d)
		case g != n:
			wrong = append(wrong, fmt.Sprintf("%s=%d (want %d)", d, g, n))
		}
	}
	for d := range got {
		if _, ok := want[d]; !ok {
			extra = append(extra, d)
		}
	}
	first := func(l []string) string {
		if len(l) == 0 {
			return ""
		}
		return " e.g. " + l[0]
	}
	return fmt.Sprintf("%d of %d days: %d lost%s, %d wrong%s, %d extra%s", len(got), len(want), len(lost), first(lost), len(wrong), first(wrong), len(extra), first(extra))
}

// faults sets the emulator's faults (a JSON object; "{}" clears them).
func (s *system) faults(body string) {
	s.t.Helper()
	req, _ := http.NewRequest("PUT", s.emu+"/_emu/faults", strings.NewReader(body))
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		s.t.Fatalf("PUT /_emu/faults %s: %d", body, resp.StatusCode)
	}
}

// uploader is the gate replica holding the uploader's lease, once exactly
// one of the live ones says it does.
func (s *system) uploader(live []string) string {
	s.t.Helper()
	var leader string
	s.eventually("one gate holds the uploader's lease", func() bool {
		leader = ""
		for _, n := range live {
			if s.metric(n+"-http", uploadLeader) == 1 {
				if leader != "" {
					return false
				}
				leader = n
			}
		}
		return leader != ""
	})
	return leader
}

// Unified contributions over real processes: two feature gates on one
// PostgreSQL database (one uploads, by lease), three brokers, the
// registries, the gateway, Vault and the GitHub emulator. People link
// their GitHub.com accounts through GitHub.com's authorization in a
// browser; the contribution source reports counts over gRPC with its own
// certificate (role contributions-source).
//
//   - mona, linked and opted in: 30 days reach her profile; a corrected day
//     replaces the old count.
//   - eve, linked but not opted in: nothing of hers leaves.
//   - GitHub.com fails every request for a while (the uploader backs off
//     to its cap several times over, as in a 10-minute outage at the
//     default 5-minute cap): counts reported meanwhile arrive after it.
//   - The uploading gate is killed with SIGKILL while GitHub.com is taking
//     its request: the other gate takes the lease and sends again, and the
//     profiles hold exactly the reported counts, every (user, day) there
//     once (uploads set counts, so the resend changes nothing).
//   - mona opts out: her counts are gone from her profile; the others'
//     stay.
func TestContributionsEndToEnd(t *testing.T) {
	build(t) // once per test binary: not this test's time
	start := time.Now()
	// Timings shortened so that backoff and lease hand-over fit in
	// seconds; the logic is the production one.
	s := startReplicated(t, "-contributions-poll", "100ms", "-contributions-min-backoff", "50ms", "-contributions-max-backoff", "250ms",
		"-contributions-lease-retry", "250ms")
	gates := []string{replica("featuregate", 1), replica("featuregate", 2)}
	c := &contribs{s: s, id: s.create()}
	s.enable(c.id)
	// The gates learn through the registry's Watch that the connection is
	// CONNECTED; until then the feature cannot be switched on.
	s.eventually("unified contributions switched on", func() bool {
		code, _ := s.rest("PATCH", "/v1/connections/"+c.id+"/features", map[string]any{"features": []any{map[string]any{"feature": unifiedContribs.String(), "enabled": true}}})
		return code == http.StatusOK
	})
	// Both gates must have caught up before a link starts on one and
	// completes on the other: each answers that mona has not linked.
	for _, g := range gates {
		gate := featuregatev1.NewFeatureGateServiceClient(s.grpcAs("search-svc", s.addr(g)))
		s.eventually(g+" sees the feature on", func() bool {
			resp, err := gate.Check(context.Background(), &featuregatev1.CheckRequest{ConnectionId: c.id, Users: []string{"mona"}, Features: []featuregatev1.Feature{unifiedContribs}})
			return err == nil && resp.GetResults()[0].GetReason() == featuregatev1.Reason_REASON_NOT_LINKED
		})
	}
	// So must every broker: a link started through one completes through
	// another, which refuses a connection it has not heard is CONNECTED.
	for i := 1; i <= replicas["broker"]; i++ {
		broker := brokerv1.NewTokenBrokerServiceClient(s.grpcAs("search-svc", s.addr(replica("broker", i))))
		s.eventually(replica("broker", i)+" knows the connection is CONNECTED", func() bool {
			_, err := broker.IssueToken(context.Background(), &brokerv1.IssueTokenRequest{ConnectionId: c.id, Permissions: map[string]string{"metadata": "read"}})
			return err == nil
		})
	}
	c.client = featuregatev1.NewFeatureGateServiceClient(s.grpcAs("search-svc", s.list("featuregate")))
	c.source = featuregatev1.NewFeatureGateServiceClient(s.grpcAs("contrib-source", s.list("featuregate")))
	people := map[string]string{"mona": "mona-cloud", "eve": "eve-cloud", "hubot": "hubot-cloud", "lisa": "lisa-cloud"}
	for user, login := range people {
		s.emuDo("POST", "/_emu/users/"+login, http.StatusOK)
		s.linkAccount(c.client, c.id, user, login)
	}
	for _, user := range []string{"mona", "hubot", "lisa"} {
		c.consent(user, true)
	}
	setup := time.Since(start)
	t.Logf("setup (processes, the App, 4 links): %v", setup.Round(time.Millisecond))

	// 30 days of mona's and eve's counts, in one call.
	monaCounts, mona := days("mona", 30, func(i int) int64 { return int64(i%7 + 1) })
	eveCounts, _ := days("eve", 30, func(i int) int64 { return int64(i + 1) })
	if resp := c.report(append(monaCounts, eveCounts...)...); resp.Changed != 60 || resp.Queued != 30 {
		t.Errorf("first report: %v, want 60 changed, 30 queued (mona's)", resp)
	}
	s.profileIs("mona-cloud", mona)
	// eve's counts came in the same call as mona's, so they would have
	// left with them.
	if got := s.profile("eve-cloud"); len(got) != 0 {
		t.Errorf("eve did not opt in, yet her profile shows %v", got)
	}

	// A corrected day replaces the old count.
	c.report(&featuregatev1.ContributionCount{User: "mona", Day: day(3), Count: 42})
	mona[day(3)] = 42
	s.profileIs("mona-cloud", mona)

	// GitHub.com is down: every API request answers 502 until the faults
	// are cleared. hubot's month is reported during the outage.
	outage := time.Now()
	failedBefore := s.metric(s.uploader(gates)+"-http", uploadRetries)
	s.faults(`{"server_errors": 1000000}`)
	hubotCounts, hubot := days("hubot", 30, func(i int) int64 { return int64(2*i + 1) })
	c.report(hubotCounts...)
	// Backoff 50, 100, 200, then 250 ms (the cap) three times: the cap is
	// reached and held, as at the defaults (1 s doubling to 5 min) over a
	// 10-minute outage.
	leader := s.uploader(gates)
	s.eventually("the uploader failed 6 times", func() bool { return s.metric(leader+"-http", uploadRetries)-failedBefore >= 6 })
	if got := s.profile("hubot-cloud"); len(got) != 0 {
		t.Fatalf("hubot's counts arrived during the outage: %v", got)
	}
	s.faults(`{}`)
	s.profileIs("hubot-cloud", hubot)
	t.Logf("outage: %v, %v failed uploads, then hubot's 30 days arrived", time.Since(outage).Round(time.Millisecond), s.metric(leader+"-http", uploadRetries)-failedBefore)

	// The uploading gate is killed while GitHub.com holds its request: a
	// second of latency on every API request, the kill once the upload
	// has reached GitHub.com. The emulator still applies it when the
	// second is up (GitHub.com took it, the gate never heard), and the
	// other gate, taking the lease, sends the same rows again.
	leader = s.uploader(gates)
	survivor := gates[0]
	if leader == survivor {
		survivor = gates[1]
	}
	posted := s.emuCounts()[postContributions]
	s.faults(`{"latency_ms": 1000}`)
	// A year of hubot's and lisa's counts (730, one upload batch);
	// hubot's month changes.
	yearCounts, hubot := days("hubot", 365, func(i int) int64 { return int64(i%13 + 1) })
	lisaCounts, lisa := days("lisa", 365, func(i int) int64 { return int64(i%5 + 10) })
	c.report(append(yearCounts, lisaCounts...)...)
	s.eventually("the upload reached GitHub.com", func() bool { return s.emuCounts()[postContributions] > posted })
	s.kill(leader)
	s.faults(`{}`)
	c.useGate(survivor)
	if got := s.uploader([]string{survivor}); got != survivor {
		t.Fatalf("the uploader is %s", got)
	}
	s.profileIs("hubot-cloud", hubot)
	s.profileIs("lisa-cloud", lisa)
	s.eventually("the outbox is empty", func() bool { return s.metric(survivor+"-http", outboxRows) == 0 })
	resent := s.emuCounts()[postContributions] - posted
	if resent < 2 {
		t.Errorf("%d upload(s) after the kill began, want the killed one and the survivor's", resent)
	}
	// Settled: the profiles hold every reported (user, day) once, the
	// counts as reported, none doubled.
	for login, want := range map[string]map[string]int64{"hubot-cloud": hubot, "lisa-cloud": lisa, "mona-cloud": mona} {
		if got := s.profile(login); !maps.Equal(got, want) {
			t.Errorf("%s after the kill: %s", login, profileDiff(got, want))
		}
	}
	t.Logf("kill mid-upload: %s killed, %s took over; %d uploads for 730 counts; every (user, day) there once", leader, survivor, resent)

	// mona opts out: GitHub.com forgets what this server sent for her.
	c.consent("mona", false)
	s.profileIs("mona-cloud", map[string]int64{})
	for login, want := range map[string]map[string]int64{"hubot-cloud": hubot, "lisa-cloud": lisa, "eve-cloud": {}} {
		if got := s.profile(login); !maps.Equal(got, want) {
			t.Errorf("%s after mona's opt-out: %s", login, profileDiff(got, want))
		}
	}
	t.Logf("scenario after the setup: %v", time.Since(start.Add(setup)).Round(time.Millisecond))
}
