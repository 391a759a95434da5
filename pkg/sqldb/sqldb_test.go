package sqldb_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

func TestMigrateAndUnique(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, err := sqldb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		migrations := fstest.MapFS{
			"001_a.sql": {Data: []byte("-- first\nCREATE TABLE a (k TEXT PRIMARY KEY, v BIGINT NOT NULL);\nCREATE INDEX a_v ON a (v);\n")},
			"002_b.sql": {Data: []byte("INSERT INTO a (k, v) VALUES ('x', 1);\n")},
		}
		for i := 0; i < 2; i++ { // the second run must apply nothing
			if err := db.Migrate(ctx, migrations); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM a WHERE k = $1 AND v = $2`, "x", 1).Scan(&n); err != nil || n != 1 {
			t.Fatalf("rows %d err %v", n, err)
		}
		_, err = db.ExecContext(ctx, `INSERT INTO a (k, v) VALUES ($1, $2)`, "x", 2)
		if !sqldb.IsUniqueViolation(err) {
			t.Errorf("duplicate key: %v not recognised as unique violation", err)
		}
		bad := fstest.MapFS{"003_bad.sql": {Data: []byte("CREATE TABLE c (x TEXT);\nNOT SQL;\n")}}
		if err := db.Migrate(ctx, bad); err == nil {
			t.Errorf("broken migration applied")
		}
		// The broken migration left nothing behind (on PostgreSQL DDL is
		// transactional; SQLite too).
		if err := db.Migrate(ctx, fstest.MapFS{"003_bad.sql": {Data: []byte("CREATE TABLE c (x TEXT);\n")}}); err != nil {
			t.Errorf("fixed migration: %v", err)
		}
	})
}

func TestOpenRefusesMemory(t *testing.T) {
	if _, err := sqldb.Open(context.Background(), "sqlite::memory:"); err == nil {
		t.Fatal("in-memory SQLite accepted")
	}
}
