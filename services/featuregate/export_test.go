package featuregate

import (
	"context"
	"database/sql"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

// Link records a link on the store directly, as CompleteAccountLink does
// once GitHub.com proved it: for the tests of what a link changes (Check,
// consents, the history), not of linking, which the link tests run
// through GitHub.com's authorization end to end.
func Link(ctx context.Context, s *Store, conn, user, githubLogin string, githubID int64, actor string) error {
	return s.Link(ctx, conn, &featuregatev1.AccountLink{User: user, GithubLogin: githubLogin, GithubId: githubID}, who{actor: actor})
}

// MarkLinkBroken marks user's link as GitHub.com no longer accepting it,
// as the gate does when the broker says so.
func MarkLinkBroken(ctx context.Context, s *Store, conn, user string) error {
	return s.MarkLinkBroken(ctx, conn, user, linkBroken)
}

// LinkOptedIn records links that GitHub.com proved and opt-ins to unified
// contributions of many users at once, straight into the tables: for the
// benchmark's 100,000 users, which 100,000 authorizations and history
// events would take minutes to set up. The users have no counts yet, so
// there is nothing to backfill. Linking and opting in themselves are
// tested one by one through the RPCs.
func LinkOptedIn(ctx context.Context, s *Store, conn string, links []*featuregatev1.AccountLink) error {
	now := s.now().UnixMicro()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, l := range links {
			if _, err := s.registerTx(ctx, tx, l.User); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO gate_links (connection_id, user_login, github_login, github_id, link_time, status) VALUES ($1, $2, $3, $4, $5, $6)`,
				conn, l.User, l.GithubLogin, l.GithubId, now, int32(activeLink)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO gate_consents (connection_id, user_login, feature, opted_in, update_time) VALUES ($1, $2, $3, 1, $4)`,
				conn, l.User, int32(featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS), now); err != nil {
				return err
			}
		}
		return nil
	})
}

// WaitState is why a connection's queued counts wait, given what the
// uploader recorded.
func WaitState(reason featuregatev1.Reason, success, failure int64, lastError string) (featuregatev1.ContributionsState, string) {
	return waitState(reason, uploadsRecord{success: success, failure: failure, lastError: lastError})
}

// MigrationFiles are the store's migrations, for the tests of a database
// made by an earlier version.
var MigrationFiles = migrationFiles

// Registered is which of users are registered server users.
func Registered(ctx context.Context, s *Store, users []string) (map[string]bool, error) {
	return registered(ctx, s.db, users)
}

// Schema is the store's migrations, for tests that want a database the
// store has migrated already (testenv clones a template of it).
var Schema = testenv.Schema{Service: "featuregate", Files: migrationFiles, Dir: "migrations"}

// ApplyRegistry applies one registry event to the store, as the gate's
// registry follower does: connection id is (or is not) CONNECTED with
// perms, at registry revision regRev.
func ApplyRegistry(ctx context.Context, s *Store, id string, connected bool, perms map[string]string, regRev int64) error {
	return s.ApplyConnection(ctx, id, connState{Connected: connected, Permissions: perms}, regRev)
}

// Switch turns feature f of connection id on or off as actor, as
// UpdateSettings does for an admin.
func Switch(ctx context.Context, s *Store, id, actor string, f featuregatev1.Feature, on bool) error {
	_, err := s.UpdateSettings(ctx, id, "", who{actor: actor}, []*featuregatev1.FeatureSetting{{Feature: f, Enabled: on}})
	return err
}

// StoredSettings reads a connection's settings as stored, with the etag
// of their version and nothing else derived (no App permissions or
// registry etag): for the tests of the stored form.
func StoredSettings(ctx context.Context, s *Store, id string) (*featuregatev1.Settings, error) {
	return settingsTx(ctx, s.db, id)
}

// WriteSettings stores st as every change of settings does (st.Etag is
// the version it replaces: empty for none), without the checks and the
// event around it: for the tests of the stored form.
func WriteSettings(ctx context.Context, s *Store, st *featuregatev1.Settings) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return writeSettingsTx(ctx, tx, st) })
}

// AppendSnapshot appends an event with snapshot w, as every change the
// gate sends to Watch does, and returns its revision (also set in w).
func AppendSnapshot(ctx context.Context, s *Store, w *featuregatev1.WatchResponse) (int64, error) {
	var rev int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		rev, err = s.appendEventTx(ctx, tx, event{connectionID: w.GetSettings().GetConnectionId(), action: actionUpdateSettings, by: who{actor: "test"}, detail: map[string]any{}, snapshot: w})
		return err
	})
	return rev, err
}

// ViewSnapshot is connection id's latest snapshot as the store's view
// (what Check answers from) has it after reading the events table.
func ViewSnapshot(ctx context.Context, s *Store, id string) (*featuregatev1.WatchResponse, error) {
	if err := s.view.catchUp(ctx); err != nil {
		return nil, err
	}
	return s.view.get(id), nil
}
