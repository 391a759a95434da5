package ghemu

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Advisory is a global security advisory of GitHub's advisory database (the
// vulnerability data GitHub Connect's Dependabot alerts feature downloads
// from GitHub.com). Its JSON is GitHub's global-advisory object, so a seed
// can carry an advisory as GitHub answers it; the fields GitHub derives
// (url, html_url, identifiers, cvss_severities) are left out here and
// derived when served.
type Advisory struct {
	// GHSAID is "GHSA-xxxx-xxxx-xxxx"; empty: a random one.
	GHSAID string `json:"ghsa_id"`
	CVEID  string `json:"cve_id,omitempty"`
	// Type is "reviewed" (empty means reviewed), "unreviewed" or "malware".
	Type string `json:"type,omitempty"`
	// Severity is "low", "medium", "high", "critical" or "unknown"; empty:
	// from the CVSS score, as GitHub rates it, else "unknown".
	Severity           string   `json:"severity,omitempty"`
	Summary            string   `json:"summary"`
	Description        string   `json:"description,omitempty"`
	SourceCodeLocation string   `json:"source_code_location,omitempty"`
	References         []string `json:"references,omitempty"`
	// CVSS is the CVSS 3 vector and score (served as cvss and
	// cvss_severities.cvss_v3).
	CVSS            *CVSS           `json:"cvss,omitempty"`
	EPSS            *EPSS           `json:"epss,omitempty"`
	CWEs            []CWE           `json:"cwes,omitempty"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities,omitempty"`
	// PublishedAt zero: now. UpdatedAt zero: PublishedAt.
	// GitHubReviewedAt zero: PublishedAt for a reviewed advisory.
	PublishedAt      time.Time `json:"published_at,omitzero"`
	UpdatedAt        time.Time `json:"updated_at,omitzero"`
	GitHubReviewedAt time.Time `json:"github_reviewed_at,omitzero"`
	NVDPublishedAt   time.Time `json:"nvd_published_at,omitzero"`
	WithdrawnAt      time.Time `json:"withdrawn_at,omitzero"`
}

// CVSS is a CVSS vector and its base score.
type CVSS struct {
	VectorString string  `json:"vector_string"`
	Score        float64 `json:"score"`
}

// EPSS is the Exploit Prediction Scoring System's view of the advisory's
// CVE: the probability of exploitation and its percentile, both 0 to 1 as
// GitHub gives them.
type EPSS struct {
	Percentage float64 `json:"percentage"`
	Percentile float64 `json:"percentile"`
}

// CWE is a weakness: "CWE-79" and its name (empty: from the emulator's
// table of common ones, else the id).
type CWE struct {
	CWEID string `json:"cwe_id"`
	Name  string `json:"name"`
}

// Vulnerability is one package and the versions of it an advisory affects.
type Vulnerability struct {
	Package AdvisoryPackage `json:"package"`
	// VulnerableVersionRange is in GitHub's syntax: comma-separated
	// constraints such as ">= 1.0.0, < 1.2.3", "< 0.9.1" or "= 2.0.0".
	VulnerableVersionRange string `json:"vulnerable_version_range"`
	// FirstPatchedVersion is empty when no version has the fix.
	FirstPatchedVersion string   `json:"first_patched_version,omitempty"`
	VulnerableFunctions []string `json:"vulnerable_functions,omitempty"`
}

// AdvisoryPackage is a package in an ecosystem ("npm", "pip", "maven",
// "rubygems", "go", "nuget", "composer", "rust", …).
type AdvisoryPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// The enums of GitHub's description.
var (
	advisoryTypes      = []string{"reviewed", "unreviewed", "malware"}
	advisorySeverities = []string{"low", "medium", "high", "critical", "unknown"}
	advisoryEcosystems = []string{"rubygems", "npm", "pip", "maven", "nuget", "composer", "go", "rust", "erlang", "actions", "pub", "other", "swift"}
)

// advisorySorts are the orders the list can be sorted by; each is kept as
// an index (advisoryOrder) so a page costs its size, not a sort.
var advisorySorts = map[string]func(*Advisory) float64{
	"published":       func(a *Advisory) float64 { return float64(a.PublishedAt.Unix()) },
	"updated":         func(a *Advisory) float64 { return float64(a.UpdatedAt.Unix()) },
	"epss_percentage": func(a *Advisory) float64 { return epssKey(a, false) },
	"epss_percentile": func(a *Advisory) float64 { return epssKey(a, true) },
}

