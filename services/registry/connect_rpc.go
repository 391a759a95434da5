package registry

import (
	"context"
	"errors"
	"net/url"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
	// The rules checked the URL's form; a host is still needed to call
	// back to.
	cb, err := url.Parse(req.GetCallbackUrl())
	if err != nil || cb.Host == "" {
		var v apierr.Violations
		v.Add("callback_url", "must be an absolute http(s) URL")
		return nil, v.Err()
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

// CompleteAppManifest implements the RPC.
func (s *Server) CompleteAppManifest(ctx context.Context, req *registryv1.CompleteAppManifestRequest) (*registryv1.CompleteAppManifestResponse, error) {
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
	if err := s.needConnector(); err != nil {
		return nil, err
	}
	out, err := s.connector.Disconnect(ctx, req.GetId(), req.GetReason(), req.GetEtag(), change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.DisconnectResponse{Connection: out}, nil
}
