package featuregate

import (
	"testing"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/google/go-cmp/cmp"
)

// Every SettingsAction has its stored name and words (the code writes
// actions only as these enum values: event.action is one), and the table
// holds nothing else.
func TestEveryActionHasNameAndWords(t *testing.T) {
	if err := audit.Check(featuregatev1.SettingsAction(0).Descriptor().Values(), &featuregatev1.SettingsEvent{}); err != nil {
		t.Fatal(err)
	}
}

// The words of the actions that say the event's details, and of one this
// gate does not know.
func TestActionWords(t *testing.T) {
	for _, tc := range []struct {
		ev   *featuregatev1.SettingsEvent
		want string
	}{
		{&featuregatev1.SettingsEvent{Action: "update_settings"}, "Feature settings saved, nothing changed"},
		{&featuregatev1.SettingsEvent{Action: "update_settings", Changes: []*featuregatev1.SettingChange{{Feature: featuregatev1.Feature_FEATURE_UNIFIED_SEARCH}}}, "Feature settings changed"},
		{&featuregatev1.SettingsEvent{Action: "set_consent", User: "mona", Feature: featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS, OptedIn: true}, "mona opted in to Unified contributions"},
		{&featuregatev1.SettingsEvent{Action: "set_consent", User: "mona", Feature: featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS}, "mona opted out of Unified contributions"},
		{&featuregatev1.SettingsEvent{Action: "link_account", User: "mona", GithubLogin: "mona-cloud"}, "mona linked the GitHub.com account mona-cloud"},
		{&featuregatev1.SettingsEvent{Action: "unlink_account", User: "mona"}, "mona's GitHub.com account was unlinked"},
		{&featuregatev1.SettingsEvent{Action: "link_reconnect_needed", User: "mona"}, "mona's GitHub.com account must be connected again: GitHub.com no longer accepts its authorization"},
		{&featuregatev1.SettingsEvent{Action: "permissions_changed", PermissionsGained: map[string]string{"issues": "read", "contents": "write"}},
			"The App's permissions changed: gained contents:write, issues:read, lost nothing"},
		{&featuregatev1.SettingsEvent{Action: "permissions_changed", PermissionsLost: map[string]string{"vulnerability_alerts": "read"},
			StoppedWorking: []featuregatev1.Feature{featuregatev1.Feature_FEATURE_DEPENDABOT_ALERTS, featuregatev1.Feature_FEATURE_UNIFIED_SEARCH},
			WorkingAgain:   []featuregatev1.Feature{featuregatev1.Feature_FEATURE_LICENSE_SYNC}},
			"The App's permissions changed: gained nothing, lost vulnerability_alerts:read; on but no longer working: Dependabot alerts, Unified search; working again: Automatic user license sync"},
		{&featuregatev1.SettingsEvent{Action: "feature_renamed:v9"}, "Change: feature renamed v9"},
	} {
		if diff := cmp.Diff(tc.want, audit.Summary(tc.ev.Action, tc.ev)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.ev.Action, diff)
		}
	}
}
