package registry

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
)

// maxListedRepositories bounds the names ListInstallationRepositories
// returns (the count is always whole).
const maxListedRepositories = 1000

// InstallationRepositories asks GitHub.com, as the App, which
// repositories the connection's installation covers: its selection ("all"
// or "selected"), the repositories' full names (sorted, at most
// maxListedRepositories) and how many there are. The names are read with
// a one-request token (metadata: read), revoked after.
func (c *Connector) InstallationRepositories(ctx context.Context, conn *registryv1.Connection) (string, []string, int, error) {
	// One signature serves both calls. A read: the installation is not
	// verified against the account here (and so never removed), only asked.
	jwt, err := c.appJWT(ctx, conn.GetApp().GetAppId(), keyName(conn.Id), signingVersion(conn))
	if err != nil {
		return "", nil, 0, err
	}
	inst := &ghInstallation{}
	if err := c.call(ctx, jwt, http.MethodGet, "app/installations/"+strconv.FormatInt(conn.GetInstallationId(), 10), inst); err != nil {
		return "", nil, 0, err
	}
	tok, _, err := c.github(jwt).Apps.CreateInstallationToken(ctx, conn.GetInstallationId(), &github.InstallationTokenOptions{
		Permissions: &github.InstallationPermissions{Metadata: github.String("read")},
	})
	if err != nil {
		return "", nil, 0, classify(err)
	}
	gh := c.github(tok.GetToken())
	defer func() {
		if _, err := gh.Apps.RevokeInstallationToken(context.WithoutCancel(ctx)); err != nil {
			logging.FromContext(ctx).Warn("revoking the token of a repository listing", zap.Error(err))
		}
	}()
	var names []string
	total := 0
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := gh.Apps.ListRepos(ctx, opts)
		if err != nil {
			return "", nil, 0, classify(err)
		}
		total = page.GetTotalCount()
		for _, r := range page.Repositories {
			names = append(names, r.GetFullName())
		}
		if resp.NextPage == 0 || len(names) >= maxListedRepositories {
			break
		}
		opts.Page = resp.NextPage
	}
	slices.Sort(names)
	return inst.RepositorySelection, names[:min(len(names), maxListedRepositories)], total, nil
}

// ListInstallationRepositories implements the RPC.
func (s *Server) ListInstallationRepositories(ctx context.Context, req *registryv1.ListInstallationRepositoriesRequest) (*registryv1.ListInstallationRepositoriesResponse, error) {
	conn, err := s.connectable(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if conn.GetInstallationId() == 0 || conn.GetApp().GetAppId() == 0 {
		return nil, apierr.Precondition("NOT_INSTALLED", "connection", "the GitHub App is not installed on the account yet, so it covers no repository")
	}
	// The admin page shows the answer; it waits for nothing longer.
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sel, names, total, err := s.connector.InstallationRepositories(ctx, conn)
	if err != nil {
		return nil, s.connectStatus(ctx, err)
	}
	return &registryv1.ListInstallationRepositoriesResponse{RepositorySelection: sel, Repositories: names, TotalCount: int64(total)}, nil
}
