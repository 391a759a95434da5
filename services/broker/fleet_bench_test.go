package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc/metadata"
)

// BenchmarkFleetHit measures two brokers of one fleet against hits on
// the connection's owner, in alternating rounds (testenv.Compare, 5
// rounds of 1,000 calls, 32 at a time), over scopes (sets of 14
// repositories) the owner has cached:
//   - offered/owner: each scope asked of the other broker for the first
//     time, after the owner offered it its token (goal ≥ 0.8);
//   - through/owner: the same with offers stopped, so the other fetches
//     each from the owner's cache (FetchToken), the path of a lost offer;
//   - copy/owner: hits on the other broker's copies (goal ≥ 0.9: a copy
//     is an ordinary cache entry).
//
// Run with -benchtime=1x: one iteration is a full measurement.
func BenchmarkFleetHit(b *testing.B) {
	// The emulator's App rate limit raised: the benchmark exchanges
	// 12,000 scopes, GitHub.com allows 5,000 an hour.
	fleet := brokertest.StartFleet(b, 2, brokertest.Options{Quiet: true, Emu: ghemu.Options{RateLimit: 1 << 30}})
	owner, others := ownerFirst(b, fleet)
	other := others[0]
	var repos []string
	for i := range 14 {
		name := fmt.Sprintf("fleet-%02d", i)
		owner.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: name, Private: true})
		repos = append(repos, name)
	}
	// Two sets of 6,000 scopes: a comparison's 6 rounds of 1,000 calls
	// (its warm-up and 5 measured) ask each once.
	const set = 6000
	req := func(i int) *brokerv1.IssueTokenRequest {
		var rs []string
		for bit, r := range repos {
			if (i+1)&(1<<bit) != 0 {
				rs = append(rs, r)
			}
		}
		return &brokerv1.IssueTokenRequest{ConnectionId: owner.ConnID, Repositories: rs, Permissions: map[string]string{"metadata": "read"}}
	}
	md := metadata.Pairs("authorization", "Bearer "+owner.Tokens["search-svc"])
	ask := func(e *brokertest.Env, from int, next *atomic.Int64, cycle int) func(context.Context) error {
		return func(ctx context.Context) error {
			i := int(next.Add(1) - 1)
			if cycle > 0 {
				i %= cycle
			}
			_, err := e.Client.IssueToken(metadata.NewOutgoingContext(ctx, md), req(from+i))
			return err
		}
	}
	fill := func(from int) {
		var n atomic.Int64
		if _, err := testenv.Load(set, 32, ask(owner, from, &n, 0)); err != nil {
			b.Fatal(err)
		}
	}
	compare := func(from int, cand func(context.Context) error) testenv.Comparison {
		var base atomic.Int64
		cmp, err := testenv.Compare(5, 1000, 32, ask(owner, from, &base, set), cand, nil)
		if err != nil {
			b.Fatal(err)
		}
		return cmp
	}
	fill(0) // offered to the other as they are exchanged
	testenv.Eventually(b, 30*time.Second, "the other broker holds the owner's offers", func() bool { return other.Broker.Stats().Cached >= set })
	other.Broker.StopOffers() // the other offers nothing anyway
	owner.Broker.StopOffers()
	fill(set) // not offered
	exchanges := owner.Broker.Stats().Exchanges
	b.ResetTimer()
	for range b.N {
		var fresh, fetched atomic.Int64
		fetches := other.Broker.Stats().Fetches
		offered := compare(0, ask(other, 0, &fresh, 0))
		if n := other.Broker.Stats().Fetches - fetches; n != 0 {
			b.Errorf("the other broker fetched %d offered scopes", n)
		}
		through := compare(set, ask(other, set, &fetched, 0))
		if fresh.Load() > set || fetched.Load() > set {
			b.Fatalf("%d and %d scopes asked of the other broker, more than the %d of a set", fresh.Load(), fetched.Load(), set)
		}
		var copies atomic.Int64
		copied := compare(0, ask(other, 0, &copies, 1000))
		b.ReportMetric(offered.Ratio, "offered/owner")
		b.ReportMetric(offered.P99Ratio, "offered/owner-p99")
		b.ReportMetric(through.Ratio, "through/owner")
		b.ReportMetric(through.P99Ratio, "through/owner-p99")
		b.ReportMetric(copied.Ratio, "copy/owner")
		b.ReportMetric(copied.P99Ratio, "copy/owner-p99")
		b.ReportMetric(offered.Base.OpsPerSec, "owner-ops/s")
		b.ReportMetric(through.Cand.OpsPerSec, "through-ops/s")
	}
	b.StopTimer()
	if st := other.Broker.Stats(); st.Exchanges != 0 || st.Signs != 0 {
		b.Errorf("the broker that does not own the connection exchanged or signed: %+v", st)
	}
	if n := owner.Broker.Stats().Exchanges; n != exchanges {
		b.Errorf("the owner exchanged %d more times while every scope was cached", n-exchanges)
	}
}
