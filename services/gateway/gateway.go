// Package gateway is ghconnect's REST face: grpc-gateway handlers that dial
// the services (so their interceptors, authentication included, run for REST
// calls too), the OpenAPI document, and health endpoints. It holds no
// business logic.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/gen"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/zap"
	// Error details (field violations, retry hints) travel as Any: their
	// types must be registered for the JSON error bodies.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxBodyBytes bounds request bodies; the largest legitimate one is a
// connection create with a license of at most 16 KiB.
const maxBodyBytes = 1 << 20

// upstream is one dialled service.
type upstream struct {
	name    string
	conn    *grpc.ClientConn
	service string
}

// Gateway is the REST handler and the connections behind it.
type Gateway struct {
	handler   http.Handler
	upstreams []upstream
	dialer    *dial.Dialer
	sso       *ssoHandler // nil without single sign-on
}

// Upstreams are the gRPC addresses of the services; empty ones are not
// served (their routes answer 501).
type Upstreams struct {
	Registry    string
	Broker      string
	FeatureGate string
	// ServiceToken is the gateway's own bearer token, used for the
	// GitHub.com redirects a browser brings back (their state is the
	// credential). Not needed when Dial presents a client certificate.
	ServiceToken string
	// Dial is the TLS of the calls to the services.
	Dial dial.Flags
	// SSO, when enabled, signs people in to the admin page and the API.
	SSO SSO
	// GitHubWebURL is the GitHub.com site (or GHE.com, GHES) the admin
	// page links to, as the registry's -github-web-url sends browsers
	// there; empty: the page links nowhere.
	GitHubWebURL string
}

