package featuregate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Account links. A server user links a GitHub.com account by authorizing
// the connection's GitHub App on GitHub.com; the broker runs that
// authorization and keeps the person's tokens, and the gate records the
// account GitHub.com answered with. No caller can assert a link.

// linkBroken is who marks a link whose authorization GitHub.com refused.
var linkBroken = who{actor: "system:broker"}

// selfOnly returns the person acting through their own page (the role
// account-holder, and no role that acts for others), if the caller is one.
func selfOnly(ctx context.Context) (string, bool) {
	p, ok := auth.FromContext(ctx)
	if !ok || !slices.Contains(p.Roles, "account-holder") || slices.ContainsFunc(p.Roles, func(r string) bool { return r == "admin" || r == "auditor" || r == "feature-client" }) {
		return "", false
	}
	return p.Name, true
}

// forSelf refuses a person acting through their own page for anyone else.
func forSelf(ctx context.Context, users ...string) error {
	name, ok := selfOnly(ctx)
	if !ok {
		return nil
	}
	for _, u := range users {
		if u != name {
			return status.Errorf(codes.PermissionDenied, "%s may act only for themselves, not for %s", name, u)
		}
	}
	return nil
}

// linking checks that a person acts for themselves in a link request and
// returns the broker that runs the authorization.
func (s *Server) linking(ctx context.Context, user string) (brokerv1.TokenBrokerServiceClient, error) {
	if err := forSelf(ctx, user); err != nil {
		return nil, err
	}
	return s.brokerClient()
}

func (s *Server) brokerClient() (brokerv1.TokenBrokerServiceClient, error) {
	if s.searcher == nil || s.searcher.broker == nil {
		return nil, status.Error(codes.Unavailable, "the feature gate has no broker configured: account links are not available")
	}
	return s.searcher.broker, nil
}

// reconnectNeeded reports whether err is the broker's refusal of a grant
// GitHub.com no longer accepts.
func reconnectNeeded(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				if v.GetType() == "RECONNECT_NEEDED" {
					return true
				}
			}
		}
	}
	return false
}

// StartAccountLink implements the RPC.
func (s *Server) StartAccountLink(ctx context.Context, req *featuregatev1.StartAccountLinkRequest) (*featuregatev1.StartAccountLinkResponse, error) {
	b, err := s.linking(ctx, req.GetUser())
	if err != nil {
		return nil, err
	}
	if !s.view.get(req.GetConnectionId()).GetConnected() {
		return nil, apierr.Precondition("REASON_NOT_CONNECTED", "connection", "the connection is not CONNECTED: no GitHub.com account can be linked")
	}
	resp, err := b.StartUserAuthorization(ctx, &brokerv1.StartUserAuthorizationRequest{ConnectionId: req.GetConnectionId(), User: req.GetUser(), RedirectUri: req.GetRedirectUri()})
	if err != nil {
		return nil, err
	}
	return &featuregatev1.StartAccountLinkResponse{AuthorizeUrl: resp.GetAuthorizeUrl(), State: resp.GetState(), ExpireTime: resp.GetExpireTime()}, nil
}