// epssKey sorts advisories without EPSS scores below every scored one.
func epssKey(a *Advisory, percentile bool) float64 {
	switch {
	case a.EPSS == nil:
		return -1
	case percentile:
		return a.EPSS.Percentile
	}
	return a.EPSS.Percentage
}

// advisoryOrder is every advisory sorted ascending by (key, GHSA id). The
// advisories it holds are never changed in place (UpdateAdvisory replaces
// them), so their keys stay where the order put them.
type advisoryOrder struct {
	key  func(*Advisory) float64
	list []*Advisory
}

// cmp orders a against the position (key, id).
func (o *advisoryOrder) cmp(a *Advisory, key float64, id string) int {
	switch k := o.key(a); {
	case k < key:
		return -1
	case k > key:
		return 1
	}
	return strings.Compare(a.GHSAID, id)
}

// atLeast is the index of the first advisory at or after (key, id).
func (o *advisoryOrder) atLeast(key float64, id string) int {
	i, _ := slices.BinarySearchFunc(o.list, 0, func(a *Advisory, _ int) int {
		if o.cmp(a, key, id) < 0 {
			return -1
		}
		return 1
	})
	return i
}

// after is the index of the first advisory strictly after (key, id).
func (o *advisoryOrder) after(key float64, id string) int {
	i, _ := slices.BinarySearchFunc(o.list, 0, func(a *Advisory, _ int) int {
		if o.cmp(a, key, id) <= 0 {
			return -1
		}
		return 1
	})
	return i
}

func (o *advisoryOrder) insert(a *Advisory) {
	o.list = slices.Insert(o.list, o.atLeast(o.key(a), a.GHSAID), a)
}

func (o *advisoryOrder) remove(a *Advisory) {
	if i := o.atLeast(o.key(a), a.GHSAID); i < len(o.list) && o.list[i] == a {
		o.list = slices.Delete(o.list, i, i+1)
	}
}

func (o *advisoryOrder) sort() {
	slices.SortFunc(o.list, func(a, b *Advisory) int { return o.cmp(a, o.key(b), b.GHSAID) })
}

// advisoryStore is the emulator's advisory database; e.mu guards it.
type advisoryStore struct {
	byID   map[string]*Advisory // by lower-case GHSA id
	orders map[string]*advisoryOrder
}

func newAdvisoryStore() advisoryStore {
	s := advisoryStore{byID: map[string]*Advisory{}, orders: map[string]*advisoryOrder{}}
	for name, key := range advisorySorts {
		s.orders[name] = &advisoryOrder{key: key}
	}
	return s
}

// AddAdvisory adds an advisory to GitHub.com's database and returns it as
// stored, defaults filled in.
func (e *Emulator) AddAdvisory(spec Advisory) (Advisory, error) {
	out, err := e.addAdvisories([]Advisory{spec})
	if err != nil {
		return Advisory{}, err
	}
	return out[0], nil
}

// GenerateAdvisories adds GeneratedAdvisories(n, seed) and returns them.
func (e *Emulator) GenerateAdvisories(n int, seed int64) ([]Advisory, error) {
	return e.addAdvisories(GeneratedAdvisories(n, seed))
}

// addAdvisories checks and adds specs, all or none; a large batch is
// sorted into the orders once rather than inserted one by one.
func (e *Emulator) addAdvisories(specs []Advisory) ([]Advisory, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addAdvisoriesLocked(specs)
}

// addAdvisoriesLocked is addAdvisories for callers that hold e.mu.
func (e *Emulator) addAdvisoriesLocked(specs []Advisory) ([]Advisory, error) {
	now := e.nowLocked()
	added := make([]*Advisory, 0, len(specs))
	seen := map[string]bool{}
	for _, spec := range specs {
		a := cloneAdvisory(spec)
		if err := normalizeAdvisory(&a, now); err != nil {
			return nil, err
		}
		id := strings.ToLower(a.GHSAID)
		if e.advisories.byID[id] != nil || seen[id] {
			return nil, fmt.Errorf("ghemu: advisory %s already exists", a.GHSAID)
		}
		seen[id] = true
		added = append(added, &a)
	}
	for _, a := range added {
		e.advisories.byID[strings.ToLower(a.GHSAID)] = a
	}
	for _, o := range e.advisories.orders {
		if len(added) > 16 {
			o.list = append(o.list, added...)
			o.sort()
			continue
		}
		for _, a := range added {
			o.insert(a)
		}
	}
	out := make([]Advisory, len(added))
	for i, a := range added {
		out[i] = cloneAdvisory(*a)
	}
	return out, nil
}

