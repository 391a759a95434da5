package featuregate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/ghconnect/ghconnect/services/featuregate/ghactions"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// GitHub.com actions: runners on the server use actions published on
// GitHub.com. The work (policy, cache, GitHub.com calls) is the ghactions
// package's; this file serves it and gates it on the feature.

const actionsAccess = featuregatev1.Feature_FEATURE_ACTIONS_ACCESS

// actionsPermissions is what the proxy asks the broker for. Only public
// repositories are served, and GitHub.com lets any token read those: the
// token is for GitHub.com's rate limit (an installation's, not the 60
// calls an hour of an anonymous caller). metadata (read) is the least an
// installation token carries.
var actionsPermissions = map[string]string{"metadata": "read"}

// actionChunk is the size of DownloadAction's messages.
const actionChunk = 64 << 10

// Actions serves runners GitHub.com actions as the App of the first
// connection (by id) on which the feature works.
type Actions struct {
	proxy *ghactions.Proxy
	app   *appClients
}

// NewActions serves actions from the GitHub API at githubURL with tokens
// from broker, keeping store's policy and status.
func NewActions(store *Store, broker brokerv1.TokenBrokerServiceClient, githubURL string, opts ghactions.Options) (*Actions, error) {
	base, err := githubBase(githubURL)
	if err != nil {
		return nil, err
	}
	p, err := ghactions.NewProxy(store.actions, opts)
	if err != nil {
		return nil, err
	}
	// Each call is bounded by the runner's request and the proxy's
	// download timeout, not by a client-wide one.
	return &Actions{proxy: p, app: newAppClients(broker, base, actionsPermissions, 0)}, nil
}

// Close removes the cache if it was temporary.
func (a *Actions) Close() error { return a.proxy.Close() }

// errActionsOff refuses runners while nothing serves them.
var errActionsOff = apierr.Precondition("ACTIONS_OFF", "actions_access",
	"GitHub.com actions work on no connection: an admin turns the feature on for a CONNECTED connection")

// DownloadAction streams an action's tarball to a runner.
func (s *Server) DownloadAction(req *featuregatev1.DownloadActionRequest, stream grpc.ServerStreamingServer[featuregatev1.DownloadActionResponse]) error {
	ctx := stream.Context()
	if s.actions == nil {
		return status.Error(codes.Unavailable, "the feature gate has no broker, so it cannot reach GitHub.com for actions")
	}
	conns := s.view.effective(actionsAccess)
	if len(conns) == 0 {
		return errActionsOff
	}
	owner, repo, _ := strings.Cut(req.GetRepository(), "/")
	a, f, err := s.actions.proxy.Open(ctx, s.actions.app.client(conns[0]), owner, repo, req.GetRef())
	if err != nil {
		return actionFailed(ctx, err)
	}
	// A file opened for reading: closing it cannot lose anything.
	defer func() { _ = f.Close() }()
	if err := stream.Send(&featuregatev1.DownloadActionResponse{Part: &featuregatev1.DownloadActionResponse_Archive{Archive: &featuregatev1.ActionArchive{
		Repository: req.GetRepository(), Ref: a.Ref, Sha: a.SHA, SizeBytes: a.Size, FromCache: a.FromCache,
	}}}); err != nil {
		return err
	}
	// One buffer for the whole stream: Send encodes the message before it
	// returns, and the one stats handler (otelgrpc's, pkg/tracing) reads
	// no payload. A tarball of any size costs one chunk and the garbage
	// collector nothing.
	buf := make([]byte, actionChunk)
	for sent := 0; ; sent++ {
		// Turned off, or the connection gone: the stream stops too.
		if sent%16 == 15 && len(s.view.effective(actionsAccess)) == 0 {
			return errActionsOff
		}
		n, err := f.Read(buf)
		if n > 0 {
			if serr := stream.Send(&featuregatev1.DownloadActionResponse{Part: &featuregatev1.DownloadActionResponse_Chunk{Chunk: buf[:n]}}); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return apierr.Internal(ctx, err, "reading the cached action failed")
		}
	}
}

// actionFailed is the runner's answer for a request Open refused or
// could not serve.
func actionFailed(ctx context.Context, err error) error {
	var refused *ghactions.RefusedError
	if errors.As(err, &refused) {
		switch {
		case errors.Is(err, ghactions.ErrBlocked):
			return status.Error(codes.PermissionDenied, refused.Message)
		case errors.Is(err, ghactions.ErrPrivate):
			return apierr.Precondition("PRIVATE_REPOSITORY", "repository", refused.Message)
		case errors.Is(err, ghactions.ErrTooLarge):
			return apierr.Precondition("TOO_LARGE", "repository", refused.Message)
		}
		return status.Error(codes.NotFound, refused.Message)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return st.Err() // the broker's refusal of a token
	}
	var ge *brokerclient.GitHubError
	if errors.As(err, &ge) {
		if ge.Kind == brokerclient.ErrRateLimited {
			logging.FromContext(ctx).Warn("GitHub.com rate limit while serving an action", zap.Error(err))
			return apierr.Retry(codes.Unavailable, "GitHub.com's rate limit: the action cannot be fetched now", time.Until(ge.RetryAt))
		}
		return apierr.Unavailable(ctx, err, "GitHub.com could not serve the action")
	}
	return apierr.Internal(ctx, err, "serving the action failed")
}

