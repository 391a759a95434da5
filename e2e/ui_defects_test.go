package e2e

import "testing"

// TestAdminUIDefects drives the admin page through what it used to get
// wrong (services/gateway/ui/test/defects.test.mjs): a Disable failing
// during a GitHub.com outage (the emulator answers 502) and its retry,
// DISCONNECTING and PENDING as states of their own, include-private kept
// apart from unified search, Back, reloads and replayed callbacks, field
// errors and long values, focus and confirmations, the Disable wording and
// the favicon. Screenshots land in .artifacts/ui-defects.
func TestAdminUIDefects(t *testing.T) {
	t.Parallel() // the browser tests share nothing, and mostly wait
	dir := uiTestDir(t)
	// The reconciler would finish the interrupted disconnect by itself once
	// GitHub.com is back; the page's Retry is what the test is about.
	s := startSystemWith(t, systemOptions{RegistryArgs: []string{"-reconcile-every", "1h"}})
	s.runUITest(dir, "defects.test.mjs", "ui-defects", "EMU_URL="+s.emu)
}
