package ghemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-github/v60/github"
)

// anonClient is go-github with no credentials, as anyone reads the
// advisory database.
func anonClient(emu *ghemu.TestServer) *github.Client {
	c := github.NewClient(nil)
	c.BaseURL, _ = url.Parse(emu.URL + "/")
	return c
}

// listAdvisories is GET /advisories?query through go-github, for the
// parameters its options type lacks (sort, direction, epss_…).
func listAdvisories(t *testing.T, c *github.Client, query string) ([]*github.GlobalSecurityAdvisory, *github.Response, error) {
	t.Helper()
	req, err := c.NewRequest("GET", "advisories?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*github.GlobalSecurityAdvisory
	resp, err := c.Do(context.Background(), req, &out)
	return out, resp, err
}

func ghsaIDs(list []*github.GlobalSecurityAdvisory) []string {
	out := []string{}
	for _, a := range list {
		out = append(out, a.GetGHSAID())
	}
	return out
}

// TestAdvisoriesThroughGoGithub: go-github's own calls list every
// generated advisory page by page through the Link header's cursors, get
// one by id, and an incremental reader filtering on updated sees only
// what changed since it last read.
func TestAdvisoriesThroughGoGithub(t *testing.T) {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	generated, err := emu.GenerateAdvisories(1000, 7)
	if err != nil {
		t.Fatal(err)
	}
	c := anonClient(emu)
	ctx := context.Background()

	opts := &github.ListGlobalSecurityAdvisoriesOptions{ListCursorOptions: github.ListCursorOptions{PerPage: 100}}
	var all []*github.GlobalSecurityAdvisory
	var second []string
	for pages := 1; ; pages++ {
		page, resp, err := c.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if pages == 2 {
			second = ghsaIDs(page)
			if resp.Before == "" {
				t.Error("page 2 has no rel=prev cursor")
			}
		}
		all = append(all, page...)
		if resp.After == "" {
			if pages != 10 || len(page) != 100 {
				t.Errorf("last page: number %d with %d advisories, want 10 with 100", pages, len(page))
			}
			break
		}
		if len(page) != 100 || pages > 10 {
			t.Fatalf("page %d: %d advisories, next cursor %q", pages, len(page), resp.After)
		}
		opts.After = resp.After
	}
	want := map[string]bool{}
	for _, a := range generated {
		want[a.GHSAID] = true
	}
	got := map[string]bool{}
	for i, a := range all {
		got[a.GetGHSAID()] = true
		// The default order: published, newest first.
		if i > 0 && a.GetPublishedAt().After(all[i-1].GetPublishedAt().Time) {
			t.Fatalf("advisory %d published %v after its predecessor's %v", i, a.GetPublishedAt(), all[i-1].GetPublishedAt())
		}
	}
	if len(all) != 1000 || len(got) != 1000 || !mapsEqual(got, want) {
		t.Fatalf("listed %d advisories (%d distinct), want the 1000 generated", len(all), len(got))
	}

	// rel="prev" of page 3 is page 2 again.
	opts.After = ""
	p1, resp, err := c.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, &github.ListGlobalSecurityAdvisoriesOptions{ListCursorOptions: github.ListCursorOptions{PerPage: 100}})
	if err != nil || len(p1) != 100 {
		t.Fatal(err)
	}
	_, resp, err = c.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, &github.ListGlobalSecurityAdvisoriesOptions{ListCursorOptions: github.ListCursorOptions{PerPage: 100, After: resp.After}})
	if err != nil {
		t.Fatal(err)
	}
	p3, resp, err := c.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, &github.ListGlobalSecurityAdvisoriesOptions{ListCursorOptions: github.ListCursorOptions{PerPage: 100, After: resp.After}})
	if err != nil || len(p3) != 100 {
		t.Fatal(err)
	}
	back, _, err := c.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, &github.ListGlobalSecurityAdvisoriesOptions{ListCursorOptions: github.ListCursorOptions{PerPage: 100, Before: resp.Before}})
	if err != nil || !slices.Equal(ghsaIDs(back), second) {
		t.Errorf("page before page 3 is not page 2: %v", err)
	}

	// One advisory, as generated.
	g := generated[123]
	a, _, err := c.SecurityAdvisories.GetGlobalSecurityAdvisories(ctx, g.GHSAID)
	if err != nil {
		t.Fatal(err)
	}
	v := a.Vulnerabilities[0]
	switch {
	case a.GetGHSAID() != g.GHSAID, a.GetCVEID() != g.CVEID, a.GetSeverity() != g.Severity, a.GetType() != "reviewed",
		a.GetSummary() != g.Summary, *a.CVSS.GetScore() != g.CVSS.Score, a.CVSS.GetVectorString() != g.CVSS.VectorString,
		len(a.Vulnerabilities) != len(g.Vulnerabilities), v.Package.GetName() != g.Vulnerabilities[0].Package.Name,
		v.GetVulnerableVersionRange() != g.Vulnerabilities[0].VulnerableVersionRange,
		v.GetFirstPatchedVersion() != g.Vulnerabilities[0].FirstPatchedVersion,
		a.GetHTMLURL() != "https://github.com/advisories/"+g.GHSAID,
		len(a.CWEs) != len(g.CWEs), a.CWEs[0].GetCWEID() != g.CWEs[0].CWEID,
		!a.GetPublishedAt().Time.Equal(g.PublishedAt), !a.GetUpdatedAt().Time.Equal(g.UpdatedAt):
		t.Errorf("GET /advisories/%s = %+v, want %+v", g.GHSAID, a, g)
	}

	// The incremental reader: what changed at or after its last read.
	since := time.Now().UTC().Truncate(time.Second)
	changed, err := emu.UpdateAdvisory(generated[5].GHSAID, func(a *ghemu.Advisory) { a.Severity = "critical" })
	if err != nil {
		t.Fatal(err)
	}
	if changed.UpdatedAt.Before(since) {
		t.Errorf("updated_at %v not moved to now (%v)", changed.UpdatedAt, since)
	}
	if _, err := emu.WithdrawAdvisory(generated[17].GHSAID); err != nil {
		t.Fatal(err)
	}
	updated := ">=" + since.Format(time.RFC3339)
	news, _, err := c.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, &github.ListGlobalSecurityAdvisoriesOptions{Updated: &updated})
	if err != nil {
		t.Fatal(err)
	}
	ids := ghsaIDs(news)
	slices.Sort(ids)
	wantIDs := []string{generated[5].GHSAID, generated[17].GHSAID}
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("updated %s: %v, want %v", updated, ids, wantIDs)
	}
	for _, a := range news {
		switch a.GetGHSAID() {
		case generated[5].GHSAID:
			if a.GetSeverity() != "critical" || a.WithdrawnAt != nil {
				t.Errorf("the updated advisory: severity %q, withdrawn %v", a.GetSeverity(), a.WithdrawnAt)
			}
		case generated[17].GHSAID:
			if a.WithdrawnAt == nil || a.WithdrawnAt.Before(since) {
				t.Errorf("the withdrawn advisory: withdrawn_at %v", a.WithdrawnAt)
			}
		}
	}
	if n := emu.Count("GET /advisories"); n != 15 {
		t.Errorf("GET /advisories counted %d times", n)
	}
	if emu.Count("GET /advisories/{ghsa_id}") != 1 {
		t.Errorf("GET /advisories/{ghsa_id} counted %d times", emu.Count("GET /advisories/{ghsa_id}"))
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// filterWorld has five advisories chosen so each filter picks a known few.
func filterWorld(t *testing.T, emu *ghemu.TestServer) map[string]string {
	t.Helper()
	day := func(s string) time.Time {
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	vuln := func(eco, name, rng, fixed string) []ghemu.Vulnerability {
		return []ghemu.Vulnerability{{Package: ghemu.AdvisoryPackage{Ecosystem: eco, Name: name}, VulnerableVersionRange: rng, FirstPatchedVersion: fixed}}
	}
	specs := map[string]ghemu.Advisory{
		"A": {CVEID: "CVE-2024-0001", Severity: "high", Summary: "Prototype Pollution in lodash", CWEs: []ghemu.CWE{{CWEID: "CWE-1321"}},
			EPSS: &ghemu.EPSS{Percentage: 0.5, Percentile: 0.99}, Vulnerabilities: vuln("npm", "lodash", ">= 4.0.0, < 4.17.21", "4.17.21"),
			PublishedAt: day("2024-01-10T12:00:00Z"), UpdatedAt: day("2024-02-01T00:00:00Z")},
		"B": {CVEID: "CVE-2023-0002", Severity: "medium", Summary: "XSS in django", CWEs: []ghemu.CWE{{CWEID: "79"}},
			EPSS: &ghemu.EPSS{Percentage: 0.1, Percentile: 0.8}, Vulnerabilities: vuln("pip", "django", "< 3.2.19", "3.2.19"),
			PublishedAt: day("2023-05-01T08:00:00Z"), UpdatedAt: day("2024-03-05T09:30:00Z")},
		"C": {Severity: "low", Summary: "Bad release of @angular/core", Vulnerabilities: vuln("npm", "@angular/core", "= 12.0.0", "12.0.1"),
			PublishedAt: day("2022-01-01T00:00:00Z"), UpdatedAt: day("2022-06-01T00:00:00Z"), WithdrawnAt: day("2022-06-01T00:00:00Z")},
		"D": {Type: "malware", Severity: "critical", Summary: "Malware in evil-pkg", Vulnerabilities: vuln("npm", "evil-pkg", ">= 0", ""),
			PublishedAt: day("2024-06-01T00:00:00Z")},
		"E": {Type: "unreviewed", Summary: "Something in a Go module", Vulnerabilities: vuln("go", "github.com/x/y", "< 1.0.0", ""),
			PublishedAt: day("2024-07-01T00:00:00Z")},
	}
	ids := map[string]string{}
	for name, spec := range specs {
		a, err := emu.AddAdvisory(spec)
		if err != nil {
			t.Fatal(err)
		}
		ids[name], ids[a.GHSAID] = a.GHSAID, name
	}
	return ids
}

func TestAdvisoryFiltersAndOrder(t *testing.T) {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	ids := filterWorld(t, emu)
	c := anonClient(emu)
	names := func(list []*github.GlobalSecurityAdvisory) string {
		var s string
		for _, a := range list {
			s += ids[a.GetGHSAID()]
		}
		return s
	}
	for _, tc := range []struct{ query, want string }{
		{"", "ABC"}, // reviewed only, withdrawn too, newest published first
		{"type=reviewed", "ABC"},
		{"type=malware", "D"},
		{"type=unreviewed", "E"},
		{"ecosystem=npm", "AC"},
		{"ecosystem=pip", "B"},
		{"ecosystem=go", ""},
		{"type=unreviewed&ecosystem=go", "E"},
		{"affects=lodash", "A"},
		{"affects=lodash@4.17.20", "A"},
		{"affects=lodash@4.17.21", ""},
		{"affects=lodash@3.9.9", ""},
		{"affects=lodash@4.0.0-rc.1", ""},
		{"affects=@angular/core@12.0.0", "C"},
		{"affects=@angular/core", "C"},
		{"affects=django@3.2.18,lodash@4.0.0", "AB"},
		{"affects=django&affects=lodash@5.0.0", "B"},
		{"affects[]=django&affects[]=nothing", "B"},
		{"ecosystem=pip&affects=lodash", ""},
		{"is_withdrawn=true", "C"},
		{"is_withdrawn=false", "AB"},
		{"severity=high", "A"},
		{"cwes=79,1321", "AB"},
		{"cwes=CWE-79", "B"},
		{"cwes=22", ""},
		{"cve_id=CVE-2024-0001", "A"},
		{"ghsa_id=" + ids["B"], "B"},
		{"ghsa_id=" + ids["D"], ""}, // malware needs type=malware
		{"published=2024-01-10", "A"},
		{"published=<2023-05-01", "C"},
		{"published=<=2023-05-01", "BC"},
		{"published=2023-01-01..2024-01-10", "AB"},
		{"published=2023-05-02..*", "A"},
		{"published=*..2023-05-01", "BC"},
		{"published=>=2024-01-10T12:00:00Z", "A"},
		{"published=>2024-01-10T12:00:00Z", ""},
		{"published=>2024-01-10", ""},
		{"published=2024-01-10T12:00:00%2B00:00", "A"},
		{"updated=2024-03-05", "B"},
		{"updated=>=2024-02-01T00:00:00Z", "AB"},
		{"modified=>=2024-03-01", "B"},
		{"modified=2024-01-10", "A"},
		{"epss_percentage=>0.4", "A"},
		{"epss_percentile=0.8..1", "AB"},
		{"sort=updated", "BAC"},
		{"sort=updated&direction=asc", "CAB"},
		{"sort=published&direction=asc", "CBA"},
		{"sort=epss_percentage", "ABC"},
		{"sort=epss_percentile&direction=asc", "CBA"},
		{"sort=updated&updated=>2022-06-01", "BA"},
		{"sort=updated&direction=asc&updated=<2024-03-05", "CA"},
	} {
		list, _, err := listAdvisories(t, c, tc.query)
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		if got := names(list); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
		}
	}

	// go-github's options: cwes as a repeated parameter.
	list, _, err := c.SecurityAdvisories.ListGlobalSecurityAdvisories(context.Background(), &github.ListGlobalSecurityAdvisoriesOptions{
		CWEs: []string{"79", "1321"}, Ecosystem: github.String("npm"), Affects: github.String("lodash@4.17.20,django"), IsWithdrawn: github.Bool(false)})
	if err != nil || names(list) != "A" {
		t.Errorf("go-github's filters: %q %v", names(list), err)
	}

	// Cursors page through a filtered list in both directions.
	for _, order := range []string{"", "&direction=asc", "&sort=updated", "&sort=updated&direction=asc&updated=>2000-01-01"} {
		var got string
		query := "per_page=1" + order
		var resp *github.Response
		for pages := 1; ; pages++ {
			if pages > 3 {
				t.Fatalf("%q: more pages than advisories", order)
			}
			list, r, err := listAdvisories(t, c, query)
			if err != nil || len(list) != 1 {
				t.Fatalf("%s: %v %v", query, list, err)
			}
			got += names(list)
			if resp = r; r.After == "" {
				break
			}
			query = "per_page=1" + order + "&after=" + r.After
		}
		all, _, err := listAdvisories(t, c, strings.TrimPrefix(order, "&"))
		if err != nil || got != names(all) {
			t.Errorf("paged %q: %q, unpaged %q (%v)", order, got, names(all), err)
		}
		// And back from the last page.
		var back string
		for pages := 1; resp.Before != ""; pages++ {
			if pages > 2 {
				t.Fatalf("%q: more pages back than advisories", order)
			}
			list, r, err := listAdvisories(t, c, "per_page=1"+order+"&before="+resp.Before)
			if err != nil || len(list) != 1 {
				t.Fatalf("before: %v %v", list, err)
			}
			back = names(list) + back
			resp = r
		}
		if back+got[len(got)-1:] != got {
			t.Errorf("back from the last page %q: %q", order, back)
		}
	}
	// A cursor from outside a date range the next request adds: the walk
	// starts at the range's edge.
	_, oldest, err := listAdvisories(t, c, "per_page=1&direction=asc")
	if err != nil || oldest.After == "" {
		t.Fatal(err)
	}
	if list, _, err := listAdvisories(t, c, "per_page=1&direction=asc&published=>2024-01-01&after="+oldest.After); err != nil || names(list) != "A" {
		t.Errorf("a cursor before the range: %q %v", names(list), err)
	}

	// Two at a time: the next cursor stops after the last match, not at
	// the end of the database.
	list, resp, err := listAdvisories(t, c, "ecosystem=npm&per_page=2")
	if err != nil || names(list) != "AC" || resp.After != "" || resp.Before != "" {
		t.Errorf("a full page with nothing after: %q next %q prev %q %v", names(list), resp.After, resp.Before, err)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("Link on the only page: %q", resp.Header.Get("Link"))
	}
	list, resp, err = listAdvisories(t, c, "ecosystem=npm&per_page=1")
	if err != nil || !strings.Contains(resp.Header.Get("Link"), emu.URL+"/advisories?") || !strings.Contains(resp.Header.Get("Link"), "ecosystem=npm") {
		t.Errorf("Link %q: want the emulator's URL and the query's filters (%v %v)", resp.Header.Get("Link"), list, err)
	}

	// Get: any type, withdrawn or not; an unknown id is 404.
	for _, name := range []string{"A", "C", "D", "E"} {
		a, _, err := c.SecurityAdvisories.GetGlobalSecurityAdvisories(context.Background(), ids[name])
		if err != nil || a.GetGHSAID() != ids[name] {
			t.Errorf("get %s: %v", name, err)
		}
	}
	// A change moves the advisory in the updated order, and only there.
	if _, err := emu.UpdateAdvisory(ids["C"], func(a *ghemu.Advisory) { a.Summary = "Changed" }); err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string]string{"": "ABC", "sort=updated": "CBA", "sort=updated&direction=asc&per_page=1&after=": "A"} {
		if list, _, err := listAdvisories(t, c, query); err != nil || names(list) != want {
			t.Errorf("after a change, %s: %q, want %q (%v)", query, names(list), want, err)
		}
	}
	for _, id := range []string{"GHSA-2222-3333-4444", "nonsense"} {
		if _, _, err := c.SecurityAdvisories.GetGlobalSecurityAdvisories(context.Background(), id); statusOf(err) != http.StatusNotFound {
			t.Errorf("get %s: %v, want 404", id, err)
		}
	}
}

