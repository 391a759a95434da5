package featuregate

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/ghconnect/ghconnect/services/featuregate/ghactions"
	"github.com/ghconnect/ghconnect/services/featuregate/licensesync"
	"github.com/ghconnect/ghconnect/services/featuregate/serverstats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store errors, mapped to gRPC codes by the server.
var (
	ErrConflict     = errors.New("settings were changed by someone else; read them again and retry")
	ErrLinkTaken    = errors.New("that GitHub.com account is already linked to another user")
	ErrNotLinked    = errors.New("the user has no linked GitHub.com account")
	ErrNotConnected = errors.New("the connection is not CONNECTED; features can only be enabled on a connected connection")
	// ErrUnknownConnection refuses counts for a connection the gate has
	// not heard of from the registry (a wrong id, or one created a moment
	// ago: then try again).
	ErrUnknownConnection = errors.New("the feature gate knows no such connection")
)

// MissingPermissionsError refuses enabling features the App cannot serve.
type MissingPermissionsError struct {
	Feature featuregatev1.Feature
	Missing map[string]string
}

func (e *MissingPermissionsError) Error() string {
	return fmt.Sprintf("%s needs App permissions the connection lacks: %s", featureName(e.Feature), permissions.String(e.Missing))
}

// connState is what the gate mirrors of a registry connection.
type connState struct {
	Connected    bool
	Permissions  map[string]string
	AccountLogin string
	// AccountKind is the registry's AccountKind name, such as
	// ACCOUNT_KIND_ENTERPRISE.
	AccountKind string
	// ServerHostname and ServerVersion name the server to GitHub.com.
	ServerHostname, ServerVersion string
	// Etag is the registry record's etag this state is of.
	Etag string
}

// Store keeps the gate's data in SQL, and this replica's view of it.
type Store struct {
	db  *sqldb.DB
	now func() time.Time
	sqldb.Notifier
	// view is what Check answers from. Each commit brings it up to date
	// before watchers are woken, so this replica's Check never lags its
	// Watch.
	view *view
	// advisories are Dependabot's vulnerability data, in the same
	// database (see the advisories package).
	advisories *advisories.Store
	// actions is GitHub.com actions' policy and status, likewise.
	actions *ghactions.Store
	// licenses are license sync's users, hashed, likewise.
	licenses *licensesync.Store
	// stats are Server Statistics' reports, likewise.
	stats *serverstats.Store
}

// commitThen runs fn in a transaction and, once committed, refreshes
// this replica's view.
func (s *Store) commitThen(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.db.InTx(ctx, fn); err != nil {
		return err
	}
	s.afterCommit(ctx)
	return nil
}

func (s *Store) afterCommit(ctx context.Context) {
	s.view.update(ctx)
	s.Notify()
}

