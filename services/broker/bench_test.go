package broker_test

import (
	"context"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"sort"
	"sync"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
)

// noop is a gRPC method that does nothing, registered on the broker's own
// server so it passes the same interceptors (recovery, request id,
// logging, metrics, authentication): the baseline for a cache hit.
var noopDesc = grpc.ServiceDesc{
	ServiceName: "ghconnect.bench.Noop",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Ping", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, req any) (any, error) { return &emptypb.Empty{}, nil }
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/ghconnect.bench.Noop/Ping"}, h)
	}}},
}

// load runs n calls from workers goroutines and returns throughput and
// the latency percentiles.
func load(n, workers int, call func(ctx context.Context) error) (opsPerSec float64, p50, p99 time.Duration, err error) {
	lat := make([][]time.Duration, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				t0 := time.Now()
				if err := call(context.Background()); err != nil {
					errs <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, 0, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return float64(n) / elapsed.Seconds(), all[len(all)/2], all[len(all)*99/100], nil
}

// BenchmarkCacheHitVsNoop measures cache-hit IssueToken against a no-op
// method on the same server, in one run (target: hit throughput at least
// 0.9 of the no-op's). Run with -benchtime=1x: each iteration is a full
// measurement of both.
func BenchmarkCacheHitVsNoop(b *testing.B) {
	e := brokertest.Start(b, brokertest.Options{Quiet: true, Extra: func(s *grpc.Server) { s.RegisterService(&noopDesc, struct{}{}) }})
	md := metadata.Pairs("authorization", "Bearer "+e.Tokens["search-svc"])
	req := &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID, Repositories: []string{"alpha"}, Permissions: map[string]string{"contents": "read"}}
	if _, err := e.Client.IssueToken(metadata.NewOutgoingContext(context.Background(), md), req); err != nil {
		b.Fatal(err)
	}
	noop := func(ctx context.Context) error {
		return e.Conn.Invoke(metadata.NewOutgoingContext(ctx, md), "/ghconnect.bench.Noop/Ping", &emptypb.Empty{}, &emptypb.Empty{})
	}
	hit := func(ctx context.Context) error {
		_, err := e.Client.IssueToken(metadata.NewOutgoingContext(ctx, md), req)
		return err
	}
	// Alternating short rounds of each, so both see the same machine: the
	// reported ratio is the median of the rounds' ratios.
	const rounds, n, workers = 9, 4000, 32
	load(2000, workers, noop) // warm up both paths
	load(2000, workers, hit)
	b.ResetTimer()
	for range b.N {
		var ratios, nOpsAll, hOpsAll []float64
		var nLat, hLat [2][]time.Duration
		for range rounds {
			nOps, nP50, nP99, err := load(n, workers, noop)
			if err != nil {
				b.Fatal(err)
			}
			hOps, hP50, hP99, err := load(n, workers, hit)
			if err != nil {
				b.Fatal(err)
			}
			ratios = append(ratios, hOps/nOps)
			nOpsAll, hOpsAll = append(nOpsAll, nOps), append(hOpsAll, hOps)
			nLat[0], nLat[1] = append(nLat[0], nP50), append(nLat[1], nP99)
			hLat[0], hLat[1] = append(hLat[0], hP50), append(hLat[1], hP99)
		}
		b.ReportMetric(median(ratios), "hit/noop")
		b.ReportMetric(median(nOpsAll), "noop-ops/s")
		b.ReportMetric(median(hOpsAll), "hit-ops/s")
		b.ReportMetric(float64(medianDur(nLat[0]).Microseconds()), "noop-p50-µs")
		b.ReportMetric(float64(medianDur(nLat[1]).Microseconds()), "noop-p99-µs")
		b.ReportMetric(float64(medianDur(hLat[0]).Microseconds()), "hit-p50-µs")
		b.ReportMetric(float64(medianDur(hLat[1]).Microseconds()), "hit-p99-µs")
	}
	if st := e.Broker.Stats(); st.Exchanges != 1 {
		b.Errorf("cache hits made %d exchanges", st.Exchanges)
	}
}

// BenchmarkOneScope10k sends 10,000 requests for one scope, 64 at a time,
// to a cold broker, and reports the GitHub exchanges and Vault signs they
// cost (target: 1 and 1).
func BenchmarkOneScope10k(b *testing.B) {
	for range b.N {
		e := brokertest.Start(b, brokertest.Options{Quiet: true})
		md := metadata.Pairs("authorization", "Bearer "+e.Tokens["search-svc"])
		req := &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID, Repositories: []string{"beta"}}
		ops, p50, p99, err := load(10000, 64, func(ctx context.Context) error {
			_, err := e.Client.IssueToken(metadata.NewOutgoingContext(ctx, md), req)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		st := e.Broker.Stats()
		b.ReportMetric(float64(e.Emu.Count(brokertest.AccessTokens)), "github-exchanges")
		b.ReportMetric(float64(st.Signs), "vault-signs")
		b.ReportMetric(ops, "ops/s")
		b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianDur(xs []time.Duration) time.Duration {
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
