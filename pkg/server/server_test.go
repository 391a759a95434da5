package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// panicky is a service whose handler panics, to exercise recovery.
type panicky struct {
	registryv1.UnimplementedConnectionRegistryServiceServer
	// slowStarted hears when a "slow" call has reached the handler.
	slowStarted chan struct{}
	// stopping is the server's Stopping: a "slow" call lasts into the
	// shutdown.
	stopping <-chan struct{}
}

func (p panicky) GetConnection(ctx context.Context, req *registryv1.GetConnectionRequest) (*registryv1.GetConnectionResponse, error) {
	if req.Id == "panic" {
		panic("boom")
	}
	if req.Id == "slow" {
		p.slowStarted <- struct{}{}
		// The call is in flight when the shutdown starts, and for a while
		// into it: the graceful stop has to wait for it.
		<-p.stopping
		time.Sleep(300 * time.Millisecond) // the call's length into the shutdown, under test
	}
	who, _ := auth.FromContext(ctx)
	return &registryv1.GetConnectionResponse{Connection: &registryv1.Connection{Id: req.Id, CreatedBy: who.Name}}, nil
}

func TestServer(t *testing.T) {
	var logs bytes.Buffer
	logger, _ := logging.NewWithSink(logging.Options{}, zapcore.Lock(zapcore.AddSync(&logs)))
	rules, err := auth.NewRules(auth.Members{Principals: map[string][]string{"svc": {"auditor"}}})
	if err != nil {
		t.Fatal(err)
	}
	guard := &auth.Guard{Authn: auth.NewStaticTokens(map[string][32]byte{"svc": sha("tok")}), Rules: rules}
	srv := New(Options{Logger: logger, Guard: guard, ShutdownTimeout: 2 * time.Second})
	slowStarted := make(chan struct{}, 1)
	registryv1.RegisterConnectionRegistryServiceServer(srv.GRPC, panicky{slowStarted: slowStarted, stopping: srv.Stopping()})
	srv.Health.SetServingStatus("x", healthpb.HealthCheckResponse_SERVING)
	gl, hl, err := Listen("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, gl, hl) }()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := registryv1.NewConnectionRegistryServiceClient(conn)
	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer tok", "x-request-id", "req-123")

	var hdr metadata.MD
	resp, err := client.GetConnection(authed, &registryv1.GetConnectionRequest{Id: "a"}, grpc.Header(&hdr))
	if err != nil || resp.Connection.CreatedBy != "svc" {
		t.Fatalf("authed call: %v %v", resp, err)
	}
	if got := hdr.Get(RequestIDHeader); len(got) != 1 || got[0] != "req-123" {
		t.Errorf("request id not echoed: %v", got)
	}
	_, err = client.GetConnection(authed, &registryv1.GetConnectionRequest{Id: "panic"})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "boom") {
		t.Errorf("panic became %v", err)
	}
	_, err = client.GetConnection(context.Background(), &registryv1.GetConnectionRequest{Id: "a"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v", err)
	}
	// An auditor may read, not create.
	_, err = client.CreateConnection(authed, &registryv1.CreateConnectionRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("auditor created: %v", err)
	}
	// Health needs no token.
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "x"}); err != nil {
		t.Errorf("health: %v", err)
	}

	res, err := http.Get("http://" + hl.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`ghconnect_grpc_requests_total{code="OK",method="/ghconnect.registry.v1.ConnectionRegistryService/GetConnection"} 1`,
		`ghconnect_grpc_requests_total{code="Internal",method="/ghconnect.registry.v1.ConnectionRegistryService/GetConnection"} 1`,
		`ghconnect_grpc_requests_total{code="Unauthenticated",method="/ghconnect.registry.v1.ConnectionRegistryService/GetConnection"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if res, err := http.Get("http://" + hl.Addr().String() + "/readyz"); err != nil || res.StatusCode != 200 {
		t.Errorf("readyz: %v %v", res, err)
	}

	// A call in flight when shutdown starts still completes.
	slow := make(chan error, 1)
	go func() {
		_, err := client.GetConnection(authed, &registryv1.GetConnectionRequest{Id: "slow"})
		slow <- err
	}()
	<-slowStarted
	cancel()
	if err := <-slow; err != nil {
		t.Errorf("in-flight call during shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := net.Dial("tcp", hl.Addr().String()); err == nil {
		t.Errorf("HTTP listener still open after shutdown")
	}

	logger.Sync()
	out := logs.String()
	// A refusal is logged with who was refused.
	refused := regexp.MustCompile(`"method":"/ghconnect.registry.v1.ConnectionRegistryService/CreateConnection","code":"PermissionDenied"[^\n]*"principal":"svc"`)
	if !refused.MatchString(out) {
		t.Errorf("the refused call is not logged with its caller:\n%s", out)
	}
	for _, want := range []string{`"principal":"svc"`, `"request_id":"req-123"`, `"msg":"panic in handler"`, `"code":"Unauthenticated"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(out, "grpc.health.v1") {
		t.Errorf("health checks were logged")
	}
	if strings.Contains(out, "Bearer tok") {
		t.Errorf("credentials logged")
	}
}

// A call's request id is read without copying the call's other headers.
func TestRequestContextCopiesOnlyItsHeader(t *testing.T) {
	base := zap.NewNop()
	allocs := func(extra int) float64 {
		md := metadata.Pairs(RequestIDHeader, "req-1", "content-type", "application/grpc")
		for i := range extra {
			md.Append("x-extra-"+strconv.Itoa(i), "value")
		}
		ctx := grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(context.Background(), md), headerStream{})
		return testing.AllocsPerRun(100, func() { requestContext(ctx, base, "/m") })
	}
	if few, many := allocs(0), allocs(40); many > few {
		t.Errorf("%v allocations with 2 headers, %v with 42", few, many)
	}
}

// headerStream is where requestContext's grpc.SetHeader goes.
type headerStream struct{}

func (headerStream) Method() string               { return "/m" }
func (headerStream) SetHeader(metadata.MD) error  { return nil }
func (headerStream) SendHeader(metadata.MD) error { return nil }
func (headerStream) SetTrailer(metadata.MD) error { return nil }
