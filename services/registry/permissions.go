package registry

import (
	"context"
	"strings"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/permissions"
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
	if ch.Reason == "" {
		ch.Reason = permissionChange(conn.GetApp().GetPermissions(), inst.Permissions)
	}
	return c.take(ctx, conn.Id, "", appPermissionsRefreshed(inst.Permissions), ch)
}

// permissionChange says, for the history, what a refresh found: what the
// App gained and lost (a lower level counts as losing the higher one).
func permissionChange(before, after map[string]string) string {
	gained, lost := permissions.Missing(before, after), permissions.Missing(after, before)
	if len(gained) == 0 && len(lost) == 0 {
		return "no change: " + permissions.String(after)
	}
	var parts []string
	if len(gained) > 0 {
		parts = append(parts, "gained "+permissions.String(gained))
	}
	if len(lost) > 0 {
		parts = append(parts, "lost "+permissions.String(lost))
	}
	return strings.Join(parts, "; ")
}

// RefreshAppPermissions implements the RPC.
func (s *Server) RefreshAppPermissions(ctx context.Context, req *registryv1.RefreshAppPermissionsRequest) (*registryv1.RefreshAppPermissionsResponse, error) {
	conn, err := s.connectable(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	out, err := s.connector.RefreshAppPermissions(ctx, conn, change(ctx))
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	before, after := conn.GetApp().GetPermissions(), out.GetApp().GetPermissions()
	return &registryv1.RefreshAppPermissionsResponse{Connection: out,
		PermissionsGained: permissions.Missing(before, after), PermissionsLost: permissions.Missing(after, before)}, nil
}
