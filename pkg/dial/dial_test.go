package dial_test

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/devca"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

type replica struct {
	addr  string
	gs    *grpc.Server
	calls atomic.Int64
	who   atomic.Value // last principal
}

// startReplica serves Health with a ghconnect service's TLS and
// authentication.
func startReplica(t *testing.T, callers auth.Callers) *replica {
	t.Helper()
	guard, opts, closer, err := callers.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	r := &replica{}
	opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		p, err := guard.Authn.Authenticate(ctx)
		if err != nil {
			return nil, err
		}
		r.who.Store(p.Name)
		r.calls.Add(1)
		return h(ctx, req)
	}))
	r.gs = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(r.gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.gs.Serve(lis)
	t.Cleanup(r.gs.Stop)
	r.addr = lis.Addr().String()
	return r
}

// Calls over a static list are spread over every replica; when one stops
// abruptly, calls keep succeeding on the others (round_robin plus the
// retry of Unavailable) and none fails.
func TestStaticListBalancesAndSurvivesAReplica(t *testing.T) {
	ca := devca.Files{Dir: t.TempDir()}
	if _, err := devca.Ensure(ca.Dir, []string{"broker", "registry"}, devca.DefaultHosts); err != nil {
		t.Fatal(err)
	}
	callers := auth.Callers{TLSCert: ca.Cert("broker"), TLSKey: ca.Key("broker"), ClientCA: ca.CA(), RequireClientCert: true}
	reps := []*replica{startReplica(t, callers), startReplica(t, callers), startReplica(t, callers)}
	d, err := dial.New(dial.Flags{CA: ca.CA(), Cert: ca.Cert("registry"), Key: ca.Key("registry")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// localhost for one of them: each address is verified under its own name.
	list := reps[0].addr + "," + reps[1].addr + ",localhost:" + port(reps[2].addr)
	cc, err := d.Dial(list, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	callN := func(n, workers int) int64 {
		var failed atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n/workers; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
						failed.Add(1)
						t.Log(err)
					}
					cancel()
				}
			}()
		}
		wg.Wait()
		return failed.Load()
	}
	if f := callN(300, 3); f != 0 {
		t.Fatalf("%d calls failed", f)
	}
	for i, r := range reps {
		if r.calls.Load() < 50 {
			t.Errorf("replica %d served %d of 300 calls: not balanced", i, r.calls.Load())
		}
		if who, _ := r.who.Load().(string); who != "registry" {
			t.Errorf("replica %d saw principal %q, want registry (the certificate's name)", i, who)
		}
	}
	// One replica dies in the middle of traffic.
	done := make(chan int64)
	before := reps[1].calls.Load()
	go func() { done <- callN(3000, 8) }()
	testenv.Eventually(t, 10*time.Second, "replica 1 serves the new traffic", func() bool { return reps[1].calls.Load() > before+20 })
	reps[1].gs.Stop()
	if f := <-done; f != 0 {
		t.Errorf("%d calls failed while a replica stopped", f)
	}
}

func TestBearerFromFile(t *testing.T) {
	dir := t.TempDir()
	tokens := dir + "/tokens"
	writeFile(t, tokens, "featuregate "+auth.HashToken("s3cret")+"\n")
	writeFile(t, dir+"/token", "s3cret\n")
	writeFile(t, dir+"/empty", "\n")
	r := startReplica(t, auth.Callers{TokensFile: tokens})
	d, _ := dial.New(dial.Flags{})
	cc, err := d.Dial(r.addr, dir+"/token")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if who, _ := r.who.Load().(string); who != "featuregate" {
		t.Errorf("principal %q", who)
	}
	if _, err := d.Dial(r.addr, dir+"/empty"); err == nil {
		t.Errorf("an empty token file was accepted")
	}
	if _, err := d.Dial("a:1,nonsense", ""); err == nil {
		t.Errorf("a malformed address list was accepted")
	}
}

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		f  dial.Flags
		ok bool
	}{
		{dial.Flags{}, true},
		{dial.Flags{CA: "ca"}, true},
		{dial.Flags{CA: "ca", Cert: "c", Key: "k"}, true},
		{dial.Flags{Cert: "c", Key: "k"}, false},
		{dial.Flags{CA: "ca", Cert: "c"}, false},
	} {
		if err := tt.f.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.f, err)
		}
	}
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The only replica restarts: a call made while it is down waits for it
// and succeeds; with nobody coming back the caller gets Unavailable after
// ReadyWait, not a hang.
func TestCallWaitsForARestartingReplica(t *testing.T) {
	old := dial.ReadyWait
	dial.ReadyWait = 3 * time.Second
	t.Cleanup(func() { dial.ReadyWait = old })
	dir := t.TempDir()
	writeFile(t, dir+"/tokens", "featuregate "+auth.HashToken("s3cret")+"\n")
	writeFile(t, dir+"/token", "s3cret\n")
	callers := auth.Callers{TokensFile: dir + "/tokens"}
	r := startReplica(t, callers)
	d, _ := dial.New(dial.Flags{})
	cc, err := d.Dial(r.addr, dir+"/token")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	r.gs.Stop()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(time.Second) // the replica is away a while, calls meanwhile wait for it
		lis, err := net.Listen("tcp", r.addr)
		if err != nil {
			t.Error(err)
			return
		}
		_, opts, _, _ := callers.Load()
		gs := grpc.NewServer(opts...)
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go gs.Serve(lis)
		t.Cleanup(gs.Stop)
	}()
	start := time.Now()
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("call across the restart: %v", err)
	}
	t.Logf("answered %v after the replica went away", time.Since(start))
	<-restarted

	// Nobody comes back.
	r2 := startReplica(t, callers)
	cc2, _ := d.Dial(r2.addr, dir+"/token")
	defer cc2.Close()
	if _, err := healthpb.NewHealthClient(cc2).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	r2.gs.Stop()
	start = time.Now()
	_, err = healthpb.NewHealthClient(cc2).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("with no replica: %v, want Unavailable", err)
	}
	if took := time.Since(start); took < 2*time.Second || took > 6*time.Second {
		t.Errorf("with no replica the call ended after %v, want about ReadyWait (3 s)", took)
	}
}
