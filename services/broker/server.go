package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var _ brokerv1.TokenBrokerServiceServer = (*Server)(nil)

// Server implements the TokenBrokerService over a Broker.
type Server struct {
	brokerv1.UnimplementedTokenBrokerServiceServer
	b *Broker
}

// AuditedMethods write one audit event per call themselves.
var AuditedMethods = []string{brokerv1.TokenBrokerService_IssueToken_FullMethodName, brokerv1.TokenBrokerService_IssueUserToken_FullMethodName}

// NewServer returns the gRPC face of b.
func NewServer(b *Broker) *Server { return &Server{b: b} }

// Register adds the service to srv and marks it SERVING.
func (s *Server) Register(srv *server.Server) {
	brokerv1.RegisterTokenBrokerServiceServer(srv.GRPC, s)
	(&PeerServer{b: s.b}).Register(srv)
	srv.Health.SetServingStatus(brokerv1.TokenBrokerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

const (
	// defaultMinLifetime is a token's least lifetime left when the request
	// names none (its rules bound what it names: at most 55 minutes).
	defaultMinLifetime = 5 * time.Minute
	// maxRepos bounds the repositories of a token request (IssueToken's
	// names and ids together; IssueUserToken's rule says the same).
	maxRepos = 500
)

func caller(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return p.Name
	}
	return ""
}

// upstreamStatus maps a failed exchange or revocation to what the caller
// should do.
func upstreamStatus(ctx context.Context, err error) error {
	var paused *errPaused
	var ve *vaultError
	var ge *brokerclient.GitHubError
	var answer *peerAnswer
	switch {
	case errors.As(err, &answer):
		return answer.st.Err()
	case errors.As(err, &paused):
		return apierr.Retry(codes.Unavailable, paused.Error(), paused.wait)
	case errors.As(err, &ve):
		logging.FromContext(ctx).Warn("Vault transit sign failed", zap.Error(err))
		return apierr.Retry(codes.Unavailable, "Vault transit is unavailable; cannot sign the App JWT", time.Second)
	case errors.As(err, &ge):
		return githubStatus(ctx, ge)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	logging.FromContext(ctx).Warn("GitHub.com unreachable", zap.Error(err))
	return apierr.Retry(codes.Unavailable, "GitHub.com is unreachable", upstreamPause)
}

// githubStatus maps GitHub.com's classified failure.
func githubStatus(ctx context.Context, ge *brokerclient.GitHubError) error {
	switch ge.Kind {
	case brokerclient.ErrRateLimited:
		if ge.Secondary {
			return apierr.Retry(codes.Unavailable, "GitHub.com secondary rate limit", time.Until(ge.RetryAt))
		}
		return apierr.Retry(codes.Unavailable, "GitHub.com rate limit exhausted", time.Until(ge.RetryAt))
	case brokerclient.ErrRejected:
		return status.Error(codes.PermissionDenied, "GitHub.com refused the scope: "+ge.Message)
	case brokerclient.ErrNotFound:
		return status.Error(codes.FailedPrecondition, "the installation was not found on GitHub.com")
	case brokerclient.ErrUnauthorized:
		return status.Error(codes.FailedPrecondition, "GitHub.com rejected the App's JWT: "+ge.Message)
	case brokerclient.ErrForbidden:
		return status.Error(codes.PermissionDenied, "GitHub.com refused: "+ge.Message)
	case brokerclient.ErrUnreachable:
		logging.FromContext(ctx).Warn("GitHub.com unreachable", zap.Error(ge))
		return apierr.Retry(codes.Unavailable, "GitHub.com is unreachable", upstreamPause)
	}
	logging.FromContext(ctx).Warn("GitHub.com failed", zap.Error(ge))
	return apierr.Retry(codes.Unavailable, "GitHub.com is unavailable", upstreamPause)
}

// IssueToken implements the RPC.
func (s *Server) IssueToken(ctx context.Context, req *brokerv1.IssueTokenRequest) (*brokerv1.IssueTokenResponse, error) {
	// The one check across fields, kept here: a message-level rule would
	// cost the hot path about 2 µs a call.
	if len(req.GetRepositories())+len(req.GetRepositoryIds()) > maxRepos {
		var v apierr.Violations
		v.Addf("repositories", "at most %d repositories", maxRepos)
		return nil, v.Err()
	}
	minLife := defaultMinLifetime
	if d := req.GetMinLifetime().AsDuration(); d > 0 {
		minLife = d
	}
	g, err := s.b.issueToken(ctx, caller(ctx), tokenRequest{connection: req.GetConnectionId(), repos: req.GetRepositories(), repoIDs: req.GetRepositoryIds(),
		permissions: req.GetPermissions(), exclusive: req.GetExclusive(), minLifetime: minLife})
	if err != nil {
		return nil, err
	}
	return g.response(), nil
}

// issueReply is a response and its parts, for a grant of at most one
// repository, in one allocation.
type issueReply struct {
	res  brokerv1.IssueTokenResponse
	exp  timestamppb.Timestamp
	repo brokerv1.Repository
	list [1]*brokerv1.Repository
}

// response is what IssueToken answers for g.
func (g *grant) response() *brokerv1.IssueTokenResponse {
	r := new(issueReply)
	r.exp.Seconds, r.exp.Nanos = g.expires/1e9, int32(g.expires%1e9)
	r.res.Token = g.token()
	r.res.ExpireTime = &r.exp
	r.res.Permissions = g.perms.m
	r.res.RepositorySelection = g.selection()
	r.res.Exclusive = g.exclusive
	r.res.Repositories = g.repositories(&r.repo, r.list[:0])
	return &r.res
}

// RevokeToken implements the RPC.
func (s *Server) RevokeToken(ctx context.Context, req *brokerv1.RevokeTokenRequest) (*brokerv1.RevokeTokenResponse, error) {
	if err := s.b.revokeAnywhere(ctx, caller(ctx), req.GetToken()); err != nil {
		return nil, revokeStatus(ctx, err)
	}
	return &brokerv1.RevokeTokenResponse{}, nil
}

// revokeStatus maps a revocation's refusal or failure.
func revokeStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, errUnknownToken):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errSharedToken):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errNotOwner):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return upstreamStatus(ctx, err)
}