// UpdateAdvisory changes an advisory as GitHub's curators do: change edits
// a copy, which replaces the advisory with updated_at set to the
// emulator's clock (Faults.ClockOffset moves it). The GHSA id cannot
// change.
func (e *Emulator) UpdateAdvisory(ghsaID string, change func(*Advisory)) (Advisory, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.advisories.byID[strings.ToLower(ghsaID)]
	if old == nil {
		return Advisory{}, fmt.Errorf("ghemu: no advisory %s", ghsaID)
	}
	a := cloneAdvisory(*old)
	if change != nil {
		change(&a)
	}
	if !strings.EqualFold(a.GHSAID, old.GHSAID) {
		return Advisory{}, fmt.Errorf("ghemu: advisory %s: the GHSA id cannot change", old.GHSAID)
	}
	a.UpdatedAt = e.nowLocked()
	if err := normalizeAdvisory(&a, a.UpdatedAt); err != nil {
		return Advisory{}, err
	}
	// The clock can stand still between two changes (or go back, with
	// ClockOffset); updated_at never does, so a reader polling with
	// updated>=its last updated_at sees every change.
	if a.UpdatedAt.Before(old.UpdatedAt) {
		a.UpdatedAt = old.UpdatedAt
	}
	for _, o := range e.advisories.orders {
		o.remove(old)
		o.insert(&a)
	}
	e.advisories.byID[strings.ToLower(a.GHSAID)] = &a
	return cloneAdvisory(a), nil
}

// WithdrawAdvisory withdraws an advisory (withdrawn_at and updated_at:
// now); it stays in the database, as withdrawn advisories do on GitHub.
func (e *Emulator) WithdrawAdvisory(ghsaID string) (Advisory, error) {
	e.mu.Lock()
	now := e.nowLocked()
	e.mu.Unlock()
	return e.UpdateAdvisory(ghsaID, func(a *Advisory) { a.WithdrawnAt = now })
}

// GetAdvisory returns an advisory as stored, or false.
func (e *Emulator) GetAdvisory(ghsaID string) (Advisory, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.advisories.byID[strings.ToLower(ghsaID)]
	if a == nil {
		return Advisory{}, false
	}
	return cloneAdvisory(*a), true
}

// allAdvisories is every advisory by GHSA id, for the state file. Callers
// hold e.mu.
func (e *Emulator) allAdvisories() []Advisory {
	out := make([]Advisory, 0, len(e.advisories.byID))
	for _, a := range e.advisories.byID {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Advisory) int { return strings.Compare(a.GHSAID, b.GHSAID) })
	return out
}

// cloneAdvisory copies a with its slices and pointers, so the stored
// advisory shares nothing with its caller.
func cloneAdvisory(a Advisory) Advisory {
	a.References = slices.Clone(a.References)
	a.CWEs = slices.Clone(a.CWEs)
	if a.CVSS != nil {
		c := *a.CVSS
		a.CVSS = &c
	}
	if a.EPSS != nil {
		p := *a.EPSS
		a.EPSS = &p
	}
	a.Vulnerabilities = slices.Clone(a.Vulnerabilities)
	for i := range a.Vulnerabilities {
		a.Vulnerabilities[i].VulnerableFunctions = slices.Clone(a.Vulnerabilities[i].VulnerableFunctions)
	}
	return a
}

// ghsaAlphabet is the letters and digits of GHSA ids' groups.
const ghsaAlphabet = "23456789cfghjmpqrvwx"

func validGHSA(id string) bool {
	if len(id) != 19 || !strings.HasPrefix(id, "GHSA-") {
		return false
	}
	for i, c := range id[5:] {
		if i%5 == 4 {
			if c != '-' {
				return false
			}
		} else if !strings.ContainsRune(ghsaAlphabet, c) {
			return false
		}
	}
	return true
}

func randomGHSA() string {
	b := make([]byte, 12)
	rand.Read(b)
	i := 0
	return ghsaFrom(func(n int) int {
		i++
		return int(b[i-1]) % n
	})
}

// ghsaFrom spells twelve draws from ghsaAlphabet as "GHSA-xxxx-xxxx-xxxx";
// draw(n) is a number in [0, n).
func ghsaFrom(draw func(n int) int) string {
	var sb strings.Builder
	sb.WriteString("GHSA")
	for i := 0; i < 12; i++ {
		if i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(ghsaAlphabet[draw(len(ghsaAlphabet))])
	}
	return sb.String()
}

