package gateway

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var (
	// errSignedOut: the request names no live session.
	errSignedOut = errors.New("no session")
	// errNoSignIn: no sign-in under way has this state (never started,
	// already taken, or expired).
	errNoSignIn = errors.New("no sign-in under way")
)

// sweepEvery is how often one replica deletes expired rows, at most.
const sweepEvery = time.Minute

// sessionStore keeps sessions and sign-ins under way in the gateway's
// database, which its replicas share. Nothing of it is kept in memory: a
// session deleted by one replica (signing out) is gone for all at once.
type sessionStore struct {
	db *sqldb.DB
	// swept is when this replica last swept (Unix ms).
	swept atomic.Int64
}

// openSessions opens the database at dsn and applies its migrations.
func openSessions(ctx context.Context, dsn string) (*sessionStore, error) {
	db, err := sqldb.OpenMigrated(ctx, dsn, migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sessions database: %w", err)
	}
	return &sessionStore{db: db}, nil
}

func (st *sessionStore) close() error { return st.db.Close() }

// hashID is how a session id or sign-in state is stored: a table read by
// someone else holds nothing they could present as a cookie.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (st *sessionStore) putSession(ctx context.Context, id string, s *session) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO sessions (id_hash, person, login, roles, csrf_token, expire_time) VALUES ($1, $2, $3, $4, $5, $6)`,
		hashID(id), s.User, s.Login, strings.Join(s.Roles, ","), s.CSRF, s.Expires.UnixMilli())
	return err
}

// session is the live session of id, or errSignedOut. An expired one is
// deleted as it is found.
func (st *sessionStore) session(ctx context.Context, id string, now time.Time) (*session, error) {
	key := hashID(id)
	var s session
	var roles string
	var expires int64
	err := st.db.QueryRowContext(ctx, `SELECT person, login, roles, csrf_token, expire_time FROM sessions WHERE id_hash = $1`, key).
		Scan(&s.User, &s.Login, &roles, &s.CSRF, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errSignedOut
	}
	if err != nil {
		return nil, err
	}
	if expires < now.UnixMilli() {
		if _, err := st.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = $1 AND expire_time < $2`, key, now.UnixMilli()); err != nil {
			return nil, err
		}
		return nil, errSignedOut
	}
	if roles != "" {
		s.Roles = strings.Split(roles, ",")
	}
	s.Expires = time.UnixMilli(expires)
	return &s, nil
}

func (st *sessionStore) deleteSession(ctx context.Context, id string) error {
	_, err := st.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = $1`, hashID(id))
	return err
}

func (st *sessionStore) putSignIn(ctx context.Context, state string, l *login) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO sign_ins (state_hash, verifier, nonce, return_to, expire_time) VALUES ($1, $2, $3, $4, $5)`,
		hashID(state), l.verifier, l.nonce, l.returnTo, l.expires.UnixMilli())
	return err
}

// takeSignIn claims the sign-in of state: the row is deleted as it is
// read, in one statement, so of replicas given the same answer at once
// exactly one gets it. An expired one is errNoSignIn.
func (st *sessionStore) takeSignIn(ctx context.Context, state string, now time.Time) (*login, error) {
	var l login
	var expires int64
	err := st.db.QueryRowContext(ctx, `DELETE FROM sign_ins WHERE state_hash = $1 RETURNING verifier, nonce, return_to, expire_time`, hashID(state)).
		Scan(&l.verifier, &l.nonce, &l.returnTo, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoSignIn
	}
	if err != nil {
		return nil, err
	}
	if expires < now.UnixMilli() {
		return nil, errNoSignIn
	}
	l.expires = time.UnixMilli(expires)
	return &l, nil
}

// sweep deletes expired sessions and sign-ins, at most once per
// sweepEvery in this replica. Replicas sweeping at once delete the same
// rows; that is harmless.
func (st *sessionStore) sweep(ctx context.Context, now time.Time) error {
	last := st.swept.Load()
	if now.UnixMilli()-last < sweepEvery.Milliseconds() || !st.swept.CompareAndSwap(last, now.UnixMilli()) {
		return nil
	}
	for _, table := range []string{"sessions", "sign_ins"} {
		if _, err := st.db.ExecContext(ctx, `DELETE FROM `+table+` WHERE expire_time < $1`, now.UnixMilli()); err != nil {
			return fmt.Errorf("sweeping %s: %w", table, err)
		}
	}
	return nil
}
