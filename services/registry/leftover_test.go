package registry_test

import (
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
)

// Every App this server created and GitHub.com still has is listed, not
// only the latest, and a cancelled attempt does not hide it; an App
// connected as an existing one is not this server's to list; one deleted
// on GitHub.com is recorded and leaves the list.
func TestLeftoverApps(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	list := func() []*registryv1.LeftoverApp {
		t.Helper()
		resp, err := e.Client.ListLeftoverApps(ctx, &registryv1.ListLeftoverAppsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Apps
	}
	end := func(id string) {
		t.Helper()
		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: id, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}

	// An existing App, connected and disabled: not created here.
	existing := e.ConnectApp(t, e.create(t).Id, ghemu.AppSpec{Owner: "octo-org"}, nil)
	end(existing.Id)
	// An App created by the manifest flow, then the attempt cancelled.
	cancelled := e.create(t)
	e.CreateApp(t, ctx, cancelled.Id)
	end(cancelled.Id)
	first, err := e.Client.GetConnection(ctx, &registryv1.GetConnectionRequest{Id: cancelled.Id})
	if err != nil || first.Connection.App == nil {
		t.Fatalf("the cancelled attempt's App: %v %v", first, err)
	}
	// The attempt that connects, on the same account.
	current := e.create(t)
	inst, state := e.Backends.Install(t, e.CreateApp(t, ctx, current.Id))
	if _, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: inst, State: state}); err != nil {
		t.Fatal(err)
	}

	got := list()
	if len(got) != 1 || got[0].AppId != first.Connection.App.AppId || got[0].Status != registryv1.LeftoverAppStatus_LEFTOVER_APP_STATUS_PRESENT || got[0].Account.GetLogin() != "octo-org" {
		t.Fatalf("left Apps while connected to octo-org: %v", got)
	}

	// The owner deletes it on GitHub.com: recorded, and no longer listed.
	e.emu.DeleteApp(first.Connection.App.AppId)
	if got := list(); len(got) != 0 {
		t.Fatalf("a deleted App is still listed: %v", got)
	}
	hist, err := e.Client.ListConnectionHistory(ctx, &registryv1.ListConnectionHistoryRequest{Id: cancelled.Id})
	if err != nil {
		t.Fatal(err)
	}
	if last := hist.Events[len(hist.Events)-1]; last.Action != "app_deleted_on_github" || last.Actor != "system:registry" {
		t.Errorf("the deletion was not recorded: %v", last)
	}

	// Disabling the current connection leaves its App: with no connection
	// to octo-org, GitHub.com cannot be asked about a private App, and the
	// page is told so rather than told it is gone.
	end(current.Id)
	got = list()
	if len(got) != 1 || got[0].ConnectionId != current.Id || got[0].Status != registryv1.LeftoverAppStatus_LEFTOVER_APP_STATUS_UNKNOWN || !strings.Contains(got[0].Note, "private App") {
		t.Fatalf("left Apps after disabling: %v", got)
	}
}
