package broker

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// userStore keeps user authorizations and grants in SQL (migrations/).
type userStore struct{ db *sqldb.DB }

// OpenDatabase opens the broker's database at dsn and applies its
// migrations.
func OpenDatabase(ctx context.Context, dsn string) (*sqldb.DB, error) {
	return sqldb.OpenMigrated(ctx, dsn, migrationFiles, "migrations")
}

// userGrant is a stored grant; access and refresh are transit ciphertext.
type userGrant struct {
	connectionID, user string
	githubLogin        string
	githubID           int64
	status             brokerv1.UserGrantStatus
	granted            time.Time
	access, refresh    string
	accessExpires      time.Time
	refreshExpires     time.Time
	generation         int64
}

func (g *userGrant) proto() *brokerv1.UserGrant {
	return &brokerv1.UserGrant{ConnectionId: g.connectionID, User: g.user, GithubLogin: g.githubLogin, GithubId: g.githubID, Status: g.status,
		GrantTime: timestamppb.New(g.granted), RefreshExpireTime: timestamppb.New(g.refreshExpires)}
}

// authorization is an authorization under way.
type authorization struct {
	connectionID, redirectURI, verifier string
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func (s *userStore) putAuthorization(ctx context.Context, stateHash, conn, user, redirectURI, verifier string, expires time.Time) error {
	// Authorizations nobody finished go an hour after they expired.
	stale := expires.Add(-authorizationTTL - time.Hour)
	_, err := s.db.ExecContext(ctx, `INSERT INTO user_authorizations (state_hash, connection_id, server_user, redirect_uri, verifier_ciphertext, expire_time) VALUES ($1, $2, $3, $4, $5, $6)`,
		stateHash, conn, user, redirectURI, verifier, ms(expires))
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM user_authorizations WHERE expire_time < $1`, ms(stale))
	return err
}

// peekAuthorization names the connection of the live authorization of
// stateHash made for user, without using it.
func (s *userStore) peekAuthorization(ctx context.Context, stateHash, user string, now time.Time) (string, error) {
	var conn string
	err := s.db.QueryRowContext(ctx, `SELECT connection_id FROM user_authorizations WHERE state_hash = $1 AND server_user = $2 AND expire_time >= $3`,
		stateHash, user, ms(now)).Scan(&conn)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrAuthorizationGone
	}
	return conn, err
}

// takeAuthorization uses the authorization of stateHash, made for user,
// once.
func (s *userStore) takeAuthorization(ctx context.Context, stateHash, user string, now time.Time) (*authorization, error) {
	var a authorization
	var expires int64
	err := s.db.QueryRowContext(ctx, `DELETE FROM user_authorizations WHERE state_hash = $1 AND server_user = $2 RETURNING connection_id, redirect_uri, verifier_ciphertext, expire_time`,
		stateHash, user).Scan(&a.connectionID, &a.redirectURI, &a.verifier, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expires < ms(now)) {
		return nil, ErrAuthorizationGone
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

const grantColumns = `connection_id, server_user, github_id, github_login, status, grant_time, access_ciphertext, access_expire_time, refresh_ciphertext, refresh_expire_time, generation`

func scanGrant(row interface{ Scan(...any) error }) (*userGrant, error) {
	var g userGrant
	var st int32
	var granted, accessExp, refreshExp int64
	if err := row.Scan(&g.connectionID, &g.user, &g.githubID, &g.githubLogin, &st, &granted, &g.access, &accessExp, &g.refresh, &refreshExp, &g.generation); err != nil {
		return nil, err
	}
	g.status = brokerv1.UserGrantStatus(st)
	g.granted, g.accessExpires, g.refreshExpires = time.UnixMilli(granted), time.UnixMilli(accessExp), time.UnixMilli(refreshExp)
	return &g, nil
}

func (s *userStore) grant(ctx context.Context, conn, user string) (*userGrant, error) {
	g, err := scanGrant(s.db.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM user_grants WHERE connection_id = $1 AND server_user = $2`, conn, user))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoUserGrant
	}
	return g, err
}

// putGrant records a new grant, replacing the person's earlier one; an
// account another person of the connection holds is refused.
func (s *userStore) putGrant(ctx context.Context, g *userGrant) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var other string
		err := tx.QueryRowContext(ctx, `SELECT server_user FROM user_grants WHERE connection_id = $1 AND github_id = $2`, g.connectionID, g.githubID).Scan(&other)
		if err == nil && other != g.user {
			return ErrAccountTaken
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var gen int64
		if err := tx.QueryRowContext(ctx, `SELECT generation FROM user_grants WHERE connection_id = $1 AND server_user = $2`, g.connectionID, g.user).Scan(&gen); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		g.generation = gen + 1
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_grants WHERE connection_id = $1 AND server_user = $2`, g.connectionID, g.user); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO user_grants (`+grantColumns+`, refreshing_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)`,
			g.connectionID, g.user, g.githubID, g.githubLogin, int32(g.status), ms(g.granted), g.access, ms(g.accessExpires), g.refresh, ms(g.refreshExpires), g.generation)
		if sqldb.IsUniqueViolation(err) {
			return ErrAccountTaken
		}
		return err
	})
}

// claimRefresh claims the refresh of generation for this replica until
// until; false when another replica holds it or made it.
func (s *userStore) claimRefresh(ctx context.Context, conn, user string, generation int64, now, until time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE user_grants SET refreshing_until = $1 WHERE connection_id = $2 AND server_user = $3 AND generation = $4 AND refreshing_until < $5`,
		ms(until), conn, user, generation, ms(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// releaseRefresh gives up a claim without a new generation (GitHub.com
// could not be asked).
func (s *userStore) releaseRefresh(ctx context.Context, conn, user string, generation int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE user_grants SET refreshing_until = 0 WHERE connection_id = $1 AND server_user = $2 AND generation = $3`, conn, user, generation)
	return err
}

// storeRefresh stores the refreshed grant g, the claim of generation
// prev.
func (s *userStore) storeRefresh(ctx context.Context, g *userGrant, prev int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE user_grants SET access_ciphertext = $1, access_expire_time = $2, refresh_ciphertext = $3, refresh_expire_time = $4, generation = $5, refreshing_until = 0
		WHERE connection_id = $6 AND server_user = $7 AND generation = $8`,
		g.access, ms(g.accessExpires), g.refresh, ms(g.refreshExpires), g.generation, g.connectionID, g.user, prev)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errors.New("the user grant changed during its refresh")
	}
	return nil
}

func (s *userStore) markReconnect(ctx context.Context, conn, user string, generation int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE user_grants SET status = $1, refreshing_until = 0, access_ciphertext = '', refresh_ciphertext = '', generation = generation + 1
		WHERE connection_id = $2 AND server_user = $3 AND generation = $4`,
		int32(brokerv1.UserGrantStatus_USER_GRANT_STATUS_RECONNECT_NEEDED), conn, user, generation)
	return err
}

func (s *userStore) deleteGrant(ctx context.Context, conn, user string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM user_grants WHERE connection_id = $1 AND server_user = $2`, conn, user)
	return err
}

// usersOf lists the people with a grant on connection conn.
func (s *userStore) usersOf(ctx context.Context, conn string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT server_user FROM user_grants WHERE connection_id = $1`, conn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