// TestAdvisoryBadParameters: 422 (the description's answer) for
// parameters the description allows but GitHub cannot read, and for those
// it does not allow, which the contract flags as the client's mistake.
func TestAdvisoryBadParameters(t *testing.T) {
	c, err := ghemu.SharedContract()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []error
	emu := ghemu.StartForTest(t, ghemu.Options{Contract: c, OnViolation: func(err error) { mu.Lock(); seen = append(seen, err); mu.Unlock() }})
	filterWorld(t, emu)
	cl := anonClient(emu)
	_, resp, err := listAdvisories(t, cl, "per_page=1")
	if err != nil || resp.After == "" {
		t.Fatal(err)
	}
	published := resp.After
	for _, tc := range []struct {
		query      string
		violation  bool // outside the description: the contract says so
		wantInBody string
	}{
		{"published=yesterday", false, "published"},
		{"updated=2024-13-01", false, "updated"},
		{"modified=>=", false, "modified"},
		{"affects=lodash@", false, "affects"},
		{"cwes=abc", false, "cwes"},
		{"epss_percentage=high", false, "epss_percentage"},
		{"after=garbage", false, "cursor"},
		{"after=" + published + "&before=" + published, false, "before and after"},
		{"sort=updated&after=" + published, false, "cursor"}, // a cursor of another order
		{"per_page=101", true, "per_page"},
		{"per_page=0", true, "per_page"},
		{"type=bogus", true, "type"},
		{"direction=up", true, "direction"},
		{"sort=name", true, "sort"},
		{"is_withdrawn=maybe", true, "is_withdrawn"},
		{"severity=severe", true, "severity"},
		{"ecosystem=cobol", true, "ecosystem"},
	} {
		mu.Lock()
		before := len(seen)
		mu.Unlock()
		_, _, err := listAdvisories(t, cl, tc.query)
		var er *github.ErrorResponse
		if !errors.As(err, &er) || er.Response.StatusCode != http.StatusUnprocessableEntity || er.Message != "Validation Failed" {
			t.Errorf("%s: %v, want 422 Validation Failed", tc.query, err)
		} else if len(er.Errors) != 1 || !strings.Contains(er.Errors[0].Message, tc.wantInBody) {
			t.Errorf("%s: errors %v, want one naming %q", tc.query, er.Errors, tc.wantInBody)
		}
		mu.Lock()
		got := seen[before:]
		mu.Unlock()
		switch {
		case tc.violation && (len(got) != 1 || !strings.Contains(got[0].Error(), "request GET /advisories")):
			t.Errorf("%s: violations %v, want the contract to flag the request", tc.query, got)
		case !tc.violation && len(got) != 0:
			t.Errorf("%s: violations %v, want none", tc.query, got)
		}
	}
}

