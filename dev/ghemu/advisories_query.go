package ghemu

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/osv-scalibr/semantic"
)

// advisoryQuery is GET /advisories' parameters, checked.
type advisoryQuery struct {
	typ        string
	ghsaID     string
	cveID      string
	ecosystems []string
	severities []string
	cwes       []string
	withdrawn  *bool
	affects    []affected
	published  *timeRange
	updated    *timeRange
	modified   *timeRange
	epssPct    *numRange
	epssPctl   *numRange
	sort       string
	desc       bool
	perPage    int
	// after and before are the cursors (at most one of them).
	after, before *advisoryCursor
}

// affected is one entry of affects: a package, and a version of it if
// "name@version".
type affected struct {
	name, version string
}

// listValues are a list parameter's values: repeated, comma-separated, or
// as name[] (the forms GitHub's description gives for cwes and affects).
func listValues(v url.Values, name string) []string {
	var out []string
	for _, raw := range append(v[name], v[name+"[]"]...) {
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// oneOf checks a parameter's values (comma-separated) against an enum.
func oneOf(v url.Values, name string, allowed []string) ([]string, error) {
	vals := listValues(v, name)
	for _, s := range vals {
		if !slices.Contains(allowed, s) {
			return nil, fmt.Errorf("%s must be one of %s, not %q", name, strings.Join(allowed, ", "), s)
		}
	}
	return vals, nil
}

func parseAdvisoryQuery(v url.Values) (*advisoryQuery, error) {
	q := &advisoryQuery{typ: "reviewed", sort: "published", desc: true, perPage: 30,
		ghsaID: v.Get("ghsa_id"), cveID: v.Get("cve_id")}
	if s := v.Get("type"); s != "" {
		if !slices.Contains(advisoryTypes, s) {
			return nil, fmt.Errorf("type must be one of %s, not %q", strings.Join(advisoryTypes, ", "), s)
		}
		q.typ = s
	}
	var err error
	if q.ecosystems, err = oneOf(v, "ecosystem", advisoryEcosystems); err != nil {
		return nil, err
	}
	if q.severities, err = oneOf(v, "severity", advisorySeverities); err != nil {
		return nil, err
	}
	for _, s := range listValues(v, "cwes") {
		id, ok := normalCWE(s)
		if !ok {
			return nil, fmt.Errorf("cwes: %q is not a CWE number", s)
		}
		q.cwes = append(q.cwes, id)
	}
	if s := v.Get("is_withdrawn"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil || (s != "true" && s != "false") {
			return nil, fmt.Errorf("is_withdrawn must be true or false, not %q", s)
		}
		q.withdrawn = &b
	}
	affects := listValues(v, "affects")
	if len(affects) > 1000 {
		return nil, fmt.Errorf("affects: at most 1000 packages, not %d", len(affects))
	}
	for _, s := range affects {
		// A scoped npm package begins with "@": the version is after the
		// last "@" that is not the first character.
		a := affected{name: s}
		if i := strings.LastIndex(s, "@"); i > 0 {
			a = affected{name: s[:i], version: s[i+1:]}
			if a.version == "" {
				return nil, fmt.Errorf("affects: %q has no version after @", s)
			}
		}
		q.affects = append(q.affects, a)
	}
	for name, dst := range map[string]**timeRange{"published": &q.published, "updated": &q.updated, "modified": &q.modified} {
		if s := v.Get(name); s != "" {
			r, err := parseTimeRange(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			*dst = r
		}
	}
	for name, dst := range map[string]**numRange{"epss_percentage": &q.epssPct, "epss_percentile": &q.epssPctl} {
		if s := v.Get(name); s != "" {
			r, err := parseNumRange(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			*dst = r
		}
	}
	if s := v.Get("sort"); s != "" {
		if advisorySorts[s] == nil {
			return nil, fmt.Errorf("sort must be one of published, updated, epss_percentage, epss_percentile, not %q", s)
		}
		q.sort = s
	}
	switch s := v.Get("direction"); s {
	case "", "desc":
	case "asc":
		q.desc = false
	default:
		return nil, fmt.Errorf("direction must be asc or desc, not %q", s)
	}
	if s := v.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("per_page must be a number from 1 to 100, not %q", s)
		}
		q.perPage = n
	}
	if v.Get("after") != "" && v.Get("before") != "" {
		return nil, fmt.Errorf("before and after cannot both be given")
	}
	for name, dst := range map[string]**advisoryCursor{"after": &q.after, "before": &q.before} {
		if s := v.Get(name); s != "" {
			c, err := parseCursor(s, q.sort)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			*dst = c
		}
	}
	return q, nil
}

// sortedRange is the date filter on the field the list is sorted by, if
// any: the part of the order the page can come from.
func (q *advisoryQuery) sortedRange() *timeRange {
	switch q.sort {
	case "published":
		return q.published
	case "updated":
		return q.updated
	}
	return nil
}

func (q *advisoryQuery) match(a *Advisory) bool {
	switch {
	case a.Type != q.typ,
		q.ghsaID != "" && !strings.EqualFold(a.GHSAID, q.ghsaID),
		q.cveID != "" && !strings.EqualFold(a.CVEID, q.cveID),
		len(q.severities) > 0 && !slices.Contains(q.severities, a.Severity),
		q.withdrawn != nil && *q.withdrawn == a.WithdrawnAt.IsZero(),
		q.published != nil && !q.published.contains(a.PublishedAt),
		q.updated != nil && !q.updated.contains(a.UpdatedAt),
		q.modified != nil && !q.modified.contains(a.UpdatedAt) && !q.modified.contains(a.PublishedAt),
		q.epssPct != nil && (a.EPSS == nil || !q.epssPct.contains(a.EPSS.Percentage)),
		q.epssPctl != nil && (a.EPSS == nil || !q.epssPctl.contains(a.EPSS.Percentile)):
		return false
	}
	if len(q.cwes) > 0 && !slices.ContainsFunc(a.CWEs, func(c CWE) bool { return slices.Contains(q.cwes, c.CWEID) }) {
		return false
	}
	if len(q.ecosystems) == 0 && len(q.affects) == 0 {
		return true
	}
	// ecosystem and affects hold for the same vulnerability: npm's
	// "lodash", not an advisory on pip's "lodash" that also names npm.
	return slices.ContainsFunc(a.Vulnerabilities, func(v Vulnerability) bool {
		if len(q.ecosystems) > 0 && !slices.Contains(q.ecosystems, v.Package.Ecosystem) {
			return false
		}
		return len(q.affects) == 0 || slices.ContainsFunc(q.affects, func(p affected) bool {
			return strings.EqualFold(p.name, v.Package.Name) && (p.version == "" || inVersionRange(v.Package.Ecosystem, p.version, v.VulnerableVersionRange))
		})
	})
}

// advisoryCursor is a position in one sort's order: the key and GHSA id
// of the advisory a page ended (or began) with. It stays valid while
// advisories change around it.
type advisoryCursor struct {
	key float64
	id  string
}

func (q *advisoryQuery) cursorOf(a *Advisory) string {
	raw := "v1:" + q.sort + ":" + strconv.FormatFloat(advisorySorts[q.sort](a), 'g', -1, 64) + ":" + a.GHSAID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parseCursor(s, sort string) (*advisoryCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadCursor
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 4 || parts[0] != "v1" || parts[1] != sort || !validGHSA(parts[3]) {
		return nil, errBadCursor
	}
	key, err := strconv.ParseFloat(parts[2], 64)
	if err != nil {
		return nil, errBadCursor
	}
	return &advisoryCursor{key: key, id: parts[3]}, nil
}

// timeRange is [from, to); a zero end is open.
type timeRange struct {
	from, to time.Time
}

func (r *timeRange) contains(t time.Time) bool {
	return (r.from.IsZero() || !t.Before(r.from)) && (r.to.IsZero() || t.Before(r.to))
}

// parseTimeRange reads GitHub search's date syntax: a date or time, or one
// after >, >=, < or <=, or a range a..b with * for an open end. A date is
// its whole day (UTC); a time is its second.
func parseTimeRange(s string) (*timeRange, error) {
	if a, b, ok := strings.Cut(s, ".."); ok {
		r := &timeRange{}
		if a != "*" {
			from, _, err := parseInstant(a)
			if err != nil {
				return nil, err
			}
			r.from = from
		}
		if b != "*" {
			_, to, err := parseInstant(b)
			if err != nil {
				return nil, err
			}
			r.to = to
		}
		if a == "*" && b == "*" {
			return nil, fmt.Errorf("%q has no end", s)
		}
		return r, nil
	}
	op := ""
	for _, p := range []string{">=", "<=", ">", "<"} {
		if strings.HasPrefix(s, p) {
			op, s = p, s[len(p):]
			break
		}
	}
	start, end, err := parseInstant(s)
	if err != nil {
		return nil, err
	}
	switch op {
	case ">=":
		return &timeRange{from: start}, nil
	case ">":
		return &timeRange{from: end}, nil
	case "<=":
		return &timeRange{to: end}, nil
	case "<":
		return &timeRange{to: start}, nil
	}
	return &timeRange{from: start, to: end}, nil
}

// parseInstant reads a date (its day) or a date and time (its second), and
// answers the span it names.
func parseInstant(s string) (start, end time.Time, err error) {
	// A "+" of an offset arrives as a space when the client did not escape
	// it; GitHub takes it either way.
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "+")
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, t.AddDate(0, 0, 1), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04Z07:00", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC().Truncate(time.Second)
			return t, t.Add(time.Second), nil
		}
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ)", s)
}

