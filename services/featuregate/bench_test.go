package featuregate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	loadtestv1 "github.com/ghconnect/ghconnect/gen/ghconnect/loadtest/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/loadecho"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// cannedCheck is the reply the canned baseline answers (set by the
// benchmark once it has a Check's reply).
var cannedCheck atomic.Pointer[featuregatev1.CheckResponse]

func benchEnv(b *testing.B) (*env, string) {
	canned := testenv.Canned(func() proto.Message { return new(featuregatev1.CheckRequest) },
		func() proto.Message { return cannedCheck.Load() }, "feature-client")
	e := startWith(b, testenv.SQLite(b), func(s *grpc.Server, r *auth.Rules) { echo(s, r); canned(s, r) })
	id := e.connect(b, allPerms)
	if _, err := e.set(b, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}, &featuregatev1.FeatureSetting{Feature: contributions, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	return e, id
}

// echo serves the load tests' baseline to feature clients.
func echo(s *grpc.Server, r *auth.Rules) {
	if err := loadecho.Register(s, r, "feature-client"); err != nil {
		panic(err)
	}
}

// BenchmarkBulkCheckVsEcho: Check of 50 users × 3 features (one needing
// per-user consent, so the store is read) against baselines on the same
// server, in alternating rounds of one run (goal: ≥ 0.9 of the
// baseline's throughput, p99 ≤ 1.2×):
//   - compact/echo: the compact answer (reasons_only: a reason a pair)
//     against the echo (pkg/loadecho) sent as many bytes as Check's
//     request and answering as many as its reply, flat: what Check costs
//     beyond any call and its payload's bytes;
//   - compact/reply-echo: the same against the echo of the reply's bytes
//     alone, its request a few bytes;
//   - check/echo: the full answer against the echo of its sizes;
//   - check/canned: the same request and the same reply, decoded, checked
//     and encoded as Check's are, by a method that does nothing else
//     (testenv.Canned): what Check's own work costs.
func BenchmarkBulkCheckVsEcho(b *testing.B) {
	e, id := benchEnv(b)
	users := make([]string, 50)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	req := &featuregatev1.CheckRequest{ConnectionId: id, Users: users, Features: []featuregatev1.Feature{search, contributions, dependabot}}
	ctx := e.ctx(b, "search-svc")
	resp, err := e.gate.Check(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	// The rounds outlast a test context's deadline: the calls measured
	// carry none.
	ctx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.tokens["search-svc"])
	size := int32(proto.Size(resp)) //nolint:gosec // G115: a reply of a few kilobytes
	cannedCheck.Store(resp)
	reqSize := int32(proto.Size(req)) //nolint:gosec // G115: a request of a few hundred bytes
	baseline := func(context.Context) error { return loadecho.Call(ctx, e.conn, reqSize, size) }
	canned := func(context.Context) error {
		return e.conn.Invoke(ctx, testenv.CannedMethod, req, new(featuregatev1.CheckResponse))
	}
	check := func(context.Context) error {
		_, err := e.gate.Check(ctx, req)
		return err
	}
	// The compact answer (reasons_only), against an echo of its size.
	compactReq := proto.Clone(req).(*featuregatev1.CheckRequest)
	compactReq.ReasonsOnly = true
	compactResp, err := e.gate.Check(ctx, compactReq)
	if err != nil {
		b.Fatal(err)
	}
	compactSize := int32(proto.Size(compactResp))   //nolint:gosec // G115: a few hundred bytes
	compactReqSize := int32(proto.Size(compactReq)) //nolint:gosec // G115: a request of a few hundred bytes
	compactEcho := func(context.Context) error { return loadecho.Call(ctx, e.conn, compactReqSize, compactSize) }
	replyEcho := func(context.Context) error { return loadecho.Call(ctx, e.conn, 0, compactSize) }
	compactCheck := func(context.Context) error {
		_, err := e.gate.Check(ctx, compactReq)
		return err
	}
	b.ResetTimer()
	for range b.N {
		compact, err := testenv.Compare(15, 4000, 16, compactEcho, compactCheck, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(compact.Ratio, "compact/echo")
		b.ReportMetric(compact.P99Ratio, "compact/echo-p99")
		b.ReportMetric(float64(compactSize), "compact-reply-bytes")
		b.ReportMetric(float64(compactReqSize), "request-bytes")
		small, err := testenv.Compare(15, 4000, 16, replyEcho, compactCheck, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(small.Ratio, "compact/reply-echo")
		b.ReportMetric(small.P99Ratio, "compact/reply-echo-p99")
		cmp, err := testenv.Compare(15, 4000, 16, baseline, check, nil)
		if err != nil {
			b.Fatal(err)
		}
		own, err := testenv.Compare(15, 4000, 16, canned, check, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(own.Ratio, "check/canned")
		b.ReportMetric(own.P99Ratio, "check/canned-p99")
		base, cand := cmp.Base, cmp.Cand
		b.ReportMetric(cmp.Ratio, "check/echo")
		b.ReportMetric(cmp.P99Ratio, "check/echo-p99")
		b.ReportMetric(float64(size), "reply-bytes")
		b.ReportMetric(cand.OpsPerSec, "checks/s")
		b.ReportMetric(cand.OpsPerSec*150, "decisions/s")
		b.ReportMetric(base.OpsPerSec, "echo-ops/s")
		b.ReportMetric(float64(cand.P50.Microseconds()), "check-p50-µs")
		b.ReportMetric(float64(cand.P99.Microseconds()), "check-p99-µs")
	}
}

// BenchmarkSettingsToWatch: the time from an UpdateSettings call to a
// Watch subscriber receiving the change.
func BenchmarkSettingsToWatch(b *testing.B) {
	e, id := benchEnv(b)
	stream, err := e.gate.Watch(e.ctx(b, "search-svc"), &featuregatev1.WatchRequest{ConnectionId: id})
	if err != nil {
		b.Fatal(err)
	}
	// Drain the history.
	cur, _ := e.gate.GetSettings(e.ctx(b, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
	for {
		w, err := stream.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if w.Settings.Etag == cur.Settings.Etag || w.Settings.UpdateTime.AsTime().Equal(cur.Settings.UpdateTime.AsTime()) {
			break
		}
	}
	b.ResetTimer()
	for range b.N {
		var lat []time.Duration
		for i := range 300 {
			t0 := time.Now()
			if _, err := e.set(b, id, &featuregatev1.FeatureSetting{Feature: dependabot, Enabled: i%2 == 0}); err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(float64(testenv.Percentile(lat, 50).Microseconds()), "p50-µs")
		b.ReportMetric(float64(testenv.Percentile(lat, 99).Microseconds()), "p99-µs")
	}
}

// BenchmarkContributions100k: one day's counts of 100,000 linked,
// opted-in users, reported in 10 ReportContributions calls of 10,000,
// until GitHub.com (the emulator, in process) has them all and the outbox
// is empty; the gate on SQLite, its uploader sending 1,000 a request as
// the App with a token from the broker. The baseline, in the same run:
// the same 100 uploads of 1,000 sent straight from memory (the same
// broker token transport, the same JSON), what the network and
// GitHub.com cost without the gate (it runs after the gate's, into
// counts the emulator holds already); and the same 10 calls for 100,000
// server users who never linked, which the gate stores and does not queue, what
// keeping the counts costs without sending them. Heap: the process's peak heap in
// use during the gate's run above the heap before it, sampled every
// 10 ms; the emulator, the broker and the registry share the process, so
// this bounds the gate's from above. The users are linked and opted in
// through LinkOptedIn, straight into the tables, not through 100,000
// authorizations.
func BenchmarkContributions100k(b *testing.B) {
	const users, perCall = 100_000, 10_000
	e := startContributions(b, testenv.SQLite(b), 1)
	ctx := context.Background()
	today := day(0)
	links := make([]*featuregatev1.AccountLink, users)
	counts := make([]*featuregatev1.ContributionCount, users)
	for i := range users {
		login := fmt.Sprintf("bench-%d-cloud", i)
		links[i] = &featuregatev1.AccountLink{User: fmt.Sprintf("bench-%d", i), GithubLogin: login, GithubId: e.b.Emu.AddUser(login).ID}
		counts[i] = &featuregatev1.ContributionCount{User: links[i].User, Day: today, Count: int64(i%50 + 1)}
	}
	if err := featuregate.LinkOptedIn(ctx, e.stores[0], e.b.ConnID, links); err != nil {
		b.Fatal(err)
	}
	// The other baseline: the same calls for 100,000 users who never
	// linked, stored and never queued.
	unlinked := make([]*featuregatev1.ContributionCount, users)
	others := make([]string, users)
	for i, c := range counts {
		others[i] = fmt.Sprintf("other-%d", i)
		unlinked[i] = &featuregatev1.ContributionCount{User: others[i], Day: c.Day, Count: c.Count}
	}
	if _, err := e.stores[0].RegisterUsers(ctx, others); err != nil {
		b.Fatal(err)
	}
	report := func(counts []*featuregatev1.ContributionCount) time.Duration {
		start := time.Now()
		for i := 0; i < users; i += perCall {
			if _, err := e.gate.ReportContributions(ctx, &featuregatev1.ReportContributionsRequest{ConnectionId: e.b.ConnID, Counts: counts[i : i+perCall]}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for range b.N {
		stored := report(unlinked)
		posts := e.b.Emu.Counts()[postContributions]
		runtime.GC()
		heapBefore, peak, stop := sampleHeap(10 * time.Millisecond)
		start := time.Now()
		reported := report(counts)
		testenv.Eventually(b, 5*time.Minute, "the outbox is empty", func() bool {
			n, err := e.stores[0].OutboxSize(ctx)
			return err == nil && n == 0
		})
		took := time.Since(start)
		stop()
		uploads := e.b.Emu.Counts()[postContributions] - posts
		// Every 1,000th profile holds its count: the outbox empties only
		// as GitHub.com confirms, so this checks the counts, not arrival.
		for i := 0; i < users; i += 1000 {
			if got := e.b.Emu.Contributions(links[i].GithubLogin)[today]; got != counts[i].Count {
				b.Fatalf("%s on %s: %d, want %d", links[i].GithubLogin, today, got, counts[i].Count)
			}
		}
		direct := postStraight(b, e, links, counts)
		b.ReportMetric(took.Seconds(), "s")
		b.ReportMetric(reported.Seconds(), "report-s")
		b.ReportMetric(direct.Seconds(), "direct-s")
		b.ReportMetric(took.Seconds()/direct.Seconds(), "gate/direct")
		b.ReportMetric(stored.Seconds(), "store-s")
		b.ReportMetric(took.Seconds()/stored.Seconds(), "gate/store")
		b.ReportMetric(float64(*peak-heapBefore)/1e6, "heap-peak-MB")
		b.ReportMetric(float64(uploads), "uploads")
	}
}

// sampleHeap samples the heap in use every interval until stop is
// called; peak holds the highest (read it after stop).
func sampleHeap(interval time.Duration) (before uint64, peak *uint64, stop func()) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before, peak = ms.HeapInuse, new(uint64)
	*peak = before
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return before, peak, func() { close(done); wg.Wait() }
}

// postStraight sends counts to GitHub.com as the uploader would, 1,000 a
// request one after another, from memory, and returns how long it took.
func postStraight(b *testing.B, e *contribEnv, links []*featuregatev1.AccountLink, counts []*featuregatev1.ContributionCount) time.Duration {
	bconn, err := grpc.NewClient(e.b.Conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(brokerclient.Bearer(e.b.Tokens["search-svc"])))
	if err != nil {
		b.Fatal(err)
	}
	defer bconn.Close()
	client := &http.Client{Transport: &brokerclient.Transport{Broker: brokerv1.NewTokenBrokerServiceClient(bconn),
		Request: &brokerv1.IssueTokenRequest{ConnectionId: e.b.ConnID, Permissions: map[string]string{"metadata": "read"}}}}
	type entry struct {
		UserID int64  `json:"user_id"`
		Date   string `json:"date"`
		Count  int64  `json:"count"`
	}
	start := time.Now()
	for i := 0; i < len(counts); i += 1000 {
		var body struct {
			Contributions []entry `json:"contributions"`
		}
		for j := i; j < min(i+1000, len(counts)); j++ {
			body.Contributions = append(body.Contributions, entry{UserID: links[j].GithubId, Date: counts[j].Day, Count: counts[j].Count})
		}
		raw, _ := json.Marshal(body)
		resp, err := client.Post(e.b.Emu.URL+"/connect/contributions", "application/json", bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("POST /connect/contributions: %d", resp.StatusCode)
		}
	}
	return time.Since(start)
}

// TestEchoBaselineIsAuthorized keeps BenchmarkBulkCheckVsEcho's baseline
// callable as a feature client, and only as one: it passes every
// interceptor, authorization included.
func TestEchoBaselineIsAuthorized(t *testing.T) {
	e := startWith(t, testenv.SQLite(t), echo)
	if err := loadecho.Call(e.ctx(t, "search-svc"), e.conn, 500, 100); err != nil {
		t.Fatal(err)
	}
	if err := loadecho.Call(e.ctx(t, "search-svc"), e.conn, 0, 1<<20+1); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a reply over 1 MiB: %v, want InvalidArgument", err)
	}
	big := &loadtestv1.EchoRequest{Payload: make([]byte, 1<<20+1)}
	if _, err := loadtestv1.NewEchoServiceClient(e.conn).Echo(e.ctx(t, "search-svc"), big); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a payload over 1 MiB: %v, want InvalidArgument", err)
	}
	if err := loadecho.Call(context.Background(), e.conn, 0, 100); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a token: %v, want Unauthenticated", err)
	}
}
