package advisories_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/google/go-cmp/cmp"
)

// TestOnTheGatesDatabase: on the database the gate's own store migrated,
// the advisories' migrations apply beside the gate's (their names cannot
// collide), share its revision sequence, and the gate's store opens
// again over them.
func TestOnTheGatesDatabase(t *testing.T) {
	ctx := context.Background()
	testenv.Stores(t, func(t *testing.T, dsn string) {
		gate, err := featuregate.OpenStore(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		gate.Close()
		db, err := sqldb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// The gate has handed out revisions already.
		var gateRev int64
		for range 3 {
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				gateRev, err = sqldb.NextRevision(ctx, tx)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		s, err := advisories.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		upsert(t, s, 1, advisory("GHSA-gate", t0, vuln{"npm", "x", "< 1.0.0", ""}))
		if got := changes(t, s, 0); len(got) != 1 || got[0].Revision != gateRev+1 {
			t.Errorf("advisory revision %+v, want the gate's next (%d)", got, gateRev+1)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name LIKE 'advisories_%'`).Scan(&n); err != nil || n == 0 {
			t.Errorf("advisories' migrations recorded: %d (%v)", n, err)
		}
		gate, err = featuregate.OpenStore(ctx, dsn)
		if err != nil {
			t.Fatalf("the gate's store over the advisories' tables: %v", err)
		}
		gate.Close()
	})
}

// TestChangesTail: Changes is a feed sqldb.Tail follows, as a Watch will:
// what was there, then each change as it commits, the latest copy of an
// advisory at its new revision.
func TestChangesTail(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		upsert(t, s, 2, advisory("GHSA-1", t0, vuln{"go", "example.com/a", "< 1.0.0", ""}), advisory("GHSA-2", t0, vuln{"go", "example.com/b", "< 1.0.0", ""}))
		var mu sync.Mutex
		var seen []string
		done := make(chan error, 1)
		tctx, stop := context.WithCancel(ctx)
		go func() {
			done <- sqldb.Tail(tctx, &s.Notifier, time.Minute, nil, 0, 1, s.Changes,
				func(a advisories.Advisory) int64 { return a.Revision },
				func(a advisories.Advisory) error {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, a.GHSAID+" "+a.Summary)
					return nil
				})
		}()
		got := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), seen...)
		}
		testenv.Eventually(t, 10*time.Second, "the stored advisories", func() bool { return len(got()) == 2 })
		newer := advisory("GHSA-1", t0.Add(time.Hour), vuln{"go", "example.com/a", "< 1.1.0", ""})
		newer.Summary = new("fixed range")
		upsert(t, s, 1, newer)
		// The poll is a minute: only the commit's notification can wake
		// the tail in time.
		testenv.Eventually(t, 10*time.Second, "the change", func() bool { return len(got()) == 3 })
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Tail ended with %v, want its context's end", err)
		}
		want := []string{"GHSA-1 summary of GHSA-1", "GHSA-2 summary of GHSA-2", "GHSA-1 fixed range"}
		if d := cmp.Diff(want, got()); d != "" {
			t.Errorf("tailed (-want +got):\n%s", d)
		}
	})
}
