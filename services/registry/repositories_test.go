package registry_test

import (
	"slices"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The repositories a connection covers, as GitHub.com says: the ones the
// admin selected when installing, or all of the account's; none before
// the App is installed.
func TestInstallationRepositories(t *testing.T) {
	t.Parallel()
	b := registrytest.StartBackends(t)
	for _, r := range []string{"alpha", "beta", "gamma"} {
		b.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: r})
	}
	e := registrytest.StartConnected(t, testenv.SQLite(t), b, "broker")
	create := func() string {
		t.Helper()
		c, err := e.Client.CreateConnection(e.Ctx(t, "alice"), &registryv1.CreateConnectionRequest{
			RequestId: "c-" + testenv.RandomHex(4), License: e.License,
			Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org"}})
		if err != nil {
			t.Fatal(err)
		}
		return c.Connection.Id
	}
	pending := create()
	if _, err := e.Client.ListInstallationRepositories(e.Ctx(t, "alice"), &registryv1.ListInstallationRepositoriesRequest{Id: pending}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("before the App is installed: %v, want FAILED_PRECONDITION", err)
	}
	conn := e.ConnectAppOn(t, pending, ghemu.AppSpec{Owner: "octo-org", Permissions: map[string]string{"metadata": "read"}}, nil, []string{"alpha", "gamma"})
	got, err := e.Client.ListInstallationRepositories(e.Ctx(t, "alice"), &registryv1.ListInstallationRepositoriesRequest{Id: conn.Id})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetRepositorySelection() != "selected" || got.GetTotalCount() != 2 || !slices.Equal(got.GetRepositories(), []string{"octo-org/alpha", "octo-org/gamma"}) {
		t.Errorf("selected: %v", got)
	}
	if _, err := e.Client.ListInstallationRepositories(e.Ctx(t, "broker"), &registryv1.ListInstallationRepositoriesRequest{Id: conn.Id}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("the broker listed them: %v", err)
	}
}
