// Package testenv gives tests the real dependencies they run against: a
// fresh PostgreSQL database per test, SQLite files, bearer-token files.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// PostgresEnv names the admin DSN of the test PostgreSQL server; "off"
// skips PostgreSQL tests (never in CI).
const PostgresEnv = "GHCONNECT_TEST_POSTGRES"

const defaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Postgres creates an empty database for this test and returns its DSN;
// the database is dropped when the test ends. Tests of a service's store
// take Schema.Postgres instead, a database migrated already.
func Postgres(t testing.TB) string {
	t.Helper()
	return createDatabase(t, postgresAdmin(t), "")
}

// postgresAdmin is the admin DSN of the test server; it skips the test
// when there is none.
func postgresAdmin(t testing.TB) string {
	t.Helper()
	SkipIfShort(t, "needs PostgreSQL")
	admin := os.Getenv(PostgresEnv)
	if admin == "off" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s=off is not allowed in CI", PostgresEnv)
		}
		t.Skipf("%s=off", PostgresEnv)
	}
	if admin == "" {
		admin = defaultPostgres
	}
	return admin
}

// createDatabase creates a database for this test (with, after its name,
// options such as "TEMPLATE x"), drops it when the test ends and returns
// its DSN.
func createDatabase(t testing.TB, admin, options string) string {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := "ghconnect_test_" + RandomHex(6)
	if err := retryInUse(ctx, func() error {
		_, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" "+options)
		return err
	}); err != nil {
		t.Fatalf("PostgreSQL at %s: %v (set %s=off to skip outside CI)", redactDSN(admin), err, PostgresEnv)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("dropping test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// SkipIfShort skips a test of the slow tier in the fast one (go test
// -short, make test-fast): what starts Vault, PostgreSQL databases, built
// binaries, a browser or containers. why says which.
func SkipIfShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: not in the fast tier (-short)", why)
	}
}

// SQLite returns the DSN of a new SQLite file in the test's temp dir.
func SQLite(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// Stores runs fn once per SQL backend.
func Stores(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// Tokens writes a tokens file granting each principal a fresh random token
// and returns the file's path and principal → token.
func Tokens(t testing.TB, principals ...string) (string, map[string]string) {
	t.Helper()
	tokens := map[string]string{}
	body := ""
	for _, p := range principals {
		tok := "test-" + RandomHex(16)
		tokens[p] = tok
		body += fmt.Sprintf("%s %s\n", p, auth.HashToken(tok))
	}
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tokens
}

// RandomHex returns 2n random hex characters.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

// Eventually polls cond until it holds, failing the test after within;
// it returns how long that took.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	took, ok := poll(within, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if !ok {
		t.Fatalf("not within %v: %s", within, what)
	}
	return took
}

// EventuallyErr polls cond until it returns nil, failing the test after
// within with the last error cond gave: what the system was doing instead
// (the last refusal, the state it was stuck in), which a bare "not
// within" would hide. It returns how long that took.
func EventuallyErr(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	var last error
	took, ok := poll(within, func() error { last = cond(); return last })
	if !ok {
		t.Fatalf("not within %v: %s: %v", within, what, last)
	}
	return took
}

var errNotYet = errors.New("not yet")

// poll looks until cond returns nil (true) or within has passed (false);
// it says how long it looked. It looks again after 10 ms at first, then
// less often, up to every 100 ms: a condition that holds soon is seen
// soon, and a long wait (a lease hand-over, a backoff) does not keep two
// shared cores busy asking real processes over HTTP.
func poll(within time.Duration, cond func() error) (time.Duration, bool) {
	start := time.Now()
	pause := 10 * time.Millisecond
	for cond() != nil {
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(pause)
		pause = min(pause*3/2, 100*time.Millisecond)
	}
	return time.Since(start), true
}

// MigrationsBefore is the migrations of files (named "migrations/NNN_….sql")
// numbered below before ("005"), as a version before them had: for the
// tests of a database an earlier version made. It fails the test unless
// there are want of them.
func MigrationsBefore(t testing.TB, files fs.FS, before string, want int) fs.FS {
	t.Helper()
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, name := range names {
		if base := strings.TrimPrefix(name, "migrations/"); base < before {
			body, err := fs.ReadFile(files, name)
			if err != nil {
				t.Fatal(err)
			}
			old[base] = &fstest.MapFile{Data: body}
		}
	}
	if len(old) != want {
		t.Fatalf("%d migrations before %s, want %d", len(old), before, want)
	}
	return old
}