// CompleteAccountLink implements the RPC.
func (s *Server) CompleteAccountLink(ctx context.Context, req *featuregatev1.CompleteAccountLinkRequest) (*featuregatev1.CompleteAccountLinkResponse, error) {
	b, err := s.linking(ctx, req.GetUser())
	if err != nil {
		return nil, err
	}
	resp, err := b.CompleteUserAuthorization(ctx, &brokerv1.CompleteUserAuthorizationRequest{User: req.GetUser(), State: req.GetState(), Code: req.GetCode()})
	if err != nil {
		return nil, err
	}
	g := resp.GetGrant()
	link := &featuregatev1.AccountLink{User: g.GetUser(), GithubLogin: g.GetGithubLogin(), GithubId: g.GetGithubId()}
	if err := s.store.Link(ctx, g.GetConnectionId(), link, actor(ctx)); err != nil {
		if errors.Is(err, ErrLinkTaken) {
			// The broker keeps one account per connection too; a gate
			// that disagrees leaves no grant behind.
			if _, rerr := b.RevokeUserGrant(context.WithoutCancel(ctx), &brokerv1.RevokeUserGrantRequest{ConnectionId: g.GetConnectionId(), User: g.GetUser()}); rerr != nil {
				logging.FromContext(ctx).Warn("revoking the broker's grant of a refused link", zap.String("connection_id", g.GetConnectionId()), zap.String("user", g.GetUser()), zap.Error(rerr))
			}
		}
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.CompleteAccountLinkResponse{ConnectionId: g.GetConnectionId(), Link: link}, nil
}

// GetAccountLink implements the RPC: the stored link, with the broker's
// word on whether its authorization still works.
func (s *Server) GetAccountLink(ctx context.Context, req *featuregatev1.GetAccountLinkRequest) (*featuregatev1.GetAccountLinkResponse, error) {
	if err := forSelf(ctx, req.GetUser()); err != nil {
		return nil, err
	}
	facts, err := s.store.userFactsOf(ctx, req.GetConnectionId(), []string{req.GetUser()})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	link := facts.links[req.GetUser()]
	if link == nil {
		return nil, status.Error(codes.NotFound, ErrNotLinked.Error())
	}
	if b, err := s.brokerClient(); err == nil && link.Status == featuregatev1.LinkStatus_LINK_STATUS_ACTIVE {
		g, err := b.GetUserGrant(ctx, &brokerv1.GetUserGrantRequest{ConnectionId: req.GetConnectionId(), User: req.GetUser()})
		gone := status.Code(err) == codes.NotFound || g.GetGrant().GetStatus() == brokerv1.UserGrantStatus_USER_GRANT_STATUS_RECONNECT_NEEDED
		if gone {
			if err := s.store.MarkLinkBroken(ctx, req.GetConnectionId(), req.GetUser(), linkBroken); err != nil {
				return nil, toStatus(ctx, err)
			}
			link.Status = featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED
		}
	}
	return &featuregatev1.GetAccountLinkResponse{Link: link}, nil
}

// UnlinkAccount implements the RPC: the authorization is revoked on
// GitHub.com first, then the link removed.
func (s *Server) UnlinkAccount(ctx context.Context, req *featuregatev1.UnlinkAccountRequest) (*featuregatev1.UnlinkAccountResponse, error) {
	if err := forSelf(ctx, req.GetUser()); err != nil {
		return nil, err
	}
	if b, err := s.brokerClient(); err == nil {
		_, err := b.RevokeUserGrant(ctx, &brokerv1.RevokeUserGrantRequest{ConnectionId: req.GetConnectionId(), User: req.GetUser()})
		// A connection no longer CONNECTED had its grants revoked by the
		// broker already.
		if err != nil && status.Code(err) != codes.FailedPrecondition {
			return nil, err
		}
	}
	if err := s.store.Unlink(ctx, req.GetConnectionId(), req.GetUser(), actor(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.UnlinkAccountResponse{}, nil
}

// userToken is the person's GitHub.com user token from the broker
// (refreshed when GitHub.com refused the token refused, if any); a grant
// GitHub.com no longer accepts marks the link and answers errReconnect.
func (s *Server) userToken(ctx context.Context, conn, user, refused string) (string, error) {
	b, err := s.brokerClient()
	if err != nil {
		return "", err
	}
	req := &brokerv1.IssueUserTokenRequest{ConnectionId: conn, User: user}
	if refused != "" {
		sum := sha256.Sum256([]byte(refused))
		req.RefusedTokenSha256 = hex.EncodeToString(sum[:])
	}
	resp, err := b.IssueUserToken(ctx, req)
	if err == nil {
		return resp.GetToken(), nil
	}
	if reconnectNeeded(err) || status.Code(err) == codes.NotFound {
		if err := s.store.MarkLinkBroken(ctx, conn, user, linkBroken); err != nil {
			return "", toStatus(ctx, err)
		}
		return "", errReconnect
	}
	return "", err
}

var errReconnect = errors.New("your GitHub.com account needs to be connected again: private results are left out")
