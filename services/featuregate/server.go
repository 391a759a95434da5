// Package featuregate is the feature-gate service: the enterprise settings
// of the GitHub Connect features of each connection, the per-user consent
// and account links they need, and the answer to "is feature F effective
// for user U". A feature is only ever effective while its connection is
// CONNECTED, as the registry's Watch stream reports it.
package featuregate

import (
	"context"
	"errors"
	"slices"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

var _ featuregatev1.FeatureGateServiceServer = (*Server)(nil)

// Server implements the FeatureGateService.
type Server struct {
	featuregatev1.UnimplementedFeatureGateServiceServer

	store    *Store
	view     *view
	searcher *Searcher
	stopping <-chan struct{} // closed when the server shuts down
	// pollInterval bounds how late this replica sees another's change.
	pollInterval time.Duration
	// outboxMax bounds the unified-contributions outbox (rows).
	outboxMax int
	// actions serves GitHub.com actions (nil: no broker).
	actions *Actions
}

// Options are what a Server is built with besides its store. Every part
// is optional; its zero value is documented with it.
type Options struct {
	// Searcher enables the Search RPC and account links; nil: they answer
	// that the gate has no broker.
	Searcher *Searcher
	// PollInterval bounds how late this replica sees another's change;
	// zero: one second.
	PollInterval time.Duration
	// OutboxMax bounds the unified-contributions outbox (rows);
	// ReportContributions refuses counts beyond it. Zero: DefaultOutboxMax.
	OutboxMax int
	// Actions serves runners GitHub.com actions; nil: DownloadAction
	// answers that the gate has no broker.
	Actions *Actions
}

// NewServer builds the service over store with opts, or says which of
// opts cannot be used.
func NewServer(store *Store, opts Options) (*Server, error) {
	s := &Server{store: store, view: store.view, searcher: opts.Searcher, actions: opts.Actions, pollInterval: time.Second, outboxMax: DefaultOutboxMax}
	if opts.PollInterval < 0 || opts.OutboxMax < 0 {
		return nil, errors.New("featuregate: a negative poll interval or outbox bound")
	}
	if opts.PollInterval > 0 {
		s.pollInterval = opts.PollInterval
	}
	if opts.OutboxMax > 0 {
		s.outboxMax = opts.OutboxMax
	}
	return s, nil
}

// Register adds the service to srv and marks it SERVING.
func (s *Server) Register(srv *server.Server) {
	s.stopping = srv.Stopping()
	featuregatev1.RegisterFeatureGateServiceServer(srv.GRPC, s)
	srv.Health.SetServingStatus(featuregatev1.FeatureGateService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// Follow keeps the in-memory view current until ctx ends.
func (s *Server) Follow(ctx context.Context) {
	s.view.follow(ctx, s.pollInterval)
}

const watchBatch = 500

// actor is who calls: the person a forwarder vouches for (with the
// forwarder as via), or the direct caller.
func actor(ctx context.Context) who {
	if p, ok := auth.FromContext(ctx); ok {
		return who{actor: p.Name, via: p.Via}
	}
	return who{actor: "unauthenticated"}
}

func toStatus(ctx context.Context, err error) error {
	var mp *MissingPermissionsError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrLinkTaken):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrNotLinked), errors.Is(err, ErrUnknownConnection):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrNotConnected):
		return apierr.Precondition("CONNECTION", "connection", err.Error())
	case errors.As(err, &mp):
		return apierr.Precondition("PERMISSIONS", featureName(mp.Feature), mp.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return apierr.Internal(ctx, err, "feature-gate storage failed")
	}
}

// ListFeatures implements the RPC.
func (s *Server) ListFeatures(_ context.Context, req *featuregatev1.ListFeaturesRequest) (*featuregatev1.ListFeaturesResponse, error) {
	chosen := make([]map[string]string, 0, len(req.GetChosen()))
	for _, f := range req.GetChosen() {
		chosen = append(chosen, byFeature[f].GetPermissions())
	}
	return &featuregatev1.ListFeaturesResponse{Features: catalog, ChosenPermissions: permissions.Union(chosen...)}, nil
}

