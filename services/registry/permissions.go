package registry

import (
	"context"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
)

// RefreshAppPermissions asks GitHub.com, as the App, which permissions the
// installation grants now (the App's owner may have added some, and the
// account accepted them) and records them; the feature gate follows.
func (c *Connector) RefreshAppPermissions(ctx context.Context, conn *registryv1.Connection, ch Change) (*registryv1.Connection, error) {
	if err := appPermissionsRefreshed(nil).check(conn); err != nil {
		return nil, err
	}
	inst, err := c.verifyInstallation(ctx, conn, conn.GetInstallationId())
	if err != nil {
		return nil, err
	}
	return c.take(ctx, conn.Id, "", appPermissionsRefreshed(inst.Permissions), ch)
}

// RefreshAppPermissions implements the RPC.
func (s *Server) RefreshAppPermissions(ctx context.Context, req *registryv1.RefreshAppPermissionsRequest) (*registryv1.RefreshAppPermissionsResponse, error) {
	var v apierr.Violations
	checkID(&v, "id", req.GetId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	conn, err := s.connectable(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	out, err := s.connector.RefreshAppPermissions(ctx, conn, change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.RefreshAppPermissionsResponse{Connection: out}, nil
}
