package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// TestVaultBinary builds (or finds) the cached vaultdev and checks it is
// the program the tests expect. make test runs it alone, with a long
// timeout, before the other packages: on a machine whose caches are cold
// the build takes minutes, and inside another package's test binary it
// would count against that package's timeout.
func TestVaultBinary(t *testing.T) {
	SkipIfShort(t, "builds vaultdev")
	bin := VaultBinary(t)
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if !strings.Contains(string(out), "-root-token") {
		t.Fatalf("%s -h: %v\n%s", bin, err, out)
	}
}
