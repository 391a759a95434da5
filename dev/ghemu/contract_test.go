package ghemu_test

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
)

// TestContractKeepsOnlyServedOperations: the contract holds the
// operations the emulator serves, not GitHub's whole description (over 150
// MB of heap, carried by every test process that starts an emulator).
func TestContractKeepsOnlyServedOperations(t *testing.T) {
	if err := ghemu.FetchSpec(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := ghemu.LoadContract(ghemu.SpecDir())
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 { //nolint:gosec // G115: heap sizes are far below 2^63
		t.Errorf("the contract holds %d MB of heap; want under 16", grown>>20)
	}
	// GET /repos/{owner}/{repo}/branches is GitHub's but not the emulator's.
	r := httptest.NewRequest("GET", "/repos/octo/alpha/branches", nil)
	if err := c.Check(r, nil, 404, nil, nil); err == nil || !strings.Contains(err.Error(), "not in GitHub's OpenAPI description") {
		t.Errorf("an operation the emulator does not serve: %v", err)
	}
	runtime.KeepAlive(c)
}
