package registry

import (
	"context"

	"github.com/ghconnect/ghconnect/pkg/testenv"
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