// normalizeAdvisory fills in defaults and refuses what GitHub would never
// serve (the values outside the description's enums and limits).
func normalizeAdvisory(a *Advisory, now time.Time) error {
	if a.GHSAID == "" {
		a.GHSAID = randomGHSA()
	}
	// GitHub spells ids "GHSA-" and lower case; any other case is the
	// same id.
	if len(a.GHSAID) > 5 && strings.EqualFold(a.GHSAID[:5], "GHSA-") {
		a.GHSAID = "GHSA-" + strings.ToLower(a.GHSAID[5:])
	}
	if !validGHSA(a.GHSAID) {
		return fmt.Errorf("ghemu: advisory id %q is not GHSA-xxxx-xxxx-xxxx", a.GHSAID)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("ghemu: advisory %s: "+format, append([]any{a.GHSAID}, args...)...)
	}
	if a.Type == "" {
		a.Type = "reviewed"
	}
	if !slices.Contains(advisoryTypes, a.Type) {
		return fail("type %q", a.Type)
	}
	if a.CVSS != nil && (a.CVSS.Score < 0 || a.CVSS.Score > 10 || math.IsNaN(a.CVSS.Score)) {
		return fail("CVSS score %v out of 0–10", a.CVSS.Score)
	}
	if a.Severity == "" {
		a.Severity = "unknown"
		if a.CVSS != nil {
			a.Severity = severityOf(a.CVSS.Score)
		}
	}
	if !slices.Contains(advisorySeverities, a.Severity) {
		return fail("severity %q", a.Severity)
	}
	if a.Summary == "" || len(a.Summary) > 1024 {
		return fail("summary must be 1 to 1024 bytes")
	}
	if len(a.Description) > 65535 {
		return fail("description over 65535 bytes")
	}
	if a.EPSS != nil && (a.EPSS.Percentage < 0 || a.EPSS.Percentage > 1 || a.EPSS.Percentile < 0 || a.EPSS.Percentile > 1) {
		return fail("EPSS scores out of 0–1")
	}
	for i, c := range a.CWEs {
		id, ok := normalCWE(c.CWEID)
		if !ok {
			return fail("CWE %q", c.CWEID)
		}
		a.CWEs[i].CWEID = id
		if c.Name == "" {
			a.CWEs[i].Name = cweName(id)
		}
	}
	for _, v := range a.Vulnerabilities {
		if !slices.Contains(advisoryEcosystems, v.Package.Ecosystem) {
			return fail("ecosystem %q", v.Package.Ecosystem)
		}
		if v.Package.Name == "" {
			return fail("a vulnerability without a package name")
		}
		if _, err := parseVersionRange(v.VulnerableVersionRange); err != nil {
			return fail("%v", err)
		}
	}
	if a.PublishedAt.IsZero() {
		a.PublishedAt = now
	}
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = a.PublishedAt
	}
	if a.GitHubReviewedAt.IsZero() && a.Type == "reviewed" {
		a.GitHubReviewedAt = a.PublishedAt
	}
	// GitHub's timestamps are whole seconds; the date filters and cursors
	// compare them as such.
	for _, t := range []*time.Time{&a.PublishedAt, &a.UpdatedAt, &a.GitHubReviewedAt, &a.NVDPublishedAt, &a.WithdrawnAt} {
		if !t.IsZero() {
			*t = t.UTC().Truncate(time.Second)
		}
	}
	if a.UpdatedAt.Before(a.PublishedAt) {
		return fail("updated_at before published_at")
	}
	return nil
}

// severityOf is CVSS 3's qualitative rating of a score.
func severityOf(score float64) string {
	switch {
	case score >= 9:
		return "critical"
	case score >= 7:
		return "high"
	case score >= 4:
		return "medium"
	case score > 0:
		return "low"
	}
	return "unknown"
}

// normalCWE accepts "79" or "CWE-79" and answers "CWE-79".
func normalCWE(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 4 && strings.EqualFold(s[:4], "CWE-") {
		s = s[4:]
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return "", false
	}
	return "CWE-" + s, true
}

func cweName(id string) string {
	for _, c := range cweTable {
		if c.CWEID == id {
			return c.Name
		}
	}
	return id
}

// Handlers.

const (
	listAdvisoriesDocs = "https://docs.github.com/rest/security-advisories/global-advisories#list-global-security-advisories"
	getAdvisoryDocs    = "https://docs.github.com/rest/security-advisories/global-advisories#get-a-global-security-advisory"
)

func (e *Emulator) advisoryRoutes() {
	// Anyone may read the advisory database; a token is accepted (and
	// counted against its rate limit) but not needed.
	e.api("GET /advisories", authOptionalToken, e.listAdvisories)
	e.api("GET /advisories/{ghsa_id}", authOptionalToken, e.getAdvisory)
}

