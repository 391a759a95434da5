package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The emulator's counters of what an action costs GitHub.com.
const (
	commitsRoute  = "GET /repos/{owner}/{repo}/commits/{ref}"
	codeloadRoute = "GET /_codeload/{owner}/{repo}/legacy.tar.gz/{sha}"
)

// runnerGet is a runner's GET of an action's tarball through the gateway,
// with token: the status, the headers, the body's SHA-256 and length (the
// body is never held).
func (s *system) runnerGet(action, token string) (int, http.Header, string, int64) {
	s.t.Helper()
	repo, ref, _ := strings.Cut(action, "@")
	req, _ := http.NewRequest("GET", s.gw+"/v1/actions/"+repo+"/tarball/"+ref, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		s.t.Fatalf("%s: the body broke off after %d bytes: %v", action, n, err)
	}
	return resp.StatusCode, resp.Header, hex.EncodeToString(h.Sum(nil)), n
}

// rss is a process's resident memory, in bytes.
func (s *system) rss(name string) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(s.procs[name].Process.Pid) + "/status")
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	s.t.Fatalf("no VmRSS for %s", name)
	return 0
}

// peakRSS samples the processes' resident memory while fn runs and
// returns how far each grew above where it was.
func (s *system) peakRSS(names []string, fn func()) map[string]int64 {
	base, peak := map[string]int64{}, map[string]int64{}
	for _, n := range names {
		base[n] = s.rss(n)
		peak[n] = base[n]
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, n := range names {
					peak[n] = max(peak[n], s.rss(n))
				}
			}
		}
	}()
	fn()
	close(stop)
	<-done
	grew := map[string]int64{}
	for _, n := range names {
		grew[n] = peak[n] - base[n]
	}
	return grew
}