// GetActionsPolicy implements the RPC.
func (s *Server) GetActionsPolicy(ctx context.Context, _ *featuregatev1.GetActionsPolicyRequest) (*featuregatev1.GetActionsPolicyResponse, error) {
	p, err := s.store.actions.Policy(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.GetActionsPolicyResponse{Policy: actionsPolicyProto(p)}, nil
}

// UpdateActionsPolicy implements the RPC.
func (s *Server) UpdateActionsPolicy(ctx context.Context, req *featuregatev1.UpdateActionsPolicyRequest) (*featuregatev1.UpdateActionsPolicyResponse, error) {
	in := req.GetPolicy()
	p := ghactions.Policy{Allowed: ghactions.Allowed(in.GetAllowed()), GitHubOwned: in.GetGithubOwned(),
		VerifiedCreators: in.GetVerifiedCreators(), Patterns: in.GetPatterns()}
	if err := p.Validate(); err != nil {
		var v apierr.Violations
		for _, e := range strings.Split(err.Error(), "\n") {
			v.Add("policy", e)
		}
		return nil, v.Err()
	}
	by := actor(ctx)
	saved, err := s.store.actions.SavePolicy(ctx, p, req.GetEtag(), by.actor, s.store.now())
	if errors.Is(err, ghactions.ErrEtagMismatch) {
		return nil, status.Error(codes.Aborted, "the actions policy changed since it was read: read it again and retry")
	}
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	logging.FromContext(ctx).Info("actions policy changed", zap.String("by", by.actor), zap.String("via", by.via),
		zap.String("allowed", in.GetAllowed().String()), zap.Int("patterns", len(p.Patterns)))
	return &featuregatev1.UpdateActionsPolicyResponse{Policy: actionsPolicyProto(saved)}, nil
}

func actionsPolicyProto(p ghactions.StoredPolicy) *featuregatev1.ActionsPolicy {
	var at *timestamppb.Timestamp
	if !p.UpdatedAt.IsZero() {
		at = timestamppb.New(p.UpdatedAt)
	}
	return &featuregatev1.ActionsPolicy{Allowed: featuregatev1.ActionsAllowed(p.Allowed), GithubOwned: p.GitHubOwned,
		VerifiedCreators: p.VerifiedCreators, Patterns: p.Patterns, Etag: p.Etag, UpdateUser: p.UpdatedBy, UpdateTime: at}
}

// GetActionsStatus implements the RPC.
func (s *Server) GetActionsStatus(ctx context.Context, _ *featuregatev1.GetActionsStatusRequest) (*featuregatev1.GetActionsStatusResponse, error) {
	st, err := s.store.actions.Status(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &featuregatev1.ActionsStatus{Downloads: st.Downloads, DownloadedBytes: st.DownloadedBytes,
		LastDownload: st.LastDownload, LastDownloadTime: timestamp(st.LastDownloadAt),
		LastError: st.LastError, LastErrorTime: timestamp(st.LastErrorAt),
		LastRefusal: st.LastRefusal, LastRefusalTime: timestamp(st.LastRefusalAt)}
	conns := s.view.effective(actionsAccess)
	switch {
	case s.actions == nil:
		out.State, out.Message = featuregatev1.ActionsState_ACTIONS_STATE_OFF, "off: the feature gate has no broker, so it cannot reach GitHub.com"
	case len(conns) == 0:
		out.State, out.Message = featuregatev1.ActionsState_ACTIONS_STATE_OFF, "off: GitHub.com actions work on no connection, so runners are refused"
	default:
		out.State, out.ConnectionId = featuregatev1.ActionsState_ACTIONS_STATE_SERVING, conns[0]
		out.Message = fmt.Sprintf("serving runners public actions from GitHub.com as the App of connection %s", conns[0])
	}
	if s.actions != nil {
		c := s.actions.proxy.CacheStats()
		out.CacheBytes, out.CacheLimitBytes, out.CachedArchives, out.CacheHits, out.CacheMisses = c.Bytes, c.Limit, c.Entries, c.Hits, c.Misses
	}
	return &featuregatev1.GetActionsStatusResponse{Status: out}, nil
}
