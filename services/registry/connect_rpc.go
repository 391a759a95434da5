package registry

import (
	"context"
	"errors"
	"net/url"
	"strings"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SetConnector enables the enable and disconnect RPCs.
func (s *Server) SetConnector(c *Connector) { s.connector = c }

// connectStatus maps connector failures: refusals and bad states are the
// caller's to fix; anything else is an upstream (Vault, GitHub) failure,
// GitHub.com's refusals the connector turned into no refusal of its own
// (ErrGitHubRefused: a JWT it does not take, a permission missing) among
// them.
func (s *Server) connectStatus(ctx context.Context, err error) error {
	var ce *connectError
	switch {
	case errors.As(err, &ce), errors.Is(err, ErrBadState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
		return toStatus(ctx, err)
	}
	var te *TransitionError
	if errors.As(err, &te) {
		return toStatus(ctx, err)
	}
	if status.Code(err) != codes.Unknown {
		return err
	}
	return apierr.Unavailable(ctx, err, "GitHub.com or Vault failed; try again")
}

func (s *Server) needConnector() error {
	if s.connector == nil {
		return status.Error(codes.FailedPrecondition, "this registry has no Vault and GitHub configuration: enabling and disconnecting are off")
	}
	return nil
}

// connectable is the connection id for an enabling or key RPC, which needs
// the connector; errors are statuses.
func (s *Server) connectable(ctx context.Context, id string) (*registryv1.Connection, error) {
	if err := s.needConnector(); err != nil {
		return nil, err
	}
	conn, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return conn, nil
}

// StartAppManifest implements the RPC.
func (s *Server) StartAppManifest(ctx context.Context, req *registryv1.StartAppManifestRequest) (*registryv1.StartAppManifestResponse, error) {
	var v apierr.Violations
	checkID(&v, "id", req.GetId())
	cb, err := url.Parse(req.GetCallbackUrl())
	if err != nil || (cb.Scheme != "https" && cb.Scheme != "http") || cb.Host == "" || len(req.GetCallbackUrl()) > 500 {
		v.Add("callback_url", "must be an absolute http(s) URL")
	}
	v.Check("permissions", permissions.Validate(req.GetPermissions()))
	if err := v.Err(); err != nil {
		return nil, err
	}
	conn, err := s.connectable(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	resp, err := s.connector.StartAppManifest(ctx, conn, cb, req.GetPermissions())
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return resp, nil
}

func checkState(v *apierr.Violations, state string) {
	if len(state) != 48 {
		v.Add("state", "must be the 48-character state ghconnect issued")
	}
}

// CompleteAppManifest implements the RPC.
func (s *Server) CompleteAppManifest(ctx context.Context, req *registryv1.CompleteAppManifestRequest) (*registryv1.CompleteAppManifestResponse, error) {
	var v apierr.Violations
	if c := req.GetCode(); c == "" || len(c) > 100 {
		v.Add("code", "must be 1 to 100 characters")
	}
	checkState(&v, req.GetState())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.needConnector(); err != nil {
		return nil, err
	}
	conn, install, err := s.connector.CompleteAppManifest(ctx, req.GetCode(), req.GetState(), change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.CompleteAppManifestResponse{Connection: conn, InstallUrl: install}, nil
}

// CompleteInstallation implements the RPC.
func (s *Server) CompleteInstallation(ctx context.Context, req *registryv1.CompleteInstallationRequest) (*registryv1.CompleteInstallationResponse, error) {
	var v apierr.Violations
	if req.GetInstallationId() <= 0 {
		v.Add("installation_id", "must be positive")
	}
	checkState(&v, req.GetState())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.needConnector(); err != nil {
		return nil, err
	}
	conn, err := s.connector.CompleteInstallation(ctx, req.GetInstallationId(), req.GetState(), change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.CompleteInstallationResponse{Connection: conn}, nil
}

// ConnectExistingApp implements the RPC.
func (s *Server) ConnectExistingApp(ctx context.Context, req *registryv1.ConnectExistingAppRequest) (*registryv1.ConnectExistingAppResponse, error) {
	var v apierr.Violations
	checkID(&v, "id", req.GetId())
	if req.GetAppId() <= 0 {
		v.Add("app_id", "must be positive")
	}
	if n := len(req.GetPrivateKeyPem()); n == 0 || n > 16<<10 {
		v.Add("private_key_pem", "must be a PEM private key of at most 16 KiB")
	}
	if n := len(req.GetClientSecret()); n > 100 || strings.ContainsAny(req.GetClientSecret(), " \t\r\n") {
		v.Add("client_secret", "must be the App's client secret: at most 100 characters, no spaces")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	conn, err := s.connectable(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	pem := []byte(req.GetPrivateKeyPem())
	defer clear(pem)
	out, err := s.connector.ConnectExistingApp(ctx, conn, req.GetAppId(), pem, req.GetClientSecret(), change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.ConnectExistingAppResponse{Connection: out}, nil
}

// RotateAppKey implements the RPC.
func (s *Server) RotateAppKey(ctx context.Context, req *registryv1.RotateAppKeyRequest) (*registryv1.RotateAppKeyResponse, error) {
	var v apierr.Violations
	checkID(&v, "id", req.GetId())
	if n := len(req.GetPrivateKeyPem()); n == 0 || n > 16<<10 {
		v.Add("private_key_pem", "must be a PEM private key of at most 16 KiB")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	conn, err := s.connectable(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	pem := []byte(req.GetPrivateKeyPem())
	defer clear(pem)
	out, err := s.connector.RotateAppKey(ctx, conn, pem, change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.RotateAppKeyResponse{Connection: out}, nil
}

// Disconnect implements the RPC.
func (s *Server) Disconnect(ctx context.Context, req *registryv1.DisconnectRequest) (*registryv1.DisconnectResponse, error) {
	var v apierr.Violations
	checkID(&v, "id", req.GetId())
	if len(req.GetReason()) > 500 {
		v.Add("reason", "must be at most 500 characters")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.needConnector(); err != nil {
		return nil, err
	}
	out, err := s.connector.Disconnect(ctx, req.GetId(), req.GetReason(), req.GetEtag(), change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.DisconnectResponse{Connection: out}, nil
}
