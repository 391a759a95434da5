// Package registry is the connection-registry service: it owns the GitHub
// Connect connection record, enforces its lifecycle, keeps its history and
// streams every change to the other services. As on GHES, a server has one
// connection at a time, for its own hostname and version (the
// -server-hostname and -server-version it is configured with): a new one
// is refused while another is PENDING, CONNECTED or DISCONNECTING.
package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"github.com/google/uuid"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

var _ registryv1.ConnectionRegistryServiceServer = (*Server)(nil)

// Server implements the ConnectionRegistryService.
type Server struct {
	registryv1.UnimplementedConnectionRegistryServiceServer

	store     *Store
	issuers   []ed25519.PublicKey
	connector *Connector
	stopping  <-chan struct{} // closed when the server shuts down
	now       func() time.Time
	// pollInterval bounds how late a watcher sees a change committed by
	// another replica (local commits wake watchers at once).
	pollInterval time.Duration
	// gitHub looks up the organization a connection is for; nil (a test
	// of another service) records the account as given.
	gitHub *GitHub
	// defaults fill in what CreateConnection requests leave empty.
	defaults       Defaults
	defaultLicense *registryv1.License
}

// Options are what a Server is built with besides its store. Every part
// is optional; its zero value is documented with it.
type Options struct {
	// Issuers are the keys whose signed licenses the server trusts (none:
	// no license is valid).
	Issuers []ed25519.PublicKey
	// Defaults are the server's own hostname, version and license, as its
	// -server-hostname, -server-version and -license-file give them. The
	// zero value is none: CreateConnection refuses (a registry that other
	// services' tests only read). Anything else must be complete and
	// valid.
	Defaults Defaults
	// GitHub makes CreateConnection take an organization's id from
	// GitHub.com; nil (a test of another service) records the account as
	// given.
	GitHub *GitHub
	// Connector enables the enable and disconnect RPCs; nil: they answer
	// that this registry cannot enable. Its Store must be the server's.
	Connector *Connector
	// WatchPollInterval bounds how late a watcher sees a change made by
	// another replica; zero: one second.
	WatchPollInterval time.Duration
}

// NewServer builds the service over store with opts, or says which of
// opts cannot be used.
func NewServer(store *Store, opts Options) (*Server, error) {
	s := &Server{store: store, issuers: opts.Issuers, connector: opts.Connector, now: time.Now, pollInterval: time.Second}
	if opts.WatchPollInterval < 0 {
		return nil, errors.New("registry: the watch poll interval is negative")
	}
	if opts.WatchPollInterval > 0 {
		s.pollInterval = opts.WatchPollInterval
	}
	if opts.Connector != nil && opts.Connector.Store != store {
		return nil, errors.New("registry: the connector works on another store than the server's")
	}
	if opts.GitHub != nil {
		g := *opts.GitHub
		s.gitHub = &g
	}
	if opts.Defaults != (Defaults{}) {
		if err := s.setDefaults(opts.Defaults); err != nil {
			return nil, fmt.Errorf("the server's defaults: %w", err)
		}
	}
	return s, nil
}