func (e *Emulator) getAdvisory(w http.ResponseWriter, r *http.Request, _ identity) {
	e.mu.Lock()
	a := e.advisories.byID[strings.ToLower(r.PathValue("ghsa_id"))]
	e.mu.Unlock()
	if a == nil {
		writeError(w, http.StatusNotFound, "Not Found", getAdvisoryDocs)
		return
	}
	writeJSON(w, http.StatusOK, advisoryJSON(a))
}

func (e *Emulator) listAdvisories(w http.ResponseWriter, r *http.Request, _ identity) {
	q, err := parseAdvisoryQuery(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message": "Validation Failed", "errors": []string{err.Error()},
			"documentation_url": listAdvisoriesDocs, "status": "422",
		})
		return
	}
	e.mu.Lock()
	page, prev, next := e.advisoryPage(q)
	e.mu.Unlock()
	var links []string
	if prev {
		links = append(links, advisoryLink(r, "before", q.cursorOf(page[0]), "prev"))
	}
	if next {
		links = append(links, advisoryLink(r, "after", q.cursorOf(page[len(page)-1]), "next"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	out := make([]advisoryBody, len(page))
	for i, a := range page {
		out[i] = advisoryJSON(a)
	}
	writeJSON(w, http.StatusOK, out)
}

// advisoryPage finds the page q asks for in q's order and says whether
// matching advisories lie before it (prev) and after it (next). The walk
// starts at the cursor, found by binary search, so an unfiltered page costs
// its size; filters cost the advisories they skip. Callers hold e.mu.
func (e *Emulator) advisoryPage(q *advisoryQuery) (page []*Advisory, prev, next bool) {
	o := e.advisories.orders[q.sort]
	// A date filter on the sorted field narrows the walk to its range.
	lo, hi := 0, len(o.list)
	if rng := q.sortedRange(); rng != nil {
		if !rng.from.IsZero() {
			lo = o.atLeast(float64(rng.from.Unix()), "")
		}
		if !rng.to.IsZero() {
			hi = max(o.atLeast(float64(rng.to.Unix()), ""), lo)
		}
	}
	// Positions in the list run ascending; the view (q.desc) may run the
	// other way. "after" walks the view forward from the cursor, "before"
	// backward, and the page is then put back in view order.
	step := 1
	if q.desc {
		step = -1
	}
	start := lo
	if q.desc {
		start = hi - 1
	}
	backward := q.before != nil
	if c := q.after; c != nil {
		if q.desc {
			start = o.atLeast(c.key, c.id) - 1
		} else {
			start = o.after(c.key, c.id)
		}
	}
	if c := q.before; c != nil {
		if q.desc {
			start = o.after(c.key, c.id)
		} else {
			start = o.atLeast(c.key, c.id) - 1
		}
		step = -step
	}
	// A cursor outside the date range (the client changed the filter
	// between pages) starts the walk at the range's edge.
	if step > 0 {
		start = max(start, lo)
	} else {
		start = min(start, hi-1)
	}
	page, more := walk(o.list, lo, hi, start, step, q.perPage, q.match)
	other := (q.after != nil || q.before != nil) && len(page) > 0 && exists(o.list, lo, hi, start-step, -step, q.match)
	if backward {
		slices.Reverse(page)
		return page, more, other
	}
	return page, other, more
}

// walk collects up to n matching advisories from list[start], stepping by
// step within [lo, hi), and says whether another matching one follows.
func walk(list []*Advisory, lo, hi, start, step, n int, match func(*Advisory) bool) ([]*Advisory, bool) {
	var page []*Advisory
	i := start
	for ; i >= lo && i < hi && len(page) < n; i += step {
		if match(list[i]) {
			page = append(page, list[i])
		}
	}
	return page, exists(list, lo, hi, i, step, match)
}

func exists(list []*Advisory, lo, hi, start, step int, match func(*Advisory) bool) bool {
	for i := start; i >= lo && i < hi; i += step {
		if match(list[i]) {
			return true
		}
	}
	return false
}

// advisoryLink is a Link entry to the emulator itself (as GitHub's point at
// api.github.com): the request's query with the cursor in place of any
// other.
func advisoryLink(r *http.Request, param, cursor, rel string) string {
	q := r.URL.Query()
	q.Del("before")
	q.Del("after")
	q.Set(param, cursor)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return "<" + scheme + "://" + r.Host + r.URL.Path + "?" + q.Encode() + `>; rel="` + rel + `"`
}

// errBadCursor is the answer to a cursor the emulator did not make, or
// made for another sort.
var errBadCursor = errors.New("the cursor is not valid for this query")
