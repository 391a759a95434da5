package registry

import (
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/actions"
)

// The history's actions: each ConnectionAction (registry.proto) with the
// name the history stores and its words. Every move (lifecycle.go) is one
// of them; events are served with their action_kind and summary from here
// (describeEvent), so the admin page words none itself.

type action = registryv1.ConnectionAction

const (
	actionCreate                   = registryv1.ConnectionAction_CONNECTION_ACTION_CREATE
	actionAppCreated               = registryv1.ConnectionAction_CONNECTION_ACTION_APP_CREATED
	actionMarkConnected            = registryv1.ConnectionAction_CONNECTION_ACTION_MARK_CONNECTED
	actionConnectExistingApp       = registryv1.ConnectionAction_CONNECTION_ACTION_CONNECT_EXISTING_APP
	actionRotateAppKey             = registryv1.ConnectionAction_CONNECTION_ACTION_ROTATE_APP_KEY
	actionKeyVersionAdopted        = registryv1.ConnectionAction_CONNECTION_ACTION_KEY_VERSION_ADOPTED
	actionKeyVersionPending        = registryv1.ConnectionAction_CONNECTION_ACTION_KEY_VERSION_PENDING
	actionKeyVersionsRetired       = registryv1.ConnectionAction_CONNECTION_ACTION_KEY_VERSIONS_RETIRED
	actionKeyVersionPendingCleared = registryv1.ConnectionAction_CONNECTION_ACTION_KEY_VERSION_PENDING_CLEARED
	actionAppPermissionsRefreshed  = registryv1.ConnectionAction_CONNECTION_ACTION_APP_PERMISSIONS_REFRESHED
	actionAppGone                  = registryv1.ConnectionAction_CONNECTION_ACTION_APP_DELETED_ON_GITHUB
	actionBeginDisconnect          = registryv1.ConnectionAction_CONNECTION_ACTION_BEGIN_DISCONNECT
	actionCompleteDisconnect       = registryv1.ConnectionAction_CONNECTION_ACTION_COMPLETE_DISCONNECT
)

// stepActions are the disconnect's steps (disconnect.go), each the action
// that records it.
var stepActions = map[string]action{
	stepFeaturesOff:         registryv1.ConnectionAction_CONNECTION_ACTION_DISCONNECT_STEP_FEATURES_OFF,
	stepTokensRevoked:       registryv1.ConnectionAction_CONNECTION_ACTION_DISCONNECT_STEP_TOKENS_REVOKED,
	stepInstallationRemoved: registryv1.ConnectionAction_CONNECTION_ACTION_DISCONNECT_STEP_INSTALLATION_REMOVED,
	stepKeyDeleted:          registryv1.ConnectionAction_CONNECTION_ACTION_DISCONNECT_STEP_KEY_DELETED,
}

// said is an action stored as stored, whose words need nothing of the
// event.
func said(stored, words string) actions.Entry[*registryv1.ConnectionEvent] {
	return actions.Entry[*registryv1.ConnectionEvent]{Stored: stored, Words: actions.Say[*registryv1.ConnectionEvent](words)}
}

var history = actions.NewTable(map[action]actions.Entry[*registryv1.ConnectionEvent]{
	actionCreate:                         said("create", "Enabling began: the connection record was created"),
	actionAppCreated:                     said("app_created", "Enable: the GitHub App was created on GitHub.com and its private key stored in Vault"),
	actionMarkConnected:                  said("mark_connected", "Enable: the App's installation was verified; GitHub Connect is enabled"),
	actionConnectExistingApp:             said("connect_existing_app", "Enable: an existing GitHub App was connected and its private key imported into Vault"),
	actionRotateAppKey:                   said("rotate_app_key", "The App's private key was rotated: a new key version signs"),
	actionKeyVersionAdopted:              said("key_version_adopted", "A new App key version in Vault was accepted by GitHub.com and signs"),
	actionKeyVersionPending:              said("key_version_pending", "A new App key version is in Vault, but GitHub.com does not accept it yet"),
	actionKeyVersionsRetired:             said("key_versions_retired", "Older App key versions were retired in Vault"),
	actionKeyVersionPendingCleared:       said("key_version_pending_cleared", "The key versions on record match Vault again"),
	actionAppPermissionsRefreshed:        said("app_permissions_refreshed", "The App's permissions were read again from its installation on GitHub.com"),
	actionAppGone:                        said("app_deleted_on_github", "The GitHub App left on GitHub.com was found deleted there"),
	actionBeginDisconnect:                said("begin_disconnect", "Disconnect began"),
	stepActions[stepFeaturesOff]:         said("disconnect_step:"+stepFeaturesOff, "Disconnect: every feature was switched off"),
	stepActions[stepTokensRevoked]:       said("disconnect_step:"+stepTokensRevoked, "Disconnect: the GitHub.com tokens issued for the connection were revoked"),
	stepActions[stepInstallationRemoved]: said("disconnect_step:"+stepInstallationRemoved, "Disconnect: the GitHub App's installation was removed on GitHub.com"),
	stepActions[stepKeyDeleted]:          said("disconnect_step:"+stepKeyDeleted, "Disconnect: the App key was deleted in Vault"),
	actionCompleteDisconnect:             said("complete_disconnect", "Disconnect finished: GitHub Connect is disabled"),
	// Written by the first versions only; their rows still read in words.
	registryv1.ConnectionAction_CONNECTION_ACTION_REGISTER_APP:        said("register_app", "Enable: the GitHub App was registered"),
	registryv1.ConnectionAction_CONNECTION_ACTION_UPDATE_KEY_VERSIONS: said("update_key_versions", "The App key versions in use were updated"),
})

// describeEvent fills what an event read from the history says of its
// stored action: the enum and the words.
func describeEvent(ev *registryv1.ConnectionEvent) {
	ev.ActionKind = history.Of(ev.Action)
	ev.Summary = history.Summary(ev.Action, ev)
}
