// Package sqldb opens the services' SQL stores, SQLite (the embedded
// default, pure Go) or PostgreSQL (pgx, for several replicas), and applies
// their migrations. Queries use $1-style placeholders, which both accept.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// The dialects: the engines Open knows.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database handle that knows its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
}

// Open opens dsn: "postgres://…" or "postgresql://…" for PostgreSQL,
// "sqlite:PATH" or a plain file path for SQLite (":memory:" is refused:
// every connection would see its own empty database).
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sdb, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("sqldb: %w", err)
		}
		sdb.SetMaxOpenConns(20)
		// Keep the connections a burst opened (database/sql keeps 2 idle by
		// default and closes the rest after each use): a call then rarely
		// waits for a new connection's handshake, and a moment in which
		// new connections cannot be made (a NetworkPolicy agent resyncing
		// while pods come and go: "no route to host" in make k8s-test)
		// does not fail the calls that established ones can serve.
		sdb.SetMaxIdleConns(20)
		sdb.SetConnMaxIdleTime(10 * time.Minute)
		db = &DB{DB: sdb, Dialect: Postgres}
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" || strings.Contains(path, ":memory:") {
			return nil, errors.New("sqldb: sqlite needs a file path")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("sqldb: %w", err)
			}
		}
		// Immediate transactions take the write lock at BEGIN, so a
		// read-then-write transaction never fails half way with SQLITE_BUSY;
		// WAL lets readers go on meanwhile.
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("sqldb: %w", err)
		}
		db = &DB{DB: sdb, Dialect: SQLite}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close() // the failed ping is the error to report
		return nil, fmt.Errorf("sqldb: ping %s: %w", db.Dialect, err)
	}
	return db, nil
}

// OpenMigrated opens dsn and applies the migrations (*.sql) in dir of
// files, as each service's store does when it opens.
func OpenMigrated(ctx context.Context, dsn string, files fs.FS, dir string) (*DB, error) {
	migrations, err := fs.Sub(files, dir)
	if err != nil {
		return nil, err
	}
	db, err := Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, migrations); err != nil {
		_ = db.Close() // the failed migration is the error to report
		return nil, err
	}
	return db, nil
}

// MigrateDir applies the migrations (*.sql) in dir of files: a part of a
// service that keeps tables of its own in the service's database.
func (db *DB) MigrateDir(ctx context.Context, files fs.FS, dir string) error {
	migrations, err := fs.Sub(files, dir)
	if err != nil {
		return err
	}
	return db.Migrate(ctx, migrations)
}

// InTx runs fn in a transaction, committing when fn returns nil.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// IsUniqueViolation reports whether err is a unique-constraint failure.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Migrate applies, in name order, the *.sql files of migrations not yet
// recorded in schema_migrations. On PostgreSQL an advisory lock keeps
// replicas starting together from applying the same file twice.
func (db *DB) Migrate(ctx context.Context, migrations fs.FS) error {
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	// Close fails only on a conn closed already (by discard, below).
	defer func() { _ = conn.Close() }()
	if db.Dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(727470)`); err != nil {
			return fmt.Errorf("sqldb: migration lock: %w", err)
		}
		defer func() {
			// A session that may still hold the lock must not go back to
			// the pool: ending it releases the lock.
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(727470)`); err != nil {
				discard(conn)
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("sqldb: %w", err)
	}
	for _, name := range names {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name = $1`, name).Scan(&n); err != nil {
			return fmt.Errorf("sqldb: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range splitStatements(string(body)) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("sqldb: migration %s: %w", name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)`, name, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqldb: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqldb: migration %s: %w", name, err)
		}
	}
	return nil
}

// splitStatements splits a migration on semicolons at line ends; the
// migrations hold no procedural code, so that is enough.
func splitStatements(body string) []string {
	var out []string
	for _, part := range strings.Split(body, ";\n") {
		lines := []string{}
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";"); s != "" {
			out = append(out, s)
		}
	}
	return out
}
