package e2e

import (
	"net/http"
	"regexp"
	"testing"
)

// TestUserPage drives a server user's own page (services/gateway/ui/me.html,
// test services/gateway/ui/test/me.test.mjs) in Chromium against the whole
// system: people outside the admin groups sign in and land on it, connect
// their GitHub.com accounts on the emulator's authorization page, search
// privately (mona, an organization member, sees the private repository;
// eve, linked without access, does not), see "connect again" after
// revoking the App on GitHub.com, cancel on GitHub.com, and disconnect.
// Mona opts in to unified contributions: counts the server reports (as
// contrib-source, a contributions-source) reach her GitHub.com profile, her
// page says when; while GitHub.com fails (the emulator's 502s) her page
// says her count waits and why, and it leaves once GitHub.com answers; the
// admin page counts her, the last upload and the last error, the timeline
// names her; opting out removes them from her profile.
// Screenshots land in .artifacts/ui-me.
func TestUserPage(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	s := startSystem(t)
	id := s.create()
	s.enable(id)
	search := map[string]any{"features": []map[string]any{{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": true, "includePrivate": true},
		{"feature": "FEATURE_UNIFIED_CONTRIBUTIONS", "enabled": true}}}
	s.eventually("unified search with private results and unified contributions are on", func() bool {
		code, _ := s.rest("PATCH", "/v1/connections/"+id+"/features", search)
		return code == http.StatusOK
	})
	conn := s.mustREST("GET", "/v1/connections/"+id, nil)["connection"].(map[string]any)
	clientID := conn["app"].(map[string]any)["clientId"].(string)
	s.runUITest(dir, "me.test.mjs", "ui-me", "EMU_URL="+s.emu, "CLIENT_ID="+clientID, "CONNECTION_ID="+id, "CONTRIB_TOKEN="+s.tokens["contrib-source"])
	if tok := userToken.FindString(s.logs()); tok != "" {
		t.Errorf("a user token reached a log: %s…", tok[:8])
	}
}

// userToken matches GitHub user access and refresh tokens.
var userToken = regexp.MustCompile(`gh[ur]_[A-Za-z0-9]{20,}`)
