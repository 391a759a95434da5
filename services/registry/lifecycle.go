package registry

import (
	"errors"
	"fmt"
	"strings"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The lifecycle of a connection, in one place: its states, the moves
// between them, and the name each move has in the history. The server's
// RPCs (server.go), enabling (enable.go), disconnecting and the reconciler
// (disconnect.go) and the key follower (keyfollow.go) change a connection
// only by a move (Store.Update takes one), and every move is a function
// below. A connection is live from create until complete_disconnect, and
// a server has one live connection at a time (Store.Create refuses another,
// the live slot of migration 005 holds it in the database):
//
//	move                      from                    to
//	create                    (new; none other live)  PENDING
//	app_created               PENDING without an App  PENDING, its App recorded
//	mark_connected            PENDING with an App     CONNECTED
//	connect_existing_app      PENDING without an App  CONNECTED
//	rotate_app_key, key_*     CONNECTED               CONNECTED
//	begin_disconnect          PENDING, CONNECTED      DISCONNECTING
//	disconnect_step:<step>    DISCONNECTING           DISCONNECTING, once per step
//	complete_disconnect       DISCONNECTING           DISCONNECTED (final)

const (
	statePending       = registryv1.ConnectionState_CONNECTION_STATE_PENDING
	stateConnected     = registryv1.ConnectionState_CONNECTION_STATE_CONNECTED
	stateDisconnecting = registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTING
	stateDisconnected  = registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED
)

// transitions are the changes of state: state → the states it may move
// to. A move that keeps the state changes fields only.
var transitions = map[registryv1.ConnectionState][]registryv1.ConnectionState{
	statePending:       {stateConnected, stateDisconnecting},
	stateConnected:     {stateDisconnecting},
	stateDisconnecting: {stateDisconnected},
}

// TransitionError says why a move is not allowed in the connection's
// current state.
type TransitionError struct {
	From, To registryv1.ConnectionState
	Why      string
	// cause is errAlreadyDone when the move was made already.
	cause error
}

func (e *TransitionError) Error() string {
	if e.Why != "" {
		return e.Why
	}
	return fmt.Sprintf("cannot go from %s to %s", stateName(e.From), stateName(e.To))
}

func (e *TransitionError) Unwrap() error { return e.cause }

// errAlreadyDone: another run of the disconnect (a replica, or the
// reconciler) already made the move.
var errAlreadyDone = errors.New("already done")

func stateName(s registryv1.ConnectionState) string {
	return strings.TrimPrefix(s.String(), "CONNECTION_STATE_")
}

func checkTransition(from, to registryv1.ConnectionState) error {
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// A Move is one change of a connection: its action in the history
// (actions.go), the rule that says whether a connection may make it, and
// what it changes. Only the functions in this file make moves.
type Move struct {
	action action
	// to is the state the move ends in; 0 keeps the state, and rule then
	// names the states the move may be made in.
	to registryv1.ConnectionState
	// rule refuses the move with the reason the caller sees, before the
	// transition is checked; nil allows it.
	rule  func(c *registryv1.Connection) error
	apply func(c *registryv1.Connection, now time.Time)
}

// Action is the move's name in the history, as stored.
func (m Move) Action() string { return history.Stored(m.action) }

// check says whether c may make the move.
func (m Move) check(c *registryv1.Connection) error {
	if m.action == registryv1.ConnectionAction_CONNECTION_ACTION_UNSPECIFIED {
		return errors.New("no move given")
	}
	if m.rule != nil {
		if err := m.rule(c); err != nil {
			return err
		}
	}
	if m.to != registryv1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
		return checkTransition(c.State, m.to)
	}
	return nil
}

// make applies the move to c at now, or refuses it.
func (m Move) make(c *registryv1.Connection, now time.Time) error {
	if err := m.check(c); err != nil {
		return err
	}
	if m.to != registryv1.ConnectionState_CONNECTION_STATE_UNSPECIFIED {
		c.State = m.to
	}
	if m.apply != nil {
		m.apply(c, now)
	}
	return nil
}

// The rules: each says whether a connection may make a move, and if not,
// why in words for the caller. Enabling checks them before it calls
// GitHub.com or Vault too, so a refused move costs nothing.

// mayEnable: enabling starts from a PENDING connection (with its App
// recorded, it resumes at the installation).
func mayEnable(c *registryv1.Connection) error {
	return inState(c, statePending, "the connection must be PENDING to enable GitHub Connect")
}

// waitingForApp: the manifest flow records an App only on a PENDING
// connection that has none yet.
func waitingForApp(c *registryv1.Connection) error {
	return pendingWithApp(c, false, "the connection is no longer waiting for its App")
}

// waitingForInstallation: a PENDING connection with its App connects once
// the App is installed.
func waitingForInstallation(c *registryv1.Connection) error {
	return pendingWithApp(c, true, "the connection is not waiting for its installation")
}

// mayConnectExistingApp: an existing App connects a PENDING connection
// that has no App yet.
func mayConnectExistingApp(c *registryv1.Connection) error {
	return pendingWithApp(c, false, "the connection must be PENDING without an App")
}

// mayRotateKey: the App key of a CONNECTED connection can be rotated.
func mayRotateKey(c *registryv1.Connection) error {
	return inState(c, stateConnected, "only a CONNECTED connection's key can be rotated")
}

func inState(c *registryv1.Connection, s registryv1.ConnectionState, why string) error {
	if c.State != s {
		return &TransitionError{From: c.State, Why: why}
	}
	return nil
}

// pendingWithApp refuses unless c is PENDING and has (app) or has not yet
// (!app) its App recorded.
func pendingWithApp(c *registryv1.Connection, app bool, why string) error {
	if c.State != statePending || (c.App != nil) != app {
		return &TransitionError{From: c.State, Why: why}
	}
	return nil
}

// holdsKey reports whether c may still sign with its transit key: from the
// moment its App is recorded until its disconnect is complete. The
// reconciler deletes the keys of the others.
func holdsKey(c *registryv1.Connection) bool {
	return c.App != nil && c.State != stateDisconnected
}

// disconnected reports whether c's disconnect is complete (DISCONNECTED is
// final).
func disconnected(c *registryv1.Connection) bool { return c.State == stateDisconnected }

// The moves of enabling.

// appCreated records the App the manifest flow created, its key imported.
func appCreated(app *registryv1.GitHubApp, key *registryv1.TransitKey) Move {
	return Move{action: actionAppCreated, rule: waitingForApp,
		apply: func(c *registryv1.Connection, _ time.Time) { c.App, c.TransitKey = app, key }}
}

// markConnected connects a connection whose App was installed.
func markConnected(installationID int64) Move {
	return Move{action: actionMarkConnected, to: stateConnected, rule: waitingForInstallation,
		apply: func(c *registryv1.Connection, now time.Time) {
			c.InstallationId = installationID
			c.ConnectTime = timestamppb.New(now)
		}}
}

// connectExistingApp connects with an App that existed already, its key
// imported.
func connectExistingApp(app *registryv1.GitHubApp, key *registryv1.TransitKey, installationID int64) Move {
	return Move{action: actionConnectExistingApp, to: stateConnected, rule: mayConnectExistingApp,
		apply: func(c *registryv1.Connection, now time.Time) {
			c.App, c.TransitKey = app, key
			c.InstallationId = installationID
			c.ConnectTime = timestamppb.New(now)
		}}
}

// withAccountID makes m record id as the GitHub.com id of the
// connection's account, as its installation says (an enterprise's id has
// no other source; an organization's was checked to be the same).
func withAccountID(m Move, id int64) Move {
	apply := m.apply
	m.apply = func(c *registryv1.Connection, now time.Time) {
		apply(c, now)
		if c.Account != nil {
			c.Account.Id = id
		}
	}
	return m
}

// The moves of a CONNECTED connection's key.

// rotateAppKey makes version, which GitHub.com accepts, the only one in
// use.
func rotateAppKey(version int32) Move {
	return Move{action: actionRotateAppKey, rule: mayRotateKey,
		apply: func(c *registryv1.Connection, _ time.Time) {
			c.TransitKey.Versions = []int32{version}
			c.TransitKey.PendingVersion, c.TransitKey.Notice = 0, ""
		}}
}

// The key follower's moves: what following the key in Vault found.

// keyVersionAdopted: a version imported in Vault that GitHub.com accepts
// signs from now on; versions are the ones in use.
func keyVersionAdopted(versions []int32) Move {
	return followedKey(actionKeyVersionAdopted, func(k *registryv1.TransitKey) {
		k.Versions = versions
		k.PendingVersion, k.Notice = 0, ""
	})
}

// keyVersionPending: version is in Vault but GitHub.com does not accept it
// yet, as notice says.
func keyVersionPending(version int32, notice string) Move {
	return followedKey(actionKeyVersionPending, func(k *registryv1.TransitKey) {
		k.PendingVersion, k.Notice = version, notice
	})
}

// keyVersionsRetired: the operator retired versions in Vault; kept are the
// ones left.
func keyVersionsRetired(kept []int32) Move {
	return followedKey(actionKeyVersionsRetired, func(k *registryv1.TransitKey) { k.Versions = kept })
}

// keyVersionPendingCleared: the record matches Vault again.
func keyVersionPendingCleared() Move {
	return followedKey(actionKeyVersionPendingCleared, func(k *registryv1.TransitKey) {
		k.PendingVersion, k.Notice = 0, ""
	})
}

func followedKey(a action, fn func(*registryv1.TransitKey)) Move {
	return Move{action: a,
		rule: func(c *registryv1.Connection) error {
			return inState(c, stateConnected, "the connection is no longer CONNECTED")
		},
		apply: func(c *registryv1.Connection, _ time.Time) { fn(c.TransitKey) }}
}

// The moves of a disconnect.

// beginDisconnect starts the disconnect of a PENDING or CONNECTED
// connection.
func beginDisconnect() Move { return Move{action: actionBeginDisconnect, to: stateDisconnecting} }

// disconnectStep records that step of the disconnect is done; once only
// (errAlreadyDone). A step without an action (stepActions) is no move.
func disconnectStep(step string) Move {
	return Move{action: stepActions[step],
		rule: func(c *registryv1.Connection) error {
			for _, s := range c.DisconnectSteps {
				if s == step {
					return &TransitionError{From: c.State, Why: "disconnect step " + step + " is done already", cause: errAlreadyDone}
				}
			}
			return inState(c, stateDisconnecting, "disconnect steps are recorded while the connection is DISCONNECTING")
		},
		apply: func(c *registryv1.Connection, _ time.Time) { c.DisconnectSteps = append(c.DisconnectSteps, step) }}
}

// completeDisconnect ends the disconnect once its steps are done; once
// only (errAlreadyDone).
func completeDisconnect() Move {
	return Move{action: actionCompleteDisconnect, to: stateDisconnected,
		rule: func(c *registryv1.Connection) error {
			if disconnected(c) {
				return &TransitionError{From: c.State, To: stateDisconnected, cause: errAlreadyDone}
			}
			return nil
		},
		apply: func(c *registryv1.Connection, now time.Time) { c.DisconnectTime = timestamppb.New(now) }}
}

// appPermissionsRefreshed records the permissions the App's installation
// grants, as GitHub.com says now.
func appPermissionsRefreshed(perms map[string]string) Move {
	return Move{action: actionAppPermissionsRefreshed, rule: func(c *registryv1.Connection) error {
		return inState(c, stateConnected, "only a connected connection's App permissions can be refreshed")
	}, apply: func(c *registryv1.Connection, _ time.Time) { c.App.Permissions = perms }}
}
