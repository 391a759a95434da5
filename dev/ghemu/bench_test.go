package ghemu_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
)

// BenchmarkExchangeAt14000Repos is one installation token exchange for one
// repository, straight through the handler (no contract checks), with
// 14,000 repositories in the emulator, all of them in the installation.
func BenchmarkExchangeAt14000Repos(b *testing.B) {
	e := ghemu.New(ghemu.Options{RateLimit: 1 << 30})
	key := testKeys(b)[0]
	for i := 0; i < 14000; i++ {
		e.AddRepo(ghemu.RepoSpec{Owner: "big-org", Name: fmt.Sprintf("repo-%d", i)})
	}
	appID, err := e.AddApp(ghemu.AppSpec{Slug: "bench", Owner: "big-org"}, &key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := e.Install(appID, "big-org", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	auth := "Bearer " + appJWT(key, strconv.FormatInt(appID, 10), now.Add(-time.Minute), now.Add(9*time.Minute))
	path := "/app/installations/" + strconv.FormatInt(inst.ID, 10) + "/access_tokens"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := `{"repositories":["repo-` + strconv.Itoa(i%14000) + `"]}`
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}

// BenchmarkListAdvisoriesAt20000 is one op: every one of 20,000 generated
// advisories listed at per_page=100 (200 requests), following the Link
// header's cursors, straight through the handler (no contract checks).
func BenchmarkListAdvisoriesAt20000(b *testing.B) {
	e := ghemu.New(ghemu.Options{})
	if _, err := e.GenerateAdvisories(20000, 1); err != nil {
		b.Fatal(err)
	}
	next := regexp.MustCompile(`<[^>]*[?&]after=([^&>]+)[^>]*>; rel="next"`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		path, pages := "/advisories?per_page=100", 0
		for path != "" {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
			pages++
			path = ""
			if m := next.FindStringSubmatch(rec.Header().Get("Link")); m != nil {
				path = "/advisories?per_page=100&after=" + m[1]
			}
		}
		if pages != 200 {
			b.Fatalf("%d pages", pages)
		}
	}
	b.ReportMetric(float64(b.N*200)/b.Elapsed().Seconds(), "pages/s")
}
