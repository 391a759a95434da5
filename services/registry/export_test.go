package registry

import (
	"context"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// Moves for the tests in package registry_test that make them on a store
// directly: to leave a connection as a registry that died halfway would,
// or, in the transition table, where no RPC makes the move on its own
// (CompleteInstallation and Disconnect make them as part of their flows).
var (
	AppCreated         = appCreated
	KeyVersionAdopted  = keyVersionAdopted
	BeginDisconnect    = beginDisconnect
	MarkConnected      = markConnected
	CompleteDisconnect = completeDisconnect
)

// Status is the gRPC status the server answers err with.
func Status(ctx context.Context, err error) error { return toStatus(ctx, err) }

// MigrationFiles are the store's migrations, for tests that make a
// database as an older registry left it.
var MigrationFiles = migrationFiles

// Schema is the store's migrations, for tests that want a database the
// store has migrated already (testenv clones a template of it).
var Schema = testenv.Schema{Service: "registry", Files: migrationFiles, Dir: "migrations"}

// SetClock makes s take the time of what it writes from now, so that a
// test can pin the stored form.
func SetClock(s *Store, now func() time.Time) { s.now = now }

// The conversions between the API messages and the stored form, for the
// tests that every field and every enum value survives it.
var (
	RecordJSON           = recordJSON
	ConnectionFromRecord = connectionFromRecord
	EventJSON            = eventJSON
	EventFromJSON        = eventFromJSON
)

// StateCollector is the registry's scrape-time state figures on s, at
// the time now gives.
func StateCollector(s *Store, now func() time.Time) prometheus.Collector {
	return stateCollector{store: s, now: now}
}