// New dials the upstreams and, with single sign-on, opens the sessions
// database, and builds the handler. It logs through ctx's logger.
func New(ctx context.Context, up Upstreams) (*Gateway, error) {
	mux := runtime.NewServeMux(
		runtime.WithMetadata(personMetadata(up.ServiceToken)),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithOutgoingHeaderMatcher(func(k string) (string, bool) {
			if k == "x-request-id" {
				return "X-Request-Id", true
			}
			return "", false
		}),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithMiddlewares(routeSpan),
	)
	dialer, err := dial.New(up.Dial)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{dialer: dialer}
	type reg struct {
		name, addr, service string
		register            func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}
	for _, r := range []reg{
		{"registry", up.Registry, registryv1.ConnectionRegistryService_ServiceDesc.ServiceName, registryv1.RegisterConnectionRegistryServiceHandler},
		{"broker", up.Broker, brokerv1.TokenBrokerService_ServiceDesc.ServiceName, brokerv1.RegisterTokenBrokerServiceHandler},
		{"featuregate", up.FeatureGate, featuregatev1.FeatureGateService_ServiceDesc.ServiceName, featuregatev1.RegisterFeatureGateServiceHandler},
	} {
		if r.addr == "" {
			continue
		}
		// No token on the connection: each REST call carries its caller's.
		conn, err := dialer.Dial(r.addr, "")
		// On the way out with an error, that error is the one to report:
		// closing what was opened so far is cleanup.
		if err != nil {
			_ = g.Close()
			return nil, fmt.Errorf("gateway: dial %s at %s: %w", r.name, r.addr, err)
		}
		if err := r.register(ctx, mux, conn); err != nil {
			_ = conn.Close()
			_ = g.Close()
			return nil, fmt.Errorf("gateway: %s handlers: %w", r.name, err)
		}
		g.upstreams = append(g.upstreams, upstream{name: r.name, conn: conn, service: r.service})
	}
	if len(g.upstreams) == 0 {
		return nil, errors.New("gateway: no upstream service configured")
	}
	if up.SSO.Enabled() {
		var signedIn func(context.Context, string)
		if gate := g.upstream("featuregate"); gate != nil {
			signedIn = registerPerson(featuregatev1.NewFeatureGateServiceClient(gate.conn), up.ServiceToken, logging.FromContext(ctx).With(zap.String("component", "me")))
		}
		if g.sso, err = newSSO(ctx, up.SSO, logging.FromContext(ctx).With(zap.String("component", "sso")), signedIn); err != nil {
			_ = g.Close() // cleanup: the SSO error is the one to report
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	sso := g.sso

	root := http.NewServeMux()
	// refuse answers an API call the gateway turns away itself, in the
	// API's own error format.
	refuse := func(w http.ResponseWriter, r *http.Request, code codes.Code, msg string) {
		_, out := runtime.MarshalerForRequest(mux, r)
		errorHandler(r.Context(), mux, out, w, r, status.Error(code, msg))
	}
	if sso != nil {
		sso.register(root)
		root.Handle("/v1/", sso.withSession(refuse, limitBody(mux)))
	} else {
		root.Handle("/v1/", requireBearer(refuse, limitBody(mux)))
		root.HandleFunc("GET /auth/session", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"sso":false}` + "\n"))
		})
	}
	root.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(gen.OpenAPI)
	})
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	root.HandleFunc("GET /readyz", g.ready)
	if reg := g.upstream("registry"); reg != nil && (up.ServiceToken != "" || up.Dial.HasCert()) {
		cb := &callbacks{registry: registryv1.NewConnectionRegistryServiceClient(reg.conn), token: up.ServiceToken, sso: sso}
		root.HandleFunc("GET /connect/callback", cb.signedIn(cb.manifest))
		root.HandleFunc("GET /connect/setup", cb.signedIn(cb.setup))
	}
	if reg, gate := g.upstream("registry"), g.upstream("featuregate"); sso != nil && reg != nil && gate != nil {
		m := &me{sso: sso, registry: registryv1.NewConnectionRegistryServiceClient(reg.conn), gate: featuregatev1.NewFeatureGateServiceClient(gate.conn), token: up.ServiceToken, refuse: refuse}
		m.register(root)
	}
	if gate := g.upstream("featuregate"); gate != nil {
		root.Handle(actionsRoute, actionTarball(mux, gate.conn))
	}
	root.Handle("/", uiHandler(uiConfig{GitHubWebURL: strings.TrimSuffix(up.GitHubWebURL, "/")}))
	g.handler = root
	return g, nil
}

// routeSpan names a REST call's span by its route template, never by a
// path holding ids.
func routeSpan(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			// As http_rules.yaml writes it: {id}, not {id=*}.
			tracing.SetRoute(r.Context(), r.Method, strings.ReplaceAll(p.String(), "=*}", "}"))
		}
		next(w, r, params)
	}
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

func (g *Gateway) upstream(name string) *upstream {
	for i := range g.upstreams {
		if g.upstreams[i].name == name {
			return &g.upstreams[i]
		}
	}
	return nil
}

// Close closes the upstream connections and the sessions database, all of
// them whatever fails, and returns what failed.
func (g *Gateway) Close() error {
	var errs []error
	for _, u := range g.upstreams {
		if err := u.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s connection: %w", u.name, err))
		}
	}
	g.dialer.Close()
	if g.sso != nil {
		if err := g.sso.close(); err != nil {
			errs = append(errs, fmt.Errorf("sessions database: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ready answers 200 only when every upstream reports SERVING.
func (g *Gateway) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var bad []string
	for _, u := range g.upstreams {
		resp, err := healthpb.NewHealthClient(u.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: u.service})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			bad = append(bad, u.name)
		}
	}
	if len(bad) > 0 {
		http.Error(w, "not ready: "+strings.Join(bad, ", "), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// headerMatcher forwards what the services need: Authorization (which
// grpc-gateway forwards itself) and the request id. The person headers
// are the gateway's to set (from the session), never the client's.
func headerMatcher(key string) (string, bool) {
	switch k := strings.ToLower(key); {
	case k == "x-request-id":
		return "x-request-id", true
	case strings.HasPrefix(k, "grpc-metadata-x-ghconnect-"):
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// requireBearer answers 401 to an API call without a bearer token before
// it reaches a service: over mutual TLS the gateway's own certificate
// would otherwise stand in for the missing caller.
func requireBearer(refuse refuser, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hasBearer(r) {
			refuse(w, r, codes.Unauthenticated, "missing bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// errorHandler is grpc-gateway's, but a 401 carries a proper Bearer
// challenge: the default puts the bare status message in WWW-Authenticate.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if statusCode(err) == codes.Unauthenticated {
		w = challengeWriter{w}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

type challengeWriter struct{ http.ResponseWriter }

func (c challengeWriter) WriteHeader(code int) {
	c.Header().Set("WWW-Authenticate", `Bearer realm="ghconnect", error="invalid_token"`)
	c.ResponseWriter.WriteHeader(code)
}
