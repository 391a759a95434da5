package testenv

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema is a service's migrations, for tests that want a database the
// service has already migrated. On PostgreSQL, the migrations run once
// into a template database shared by every test binary, worktree and run
// on that server (named after Service and a hash of the files), and each
// test gets a clone of it: CREATE DATABASE … TEMPLATE copies files, where
// migrating runs every statement again.
type Schema struct {
	// Service names the template, for whoever lists the server's
	// databases; the hash of Migrations tells versions apart.
	Service string
	// Files holds the *.sql migrations in Dir, as sqldb.OpenMigrated
	// takes them (a service's embedded files and "migrations").
	Files fs.FS
	Dir   string
}

// Postgres creates this test's database as a clone of the schema's
// template and returns its DSN; the database is dropped when the test
// ends. The store opening it finds every migration applied.
func (s Schema) Postgres(t testing.TB) string {
	t.Helper()
	admin := postgresAdmin(t)
	tmpl, err := s.template(admin)
	if err != nil {
		t.Fatalf("template database for %s at %s: %v", s.Service, redactDSN(admin), err)
	}
	return createDatabase(t, admin, "TEMPLATE "+tmpl)
}

// Stores runs fn once per SQL backend, as Stores does, the PostgreSQL
// database a clone of the schema's template.
func (s Schema) Stores(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, s.Postgres(t)) })
}

// templates holds, per template name, the once that makes sure it exists:
// a test binary checks PostgreSQL once per schema.
var templates sync.Map // name → func() error

func (s Schema) template(admin string) (string, error) {
	name, err := s.templateName()
	if err != nil {
		return "", err
	}
	ensure, _ := templates.LoadOrStore(name, sync.OnceValue(func() error { return s.build(admin, name) }))
	return name, ensure.(func() error)()
}

// templateName is ghconnect_tmpl_<service>_<hash>: the hash covers every
// file's name and body, so a changed migration makes a new template and
// clones never get a stale schema.
func (s Schema) templateName() (string, error) {
	migrations, err := fs.Sub(s.Files, s.Dir)
	if err != nil {
		return "", err
	}
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", errors.New("no *.sql migrations")
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		body, err := fs.ReadFile(migrations, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(body))
		h.Write(body)
	}
	return "ghconnect_tmpl_" + s.Service + "_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// build makes the template unless it exists. An advisory lock (keyed by
// the name) lets one builder at a time work on it, across test binaries
// and worktrees sharing the server; the migrations go into a database
// under a building name that is renamed only once they all applied, so a
// clone never copies a half-built template, and a builder that died
// leaves only a building database that the next one drops.
func (s Schema) build(admin, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	if ok, err := databaseExists(ctx, db, name); err != nil || ok {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	// Closing the session (below, with db) releases the lock too.
	defer conn.Close()
	const key = `hashtextextended($1, 0)` // the lock's 64-bit key, from the template's name
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+key+`)`, name); err != nil {
		return fmt.Errorf("template lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+key+`)`, name)
	}()
	if ok, err := databaseExists(ctx, db, name); err != nil || ok {
		return err // another builder finished it while this one waited
	}
	building := name + "_building"
	if _, err := conn.ExecContext(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+building); err != nil {
		return err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return err
	}
	u.Path = "/" + building
	mdb, err := sqldb.OpenMigrated(ctx, u.String(), s.Files, s.Dir)
	if err != nil {
		return err
	}
	mdb.Close()
	// No one may connect to a template: a session on it (a test's, or
	// autovacuum's) would make cloning it fail.
	return retryInUse(ctx, func() error {
		_, err := conn.ExecContext(ctx, `ALTER DATABASE `+building+` RENAME TO `+name)
		return err
	}, func() error {
		_, err := conn.ExecContext(ctx, `ALTER DATABASE `+name+` WITH ALLOW_CONNECTIONS false IS_TEMPLATE true`)
		return err
	})
}

func databaseExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, name).Scan(&n)
	return n > 0, err
}

// retryInUse runs each step in turn, retrying a step for a few seconds
// while PostgreSQL answers that the database is being accessed by other
// users: a session that just closed may still be leaving the server, and
// autovacuum visits templates too.
func retryInUse(ctx context.Context, steps ...func() error) error {
	for _, step := range steps {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := step()
			var pgErr *pgconn.PgError
			if err == nil {
				break
			}
			if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
				return err
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
