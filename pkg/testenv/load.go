package testenv

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// NoopMethod is a gRPC method that does nothing. Registered on a service's
// own server it passes the same interceptors (recovery, request id,
// logging, metrics, authentication): the baseline benchmarks compare to.
const NoopMethod = "/ghconnect.bench.Noop/Ping"

var noopDesc = grpc.ServiceDesc{
	ServiceName: "ghconnect.bench.Noop",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Ping", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: NoopMethod}, h)
	}}},
}

// Noop adds NoopMethod to a server and lets roles call it, so the
// baseline passes authorization as the method it is compared with does.
func Noop(roles ...string) func(*grpc.Server, *auth.Rules) {
	return func(s *grpc.Server, r *auth.Rules) {
		if err := r.Permit(NoopMethod, roles...); err != nil {
			panic(err)
		}
		s.RegisterService(&noopDesc, struct{}{})
	}
}

// CallNoop calls NoopMethod.
func CallNoop(ctx context.Context, conn *grpc.ClientConn) error {
	return conn.Invoke(ctx, NoopMethod, &emptypb.Empty{}, &emptypb.Empty{})
}

// LoadResult is what Load measured.
type LoadResult struct {
	OpsPerSec float64
	P50, P99  time.Duration
}

// Load makes n calls from workers goroutines.
func Load(n, workers int, call func(ctx context.Context) error) (LoadResult, error) {
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
		return LoadResult{}, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return LoadResult{OpsPerSec: float64(n) / elapsed.Seconds(), P50: Percentile(all, 50), P99: Percentile(all, 99)}, nil
}

// Percentile of durations (p from 0 to 100).
func Percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)*p/100, len(s)-1)]
}

// Compare alternates rounds of the baseline and the candidate, so both
// meet the same machine, and reports medians over the rounds: the
// candidate's throughput as a ratio of the baseline's, and each's
// throughput and latency.
func Compare(rounds, n, workers int, baseline, candidate func(ctx context.Context) error) (ratio float64, base, cand LoadResult, err error) {
	Load(n/2, workers, baseline) // warm both paths up
	Load(n/2, workers, candidate)
	var ratios, bOps, cOps []float64
	var bP50, bP99, cP50, cP99 []time.Duration
	for range rounds {
		b, err := Load(n, workers, baseline)
		if err != nil {
			return 0, LoadResult{}, LoadResult{}, err
		}
		c, err := Load(n, workers, candidate)
		if err != nil {
			return 0, LoadResult{}, LoadResult{}, err
		}
		ratios = append(ratios, c.OpsPerSec/b.OpsPerSec)
		bOps, cOps = append(bOps, b.OpsPerSec), append(cOps, c.OpsPerSec)
		bP50, bP99 = append(bP50, b.P50), append(bP99, b.P99)
		cP50, cP99 = append(cP50, c.P50), append(cP99, c.P99)
	}
	base = LoadResult{OpsPerSec: median(bOps), P50: Percentile(bP50, 50), P99: Percentile(bP99, 50)}
	cand = LoadResult{OpsPerSec: median(cOps), P50: Percentile(cP50, 50), P99: Percentile(cP99, 50)}
	return median(ratios), base, cand, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
