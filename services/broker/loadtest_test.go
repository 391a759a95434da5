package broker_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
)

// TestLoadtestScript runs `make loadtest`'s script against a harness broker
// when GHCONNECT_LOADTEST_GHZ names a ghz binary (make bin/ghz builds one).
func TestLoadtestScript(t *testing.T) {
	ghz := os.Getenv("GHCONNECT_LOADTEST_GHZ")
	if ghz == "" {
		t.Skip("GHCONNECT_LOADTEST_GHZ is not set")
	}
	e := brokertest.Start(t, brokertest.Options{Quiet: true})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(e.Tokens["search-svc"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "deploy/loadtest/broker.sh"))
	cmd.Env = append(os.Environ(), "GHZ="+ghz, "TARGET="+e.Conn.Target(), "CONNECTION="+e.ConnID, "REPOSITORY=alpha",
		"TOKEN_FILE="+tokenFile, "REQUESTS=3000", "CONCURRENCY=32")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "ratio IssueToken/Health: throughput ") {
		t.Error("no ratio printed")
	}
	if strings.Contains(string(out), e.Tokens["search-svc"]) {
		t.Error("the token reached the output")
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 1 {
		t.Errorf("%d exchanges, want 1 (cache hits)", n)
	}
}