func (s *system) switchFeature(id, feature string, on bool) {
	s.t.Helper()
	s.mustREST("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []map[string]any{{"feature": feature, "enabled": on}}})
}

// TestActionsEndToEnd: over the real processes, a runner with its own
// token gets a GitHub.com action through the gateway only while
// GitHub.com actions are on. A 100 MB tarball streams through the gate
// and the gateway (their resident memory grows by a few MB), is
// downloaded from GitHub.com once and served from the cache by its SHA
// after that; turned off, runners are refused and nothing more reaches
// GitHub.com (the emulator's counters).
func TestActionsEndToEnd(t *testing.T) {
	s := startSystem(t)
	s.emuSend("POST", "/_emu/repos/octo-actions/build", map[string]any{}, http.StatusCreated, nil)
	var pushed struct {
		SHA string `json:"sha"`
	}
	s.emuSend("POST", "/_emu/repos/octo-actions/build/commits", map[string]any{"message": "v1", "payload_bytes": 100 << 20,
		"files": map[string]string{"action.yml": "name: build\nruns:\n  using: node20\n  main: index.js\n"}}, http.StatusOK, &pushed)
	s.emuSend("PUT", "/_emu/repos/octo-actions/build/refs/tags/v1", map[string]any{"sha": pushed.SHA}, http.StatusNoContent, nil)
	// What GitHub.com's download host serves, for comparison.
	resp, err := s.http.Get(s.emu + "/_codeload/octo-actions/build/legacy.tar.gz/" + pushed.SHA)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	size, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	want := hex.EncodeToString(h.Sum(nil))

	id := s.create()
	s.enable(id)
	before := s.emuCounts()
	// Off: refused, and GitHub.com not asked.
	if code, _, _, _ := s.runnerGet("octo-actions/build@v1", s.tokens["runner"]); code != http.StatusBadRequest {
		t.Errorf("while off: %d, want 400 (FAILED_PRECONDITION)", code)
	}
	// Not a runner: no token, or the admin's.
	if code, hdr, _, _ := s.runnerGet("octo-actions/build@v1", ""); code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("without a token: %d %q", code, hdr.Get("WWW-Authenticate"))
	}
	if code, _, _, _ := s.runnerGet("octo-actions/build@v1", s.tokens["admin"]); code != http.StatusForbidden {
		t.Errorf("with the admin's token: %d, want 403", code)
	}
	if after := s.emuCounts(); after[commitsRoute] != before[commitsRoute] || after[codeloadRoute] != before[codeloadRoute] {
		t.Errorf("GitHub.com asked while off: %v → %v", before, after)
	}

	s.switchFeature(id, "FEATURE_ACTIONS_ACCESS", true)
	var code int
	var hdr http.Header
	var sum string
	var n int64
	grew := s.peakRSS([]string{"gateway", "featuregate"}, func() {
		code, hdr, sum, n = s.runnerGet("octo-actions/build@v1", s.tokens["runner"])
	})
	if code != http.StatusOK || sum != want || n != size {
		t.Fatalf("the tarball: %d, %d bytes (want %d), sha256 %s (want %s)", code, n, size, sum, want)
	}
	if hdr.Get("X-Ghconnect-Commit") != pushed.SHA || hdr.Get("X-Ghconnect-Cache") != "miss" || hdr.Get("Content-Length") != strconv.FormatInt(size, 10) ||
		hdr.Get("Content-Type") != "application/x-gzip" {
		t.Errorf("headers: %v", hdr)
	}
	t.Logf("%d MB through: resident memory grew by %.1f MB (gateway) and %.1f MB (feature gate)", size>>20,
		float64(grew["gateway"])/(1<<20), float64(grew["featuregate"])/(1<<20))
	// The goal, under 10 MB, is the live heap's (featuregate's
	// TestActionStreamsInLittleMemory); resident memory also holds what
	// the collector has not returned yet, so the bound here is looser:
	// far below the tarball, which nothing may hold whole.
	for name, g := range grew {
		if g > 20<<20 {
			t.Errorf("%s's resident memory grew by %d MB streaming %d MB", name, g>>20, size>>20)
		}
	}
	if code, _, _, _ := s.runnerGet("octo-actions/nothing@v1", s.tokens["runner"]); code != http.StatusNotFound {
		t.Errorf("a repository GitHub.com does not have: %d, want 404", code)
	}

	// By its SHA, pinned: from the cache; GitHub.com not asked.
	before = s.emuCounts()
	code, hdr, sum, _ = s.runnerGet("octo-actions/build@"+pushed.SHA, s.tokens["runner"])
	if code != http.StatusOK || sum != want || hdr.Get("X-Ghconnect-Cache") != "hit" {
		t.Errorf("by SHA: %d, cache %q", code, hdr.Get("X-Ghconnect-Cache"))
	}
	if after := s.emuCounts(); after[commitsRoute] != before[commitsRoute] || after[codeloadRoute] != before[codeloadRoute] {
		t.Errorf("a cached SHA asked GitHub.com: %v → %v", before, after)
	}
	st, _ := s.mustREST("GET", "/v1/actions/status", nil)["status"].(map[string]any)
	if st["state"] != "ACTIONS_STATE_SERVING" || st["downloads"] != "1" || st["cachedArchives"] != "1" ||
		!strings.Contains(st["lastDownload"].(string), pushed.SHA) {
		t.Errorf("status: %v", st)
	}
	if ok, cached := s.metric("featuregate-http", `ghconnect_featuregate_actions_requests_total{result="downloaded"}`),
		s.metric("featuregate-http", `ghconnect_featuregate_actions_requests_total{result="cached"}`); ok != 1 || cached != 1 {
		t.Errorf("metrics: downloaded %v, cached %v; want 1 and 1", ok, cached)
	}

	// Off: refused, GitHub.com not asked.
	s.switchFeature(id, "FEATURE_ACTIONS_ACCESS", false)
	before = s.emuCounts()
	s.eventually("runners refused", func() bool {
		code, _, _, _ := s.runnerGet("octo-actions/build@v1", s.tokens["runner"])
		return code == http.StatusBadRequest
	})
	if after := s.emuCounts(); after[commitsRoute] != before[commitsRoute] || after[codeloadRoute] != before[codeloadRoute] {
		t.Errorf("GitHub.com asked after the feature was turned off: %v → %v", before, after)
	}
}