// GetSettings implements the RPC.
func (s *Server) GetSettings(ctx context.Context, req *featuregatev1.GetSettingsRequest) (*featuregatev1.GetSettingsResponse, error) {
	st, err := s.store.Settings(ctx, req.GetConnectionId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.GetSettingsResponse{Settings: st}, nil
}

// UpdateSettings implements the RPC.
func (s *Server) UpdateSettings(ctx context.Context, req *featuregatev1.UpdateSettingsRequest) (*featuregatev1.UpdateSettingsResponse, error) {
	// What the rules cannot say: a feature named twice, and
	// include_private (one field) for a feature (another) it does not
	// apply to.
	var v apierr.Violations
	seen := map[featuregatev1.Feature]bool{}
	for _, f := range req.GetFeatures() {
		if seen[f.GetFeature()] {
			v.Addf("features", "%s is named twice", featureName(f.GetFeature()))
		}
		seen[f.GetFeature()] = true
		if f.GetIncludePrivate() && f.GetFeature() != featuregatev1.Feature_FEATURE_UNIFIED_SEARCH {
			v.Add("features.include_private", "applies to unified_search only")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	st, err := s.store.UpdateSettings(ctx, req.GetConnectionId(), req.GetEtag(), actor(ctx), req.GetFeatures())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	logging.FromContext(ctx).Info("feature settings changed", zap.String("connection_id", req.GetConnectionId()), zap.Any("settings", settingsDetail(st)))
	return &featuregatev1.UpdateSettingsResponse{Settings: st}, nil
}

// SetUserConsent implements the RPC.
func (s *Server) SetUserConsent(ctx context.Context, req *featuregatev1.SetUserConsentRequest) (*featuregatev1.SetUserConsentResponse, error) {
	// Which features take an opt-in is the catalog's word.
	var v apierr.Violations
	if info, ok := byFeature[req.GetFeature()]; ok && info.Consent != featuregatev1.Consent_CONSENT_OPT_IN {
		v.Addf("feature", "%s takes no per-user opt-in", featureName(req.GetFeature()))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := forSelf(ctx, req.GetUser()); err != nil {
		return nil, err
	}
	if err := s.store.SetConsent(ctx, req.GetConnectionId(), req.GetUser(), req.GetFeature(), req.GetOptedIn(), actor(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.SetUserConsentResponse{}, nil
}

// Check implements the RPC: users outer, features inner.
func (s *Server) Check(ctx context.Context, req *featuregatev1.CheckRequest) (*featuregatev1.CheckResponse, error) {
	if err := forSelf(ctx, req.GetUsers()...); err != nil {
		return nil, err
	}
	snap := s.view.get(req.GetConnectionId())
	state := map[featuregatev1.Feature]featuregatev1.Reason{}
	missing := map[featuregatev1.Feature]map[string]string{}
	needFacts := false
	for _, f := range req.GetFeatures() {
		state[f], missing[f] = featureState(snap, f)
		needFacts = needFacts || (state[f] == featuregatev1.Reason_REASON_EFFECTIVE && byFeature[f].Consent == featuregatev1.Consent_CONSENT_OPT_IN)
	}
	var facts userFacts
	if needFacts {
		facts = s.view.facts(req.GetConnectionId(), req.GetUsers())
	}
	n := len(req.GetUsers()) * len(req.GetFeatures())
	if req.GetReasonsOnly() {
		return compactCheck(req, state, missing, facts, n), nil
	}
	results := make([]*featuregatev1.CheckResult, 0, n)
	// One allocation for every result rather than one each: a Check of
	// 50 users × 3 features spent most of its own time allocating.
	backing := make([]featuregatev1.CheckResult, n)
	for _, u := range req.GetUsers() {
		for _, f := range req.GetFeatures() {
			r := &backing[len(results)]
			r.User, r.Feature, r.Reason = u, f, state[f]
			if r.Reason == featuregatev1.Reason_REASON_EFFECTIVE {
				r.Reason = userReason(byFeature[f].Consent, facts, u, f)
			}
			r.Effective = r.Reason == featuregatev1.Reason_REASON_EFFECTIVE
			if r.Reason == featuregatev1.Reason_REASON_MISSING_PERMISSIONS {
				r.MissingPermissions = missing[f]
			}
			results = append(results, r)
		}
	}
	return &featuregatev1.CheckResponse{Results: results}, nil
}

// compactCheck is Check's reasons_only answer: a reason a pair, and what
// each feature lacking permissions lacks, once.
func compactCheck(req *featuregatev1.CheckRequest, state map[featuregatev1.Feature]featuregatev1.Reason, missing map[featuregatev1.Feature]map[string]string, facts userFacts, n int) *featuregatev1.CheckResponse {
	resp := &featuregatev1.CheckResponse{Reasons: make([]featuregatev1.Reason, 0, n)}
	for _, u := range req.GetUsers() {
		for _, f := range req.GetFeatures() {
			r := state[f]
			if r == featuregatev1.Reason_REASON_EFFECTIVE {
				r = userReason(byFeature[f].Consent, facts, u, f)
			}
			resp.Reasons = append(resp.Reasons, r)
		}
	}
	for _, f := range req.GetFeatures() {
		if state[f] == featuregatev1.Reason_REASON_MISSING_PERMISSIONS && !slices.ContainsFunc(resp.Missing, func(m *featuregatev1.MissingPermissions) bool { return m.Feature == f }) {
			resp.Missing = append(resp.Missing, &featuregatev1.MissingPermissions{Feature: f, Permissions: missing[f]})
		}
	}
	return resp
}

// featureState is whether feature f works on a connection (its latest
// snapshot), before any user's part: NOT_CONNECTED, DISABLED,
// MISSING_PERMISSIONS (with what is missing) or EFFECTIVE. Check answers
// from it, and unified contributions sends nothing while it is not
// EFFECTIVE.
func featureState(snap *featuregatev1.WatchResponse, f featuregatev1.Feature) (featuregatev1.Reason, map[string]string) {
	if !snap.GetConnected() {
		return featuregatev1.Reason_REASON_NOT_CONNECTED, nil
	}
	for _, x := range snap.GetSettings().GetFeatures() {
		if x.Feature != f {
			continue
		}
		switch {
		case !x.Enabled:
			return featuregatev1.Reason_REASON_DISABLED, nil
		case len(x.MissingPermissions) > 0:
			return featuregatev1.Reason_REASON_MISSING_PERMISSIONS, x.MissingPermissions
		}
		return featuregatev1.Reason_REASON_EFFECTIVE, nil
	}
	return featuregatev1.Reason_REASON_DISABLED, nil
}

// userReason is a user's part of a feature that works on the connection.
// For unified contributions the outbox follows the same facts: a user's
// counts are queued while linked and opted in (see optedInTx) and leave
// only while the link is ACTIVE.
func userReason(consent featuregatev1.Consent, facts userFacts, user string, f featuregatev1.Feature) featuregatev1.Reason {
	switch {
	case consent != featuregatev1.Consent_CONSENT_OPT_IN:
		return featuregatev1.Reason_REASON_EFFECTIVE
	case facts.links[user] == nil:
		return featuregatev1.Reason_REASON_NOT_LINKED
	case facts.links[user].Status == featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED:
		return featuregatev1.Reason_REASON_RECONNECT_NEEDED
	case !facts.optedIn[user][f]:
		return featuregatev1.Reason_REASON_NO_CONSENT
	}
	return featuregatev1.Reason_REASON_EFFECTIVE
}

// Watch implements the RPC: snapshots after the revision, then each change
// as it commits.
func (s *Server) Watch(req *featuregatev1.WatchRequest, stream grpc.ServerStreamingServer[featuregatev1.WatchResponse]) error {
	ctx := stream.Context()
	err := sqldb.Tail(ctx, &s.store.Notifier, s.pollInterval, s.stopping, req.GetAfterRevision(), watchBatch,
		func(ctx context.Context, after int64, limit int) ([]*featuregatev1.WatchResponse, error) {
			// Nothing goes out that Check on this gate would not
			// answer from yet: a caller that saw a change here and
			// then asks Check gets the change or a later state.
			if err := s.view.catchUp(ctx); err != nil {
				return nil, err
			}
			upto := s.view.revision()
			snaps, err := s.store.Snapshots(ctx, after, req.GetConnectionId(), limit)
			for i, w := range snaps {
				if w.Revision > upto {
					return snaps[:i], err
				}
			}
			return snaps, err
		},
		func(w *featuregatev1.WatchResponse) int64 { return w.Revision },
		stream.Send)
	return apierr.StreamEnd(err, sqldb.ErrStopping, func(err error) error { return toStatus(ctx, err) })
}