// numRange is a number filter in the same syntax: n, >n, >=n, <n, <=n or
// a..b.
type numRange struct {
	lo, hi         float64
	loOpen, hiOpen bool // the end itself is excluded
}

func (r *numRange) contains(x float64) bool {
	return (x > r.lo || (x == r.lo && !r.loOpen)) && (x < r.hi || (x == r.hi && !r.hiOpen))
}

func parseNumRange(s string) (*numRange, error) {
	num := func(t string) (float64, error) {
		if t == "*" {
			return math.NaN(), nil
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%q is not a number", t)
		}
		return x, nil
	}
	r := &numRange{lo: math.Inf(-1), hi: math.Inf(1)}
	if a, b, ok := strings.Cut(s, ".."); ok {
		lo, err := num(a)
		if err != nil {
			return nil, err
		}
		hi, err := num(b)
		if err != nil {
			return nil, err
		}
		if !math.IsNaN(lo) {
			r.lo = lo
		}
		if !math.IsNaN(hi) {
			r.hi = hi
		}
		return r, nil
	}
	for _, p := range []string{">=", "<=", ">", "<", ""} {
		if !strings.HasPrefix(s, p) {
			continue
		}
		x, err := num(s[len(p):])
		if err != nil || math.IsNaN(x) {
			return nil, fmt.Errorf("%q is not a number or range", s)
		}
		switch p {
		case ">=", ">":
			r.lo, r.loOpen = x, p == ">"
		case "<=", "<":
			r.hi, r.hiOpen = x, p == "<"
		default:
			r.lo, r.hi = x, x
		}
		return r, nil
	}
	return r, nil // not reached: the empty prefix matches
}

