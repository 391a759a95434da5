package tracing_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/pkg/tracing/tracingtest"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// One test, in order: Setup sets the process's globals once, as a
// service's Run does, so "off" must be looked at before "on".
func TestExportOffThenOn(t *testing.T) {
	rec := tracingtest.Start(t)

	// Off: no endpoint, or the SDK disabled whatever the endpoint says.
	for _, env := range [][2]string{{"", ""}, {rec.Endpoint(), "true"}} {
		t.Setenv(tracing.EnvEndpoint, env[0])
		t.Setenv(tracing.EnvTracesEndpoint, "")
		t.Setenv("OTEL_SDK_DISABLED", env[1])
		stop, err := tracing.Setup(context.Background(), "svc", zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		base := &http.Transport{}
		if tracing.Enabled() || tracing.ServerOptions() != nil || tracing.DialOptions() != nil || tracing.Transport(base) != base {
			t.Fatalf("endpoint %q, OTEL_SDK_DISABLED %q: tracing is on", env[0], env[1])
		}
		if _, sdk := otel.GetTracerProvider().(*sdktrace.TracerProvider); sdk {
			t.Fatal("off, a tracer provider was installed")
		}
		_, span := otel.Tracer("test").Start(context.Background(), "off")
		span.End()
		stop()
	}
	if n := rec.Requests(); n != 0 {
		t.Fatalf("off, the receiver got %d export calls", n)
	}

	// On.
	t.Setenv(tracing.EnvEndpoint, rec.Endpoint())
	t.Setenv("OTEL_SDK_DISABLED", "")
	stop, err := tracing.Setup(context.Background(), "svc", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const (
		code  = "c0de-9f8e7d6c5b4a"
		state = "st4te-1a2b3c4d5e6f"
		token = "ghs_0123456789abcdefABCDEF0123456789ab"
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /connect/callback", func(w http.ResponseWriter, r *http.Request) {
		// What a careless handler might record on its span.
		sp := trace.SpanFromContext(r.Context())
		sp.SetAttributes(attribute.String("seen", "token "+token), attribute.String("http.target", r.URL.RequestURI()))
		sp.RecordError(errors.New(`Get "https://github.example/login?code=` + code + `": refused`))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(tracing.Handler(mux, "test"))
	defer srv.Close()
	client := &http.Client{Transport: tracing.Transport(nil)}
	ctx, parent := otel.Tracer("test").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/connect/callback?code="+code+"&state="+state, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A failed call: its error quotes the URL, query and all.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + lis.Addr().String()
	lis.Close()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, closed+"/app-manifests/"+code+"/conversions?state="+state, nil)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a closed port answered")
	}
	parent.End()
	stop()

	spans := rec.Spans()
	if len(spans) != 4 {
		t.Fatalf("want the caller's, two client and one server span, got %v", spans)
	}
	traces := tracingtest.Traces(spans)
	if len(traces) != 1 {
		t.Fatalf("want one trace, got %d: %v", len(traces), spans)
	}
	for _, tr := range traces {
		if len(tr.Roots()) != 1 || len(tr.Orphans()) != 0 {
			t.Errorf("not one tree:\n%s", tr.Tree())
		}
		servers := tr.Find(func(s tracingtest.Span) bool { return s.GetKind().String() == "SPAN_KIND_SERVER" })
		if len(servers) != 1 || servers[0].GetName() != "GET /connect/callback" || servers[0].Attr("http.route") != "/connect/callback" {
			t.Errorf("server span: %v", servers)
		}
		clients := tr.Find(func(s tracingtest.Span) bool { return s.GetKind().String() == "SPAN_KIND_CLIENT" })
		if len(clients) != 2 || len(servers) == 1 && servers[0].ParentID() != clients[0].ID() && servers[0].ParentID() != clients[1].ID() {
			t.Errorf("the server span is no child of a client span:\n%s", tr.Tree())
		}
		for _, c := range clients {
			if u := c.Attr("url.full"); !strings.Contains(u, "?REDACTED") || strings.Contains(u, "state") {
				t.Errorf("client url.full %q", u)
			}
		}
	}
	for _, s := range spans {
		if s.Service != "svc" {
			t.Errorf("span %v: service %q", s, s.Service)
		}
		text := s.Text()
		for _, secret := range []string{code, state, token, "ghs_", "Bearer"} {
			if strings.Contains(text, secret) {
				t.Errorf("span %v holds %q:\n%s", s, secret, text)
			}
		}
	}
}
