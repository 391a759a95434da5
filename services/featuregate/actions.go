package featuregate

import (
	"fmt"
	"strings"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/actions"
	"github.com/ghconnect/ghconnect/pkg/permissions"
)

// The audit's actions: each SettingsAction (featuregate.proto) with the
// name gate_events.action stores and its words, some with the event's
// details. The store writes them, the view replays them and the history
// serves each event's action_kind and summary from here, so the admin page
// words none itself.

type action = featuregatev1.SettingsAction

const (
	actionUpdateSettings = featuregatev1.SettingsAction_SETTINGS_ACTION_UPDATE_SETTINGS
	actionConnected      = featuregatev1.SettingsAction_SETTINGS_ACTION_CONNECTED
	actionDisconnected   = featuregatev1.SettingsAction_SETTINGS_ACTION_DISCONNECTED
	actionSetConsent     = featuregatev1.SettingsAction_SETTINGS_ACTION_SET_CONSENT
	actionLinkAccount    = featuregatev1.SettingsAction_SETTINGS_ACTION_LINK_ACCOUNT
	actionUnlinkAccount  = featuregatev1.SettingsAction_SETTINGS_ACTION_UNLINK_ACCOUNT
	// actionPermissionsChanged: the connection's App was granted other
	// permissions (a Refresh permissions in the registry).
	actionPermissionsChanged = featuregatev1.SettingsAction_SETTINGS_ACTION_PERMISSIONS_CHANGED
	// actionLinkBroken: GitHub.com no longer accepts the link's
	// authorization; the user must link again.
	actionLinkBroken = featuregatev1.SettingsAction_SETTINGS_ACTION_LINK_RECONNECT_NEEDED
)

type ev = *featuregatev1.SettingsEvent

var audit = actions.NewTable(map[action]actions.Entry[ev]{
	actionUpdateSettings: {Stored: "update_settings", Words: func(e ev) string {
		if len(e.GetChanges()) == 0 {
			return "Feature settings saved, nothing changed"
		}
		return "Feature settings changed"
	}},
	actionConnected:          {Stored: "connected", Words: actions.Say[ev]("Features can be switched on: the connection is connected")},
	actionPermissionsChanged: {Stored: "permissions_changed", Words: permissionsWords},
	actionDisconnected:       {Stored: "disconnected", Words: actions.Say[ev]("Every feature was switched off: the connection is no longer connected")},
	actionSetConsent: {Stored: "set_consent", Words: func(e ev) string {
		way := "out of"
		if e.GetOptedIn() {
			way = "in to"
		}
		return fmt.Sprintf("%s opted %s %s", e.GetUser(), way, featureTitle(e.GetFeature()))
	}},
	actionLinkAccount: {Stored: "link_account", Words: func(e ev) string {
		return fmt.Sprintf("%s linked the GitHub.com account %s", e.GetUser(), e.GetGithubLogin())
	}},
	actionUnlinkAccount: {Stored: "unlink_account", Words: func(e ev) string { return e.GetUser() + "'s GitHub.com account was unlinked" }},
	actionLinkBroken: {Stored: "link_reconnect_needed", Words: func(e ev) string {
		return e.GetUser() + "'s GitHub.com account must be connected again: GitHub.com no longer accepts its authorization"
	}},
})

// permissionsWords says what a permissions_changed event found: what the
// App gained and lost, and which features that are on stopped or started
// working.
func permissionsWords(e ev) string {
	set := func(p map[string]string) string {
		if len(p) == 0 {
			return "nothing"
		}
		return permissions.String(p)
	}
	parts := []string{fmt.Sprintf("The App's permissions changed: gained %s, lost %s", set(e.GetPermissionsGained()), set(e.GetPermissionsLost()))}
	if fs := e.GetStoppedWorking(); len(fs) > 0 {
		parts = append(parts, "on but no longer working: "+featureTitles(fs))
	}
	if fs := e.GetWorkingAgain(); len(fs) > 0 {
		parts = append(parts, "working again: "+featureTitles(fs))
	}
	return strings.Join(parts, "; ")
}

// featureTitle is a feature's title in the catalog, or its name in words
// for one the catalog does not hold.
func featureTitle(f featuregatev1.Feature) string {
	if info, ok := byFeature[f]; ok {
		return info.Title
	}
	return strings.ReplaceAll(featureName(f), "_", " ")
}

func featureTitles(fs []featuregatev1.Feature) string {
	titles := make([]string, len(fs))
	for i, f := range fs {
		titles[i] = featureTitle(f)
	}
	return strings.Join(titles, ", ")
}
