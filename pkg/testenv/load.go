package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
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

// CannedMethod answers a canned reply: registered by Canned on a
// service's own server, a call to it decodes the request (and, like every
// request, has it checked against its type's rules) and encodes the
// reply, as a method with those messages does, and does nothing else.
const CannedMethod = "/ghconnect.bench.Canned/Reply"

// Canned adds CannedMethod to a server, decoding requests into newReq()
// and answering reply() every call, and lets roles call it: the baseline
// that costs what a method's request and reply cost, so a comparison with
// it shows the method's own work.
func Canned(newReq, reply func() proto.Message, roles ...string) func(*grpc.Server, *auth.Rules) {
	desc := grpc.ServiceDesc{
		ServiceName: "ghconnect.bench.Canned",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Reply", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := newReq()
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { return reply(), nil }
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: CannedMethod}, h)
		}}},
	}
	return func(s *grpc.Server, r *auth.Rules) {
		if err := r.Permit(CannedMethod, roles...); err != nil {
			panic(err)
		}
		s.RegisterService(&desc, struct{}{})
	}
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
	res, _, err := load(n, workers, call)
	return res, err
}

func load(n, workers int, call func(ctx context.Context) error) (LoadResult, []time.Duration, error) {
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
		return LoadResult{}, nil, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return LoadResult{OpsPerSec: float64(n) / elapsed.Seconds(), P50: Percentile(all, 50), P99: Percentile(all, 99)}, all, nil
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

// Comparison is what Compare measured.
type Comparison struct {
	// Ratio is the median over the rounds of the candidate's throughput
	// as a share of the baseline's; P99Ratio, the median of their p99
	// latencies' ratio.
	Ratio, P99Ratio float64
	// Base and Cand are each's median throughput and latency percentiles
	// over all of its calls.
	Base, Cand LoadResult
}

// Compare runs the baseline and the candidate in many short alternating
// rounds, so both meet the same machine (a shared machine's slow moments
// fall on both), the order flipping each round so neither always goes
// first. Ratios are taken round by round and their median reported: one
// round a neighbour slowed moves a pooled p99 but not a median.
//
// settle, if not nil, runs at the end of each timed candidate round: work
// the calls left queued (the broker's audit writer) is charged to them.
func Compare(rounds, n, workers int, baseline, candidate func(ctx context.Context) error, settle func()) (Comparison, error) {
	candRound := func() (LoadResult, []time.Duration, error) {
		start := time.Now()
		res, lat, err := load(n, workers, candidate)
		if settle != nil {
			settle()
			res.OpsPerSec = float64(n) / time.Since(start).Seconds()
		}
		return res, lat, err
	}
	// Warm both paths up; one that fails here would fail every round.
	for _, call := range []func(ctx context.Context) error{baseline, candidate} {
		if _, err := Load(n, workers, call); err != nil {
			return Comparison{}, err
		}
	}
	var ratios, p99s, bOps, cOps []float64
	var bLat, cLat []time.Duration
	for r := range rounds {
		var b, c LoadResult
		var bl, cl []time.Duration
		var err error
		if r%2 == 0 {
			b, bl, err = load(n, workers, baseline)
			if err == nil {
				c, cl, err = candRound()
			}
		} else {
			c, cl, err = candRound()
			if err == nil {
				b, bl, err = load(n, workers, baseline)
			}
		}
		if err != nil {
			return Comparison{}, err
		}
		ratios = append(ratios, c.OpsPerSec/b.OpsPerSec)
		p99s = append(p99s, float64(c.P99)/float64(b.P99))
		bOps, cOps = append(bOps, b.OpsPerSec), append(cOps, c.OpsPerSec)
		bLat, cLat = append(bLat, bl...), append(cLat, cl...)
	}
	return Comparison{
		Ratio: median(ratios), P99Ratio: median(p99s),
		Base: LoadResult{OpsPerSec: median(bOps), P50: Percentile(bLat, 50), P99: Percentile(bLat, 99)},
		Cand: LoadResult{OpsPerSec: median(cOps), P50: Percentile(cLat, 50), P99: Percentile(cLat, 99)},
	}, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// StatusLines renders an error as its gRPC code and "field: description"
// lines, one a field violation; sorted, when their order is a map's
// (protovalidate's is random then): for comparing how two checks answer.
func StatusLines(err error, sorted bool) []string {
	st := status.Convert(err)
	out := []string{st.Code().String()}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	if sorted {
		slices.Sort(out[1:])
	}
	return out
}

// RulesFingerprint is a short digest of the validation rules of messages
// (their options and their fields') and of the shared rule extensions
// (named in full; hashed under their last name): a test that holds a Go
// form of rules to protovalidate's pins it, so a rule changed in a .proto
// says so until the Go form follows.
func RulesFingerprint(t testing.TB, messages []protoreflect.FullName, extensions ...protoreflect.FullName) string {
	t.Helper()
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	add := func(name string, o proto.Message) {
		b, err := opts.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %x\n", name, b)
	}
	for _, m := range messages {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(m)
		if err != nil {
			t.Fatal(err)
		}
		add(string(m), d.Options())
		fields := d.(protoreflect.MessageDescriptor).Fields()
		for i := range fields.Len() {
			add(string(fields.Get(i).FullName()), fields.Get(i).Options())
		}
	}
	for _, x := range extensions {
		xt, err := protoregistry.GlobalTypes.FindExtensionByName(x)
		if err != nil {
			t.Fatal(err)
		}
		add(string(x.Name()), xt.TypeDescriptor().Options())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