// OpenStore opens dsn and brings its schema up to date.
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	db, err := sqldb.OpenMigrated(ctx, dsn, migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	adv, err := advisories.Open(ctx, db)
	if err != nil {
		_ = db.Close() // the migration's error is the one to report
		return nil, err
	}
	act, err := ghactions.Open(ctx, db)
	if err != nil {
		_ = db.Close() // the migration's error is the one to report
		return nil, err
	}
	lic, err := licensesync.Open(ctx, db)
	if err != nil {
		_ = db.Close() // the migration's error is the one to report
		return nil, err
	}
	stats, err := serverstats.Open(ctx, db)
	if err != nil {
		_ = db.Close() // the migration's error is the one to report
		return nil, err
	}
	s := &Store{db: db, now: time.Now, advisories: adv, actions: act, licenses: lic, stats: stats}
	s.view = newView(s.events, s.Changed)
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func connTx(ctx context.Context, tx queryer, id string) (connState, bool, error) {
	var connected int
	var perms string
	var etag string
	err := tx.QueryRowContext(ctx, `SELECT connected, permissions, registry_etag FROM gate_connections WHERE connection_id = $1`, id).Scan(&connected, &perms, &etag)
	if errors.Is(err, sql.ErrNoRows) {
		return connState{}, false, nil
	}
	if err != nil {
		return connState{}, false, err
	}
	st := connState{Connected: connected == 1, Etag: etag}
	if err := json.Unmarshal([]byte(perms), &st.Permissions); err != nil {
		return connState{}, false, err
	}
	return st, true, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func settingsTx(ctx context.Context, q queryer, id string) (*featuregatev1.Settings, error) {
	var raw string
	var version int64
	err := q.QueryRowContext(ctx, `SELECT settings, version FROM gate_settings WHERE connection_id = $1`, id).Scan(&raw, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return defaultSettings(id), nil
	}
	if err != nil {
		return nil, err
	}
	st, err := decodeSettings(raw)
	if err != nil {
		return nil, err
	}
	st.Etag = strconv.FormatInt(version, 10)
	return st, nil
}

// Settings returns a connection's settings (all off when never set), each
// feature with the App permissions it lacks.
func (s *Store) Settings(ctx context.Context, id string) (*featuregatev1.Settings, error) {
	st, err := settingsTx(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	conn, _, err := connTx(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	withMissing(st, conn.Permissions)
	st.ConnectionEtag = conn.Etag
	return st, nil
}

// withMissing sets each feature's missing_permissions from the App's
// permissions: they are derived on every read, never stored, so they
// follow the App whatever the settings' age.
func withMissing(st *featuregatev1.Settings, granted map[string]string) {
	for _, f := range st.Features {
		f.MissingPermissions = permissions.Missing(granted, byFeature[f.Feature].Permissions)
	}
}

func writeSettingsTx(ctx context.Context, tx *sql.Tx, st *featuregatev1.Settings) error {
	old, _ := strconv.ParseInt(st.Etag, 10, 64)
	raw, err := encodeSettings(st)
	if err != nil {
		return err
	}
	var res sql.Result
	if old == 0 {
		res, err = tx.ExecContext(ctx, `INSERT INTO gate_settings (connection_id, version, settings) VALUES ($1, 1, $2) ON CONFLICT (connection_id) DO NOTHING`, st.ConnectionId, raw)
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE gate_settings SET version = $1, settings = $2 WHERE connection_id = $3 AND version = $4`, old+1, raw, st.ConnectionId, old)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return ErrConflict
	}
	st.Etag = strconv.FormatInt(old+1, 10)
	return nil
}

// who made a change: the actor (a person, a service or "system:…") and
// the service that forwarded the actor's call (empty for a direct caller).
type who struct{ actor, via string }

// event is one row of gate_events.
type event struct {
	connectionID string
	action       action
	by           who
	detail       any
	snapshot     *featuregatev1.WatchResponse
}

func (s *Store) appendEventTx(ctx context.Context, tx *sql.Tx, ev event) (int64, error) {
	rev, err := sqldb.NextRevision(ctx, tx)
	if err != nil {
		return 0, err
	}
	detail, err := json.Marshal(ev.detail)
	if err != nil {
		return 0, err
	}
	var snap string
	if ev.snapshot != nil {
		ev.snapshot.Revision = rev
		if snap, err = encodeSnapshot(ev.snapshot); err != nil {
			return 0, err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO gate_events (revision, connection_id, action, actor, via, event_time, detail, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		rev, ev.connectionID, audit.Stored(ev.action), ev.by.actor, ev.by.via, s.now().UnixMicro(), string(detail), snap)
	return rev, err
}

// UpdateSettings applies changes to a connection's settings. Enabling needs
// the connection CONNECTED and the App's permissions for the feature.
// Unified search's include_private is a setting of its own, as on GHES: it
// is kept as given while search is off (and has no effect then), so
// switching search off and on again does not lose it.
func (s *Store) UpdateSettings(ctx context.Context, id, etag string, by who, changes []*featuregatev1.FeatureSetting) (*featuregatev1.Settings, error) {
	var out *featuregatev1.Settings
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The snapshot this appends holds the connection's state as read
		// here: no registry change may commit in between.
		if err := sqldb.LockRevisions(ctx, tx); err != nil {
			return err
		}
		cur, err := settingsTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if etag != "" && etag != cur.Etag {
			return ErrConflict
		}
		conn, _, err := connTx(ctx, tx, id)
		if err != nil {
			return err
		}
		before := proto.Clone(cur).(*featuregatev1.Settings)
		for _, ch := range changes {
			if ch.Enabled {
				if !conn.Connected {
					return ErrNotConnected
				}
				if missing := permissions.Missing(conn.Permissions, byFeature[ch.Feature].Permissions); len(missing) > 0 {
					return &MissingPermissionsError{Feature: ch.Feature, Missing: missing}
				}
			}
			for _, f := range cur.Features {
				if f.Feature == ch.Feature {
					f.Enabled, f.IncludePrivate = ch.Enabled, ch.IncludePrivate
				}
			}
		}
		cur.UpdateTime = timestamppb.New(s.now())
		cur.UpdatedBy = by.actor
		if err := writeSettingsTx(ctx, tx, cur); err != nil {
			return err
		}
		withMissing(cur, conn.Permissions)
		cur.ConnectionEtag = conn.Etag
		_, err = s.appendEventTx(ctx, tx, event{
			connectionID: id, action: actionUpdateSettings, by: by,
			detail:   map[string]any{"from": settingsDetail(before), "to": settingsDetail(cur)},
			snapshot: &featuregatev1.WatchResponse{Settings: cur, Connected: conn.Connected},
		})
		out = cur
		return err
	})
	if err != nil {
		return nil, err
	}
	s.afterCommit(ctx)
	return out, nil
}

// settingsDetail is the audit form of settings: feature → on/off
// (+private, kept while off too).
func settingsDetail(st *featuregatev1.Settings) map[string]string {
	out := map[string]string{}
	for _, f := range st.Features {
		v := "off"
		if f.Enabled {
			v = "on"
		}
		if f.IncludePrivate {
			v += "+private"
		}
		out[featureName(f.Feature)] = v
	}
	return out
}

// ApplyConnection records a registry change of connection id at registry
// revision regRev. Leaving CONNECTED switches every feature off in the same
// transaction, so subscribers see one event with everything off.
func (s *Store) ApplyConnection(ctx context.Context, id string, st connState, regRev int64) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Every gate sharing this database follows the registry, so each
		// registry revision arrives once per gate, at once or late.
		// Advancing the cursor decides which copy applies it: a copy at or
		// below the cursor is one this database already has (or older than
		// it), and applying it would put back a state the registry left.
		// On PostgreSQL the update also waits for a sibling applying the
		// same revision, and then finds the cursor moved.
		res, err := tx.ExecContext(ctx, `UPDATE gate_registry_cursor SET revision = $1 WHERE id = 1 AND revision < $1`, regRev)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := sqldb.LockRevisions(ctx, tx); err != nil {
			return err
		}
		prev, known, err := connTx(ctx, tx, id)
		if err != nil {
			return err
		}
		perms, _ := json.Marshal(st.Permissions)
		connected := 0
		if st.Connected {
			connected = 1
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gate_connections (connection_id, connected, permissions, account_login, registry_etag, account_kind, server_hostname, server_version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (connection_id) DO UPDATE SET connected = excluded.connected, permissions = excluded.permissions, account_login = excluded.account_login,
			registry_etag = excluded.registry_etag, account_kind = excluded.account_kind, server_hostname = excluded.server_hostname, server_version = excluded.server_version`,
			id, connected, string(perms), st.AccountLogin, st.Etag, st.AccountKind, st.ServerHostname, st.ServerVersion); err != nil {
			return err
		}
		// A change of connectedness is news to subscribers, and so is a
		// change of a connected App's permissions (a feature that is on
		// may stop or start working); a connection first seen while not
		// connected has nothing on.
		permsChanged := known && prev.Connected && st.Connected && !maps.Equal(prev.Permissions, st.Permissions)
		if prev.Connected == st.Connected && (known || !st.Connected) && !permsChanged {
			return nil
		}
		cur, err := settingsTx(ctx, tx, id)
		if err != nil {
			return err
		}
		action := actionConnected
		detail := map[string]any{}
		if permsChanged {
			action = actionPermissionsChanged
			detail = permissionsDetail(prev.Permissions, st.Permissions, cur)
		}
		if !st.Connected {
			action = actionDisconnected
			before := settingsDetail(cur)
			for _, f := range cur.Features {
				f.Enabled, f.IncludePrivate = false, false
			}
			cur.UpdateTime = timestamppb.New(s.now())
			cur.UpdatedBy = "system:disconnect"
			if err := writeSettingsTx(ctx, tx, cur); err != nil {
				return err
			}
			detail = map[string]any{"from": before, "to": settingsDetail(cur)}
			// Everyone is unlinked too (the broker revokes their
			// authorizations on GitHub.com).
			if err := unlinkAllTx(ctx, s, tx, id); err != nil {
				return err
			}
		}
		withMissing(cur, st.Permissions)
		_, err = s.appendEventTx(ctx, tx, event{
			connectionID: id, action: action, by: who{actor: "system:registry"}, detail: detail,
			snapshot: &featuregatev1.WatchResponse{Settings: cur, Connected: st.Connected},
		})
		return err
	})
	if err != nil {
		return err
	}
	s.afterCommit(ctx)
	return nil
}

// permissionsDetail is the audit form of an App's new permissions: what
// it gained and lost, and which features that are on it left without a
// permission they need (or gave back).
func permissionsDetail(before, after map[string]string, st *featuregatev1.Settings) map[string]any {
	d := map[string]any{"gained": permissions.Missing(before, after), "lost": permissions.Missing(after, before)}
	var broken, restored []string
	for _, f := range st.Features {
		if !f.Enabled {
			continue
		}
		need := byFeature[f.Feature].Permissions
		was, now := len(permissions.Missing(before, need)) == 0, len(permissions.Missing(after, need)) == 0
		switch {
		case was && !now:
			broken = append(broken, featureName(f.Feature))
		case !was && now:
			restored = append(restored, featureName(f.Feature))
		}
	}
	d["stopped_working"], d["working_again"] = broken, restored
	return d
}

// unlinkAllTx removes every link of connection id, each with its event.
func unlinkAllTx(ctx context.Context, s *Store, tx *sql.Tx, id string) error {
	// The outbox lock first, as every change of links takes it.
	if _, err := nextSeqTx(ctx, tx); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT user_login FROM gate_links WHERE connection_id = $1 ORDER BY user_login`, id)
	if err != nil {
		return err
	}
	var users []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			rows.Close()
			return err
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM gate_links WHERE connection_id = $1`, id); err != nil {
		return err
	}
	// Nothing queued could leave any more (see contributions.go).
	if _, err := tx.ExecContext(ctx, `DELETE FROM gate_outbox WHERE connection_id = $1`, id); err != nil {
		return err
	}
	for _, u := range users {
		if _, err := s.appendEventTx(ctx, tx, event{connectionID: id, action: actionUnlinkAccount, by: who{actor: "system:registry"}, detail: map[string]any{"user": u}}); err != nil {
			return err
		}
	}
	return nil
}

// AccountLogin is the GitHub.com account a connection is connected to.
func (s *Store) AccountLogin(ctx context.Context, id string) (string, error) {
	var login string
	err := s.db.QueryRowContext(ctx, `SELECT account_login FROM gate_connections WHERE connection_id = $1`, id).Scan(&login)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return login, err
}

// connAccount is what the scheduled uploads need of a connection.
type connAccount struct {
	Login, Kind             string
	ServerHostname, Version string
}

// Enterprise says whether the connection is to an enterprise account.
func (a connAccount) Enterprise() bool { return a.Kind == "ACCOUNT_KIND_ENTERPRISE" }

// accountOf reads what the mirror keeps of a connection's account and
// server (zero if it knows no such connection).
func (s *Store) accountOf(ctx context.Context, id string) (connAccount, error) {
	var a connAccount
	err := s.db.QueryRowContext(ctx, `SELECT account_login, account_kind, server_hostname, server_version FROM gate_connections WHERE connection_id = $1`, id).
		Scan(&a.Login, &a.Kind, &a.ServerHostname, &a.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return connAccount{}, nil
	}
	return a, err
}

// RegistryCursor is the registry revision the mirror has applied.
func (s *Store) RegistryCursor(ctx context.Context) (int64, error) {
	var rev int64
	err := s.db.QueryRowContext(ctx, `SELECT revision FROM gate_registry_cursor WHERE id = 1`).Scan(&rev)
	return rev, err
}

// SetConsent records a user's choice.
func (s *Store) SetConsent(ctx context.Context, id, user string, f featuregatev1.Feature, optedIn bool, by who) error {
	return s.commitThen(ctx, func(tx *sql.Tx) error {
		contrib := f == featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS
		var before contributionsUser
		var seq int64
		if contrib {
			var err error
			if before, seq, err = contributionsUserTx(ctx, tx, id, user); err != nil {
				return err
			}
		}
		if _, err := s.registerTx(ctx, tx, user); err != nil {
			return err
		}
		v := boolInt(optedIn)
		if contrib {
			after := before
			after.optedIn = optedIn
			if err := s.followUserTx(ctx, tx, id, user, before, after, seq); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gate_consents (connection_id, user_login, feature, opted_in, update_time) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (connection_id, user_login, feature) DO UPDATE SET opted_in = excluded.opted_in, update_time = excluded.update_time`,
			id, user, int32(f), v, s.now().UnixMicro()); err != nil {
			return err
		}
		_, err := s.appendEventTx(ctx, tx, event{connectionID: id, action: actionSetConsent, by: by,
			detail: map[string]any{"user": user, "feature": featureName(f), "opted_in": optedIn}})
		return err
	})
}

// Link links user to a GitHub.com account, replacing an earlier link.
func (s *Store) Link(ctx context.Context, id string, link *featuregatev1.AccountLink, by who) error {
	now := s.now()
	link.LinkTime = timestamppb.New(now)
	return s.commitThen(ctx, func(tx *sql.Tx) error {
		before, seq, err := contributionsUserTx(ctx, tx, id, link.User)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM gate_links WHERE connection_id = $1 AND user_login = $2`, id, link.User); err != nil {
			return err
		}
		if _, err := s.registerTx(ctx, tx, link.User); err != nil {
			return err
		}
		link.Status = featuregatev1.LinkStatus_LINK_STATUS_ACTIVE
		if _, err := tx.ExecContext(ctx, `INSERT INTO gate_links (connection_id, user_login, github_login, github_id, link_time, status) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, link.User, link.GithubLogin, link.GithubId, now.UnixMicro(), int32(link.Status)); err != nil {
			if sqldb.IsUniqueViolation(err) {
				return ErrLinkTaken
			}
			return err
		}
		after := before
		after.githubID = link.GithubId
		if err := s.followUserTx(ctx, tx, id, link.User, before, after, seq); err != nil {
			return err
		}
		_, err = s.appendEventTx(ctx, tx, event{connectionID: id, action: actionLinkAccount, by: by,
			detail: map[string]any{"user": link.User, "github_login": link.GithubLogin, "github_id": link.GithubId}})
		return err
	})
}

// MarkLinkBroken records that GitHub.com no longer accepts user's
// authorization (once: a link already marked is left as it is).
func (s *Store) MarkLinkBroken(ctx context.Context, id, user string, by who) error {
	return s.commitThen(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE gate_links SET status = $1 WHERE connection_id = $2 AND user_login = $3 AND status <> $1`,
			int32(featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED), id, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = s.appendEventTx(ctx, tx, event{connectionID: id, action: actionLinkBroken, by: by, detail: map[string]any{"user": user}})
		return err
	})
}

// Unlink removes a user's link.
func (s *Store) Unlink(ctx context.Context, id, user string, by who) error {
	return s.commitThen(ctx, func(tx *sql.Tx) error {
		before, seq, err := contributionsUserTx(ctx, tx, id, user)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM gate_links WHERE connection_id = $1 AND user_login = $2`, id, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotLinked
		}
		after := before
		after.githubID = 0
		if err := s.followUserTx(ctx, tx, id, user, before, after, seq); err != nil {
			return err
		}
		_, err = s.appendEventTx(ctx, tx, event{connectionID: id, action: actionUnlinkAccount, by: by, detail: map[string]any{"user": user}})
		return err
	})
}

// userFacts are what Check needs to know of users: links and opt-ins.
type userFacts struct {
	links   map[string]*featuregatev1.AccountLink
	optedIn map[string]map[featuregatev1.Feature]bool
}

// userFactsOf loads links and consents of users on a connection in two
// queries, however many users.
func (s *Store) userFactsOf(ctx context.Context, id string, users []string) (userFacts, error) {
	return userFactsQ(ctx, s.db, id, users)
}

// rowsQueryer is a database or a transaction.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func userFactsQ(ctx context.Context, q rowsQueryer, id string, users []string) (userFacts, error) {
	facts := userFacts{links: map[string]*featuregatev1.AccountLink{}, optedIn: map[string]map[featuregatev1.Feature]bool{}}
	if len(users) == 0 {
		return facts, nil
	}
	in, args := inList(users, id)
	rows, err := q.QueryContext(ctx, `SELECT user_login, github_login, github_id, link_time, status FROM gate_links WHERE connection_id = $1 AND user_login IN (`+in+`)`, args...)
	if err != nil {
		return facts, err
	}
	for rows.Next() {
		l := &featuregatev1.AccountLink{}
		var t int64
		var st int32
		if err := rows.Scan(&l.User, &l.GithubLogin, &l.GithubId, &t, &st); err != nil {
			rows.Close()
			return facts, err
		}
		l.LinkTime = timestamppb.New(time.UnixMicro(t))
		l.Status = featuregatev1.LinkStatus(st)
		facts.links[l.User] = l
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return facts, err
	}
	rows, err = q.QueryContext(ctx, `SELECT user_login, feature FROM gate_consents WHERE connection_id = $1 AND opted_in = 1 AND user_login IN (`+in+`)`, args...)
	if err != nil {
		return facts, err
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		var f int32
		if err := rows.Scan(&u, &f); err != nil {
			return facts, err
		}
		if facts.optedIn[u] == nil {
			facts.optedIn[u] = map[featuregatev1.Feature]bool{}
		}
		facts.optedIn[u][featuregatev1.Feature(f)] = true
	}
	return facts, rows.Err()
}

// Snapshots returns up to limit Watch snapshots after revision after, of one
// connection or all.
func (s *Store) Snapshots(ctx context.Context, after int64, connectionID string, limit int) ([]*featuregatev1.WatchResponse, error) {
	return sqldb.Feed(ctx, s.db, "gate_events", "snapshot", "snapshot <> ''", after, connectionID, limit, func(raw []byte) (*featuregatev1.WatchResponse, error) {
		return decodeSnapshot(string(raw))
	})
}

// feedEvent is one row of gate_events as the view applies it.
type feedEvent struct {
	revision   int64
	connection string
	action     action
	detail     string
	snapshot   *featuregatev1.WatchResponse
}

// events returns up to limit events after revision after, oldest first.
func (s *Store) events(ctx context.Context, after int64, limit int) ([]feedEvent, error) {
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT revision, connection_id, action, detail, snapshot FROM gate_events WHERE revision > $1 ORDER BY revision LIMIT %d`, limit), after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []feedEvent
	for rows.Next() {
		var ev feedEvent
		var name, snap string
		if err := rows.Scan(&ev.revision, &ev.connection, &name, &ev.detail, &snap); err != nil {
			return nil, err
		}
		ev.action = audit.Of(name)
		if snap != "" {
			if ev.snapshot, err = decodeSnapshot(snap); err != nil {
				return nil, err
			}
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// inList is the placeholders of values for an SQL "IN (…)", numbered
// after those of args, and args with values appended.
func inList(values []string, args ...any) (string, []any) {
	ph := make([]string, len(values))
	for i, v := range values {
		args = append(args, v)
		ph[i] = "$" + strconv.Itoa(len(args))
	}
	return strings.Join(ph, ", "), args
}
