//go:build !crashpoints

package registry_test

import (
	"flag"
	"testing"

	"github.com/ghconnect/ghconnect/services/registry"
)

// The crash points are for the crash tests' build only (-tags
// crashpoints): an ordinary build, the one make build, make run and the
// images make, has no flag to arm them.
func TestOrdinaryBuildHasNoCrashPoints(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	var cfg registry.Config
	cfg.RegisterFlags(fs)
	for _, name := range []string{"crash-after", "crash-mode"} {
		if fs.Lookup(name) != nil {
			t.Errorf("-%s exists in an ordinary build", name)
		}
	}
}