// RevokeConnectionTokens implements the RPC.
func (s *Server) RevokeConnectionTokens(ctx context.Context, req *brokerv1.RevokeConnectionTokensRequest) (*brokerv1.RevokeConnectionTokensResponse, error) {
	// Only the policy's admin callers get here (GrantRoles).
	who := caller(ctx)
	// Counts of the cache's grants, which New bounds below MaxInt32.
	revoked, failed := s.b.revokeEverywhere(ctx, req.GetConnectionId())
	s.b.audit(ctx).Info("connection tokens revoked", auditField, zap.String("caller", who), zap.String("connection_id", req.GetConnectionId()), zap.Int("revoked", revoked), zap.Int("failed", failed))
	return &brokerv1.RevokeConnectionTokensResponse{Revoked: int32(revoked), Failed: int32(failed)}, nil //nolint:gosec // G115: see above
}

// GetSigningStatus implements the RPC.
func (s *Server) GetSigningStatus(ctx context.Context, req *brokerv1.GetSigningStatusRequest) (*brokerv1.GetSigningStatusResponse, error) {
	return s.b.signingStatusAnywhere(ctx, req.GetConnectionId())
}

// signingStatusResponse is this broker's signing status of conn.
func (b *Broker) signingStatusResponse(conn string) (*brokerv1.GetSigningStatusResponse, error) {
	st, err := b.signingStatus(conn)
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	// Key versions: the registry's int32s (connections.go) and those
	// vaulttransit read, at most its MaxKeyVersion (int32's maximum).
	resp := &brokerv1.GetSigningStatusResponse{TransitMount: st.mount, TransitKey: st.key, CurrentVersion: int32(st.current), LastError: st.lastError, //nolint:gosec // G115: see above
		PendingVersion: int32(st.pending), Notice: st.notice} //nolint:gosec // G115: see above
	for _, v := range st.versions {
		resp.KeyVersions = append(resp.KeyVersions, int32(v)) //nolint:gosec // G115: see above
	}
	if !st.lastSign.IsZero() {
		resp.LastSignTime = timestamppb.New(st.lastSign)
	}
	return resp, nil
}

func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

// GetHealth implements the RPC: Vault's health and GitHub.com's, asked
// now, the connection's installation's rate limit as last seen, and its
// last sign as its owner saw it.
func (s *Server) GetHealth(ctx context.Context, req *brokerv1.GetHealthRequest) (*brokerv1.GetHealthResponse, error) {
	b := s.b
	c := b.conns.get(req.GetConnectionId())
	if c == nil {
		return nil, status.Error(codes.NotFound, "the broker does not know this connection (yet)")
	}
	resp := &brokerv1.GetHealthResponse{}
	vh := b.opts.Vault.CheckHealth(ctx)
	resp.Vault = &brokerv1.VaultHealth{Reachable: vh.Reachable, Sealed: vh.Sealed, Error: vh.Error, CheckTime: timestamppb.New(vh.Checked)}
	gh := &brokerv1.GitHubHealth{CheckTime: timestamppb.New(b.now())}
	code, why := b.up.probeGitHub(ctx)
	gh.StatusCode, gh.Error = int32(code), why //nolint:gosec // G115: an HTTP status
	gh.Reachable = code != 0 && code < 500
	if r, ok := b.up.rateFor(c.installationID); ok {
		gh.RateLimitRemaining, gh.RateLimitLimit, gh.RateLimitTime = int64(r.remaining), int64(r.limit), timestamppb.New(r.at)
	}
	resp.Github = gh
	if st, err := b.signingStatusAnywhere(ctx, c.id); err == nil {
		resp.LastSignTime, resp.LastSignError = st.GetLastSignTime(), st.GetLastError()
	}
	return resp, nil
}
