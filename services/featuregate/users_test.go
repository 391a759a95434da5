package featuregate_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate"
)

// A database from before server users were registered (migrations 001 to
// 007): everyone it already knew of (a link, a feature choice, counts
// taken) is registered by the migration, so a running contribution
// source is not refused after the upgrade; nobody else is.
func TestMigrationRegistersThoseAlreadyKnown(t *testing.T) {
	t.Parallel()
	testenv.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, err := sqldb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		old := testenv.MigrationsBefore(t, featuregate.MigrationFiles, "008", 7)
		if err := db.Migrate(ctx, old); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`INSERT INTO gate_links (connection_id, user_login, github_login, github_id, link_time, status) VALUES ('c1', 'mona', 'mona-cloud', 7, 1, 1)`,
			`INSERT INTO gate_consents (connection_id, user_login, feature, opted_in, update_time) VALUES ('c1', 'eve', 1, 0, 1)`,
			`INSERT INTO gate_contributions (connection_id, user_login, day, count) VALUES ('c1', 'hubot', '2026-12-01', 3)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		s, err := featuregate.OpenStore(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		known, err := featuregate.Registered(ctx, s, []string{"mona", "eve", "hubot", "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(known)); !slices.Equal(got, []string{"eve", "hubot", "mona"}) {
			t.Errorf("registered after the upgrade: %v, want eve, hubot, mona", got)
		}
		if n, err := s.RegisterUsers(ctx, []string{"mona", "nobody"}); err != nil || n != 1 {
			t.Errorf("registering mona again and nobody: %d new, %v; want 1", n, err)
		}
	})
}