// TestAdvisoryFaultsAndTokens: the advisory routes take the faults, rate
// limits and tokens every other route does.
func TestAdvisoryFaultsAndTokens(t *testing.T) {
	w := newWorld(t, ghemu.Options{RateLimit: 50})
	if _, err := w.emu.GenerateAdvisories(10, 1); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	anon := anonClient(w.emu)

	w.emu.SetFaults(ghemu.Faults{ServerErrors: 1})
	if _, _, err := anon.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, nil); statusOf(err) != http.StatusBadGateway {
		t.Errorf("injected server error: %v", err)
	}
	list, resp, err := anon.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, nil)
	if err != nil || len(list) != 10 {
		t.Fatalf("after the fault: %d %v", len(list), err)
	}
	if resp.Rate.Limit != 0 {
		t.Errorf("anonymous request counted against a limit: %+v", resp.Rate)
	}
	w.emu.SetFaults(ghemu.Faults{SecondaryLimit: 1, RetryAfter: 7 * time.Second})
	var ab *github.AbuseRateLimitError
	if _, _, err := anon.SecurityAdvisories.GetGlobalSecurityAdvisories(ctx, list[0].GetGHSAID()); !errors.As(err, &ab) || ab.GetRetryAfter() != 7*time.Second {
		t.Errorf("injected secondary limit: %v", err)
	}
	// go-github now waits out the Retry-After by itself: a new client.
	anon = anonClient(w.emu)
	w.emu.SetFaults(ghemu.Faults{Latency: 50 * time.Millisecond})
	start := time.Now()
	if _, _, err := anon.SecurityAdvisories.GetGlobalSecurityAdvisories(ctx, list[0].GetGHSAID()); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Errorf("latency: %v after %v", err, time.Since(start))
	}
	w.emu.SetFaults(ghemu.Faults{})

	// An installation token is accepted and counted against its limit.
	tc := w.client("token " + w.token(t, nil).GetToken())
	if _, resp, err := tc.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, nil); err != nil || resp.Rate.Limit != 50 || resp.Rate.Remaining != 49 {
		t.Errorf("with an installation token: %+v %v", resp.Rate, err)
	}
	w.emu.SetRateLimitUsed("installation:"+strconv.FormatInt(w.instID, 10), 50)
	if _, _, err := tc.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("past the installation's limit: %v", err)
	}
	// So is a user token, against the person's limit.
	uc := w.client("Bearer " + str(w.userToken(t, "mona")["access_token"]))
	if _, resp, err := uc.SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, nil); err != nil || resp.Rate.Limit != 50 || resp.Rate.Remaining != 49 {
		t.Errorf("with a user token: %+v %v", resp.Rate, err)
	}
	if _, _, err := w.client("token ghs_notatoken").SecurityAdvisories.ListGlobalSecurityAdvisories(ctx, nil); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("a bad token: %v", err)
	}
}

