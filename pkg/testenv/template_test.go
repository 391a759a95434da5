package testenv

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// Builders racing for one template (as test binaries and worktrees on one
// server do) all succeed, one builds it, a half-built leftover of a dead
// builder is never what clones copy, and each test's clone is its own.
func TestSchemaTemplate(t *testing.T) {
	admin := postgresAdmin(t)
	files := fstest.MapFS{
		"m/001_a.sql": {Data: []byte("CREATE TABLE a (x INT);\n")},
		"m/002_b.sql": {Data: []byte("CREATE TABLE b (y INT);\nINSERT INTO b VALUES (7);\n")},
	}
	s := Schema{Service: "selftest" + RandomHex(3), Files: files, Dir: "m"}
	name, err := s.templateName()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t.Cleanup(func() {
		for _, q := range []string{
			`ALTER DATABASE ` + name + ` WITH IS_TEMPLATE false`,
			`DROP DATABASE IF EXISTS ` + name,
			`DROP DATABASE IF EXISTS ` + name + `_building WITH (FORCE)`,
		} {
			if _, err := db.Exec(q); err != nil && !strings.Contains(err.Error(), "does not exist") {
				t.Logf("%s: %v", q, err)
			}
		}
	})
	// What a builder that died half way leaves.
	if _, err := db.Exec(`CREATE DATABASE ` + name + `_building`); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.build(admin, name) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("builder %d: %v", i, err)
		}
	}
	if ok, err := databaseExists(context.Background(), db, name+"_building"); err != nil || ok {
		t.Errorf("the building database is left: %v %v", ok, err)
	}

	for i := range 3 {
		t.Run("clone", func(t *testing.T) {
			t.Parallel()
			c, err := sql.Open("pgx", s.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var migrations, rows int
			if err := c.QueryRow(`SELECT (SELECT COUNT(*) FROM schema_migrations), (SELECT COUNT(*) FROM b)`).Scan(&migrations, &rows); err != nil {
				t.Fatal(err)
			}
			if migrations != 2 || rows != 1 {
				t.Errorf("clone %d: %d migrations recorded, %d rows in b; want 2 and 1", i, migrations, rows)
			}
			// Another clone's writes are not seen: had clones shared a
			// database, the count above would differ.
			if _, err := c.Exec(`INSERT INTO b VALUES ($1)`, i); err != nil {
				t.Fatal(err)
			}
		})
	}

	changed := Schema{Service: s.Service, Files: fstest.MapFS{
		"m/001_a.sql": files["m/001_a.sql"],
		"m/002_b.sql": {Data: []byte("CREATE TABLE b (y BIGINT);\n")},
	}, Dir: "m"}
	if other, err := changed.templateName(); err != nil || other == name {
		t.Errorf("a changed migration names the template %s (%v), as before", other, err)
	}
}