// versionConstraint is one comparison of a vulnerable version range.
type versionConstraint struct {
	op, version string
}

// parseVersionRange reads GitHub's vulnerable_version_range: constraints
// (=, <, <=, >, >=, a space, a version) separated by commas.
func parseVersionRange(s string) ([]versionConstraint, error) {
	var out []versionConstraint
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		var c versionConstraint
		for _, op := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(part, op) {
				c = versionConstraint{op: op, version: strings.TrimSpace(part[len(op):])}
				break
			}
		}
		if c.op == "" || c.version == "" || strings.ContainsAny(c.version, " \t") {
			return nil, fmt.Errorf("vulnerable version range %q: %q is not an operator and a version", s, part)
		}
		out = append(out, c)
	}
	return out, nil
}

// osvEcosystems names GitHub's ecosystems as osv-scalibr's semantic
// package does; versions in the others are compared as semver.
var osvEcosystems = map[string]string{
	"npm": "npm", "pip": "PyPI", "maven": "Maven", "rubygems": "RubyGems",
	"go": "Go", "nuget": "NuGet", "composer": "Packagist", "rust": "crates.io",
}

// inVersionRange says whether version, in ecosystem, satisfies every
// constraint of rng, ordered as that ecosystem orders versions (the
// library the feature gate matches with, not a comparison of our own).
func inVersionRange(ecosystem, version, rng string) bool {
	cs, err := parseVersionRange(rng)
	if err != nil {
		return false
	}
	eco, ok := osvEcosystems[ecosystem]
	if !ok {
		eco = "npm" // plain semver
	}
	v, err := semantic.Parse(version, eco)
	if err != nil {
		return false
	}
	for _, c := range cs {
		d, err := v.CompareStr(c.version)
		if err != nil {
			return false
		}
		var ok bool
		switch c.op {
		case "=":
			ok = d == 0
		case "<":
			ok = d < 0
		case "<=":
			ok = d <= 0
		case ">":
			ok = d > 0
		case ">=":
			ok = d >= 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// The JSON GitHub serves for an advisory (global-advisory): every field
// the description requires, null where the advisory has no value.
type advisoryBody struct {
	GHSAID                string              `json:"ghsa_id"`
	CVEID                 *string             `json:"cve_id"`
	URL                   string              `json:"url"`
	HTMLURL               string              `json:"html_url"`
	RepositoryAdvisoryURL *string             `json:"repository_advisory_url"`
	Summary               string              `json:"summary"`
	Description           *string             `json:"description"`
	Type                  string              `json:"type"`
	Severity              string              `json:"severity"`
	SourceCodeLocation    *string             `json:"source_code_location"`
	Identifiers           []identifierBody    `json:"identifiers"`
	References            []string            `json:"references"`
	PublishedAt           string              `json:"published_at"`
	UpdatedAt             string              `json:"updated_at"`
	GitHubReviewedAt      *string             `json:"github_reviewed_at"`
	NVDPublishedAt        *string             `json:"nvd_published_at"`
	WithdrawnAt           *string             `json:"withdrawn_at"`
	Vulnerabilities       []vulnerabilityBody `json:"vulnerabilities"`
	CVSS                  cvssBody            `json:"cvss"`
	CVSSSeverities        cvssSeveritiesBody  `json:"cvss_severities"`
	EPSS                  *EPSS               `json:"epss"`
	CWEs                  []CWE               `json:"cwes"`
	Credits               []any               `json:"credits"`
}

type identifierBody struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type vulnerabilityBody struct {
	Package                AdvisoryPackage `json:"package"`
	VulnerableVersionRange string          `json:"vulnerable_version_range"`
	FirstPatchedVersion    *string         `json:"first_patched_version"`
	VulnerableFunctions    []string        `json:"vulnerable_functions"`
}

type cvssBody struct {
	VectorString *string  `json:"vector_string"`
	Score        *float64 `json:"score"`
}

type cvssSeveritiesBody struct {
	V3 *cvssBody `json:"cvss_v3"`
	V4 *cvssBody `json:"cvss_v4"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := ts(t)
	return &s
}

func advisoryJSON(a *Advisory) advisoryBody {
	b := advisoryBody{
		GHSAID: a.GHSAID, CVEID: optional(a.CVEID),
		URL: apiBase + "/advisories/" + a.GHSAID, HTMLURL: htmlBase + "/advisories/" + a.GHSAID,
		Summary: a.Summary, Description: optional(a.Description), Type: a.Type, Severity: a.Severity,
		SourceCodeLocation: optional(a.SourceCodeLocation),
		Identifiers:        []identifierBody{{Type: "GHSA", Value: a.GHSAID}},
		References:         nonNil(a.References),
		PublishedAt:        ts(a.PublishedAt), UpdatedAt: ts(a.UpdatedAt),
		GitHubReviewedAt: optionalTime(a.GitHubReviewedAt), NVDPublishedAt: optionalTime(a.NVDPublishedAt),
		WithdrawnAt: optionalTime(a.WithdrawnAt),
		EPSS:        a.EPSS, CWEs: a.CWEs, Credits: []any{},
		Vulnerabilities: make([]vulnerabilityBody, len(a.Vulnerabilities)),
	}
	if a.CVEID != "" {
		b.Identifiers = append(b.Identifiers, identifierBody{Type: "CVE", Value: a.CVEID})
	}
	if b.CWEs == nil {
		b.CWEs = []CWE{}
	}
	for i, v := range a.Vulnerabilities {
		b.Vulnerabilities[i] = vulnerabilityBody{
			Package: v.Package, VulnerableVersionRange: v.VulnerableVersionRange,
			FirstPatchedVersion: optional(v.FirstPatchedVersion), VulnerableFunctions: nonNil(v.VulnerableFunctions),
		}
	}
	if a.CVSS != nil {
		v3 := &cvssBody{VectorString: &a.CVSS.VectorString, Score: &a.CVSS.Score}
		b.CVSS, b.CVSSSeverities.V3 = *v3, v3
	}
	return b
}