// TestAdvisorySeedAndState: the example seed's advisories are served, and
// a change survives a restart through the state file.
func TestAdvisorySeedAndState(t *testing.T) {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	if err := emu.SeedFile("seed.example.json"); err != nil {
		t.Fatal(err)
	}
	c := anonClient(emu)
	a, _, err := c.SecurityAdvisories.GetGlobalSecurityAdvisories(context.Background(), "GHSA-2c7m-q4hx-5wv8")
	if err != nil {
		t.Fatal(err)
	}
	if a.GetSeverity() != "high" || a.CWEs[0].GetName() != "Improperly Controlled Modification of Object Prototype Attributes ('Prototype Pollution')" ||
		len(a.Identifiers) != 2 || a.Vulnerabilities[0].GetFirstPatchedVersion() != "2.4.1" {
		t.Errorf("seeded advisory: %+v", a)
	}
	list, _, err := listAdvisories(t, c, "per_page=100&ecosystem=pip&affects=pyarchive-extract@1.9.2")
	if err != nil || len(list) != 1 {
		t.Errorf("the seed's pip advisory by affects: %v %v", ghsaIDs(list), err)
	}
	if _, err := emu.WithdrawAdvisory("GHSA-8f9r-w3jq-m6pv"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := emu.SaveState(path); err != nil {
		t.Fatal(err)
	}
	again := ghemu.StartForTest(t, ghemu.Options{})
	if err := again.LoadState(path); err != nil {
		t.Fatal(err)
	}
	got, ok := again.GetAdvisory("GHSA-8f9r-w3jq-m6pv")
	if !ok || got.WithdrawnAt.IsZero() {
		t.Errorf("withdrawal lost in the restart: %+v", got)
	}
	all, _, err := listAdvisories(t, anonClient(again), "per_page=100&after=")
	if err != nil || len(all) != 100 {
		t.Errorf("restored advisories: %d %v", len(all), err)
	}
}

func TestGeneratedAdvisories(t *testing.T) {
	// The emulator takes them all (they are valid), and a second run with
	// the same seed makes the same ones.
	a, err := ghemu.New(ghemu.Options{}).GenerateAdvisories(20000, 3)
	if err != nil {
		t.Fatal(err)
	}
	b := ghemu.GeneratedAdvisories(20000, 3)
	other := ghemu.GeneratedAdvisories(10, 4)
	if a[0].GHSAID == other[0].GHSAID {
		t.Error("another seed, the same advisories")
	}
	ecosystems := map[string]int{}
	ids := map[string]bool{}
	for i := range a {
		if a[i].GHSAID != b[i].GHSAID || a[i].Summary != b[i].Summary || !a[i].UpdatedAt.Equal(b[i].UpdatedAt) ||
			a[i].Vulnerabilities[0].VulnerableVersionRange != b[i].Vulnerabilities[0].VulnerableVersionRange {
			t.Fatalf("advisory %d differs between two runs with one seed", i)
		}
		ids[a[i].GHSAID] = true
		if n := len(a[i].Vulnerabilities); n < 1 || n > 3 {
			t.Errorf("%s: %d vulnerabilities", a[i].GHSAID, n)
		}
		for _, v := range a[i].Vulnerabilities {
			ecosystems[v.Package.Ecosystem]++
			if v.FirstPatchedVersion != "" && strings.HasPrefix(v.VulnerableVersionRange, "<") && !strings.HasSuffix(v.VulnerableVersionRange, v.FirstPatchedVersion) {
				t.Errorf("%s: range %q patched in %q", a[i].GHSAID, v.VulnerableVersionRange, v.FirstPatchedVersion)
			}
		}
		if a[i].Type != "reviewed" || a[i].CVSS == nil || a[i].UpdatedAt.Before(a[i].PublishedAt) {
			t.Errorf("%s: %+v", a[i].GHSAID, a[i])
		}
	}
	if len(ids) != 20000 {
		t.Errorf("%d distinct GHSA ids of 20000", len(ids))
	}
	for _, eco := range ghemu.GeneratedEcosystems {
		if ecosystems[eco] < 1000 {
			t.Errorf("ecosystem %s: %d vulnerabilities", eco, ecosystems[eco])
		}
	}
}

// TestAdvisoryContractBites: a wrong field in an advisory fails the
// contract check.
func TestAdvisoryContractBites(t *testing.T) {
	c, err := ghemu.SharedContract()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "http://127.0.0.1/advisories/GHSA-2222-3333-4444", nil)
	h := http.Header{"Content-Type": {"application/json"}}
	for _, body := range []string{
		`{"ghsa_id":"GHSA-2222-3333-4444"}`,
		strings.Replace(validAdvisoryBody, `"severity":"high"`, `"severity":"severe"`, 1),
		strings.Replace(validAdvisoryBody, `"score":7.5`, `"score":"7.5"`, 1),
	} {
		if err := c.Check(r, nil, 200, h, []byte(body)); err == nil || !strings.Contains(err.Error(), "response 200") {
			t.Errorf("malformed advisory passed: %v", err)
		}
	}
	if err := c.Check(r, nil, 200, h, []byte(validAdvisoryBody)); err != nil {
		t.Errorf("well-formed advisory: %v", err)
	}
}

