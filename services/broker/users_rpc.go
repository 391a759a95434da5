package broker

import (
	"context"
	"errors"
	"net/url"
	"strings"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errNotConnected: user authorization needs a CONNECTED connection.
var errNotConnected = errors.New("the connection is not CONNECTED")

// ReasonReconnectNeeded is the PreconditionFailure type of a grant
// GitHub.com no longer accepts.
const ReasonReconnectNeeded = "RECONNECT_NEEDED"

// usersStatus maps user-authorization failures to statuses.
func usersStatus(ctx context.Context, err error) error {
	var oe *oauthError
	var sr *scopeRefused
	switch {
	case errors.Is(err, ErrNoUserGrant):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrReconnectNeeded):
		return apierr.Precondition(ReasonReconnectNeeded, "user_grant", err.Error())
	case errors.Is(err, ErrAuthorizationGone), errors.Is(err, ErrNoUserAuth), errors.Is(err, errNotConnected):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrAccountTaken):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.As(err, &oe):
		return status.Error(codes.FailedPrecondition, "GitHub.com refused the authorization ("+oe.Code+"): connect again")
	case errors.As(err, &sr):
		return status.Error(codes.PermissionDenied, sr.Error())
	}
	return upstreamStatus(ctx, err)
}

// forUsers checks the caller may act for users on the connection, which
// must be CONNECTED; refusals are audited.
func (s *Server) forUsers(ctx context.Context, method, conn, user string) (*connInfo, error) {
	if s.b.users == nil {
		return nil, status.Error(codes.Unimplemented, "the broker has no database: user authorization is off")
	}
	who := caller(ctx)
	if err := s.b.opts.Policy.Callers[who].mayActForUsers(who, conn); err != nil {
		s.auditUser(ctx, zapcore.WarnLevel, method+" refused", conn, user, zap.String("outcome", "refused"), zap.String("reason", err.Error()))
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	c := s.b.conns.get(conn)
	if c == nil || !c.connected {
		return nil, status.Error(codes.FailedPrecondition, errNotConnected.Error())
	}
	return c, nil
}

func (s *Server) auditUser(ctx context.Context, level zapcore.Level, msg, conn, user string, fields ...zap.Field) {
	log, call := s.b.auditTo(ctx)
	s.b.audits.emit(auditEvent{log: log, call: call, level: level, msg: msg,
		fields: append([]zap.Field{auditField, zap.String("caller", caller(ctx)), zap.String("connection_id", conn), zap.String("user", user)}, fields...)})
}

// StartUserAuthorization implements the RPC.
func (s *Server) StartUserAuthorization(ctx context.Context, req *brokerv1.StartUserAuthorizationRequest) (*brokerv1.StartUserAuthorizationResponse, error) {
	// The rules checked the URL's form; a host is still needed to send the
	// browser back to.
	if u, err := url.Parse(req.GetRedirectUri()); err != nil || u.Host == "" {
		var v apierr.Violations
		v.Add("redirect_uri", "must be an absolute http(s) URL of at most 512 characters, without a fragment")
		return nil, v.Err()
	}
	c, err := s.forUsers(ctx, "user authorization", req.GetConnectionId(), req.GetUser())
	if err != nil {
		return nil, err
	}
	resp, expires, err := s.b.users.start(ctx, c, req.GetUser(), req.GetRedirectUri())
	if err != nil {
		return nil, usersStatus(ctx, err)
	}
	resp.ExpireTime = timestamppb.New(expires)
	return resp, nil
}

// CompleteUserAuthorization implements the RPC.
func (s *Server) CompleteUserAuthorization(ctx context.Context, req *brokerv1.CompleteUserAuthorizationRequest) (*brokerv1.CompleteUserAuthorizationResponse, error) {
	if s.b.users == nil {
		return nil, status.Error(codes.Unimplemented, "the broker has no database: user authorization is off")
	}
	// The state names the connection; the caller must be allowed there,
	// which is checked before anything is recorded.
	auth, err := s.b.users.store.peekAuthorization(ctx, hashState(req.GetState()), req.GetUser(), s.b.users.now())
	if err != nil {
		return nil, usersStatus(ctx, err)
	}
	if _, err := s.forUsers(ctx, "user authorization", auth, req.GetUser()); err != nil {
		return nil, err
	}
	g, err := s.b.users.complete(ctx, req.GetUser(), req.GetState(), req.GetCode())
	if err != nil {
		s.auditUser(ctx, zapcore.WarnLevel, "user authorization failed", auth, req.GetUser(), zap.String("outcome", "refused"), zap.String("reason", status.Convert(usersStatus(ctx, err)).Message()))
		return nil, usersStatus(ctx, err)
	}
	s.auditUser(ctx, zapcore.InfoLevel, "user authorization recorded", g.connectionID, g.user,
		zap.String("github_login", g.githubLogin), zap.Int64("github_id", g.githubID))
	return &brokerv1.CompleteUserAuthorizationResponse{Grant: g.proto()}, nil
}

// IssueUserToken implements the RPC.
func (s *Server) IssueUserToken(ctx context.Context, req *brokerv1.IssueUserTokenRequest) (*brokerv1.IssueUserTokenResponse, error) {
	c, err := s.forUsers(ctx, "user token", req.GetConnectionId(), req.GetUser())
	if err != nil {
		return nil, err
	}
	t, err := s.b.users.token(ctx, c, req.GetUser(), req.GetRefusedTokenSha256())
	if err == nil && (len(req.GetRepositories()) > 0 || len(req.GetPermissions()) > 0) {
		t, err = s.b.users.scoped(ctx, c, t, req.GetRepositories(), req.GetPermissions())
	}
	if err != nil {
		st := usersStatus(ctx, err)
		s.auditUser(ctx, zapcore.WarnLevel, "user token refused", c.id, req.GetUser(), zap.String("outcome", "refused"), zap.String("reason", status.Convert(st).Message()))
		return nil, st
	}
	// The event stays compact: the audit writer renders the token's
	// fingerprint and expiry, once per token (auditWriter.write).
	log, call := s.b.auditTo(ctx)
	ev := auditEvent{log: log, call: call, level: zapcore.InfoLevel, msg: "user token issued",
		userToken: t, user: req.GetUser(), caller: caller(ctx), conn: c.id}
	if len(req.GetRepositories()) > 0 || len(req.GetPermissions()) > 0 {
		ev.fields = []zap.Field{zap.String("repositories", strings.Join(req.GetRepositories(), ",")), zap.String("permissions", permissions.String(req.GetPermissions()))}
	}
	s.b.audits.emit(ev)
	return t.response(), nil
}

// userReply is a user token's response and its expiry, allocated together.
type userReply struct {
	res brokerv1.IssueUserTokenResponse
	exp timestamppb.Timestamp
}

func (t *userToken) response() *brokerv1.IssueUserTokenResponse {
	r := new(userReply)
	r.exp.Seconds, r.exp.Nanos = t.expires.Unix(), int32(t.expires.Nanosecond()) //nolint:gosec // G115: Nanosecond is below 1e9
	r.res.Token, r.res.ExpireTime, r.res.GithubLogin, r.res.GithubId = t.token, &r.exp, t.login, t.id
	return &r.res
}

// GetUserGrant implements the RPC.
func (s *Server) GetUserGrant(ctx context.Context, req *brokerv1.GetUserGrantRequest) (*brokerv1.GetUserGrantResponse, error) {
	if s.b.users == nil {
		return nil, status.Error(codes.Unimplemented, "the broker has no database: user authorization is off")
	}
	who := caller(ctx)
	if err := s.b.opts.Policy.Callers[who].mayActForUsers(who, req.GetConnectionId()); err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	g, err := s.b.users.store.grant(ctx, req.GetConnectionId(), req.GetUser())
	if err != nil {
		return nil, usersStatus(ctx, err)
	}
	return &brokerv1.GetUserGrantResponse{Grant: g.proto()}, nil
}

// RevokeUserGrant implements the RPC.
func (s *Server) RevokeUserGrant(ctx context.Context, req *brokerv1.RevokeUserGrantRequest) (*brokerv1.RevokeUserGrantResponse, error) {
	c, err := s.forUsers(ctx, "user grant revocation", req.GetConnectionId(), req.GetUser())
	if err != nil {
		return nil, err
	}
	revoked, err := s.b.users.revoke(ctx, c, req.GetUser())
	if err != nil {
		return nil, usersStatus(ctx, err)
	}
	s.auditUser(ctx, zapcore.InfoLevel, "user grant revoked", c.id, req.GetUser(), zap.Bool("had_grant", revoked))
	return &brokerv1.RevokeUserGrantResponse{Revoked: revoked}, nil
}
