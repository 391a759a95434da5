package e2e

import "testing"

// TestAdminUISignIn drives single sign-on in Chromium: the real redirect
// flow through the development identity provider, the admin and auditor
// roles, a person in neither group, the session cookie and CSRF, signing
// out; Back from GitHub.com before the App exists lands on the PENDING
// connection, which Cancel abandons.
func TestAdminUISignIn(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	s := startSystem(t)
	s.runUITest(dir, "sso.test.mjs", "ui-sso", "EMU_URL="+s.emu)
}
