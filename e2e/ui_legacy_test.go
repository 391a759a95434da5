package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
)

// TestAdminUILegacyLiveConnections starts from a registry database made
// before a server had one connection at a time: octo-org enabled for real,
// then octo-labs begun beside it (PENDING). The registry migrates it (the
// newest, octo-labs, takes the server's slot); the admin page
// (services/gateway/ui/test/legacy.test.mjs) shows octo-labs and lists
// octo-org as a second live connection with a button that disables it.
// Disabled from the page, octo-org's installation and key are gone, and
// octo-labs is the one live connection; another account stays refused
// while it is. Screenshots land in .artifacts/ui-legacy.
func TestAdminUILegacyLiveConnections(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	s := startSystem(t)
	older := s.create()
	s.enable(older)
	inst := s.connection(older)["installationId"].(string)
	key := s.connection(older)["transitKey"].(map[string]any)["name"].(string)

	s.stop("registry")
	newer := s.legacySecondConnection(older, "octo-labs")
	s.startRegistry("")

	s.runUITest(dir, "legacy.test.mjs", "ui-legacy", "OLDER_ID="+older, "NEWER_ID="+newer)

	c := s.connection(older)
	if c["state"] != "CONNECTION_STATE_DISCONNECTED" || !strings.Contains(c["updatedBy"].(string), "admin@example.com") {
		t.Fatalf("octo-org after the page disabled it: %v", c)
	}
	if resp, err := s.http.Get(s.emu + "/_emu/installations/" + inst); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("octo-org's installation %s after the disable: %v %v", inst, resp.StatusCode, err)
	}
	if s.vaultKeyExists(key) {
		t.Errorf("octo-org's key %s is still in Vault", key)
	}
	if c := s.connection(newer); c["state"] != "CONNECTION_STATE_PENDING" {
		t.Errorf("octo-labs: %v", c["state"])
	}
	code, out := s.rest("POST", "/v1/connections", map[string]any{"requestId": "e2e-" + randomToken()[:8],
		"account": map[string]any{"kind": "ACCOUNT_KIND_ORGANIZATION", "login": "octo-org"}})
	if msg, _ := out["message"].(string); code != http.StatusBadRequest || !strings.HasPrefix(msg, "connection "+newer+" for octo-labs is PENDING: disable it") {
		t.Errorf("a create while octo-labs is live: %d %v", code, out)
	}
}

// legacySecondConnection makes the stopped registry's database what a
// registry from before the one-connection rule left: the rule's migration
// not applied yet, and a second live connection, PENDING for login, begun
// after the connection first (created as that registry did, with its
// history event). It returns the second connection's id.
func (s *system) legacySecondConnection(first, login string) string {
	s.t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, s.dbs["registry"])
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		s.t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			s.t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DROP INDEX connections_one_live`)
	exec(`ALTER TABLE connections DROP COLUMN live_slot`)
	exec(`DELETE FROM schema_migrations WHERE name = '005_live_slot.sql'`)

	var raw string
	if err := db.QueryRowContext(ctx, `SELECT record FROM connections WHERE id = $1`, first).Scan(&raw); err != nil {
		s.t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		s.t.Fatal(err)
	}
	// The same server and license; the new account, nothing enabled yet.
	id := "legacy-" + randomToken()[:12]
	now := time.Now()
	for _, k := range []string{"app", "installation_id", "transit_key", "connect_time", "disconnect_steps"} {
		delete(rec, k)
	}
	rec["id"], rec["state"] = id, "CONNECTION_STATE_PENDING"
	rec["account"] = map[string]any{"kind": "ACCOUNT_KIND_ORGANIZATION", "login": login}
	rec["create_time"], rec["update_time"] = now.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano)
	rec["created_by"], rec["updated_by"] = "admin", "admin"
	body, _ := json.Marshal(rec)
	exec(`INSERT INTO connections (id, request_id, request_hash, state, active_key, version, create_time, record) VALUES ($1, $2, $3, 1, $4, 1, $5, $6)`,
		id, "legacy-"+randomToken()[:8], randomToken(), "ghes.example.com|account_kind_organization|"+login, now.UnixMicro(), string(body))
	var rev int64
	if err := db.QueryRowContext(ctx, `UPDATE revision_counter SET revision = revision + 1 WHERE id = 1 RETURNING revision`).Scan(&rev); err != nil {
		s.t.Fatal(err)
	}
	ev, _ := json.Marshal(map[string]any{"revision": rev, "connection_id": id, "action": "create", "to_state": "CONNECTION_STATE_PENDING",
		"actor": "admin", "event_time": rec["create_time"], "connection": rec})
	exec(`INSERT INTO connection_events (revision, connection_id, via, event) VALUES ($1, $2, '', $3)`, rev, id, string(ev))
	return id
}
