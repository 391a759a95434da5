package featuregate_test

import (
	"testing"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A permission removed on GitHub.com and read back by Refresh permissions
// leaves the features that need it on but not working: Check says so and
// why, the settings name what is missing, search refuses, and the history
// says what the App gained and lost and which features stopped (and, once
// the permission is back, started again).
func TestPermissionDriftStopsFeatures(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := start(t, dsn)
		id := e.connect(t, allPerms)
		if _, err := e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true}, &featuregatev1.FeatureSetting{Feature: dependabot, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		conn, err := e.reg.Client.GetConnection(e.reg.Ctx(t, "alice"), &registryv1.GetConnectionRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		inst := conn.Connection.InstallationId

		regrant := func(perms map[string]string) {
			t.Helper()
			if err := e.reg.Backends.Emu.SetInstallationPermissions(inst, perms); err != nil {
				t.Fatal(err)
			}
			if _, err := e.reg.Client.RefreshAppPermissions(e.reg.Ctx(t, "alice"), &registryv1.RefreshAppPermissionsRequest{Id: id}); err != nil {
				t.Fatal(err)
			}
		}
		lessPerms := map[string]string{}
		for k, v := range allPerms {
			if k != "vulnerability_alerts" {
				lessPerms[k] = v
			}
		}
		lessPerms["contents"] = "write"
		regrant(lessPerms)

		lost := map[string]string{"vulnerability_alerts": "read"}
		e.eventually(t, "Dependabot alerts checks as missing a permission", func() bool {
			return e.check(t, id, "u", dependabot)[0].Reason == featuregatev1.Reason_REASON_MISSING_PERMISSIONS
		})
		got := e.check(t, id, "u", search, dependabot)
		if !got[0].Effective || got[1].Effective || !cmp.Equal(got[1].MissingPermissions, lost) {
			t.Errorf("check after the permission went: %v", got)
		}
		st, err := e.gate.GetSettings(e.ctx(t, "admin"), &featuregatev1.GetSettingsRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range st.Settings.Features {
			want := map[string]string{}
			if f.Feature == dependabot {
				want = lost
			}
			if f.Feature == dependabot && !f.Enabled {
				t.Errorf("the feature was switched off; it should stay on, not working")
			}
			if len(f.MissingPermissions) != len(want) || (len(want) > 0 && !cmp.Equal(f.MissingPermissions, want)) {
				t.Errorf("%s missing_permissions = %v, want %v", f.Feature, f.MissingPermissions, want)
			}
		}
		// A caller cannot set what is derived.
		_, err = e.set(t, id, &featuregatev1.FeatureSetting{Feature: search, Enabled: true, MissingPermissions: map[string]string{"x": "read"}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("missing_permissions set by a caller: %v", err)
		}

		regrant(allPerms)
		e.eventually(t, "Dependabot alerts works again", func() bool { return e.check(t, id, "u", dependabot)[0].Effective })

		h, err := e.gate.ListSettingsHistory(e.ctx(t, "admin"), &featuregatev1.ListSettingsHistoryRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		var changes []*featuregatev1.SettingsEvent
		for _, ev := range h.Events {
			if ev.Action == "permissions_changed" {
				changes = append(changes, ev)
			}
		}
		if len(changes) != 2 {
			t.Fatalf("want 2 permissions_changed events, got %d: %v", len(changes), h.Events)
		}
		first, second := changes[0], changes[1]
		if !cmp.Equal(first.PermissionsLost, lost) || !cmp.Equal(first.PermissionsGained, map[string]string{"contents": "write"}) ||
			!cmp.Equal(first.StoppedWorking, []featuregatev1.Feature{dependabot}) || len(first.WorkingAgain) != 0 {
			t.Errorf("first change: %v", first)
		}
		if !cmp.Equal(second.PermissionsGained, lost) || !cmp.Equal(second.PermissionsLost, map[string]string{"contents": "write"}) ||
			!cmp.Equal(second.WorkingAgain, []featuregatev1.Feature{dependabot}) || len(second.StoppedWorking) != 0 {
			t.Errorf("second change: %v", second)
		}
	})
}