const validAdvisoryBody = `{"ghsa_id":"GHSA-2222-3333-4444","cve_id":null,"url":"https://api.github.com/advisories/GHSA-2222-3333-4444",
"html_url":"https://github.com/advisories/GHSA-2222-3333-4444","repository_advisory_url":null,"summary":"s","description":null,
"type":"reviewed","severity":"high","source_code_location":null,"identifiers":[{"type":"GHSA","value":"GHSA-2222-3333-4444"}],
"references":[],"published_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z","github_reviewed_at":null,
"nvd_published_at":null,"withdrawn_at":null,"vulnerabilities":[],"cvss":{"vector_string":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N","score":7.5},
"cwes":[],"credits":[]}`

// TestAdvisoryAdminRoutes: the binary's controls add, change and withdraw
// advisories as the Go methods do.
func TestAdvisoryAdminRoutes(t *testing.T) {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	do := func(method, path, body string) (int, ghemu.Advisory) {
		t.Helper()
		req, _ := http.NewRequest(method, emu.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a ghemu.Advisory
		if resp.StatusCode < 300 {
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, a
	}
	code, a := do("POST", "/_emu/advisories", `{"summary": "XSS in widget", "cvss": {"vector_string": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "score": 6.1},
		"vulnerabilities": [{"package": {"ecosystem": "composer", "name": "acme/widget"}, "vulnerable_version_range": "< 2.0.1", "first_patched_version": "2.0.1"}]}`)
	if code != http.StatusCreated || a.Severity != "medium" || a.GHSAID == "" || a.Type != "reviewed" {
		t.Fatalf("add: %d %+v", code, a)
	}
	if code, _ := do("POST", "/_emu/advisories", `{"summary": "x", "severity": "dire"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("add with a bad severity: %d", code)
	}
	if code, _ := do("POST", "/_emu/advisories", `{`); code != http.StatusBadRequest {
		t.Errorf("add with a bad body: %d", code)
	}
	code, b := do("PATCH", "/_emu/advisories/"+a.GHSAID, `{"severity": "high", "cve_id": "CVE-2026-1234"}`)
	if code != http.StatusOK || b.Severity != "high" || b.CVEID != "CVE-2026-1234" || b.Summary != a.Summary || b.UpdatedAt.Before(a.UpdatedAt) {
		t.Errorf("patch: %d %+v", code, b)
	}
	if code, _ := do("PATCH", "/_emu/advisories/"+a.GHSAID, `{"severity": 3}`); code != http.StatusBadRequest {
		t.Errorf("patch with a bad body: %d", code)
	}
	if code, _ := do("PATCH", "/_emu/advisories/"+a.GHSAID, `{"severity": "dire"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("patch to a bad severity: %d", code)
	}
	code, c := do("POST", "/_emu/advisories/"+a.GHSAID+"/withdraw", "")
	if code != http.StatusOK || c.WithdrawnAt.IsZero() || c.Severity != "high" {
		t.Errorf("withdraw: %d %+v", code, c)
	}
	if code, _ := do("POST", "/_emu/advisories/GHSA-2222-3333-4444/withdraw", ""); code != http.StatusNotFound {
		t.Errorf("withdraw an unknown advisory: %d", code)
	}
	got, _, err := anonClient(emu).SecurityAdvisories.GetGlobalSecurityAdvisories(context.Background(), a.GHSAID)
	if err != nil || got.GetSeverity() != "high" || got.WithdrawnAt == nil || len(got.Identifiers) != 2 {
		t.Errorf("served after the changes: %+v %v", got, err)
	}
}
