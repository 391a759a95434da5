package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc/metadata"
)

// BenchmarkFleetHit measures two brokers of one fleet against hits on
// the connection's owner, in alternating rounds (testenv.Compare, 7
// rounds of 1,000 calls, 32 at a time), over 8,191 scopes (the non-empty
// sets of 13 repositories) the owner has cached:
//   - copy/owner: hits on the other broker's copies (goal ≥ 0.95: a
//     copy is an ordinary cache entry);
//   - through/owner: each scope asked of the other broker for the first
//     time, which fetches it from the owner's cache (goal ≥ 0.8).
//
// Run with -benchtime=1x: one iteration is a full measurement.
func BenchmarkFleetHit(b *testing.B) {
	fleet := brokertest.StartFleet(b, 2, brokertest.Options{Quiet: true})
	owner, others := ownerFirst(b, fleet)
	other := others[0]
	var repos []string
	for i := range 12 {
		name := fmt.Sprintf("fleet-%02d", i)
		owner.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: name, Private: true})
		repos = append(repos, name)
	}
	const scopes = 1<<12 - 1 // GitHub.com's 5,000 exchanges an hour
	req := func(i int) *brokerv1.IssueTokenRequest {
		var rs []string
		for bit, r := range repos {
			if (i%scopes+1)&(1<<bit) != 0 {
				rs = append(rs, r)
			}
		}
		return &brokerv1.IssueTokenRequest{ConnectionId: owner.ConnID, Repositories: rs, Permissions: map[string]string{"metadata": "read"}}
	}
	md := metadata.Pairs("authorization", "Bearer "+owner.Tokens["search-svc"])
	ask := func(e *brokertest.Env, next *atomic.Int64) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.Client.IssueToken(metadata.NewOutgoingContext(ctx, md), req(int(next.Add(1)-1)))
			return err
		}
	}
	var fill atomic.Int64
	if _, err := testenv.Load(scopes, 32, ask(owner, &fill)); err != nil {
		b.Fatal(err)
	}
	exchanges := owner.Broker.Stats().Exchanges
	b.ResetTimer()
	for range b.N {
		// Through the owner: every candidate call a scope the other has
		// not asked for (4,000 of the 4,095); the baseline cycles.
		var base, fresh atomic.Int64
		through, err := testenv.Compare(7, 500, 32, ask(owner, &base), ask(other, &fresh), nil)
		if err != nil {
			b.Fatal(err)
		}
		if fresh.Load() > scopes {
			b.Fatalf("%d scopes asked of the other broker, more than the %d the owner holds", fresh.Load(), scopes)
		}
		// Copies: the other now holds 4,000 of them; both cycle over the
		// first 500.
		var baseC, copies atomic.Int64
		cycle := func(e *brokertest.Env, n *atomic.Int64) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := e.Client.IssueToken(metadata.NewOutgoingContext(ctx, md), req(int((n.Add(1)-1)%500)))
				return err
			}
		}
		copied, err := testenv.Compare(7, 500, 32, cycle(owner, &baseC), cycle(other, &copies), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(through.Ratio, "through/owner")
		b.ReportMetric(through.P99Ratio, "through/owner-p99")
		b.ReportMetric(copied.Ratio, "copy/owner")
		b.ReportMetric(copied.P99Ratio, "copy/owner-p99")
		b.ReportMetric(through.Base.OpsPerSec, "owner-ops/s")
		b.ReportMetric(through.Cand.OpsPerSec, "through-ops/s")
		b.ReportMetric(copied.Cand.OpsPerSec, "copy-ops/s")
	}
	b.StopTimer()
	if st := other.Broker.Stats(); st.Exchanges != 0 || st.Signs != 0 {
		b.Errorf("the broker that does not own the connection exchanged or signed: %+v", st)
	}
	if n := owner.Broker.Stats().Exchanges; n != exchanges {
		b.Errorf("the owner exchanged %d more times while every scope was cached", n-exchanges)
	}
}
