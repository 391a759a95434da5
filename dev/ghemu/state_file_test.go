package ghemu_test

import (
	"path/filepath"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
)

func TestStateSurvivesRestart(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	path := filepath.Join(t.TempDir(), "state.json")
	if err := w.emu.SaveState(path); err != nil {
		t.Fatal(err)
	}
	again := ghemu.StartForTest(t, ghemu.Options{})
	if err := again.LoadState(path); err != nil {
		t.Fatal(err)
	}
	w2 := &world{emu: again, key: w.key, appID: w.appID, instID: w.instID}
	// The App, its key and its installation are still there.
	tok := w2.token(t, nil)
	if tok.GetToken() == "" {
		t.Fatal("no token after restart")
	}
	if _, ok := again.Installation(w.entInstID); !ok {
		t.Error("enterprise installation lost")
	}
	if id := again.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "brand-new"}); id <= w.instID {
		t.Errorf("ids restart below the saved ones: %d", id)
	}
}