// Register adds the service to srv and marks it SERVING.
func (s *Server) Register(srv *server.Server) {
	s.stopping = srv.Stopping()
	registryv1.RegisterConnectionRegistryServiceServer(srv.GRPC, s)
	srv.Health.SetServingStatus(registryv1.ConnectionRegistryService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

const watchBatch = 500

// actor is who calls: the person a forwarder vouches for, or the direct
// caller; via is the forwarder (empty for a direct caller).
func actor(ctx context.Context) (name, via string) {
	if p, ok := auth.FromContext(ctx); ok {
		return p.Name, p.Via
	}
	return "unauthenticated", ""
}

func requestID(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 && validate.RequestID(v[0]) == nil {
		return v[0]
	}
	return ""
}

// change is who asks for a change (and through which forwarder) and in
// which request.
func change(ctx context.Context) Change {
	name, via := actor(ctx)
	return Change{Actor: name, Via: via, RequestID: requestID(ctx)}
}

// toStatus maps store errors to gRPC statuses with constant messages.
func toStatus(ctx context.Context, err error) error {
	var te *TransitionError
	var le *LiveError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.As(err, &le):
		return apierr.Precondition("LIVE_CONNECTION", "connections/"+le.Conn.Id, le.Error())
	case errors.Is(err, ErrRequestIDReused):
		var v apierr.Violations
		v.Add("request_id", err.Error())
		return v.Err()
	case errors.As(err, &te):
		return apierr.Precondition("STATE", "connection", te.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return apierr.Internal(ctx, err, "registry storage failed")
	}
}

// checkAccount checks the login by the account's kind, which no field rule
// can see (the proto's rules have checked that an account is there, its
// kind and its id).
func checkAccount(v *apierr.Violations, a *registryv1.Account) {
	switch a.GetKind() {
	case registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION:
		v.Check("account.login", validate.Login(a.GetLogin()))
	case registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE:
		v.Check("account.login", validate.EnterpriseSlug(a.GetLogin()))
	}
}

// verifyAccount returns the account as GitHub.com knows it: an
// organization's login and id from its profile. An enterprise's id is
// learnt from its installation. A typed id GitHub.com does not confirm is
// refused.
func (s *Server) verifyAccount(ctx context.Context, a *registryv1.Account) (*registryv1.Account, error) {
	if s.gitHub == nil || a.GetKind() != registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION {
		return a, nil
	}
	org, err := s.gitHub.organization(ctx, a.GetLogin())
	var v apierr.Violations
	switch {
	case errors.Is(err, ErrGitHubNotFound):
		v.Addf("account.login", "GitHub.com has no organization %s", a.GetLogin())
	case err != nil:
		return nil, apierr.Unavailable(ctx, err, "GitHub.com did not answer the organization lookup; try again")
	case a.GetId() != 0 && a.GetId() != org.ID:
		v.Addf("account.id", "%s is id %d on GitHub.com, not %d (leave the id empty)", org.Login, org.ID, a.GetId())
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return &registryv1.Account{Kind: a.GetKind(), Login: org.Login, Id: org.ID}, nil
}

// CreateConnection implements the RPC.
func (s *Server) CreateConnection(ctx context.Context, req *registryv1.CreateConnectionRequest) (*registryv1.CreateConnectionResponse, error) {
	if s.defaults.Hostname == "" || s.defaults.Version == "" {
		return nil, status.Error(codes.FailedPrecondition, errNoServerSettings.Error())
	}
	var v apierr.Violations
	s.checkRemovedFields(&v, req)
	checkAccount(&v, req.GetAccount())
	license := req.GetLicense()
	if license == "" {
		license = s.defaults.License
	}
	lic, err := ParseLicense(license, s.issuers, s.now())
	v.Check("license", err)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Refused before GitHub.com is asked anything; the store checks again
	// as it inserts.
	if live, err := s.store.Blocking(ctx, req.GetRequestId()); err != nil || live != nil {
		if err == nil {
			err = &LiveError{Conn: live, again: sameAccount(live, &registryv1.Connection{Account: req.GetAccount()})}
		}
		return nil, toStatus(ctx, err)
	}
	account, err := s.verifyAccount(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	c := &registryv1.Connection{
		Id:             uuid.NewString(),
		ServerHostname: s.defaults.Hostname,
		ServerVersion:  s.defaults.Version,
		Account:        account,
		License:        licenseRecord(lic),
	}
	ch := change(ctx)
	ch.RequestID = req.GetRequestId()
	out, err := s.store.Create(ctx, c, requestHash(req), ch)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if out.Id == c.Id {
		logging.FromContext(ctx).Info("connection created", zap.String("connection_id", out.Id), zap.String("server_hostname", out.ServerHostname), zap.String("account", out.Account.GetLogin()))
	}
	return &registryv1.CreateConnectionResponse{Connection: out}, nil
}

// requestHash fingerprints a create request, so a retried request id is
// recognised and a reused one refused.
func requestHash(req *registryv1.CreateConnectionRequest) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// GetConnection implements the RPC.
func (s *Server) GetConnection(ctx context.Context, req *registryv1.GetConnectionRequest) (*registryv1.GetConnectionResponse, error) {
	c, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &registryv1.GetConnectionResponse{Connection: c}, nil
}

// pageSize is the page a request asks for (its rules refuse a negative
// page_size).
func pageSize(n int32) int {
	size, _ := validate.PageSize(n)
	return size
}

// ListConnections implements the RPC.
func (s *Server) ListConnections(ctx context.Context, req *registryv1.ListConnectionsRequest) (*registryv1.ListConnectionsResponse, error) {
	var v apierr.Violations
	size := pageSize(req.GetPageSize())
	if req.GetPageToken() != "" {
		if _, err := decodeCursor(req.GetPageToken()); err != nil {
			v.Check("page_token", err)
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	cs, next, err := s.store.List(ctx, size, req.GetPageToken(), req.GetStates())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &registryv1.ListConnectionsResponse{Connections: cs, NextPageToken: next}, nil
}

// ListConnectionHistory implements the RPC.
func (s *Server) ListConnectionHistory(ctx context.Context, req *registryv1.ListConnectionHistoryRequest) (*registryv1.ListConnectionHistoryResponse, error) {
	var v apierr.Violations
	scope := sqldb.NewHistoryScope(req.GetId(), req.GetNewestFirst())
	size := pageSize(req.GetPageSize())
	from, err := scope.From(req.GetPageToken())
	v.Check("page_token", err)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if scope.ConnectionID != "" {
		if _, err := s.store.Get(ctx, scope.ConnectionID); err != nil {
			return nil, toStatus(ctx, err)
		}
	}
	evs, err := s.store.History(ctx, scope, from, size+1)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &registryv1.ListConnectionHistoryResponse{Events: evs}
	if len(evs) > size {
		resp.Events = evs[:size]
		resp.NextPageToken = scope.PageToken(evs[size-1].Revision)
	}
	return resp, nil
}

// WatchConnections implements the RPC: history after the revision first,
// then every change as it commits.
func (s *Server) WatchConnections(req *registryv1.WatchConnectionsRequest, stream grpc.ServerStreamingServer[registryv1.WatchConnectionsResponse]) error {
	ctx := stream.Context()
	err := sqldb.Tail(ctx, &s.store.Notifier, s.pollInterval, s.stopping, req.GetAfterRevision(), watchBatch,
		func(ctx context.Context, after int64, limit int) ([]*registryv1.ConnectionEvent, error) {
			return s.store.Events(ctx, after, req.GetConnectionId(), limit)
		},
		func(ev *registryv1.ConnectionEvent) int64 { return ev.Revision },
		func(ev *registryv1.ConnectionEvent) error {
			return stream.Send(&registryv1.WatchConnectionsResponse{Event: ev})
		})
	return apierr.StreamEnd(err, sqldb.ErrStopping, func(err error) error { return toStatus(ctx, err) })
}
