package advisories

import "github.com/ghconnect/ghconnect/pkg/testenv"

// Schema is the advisories' migrations, for tests that want a database
// they are applied to already (testenv clones a template of it).
var Schema = testenv.Schema{Service: "advisories", Files: migrationFiles, Dir: "migrations"}
