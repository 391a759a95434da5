package e2e

import (
	"net/http"
	"testing"
)

// TestAdminUITimeline drives the admin page's timeline
// (services/gateway/ui/test/timeline.test.mjs): the registry's history and
// the feature gate's setting changes merged newest first and in words, a
// feature change made in the page appearing with the person who made it
// (signed in through single sign-on: via the gateway), two connections'
// changes shown together and one at a time, pages of older
// changes, and an auditor reading it. Screenshots land in
// .artifacts/ui-timeline.
func TestAdminUITimeline(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	s := startSystem(t)
	// One connection (octo-org) enabled, its features changed a few times
	// and then disconnected; a second one (octo-labs) enabled: more changes
	// than a page holds. The server is the same: the accounts tell them
	// apart.
	first := s.createFor("octo-org")
	s.enable(first)
	setSearch := func(on bool) (int, map[string]any) {
		return s.rest("PATCH", "/v1/connections/"+first+"/features", map[string]any{"features": []map[string]any{{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": on}}})
	}
	// The gate learns of the connection from the registry's stream.
	s.eventually("the feature gate sees the connection connected", func() bool { code, _ := setSearch(true); return code == http.StatusOK })
	for i := range 5 {
		if code, out := setSearch(i%2 == 1); code != http.StatusOK {
			t.Fatalf("switching unified search: %d %v", code, out)
		}
	}
	s.mustREST("POST", "/v1/connections/"+first+":disconnect", map[string]any{"reason": "moving to a new account"})
	second := s.createFor("octo-labs")
	s.enable(second)
	s.runUITest(dir, "timeline.test.mjs", "ui-timeline", "FIRST_ID="+first, "SECOND_ID="+second)
}
