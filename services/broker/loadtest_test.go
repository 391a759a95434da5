package broker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/loadecho"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// TestLoadtestScript runs `make loadtest`'s script against a harness broker
// when GHCONNECT_LOADTEST_GHZ and GHCONNECT_LOADTEST_GRPCURL name ghz and
// grpcurl binaries (make bin/ghz bin/grpcurl builds them).
func TestLoadtestScript(t *testing.T) {
	ghz := os.Getenv("GHCONNECT_LOADTEST_GHZ")
	if ghz == "" {
		t.Skip("GHCONNECT_LOADTEST_GHZ is not set")
	}
	grpcurl := os.Getenv("GHCONNECT_LOADTEST_GRPCURL")
	e := brokertest.Start(t, brokertest.Options{Quiet: true, Extra: func(s *grpc.Server, r *auth.Rules) {
		if err := loadecho.Register(s, r, "token-client"); err != nil {
			t.Fatal(err)
		}
	}})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(e.Tokens["search-svc"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "deploy/loadtest/broker.sh"))
	cmd.Env = append(os.Environ(), "GHZ="+ghz, "GRPCURL="+grpcurl, "TARGET="+e.Conn.Target(), "CONNECTION="+e.ConnID, "REPOSITORY=alpha",
		"TOKEN_FILE="+tokenFile, "REQUESTS=3000", "CONCURRENCY=32")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "ratio IssueToken/Echo: throughput ") {
		t.Error("no ratio printed")
	}
	// The echo is sent as many bytes as IssueToken's request holds and
	// answers as many as its reply.
	req := &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Permissions: map[string]string{"metadata": "read"}}
	resp, err := e.Issue(t, "search-svc", req)
	if err != nil {
		t.Fatal(err)
	}
	req.ConnectionId = e.ConnID
	if want := fmt.Sprintf("request size: %d bytes", proto.Size(req)); !strings.Contains(string(out), want) {
		t.Errorf("the script did not measure the request as %q", want)
	}
	echo, err := loadecho.Request(int32(proto.Size(req)), int32(proto.Size(resp))) //nolint:gosec // G115: small sizes
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("echo payload: %d bytes", len(echo.GetPayload())); !strings.Contains(string(out), want) {
		t.Errorf("the echo's request is not as large as IssueToken's: want %q", want)
	}
	if want := fmt.Sprintf("reply size: %d bytes", proto.Size(resp)); !strings.Contains(string(out), want) {
		t.Errorf("the script did not measure the reply as %q", want)
	}
	if strings.Contains(string(out), e.Tokens["search-svc"]) {
		t.Error("the token reached the output")
	}
	if n := e.Emu.Count(brokertest.AccessTokens); n != 1 {
		t.Errorf("%d exchanges, want 1 (cache hits)", n)
	}
}
