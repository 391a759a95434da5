package ghemu_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-cmp/cmp"
)

// contribCall calls GitHub Connect's private contributions interface with
// an installation token.
func (w *world) contribCall(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, w.emu.URL+path, rd)
	req.Header.Set("Authorization", "token "+token)
	return sendJSON(t, req)
}

// TestContributions: counts are set per person and day (a resend changes
// nothing, a new count replaces the old, 0 removes), a delete empties the
// profile of what the App sent, and the routes stay out of the contract
// (StartForTest fails the test on any violation).
func TestContributions(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	hubot := e.AddUser("hubot")
	mona := e.AddUser("mona")
	tok := w.token(t, nil).GetToken()
	batch := func(entries ...any) map[string]any { return map[string]any{"contributions": entries} }
	entry := func(id int64, date string, n int) map[string]any {
		return map[string]any{"user_id": id, "date": date, "count": n}
	}
	for i := 0; i < 2; i++ { // the same batch twice: the same profile
		code, out := w.contribCall(t, "POST", "/connect/contributions", tok, batch(entry(mona.ID, "2026-11-30", 3), entry(mona.ID, "2026-12-01", 5), entry(hubot.ID, "2026-12-01", 1), entry(999999, "2026-12-01", 2)))
		if code != http.StatusOK || out["applied"] != float64(3) || !cmp.Equal(out["unknown_user_ids"], []any{float64(999999)}) {
			t.Fatalf("post: %d %v", code, out)
		}
	}
	if got := e.Contributions("mona"); !cmp.Equal(got, map[string]int64{"2026-11-30": 3, "2026-12-01": 5}) {
		t.Errorf("mona's profile: %v", got)
	}
	w.contribCall(t, "POST", "/connect/contributions", tok, batch(entry(mona.ID, "2026-12-01", 7), entry(mona.ID, "2026-11-30", 0)))
	if got := e.Contributions("mona"); !cmp.Equal(got, map[string]int64{"2026-12-01": 7}) {
		t.Errorf("after a correction: %v", got)
	}
	if code, _ := w.contribCall(t, "DELETE", "/connect/contributions/"+strconv.FormatInt(mona.ID, 10), tok, nil); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if got := e.Contributions("mona"); len(got) != 0 {
		t.Errorf("after the delete: %v", got)
	}
	if got := e.Contributions("hubot"); !cmp.Equal(got, map[string]int64{"2026-12-01": 1}) {
		t.Errorf("hubot's profile after mona's delete: %v", got)
	}
	// Over HTTP for the binary.
	resp, err := http.Get(w.emu.URL + "/_emu/users/hubot/contributions")
	if err != nil {
		t.Fatal(err)
	}
	var shown map[string]int64
	err = json.NewDecoder(resp.Body).Decode(&shown)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(shown, map[string]int64{"2026-12-01": 1}) {
		t.Errorf("GET /_emu/users/hubot/contributions: %v", shown)
	}
	refused := map[string]struct {
		token string
		body  any
		want  int
	}{
		"no token": {"", batch(entry(mona.ID, "2026-12-01", 1)), http.StatusUnauthorized},
		"bad date": {tok, batch(entry(mona.ID, "12/01/2026", 1)), http.StatusUnprocessableEntity},
		"negative": {tok, batch(entry(mona.ID, "2026-12-01", -1)), http.StatusUnprocessableEntity},
		"empty":    {tok, batch(), http.StatusUnprocessableEntity},
		"not JSON": {tok, "x", http.StatusBadRequest},
	}
	for name, c := range refused {
		if code, _ := w.contribCall(t, "POST", "/connect/contributions", c.token, c.body); code != c.want {
			t.Errorf("%s: %d, want %d", name, code, c.want)
		}
	}
	// Faults apply as to the API.
	e.SetFaults(ghemu.Faults{ServerErrors: 1})
	if code, _ := w.contribCall(t, "POST", "/connect/contributions", tok, batch(entry(mona.ID, "2026-12-01", 1))); code != http.StatusBadGateway {
		t.Errorf("with a server error injected: %d", code)
	}
	if n := e.Count("POST /connect/contributions"); n != 9 {
		t.Errorf("%d posts counted, want 9", n)
	}
}
