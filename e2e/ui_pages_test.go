package e2e

import (
	"context"
	"net/http"
	"testing"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAdminUIGitHubPages: enabling as a real admin does, through
// GitHub.com's own pages (the emulator's, not approving at once): the
// admin cancels the App's creation, then its installation, each time
// coming back to the admin page, which says what happened and offers to
// continue; then installs on one selected repository, which the page
// shows, and tokens reach that repository and no other.
// (services/gateway/ui/test/pages.test.mjs; screenshots in
// .artifacts/ui-pages.)
func TestAdminUIGitHubPages(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	s := startSystem(t)
	s.emuSend("PUT", "/_emu/auto-approve", map[string]any{"auto_approve": false}, http.StatusNoContent, nil)
	s.runUITest(dir, "pages.test.mjs", "ui-pages")

	code, out := s.rest("GET", "/v1/connections", nil)
	if code != http.StatusOK {
		t.Fatalf("connections: %d %v", code, out)
	}
	id := ""
	for _, c := range out["connections"].([]any) {
		if m := c.(map[string]any); m["state"] == "CONNECTION_STATE_CONNECTED" {
			id = m["id"].(string)
		}
	}
	if id == "" {
		t.Fatalf("no connected connection: %v", out)
	}
	broker := brokerv1.NewTokenBrokerServiceClient(s.grpcAs("search-svc", s.addr("broker")))
	ctx := context.Background()
	if _, err := broker.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"hello-world"}, Permissions: map[string]string{"metadata": "read"}}); err != nil {
		t.Errorf("a token for the selected repository: %v", err)
	}
	_, err := broker.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"internal-tools"}, Permissions: map[string]string{"metadata": "read"}})
	if st := status.Convert(err); err == nil || st.Code() == codes.OK {
		t.Errorf("a token for a repository the installation does not cover was issued")
	} else {
		t.Logf("a repository the installation does not cover: %v", err)
	}
}
