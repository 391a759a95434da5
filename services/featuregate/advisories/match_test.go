package advisories_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/google/go-github/v60/github"
)

// open opens dsn and the advisories store on it, closed when the test
// ends.
func open(t testing.TB, dsn string) *advisories.Store {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := advisories.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vuln is one vulnerable package of an advisory as GitHub's API has it.
type vuln struct{ ecosystem, name, vulnerable, patched string }

func advisory(id string, updated time.Time, vulns ...vuln) *github.GlobalSecurityAdvisory {
	a := &github.GlobalSecurityAdvisory{}
	a.GHSAID = github.String(id)
	a.Summary = github.String("summary of " + id)
	a.Severity = github.String("high")
	a.HTMLURL = github.String("https://github.com/advisories/" + id)
	a.PublishedAt = &github.Timestamp{Time: updated.Add(-time.Hour)}
	a.UpdatedAt = &github.Timestamp{Time: updated}
	for _, v := range vulns {
		gv := &github.GlobalSecurityVulnerability{
			Package:                &github.VulnerabilityPackage{Ecosystem: github.String(v.ecosystem), Name: github.String(v.name)},
			VulnerableVersionRange: github.String(v.vulnerable),
		}
		if v.patched != "" {
			gv.FirstPatchedVersion = github.String(v.patched)
		}
		a.Vulnerabilities = append(a.Vulnerabilities, gv)
	}
	return a
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// matchCases are ranges and versions each ecosystem orders by its own
// rules, chosen where comparing the strings would answer wrongly. stored
// is the package name as the advisory spells it, asked the name asked
// for.
var matchCases = []struct {
	ecosystem, stored, asked, vulnerable, version string
	want                                          bool
}{
	// npm: semver 2.0.0 (node-semver). A prerelease is below its release,
	// numeric identifiers compare as numbers, build metadata is ignored.
	{"npm", "left-pad", "left-pad", "< 1.0.0", "1.0.0-beta.2", true},
	{"npm", "left-pad", "left-pad", ">= 1.0.0-beta.2, < 1.0.0-beta.10", "1.0.0-beta.9", true},
	{"npm", "left-pad", "left-pad", "< 1.10.0", "1.9.3", true},
	{"npm", "left-pad", "left-pad", "< 1.2.3", "1.2.3+build.5", false},
	{"npm", "left-pad", "left-pad", "= 2.0.0", "2.0.0", true},
	{"npm", "left-pad", "left-pad", "= 2.0.0", "2.0.1", false},
	{"npm", "@scope/pkg", "@scope/pkg", "<= 3.1.4", "3.1.4", true},
	// npm names are case-sensitive: old mixed-case packages are distinct.
	{"npm", "JSONStream", "jsonstream", "< 9.0.0", "1.0.0", false},
	// pip: PEP 440. Pre-releases (rc, a, b) below the release, post
	// releases above it, trailing zeros do not count, epochs come first;
	// names compare as PEP 503 normalizes them.
	{"pip", "Django_REST.framework", "django-rest-framework", "< 1.0.post1", "1.0", true},
	{"pip", "requests", "Requests", "< 1.0", "1.0rc1", true},
	{"pip", "requests", "requests", "<= 1.0", "1.0.post1", false},
	{"pip", "requests", "requests", "= 1.0", "1.0.0", true},
	{"pip", "requests", "requests", ">= 1.0a1, < 1.0b1", "1.0a2", true},
	{"pip", "requests", "requests", "< 1.10", "1.9", true},
	{"pip", "requests", "requests", "< 1!0.5", "2.0", true},
	{"pip", "requests", "requests", "< 1.0", "1.0.dev1", true},
	// maven: ComparableVersion. Qualifiers order alpha < beta < milestone
	// < rc < snapshot < release < sp; "ga", "final" and trailing zeros are
	// the release; a letter qualifier after "." sorts below a number there.
	{"maven", "org.springframework:spring-core", "org.springframework:spring-core", "< 1.0", "1.0-SNAPSHOT", true},
	{"maven", "org.springframework:spring-core", "org.springframework:spring-core", "< 1.0.1", "1.0.RELEASE", true},
	{"maven", "org.springframework:spring-core", "org.springframework:spring-core", "< 1.0-rc1", "1.0-beta-2", true},
	{"maven", "org.springframework:spring-core", "org.springframework:spring-core", "< 1.0", "1.0-sp1", false},
	{"maven", "org.springframework:spring-core", "org.springframework:spring-core", "= 1.0", "1.0.0-ga", true},
	{"maven", "org.springframework:spring-core", "org.springframework:spring-core", "< 1.10", "1.9", true},
	// Maven coordinates are case-sensitive.
	{"maven", "org.springframework:spring-core", "org.springframework:Spring-Core", "< 1.0", "0.1", false},
	// rubygems: Gem::Version. A letter segment makes a prerelease, below
	// the release; trailing zeros do not count.
	{"rubygems", "rails", "rails", "< 1.0.0", "1.0.0.pre", true},
	{"rubygems", "rails", "rails", "< 1.0.0", "1.0.0.rc1", true},
	{"rubygems", "rails", "rails", "= 1.0", "1.0.0", true},
	{"rubygems", "rails", "rails", ">= 1.0.0.a, < 1.0.0.b", "1.0.0.a9", true},
	{"rubygems", "rails", "rails", "< 4.10", "4.9.2", true},
	// go: semver with the leading v that Go versions carry (GitHub's
	// ranges leave it out); pseudo-versions are prereleases.
	{"go", "github.com/gin-gonic/gin", "github.com/gin-gonic/gin", "< 1.2.3", "v1.2.2", true},
	{"go", "github.com/gin-gonic/gin", "github.com/gin-gonic/gin", ">= 1.2.3", "v1.2.3", true},
	{"go", "github.com/gin-gonic/gin", "github.com/gin-gonic/gin", "< 1.10.0", "v1.9.1", true},
	{"go", "github.com/gin-gonic/gin", "github.com/gin-gonic/gin", "< 1.0.0", "v1.0.0-20220101000000-abcdef123456", true},
	{"go", "github.com/gin-gonic/gin", "github.com/gin-gonic/gin", "< 0.0.0-20220101000000-abcdef123456", "v0.0.0-20210101000000-aaaaaaaaaaaa", true},
	// Go module paths are case-sensitive.
	{"go", "github.com/Sirupsen/logrus", "github.com/sirupsen/logrus", "< 9.0.0", "v1.0.0", false},
	// nuget: NuGet's semver, up to four numbers, prerelease labels
	// compared without case; ids are case-insensitive.
	{"nuget", "Newtonsoft.Json", "newtonsoft.json", "< 13.0.1", "13.0.1-beta1", true},
	{"nuget", "Newtonsoft.Json", "NEWTONSOFT.JSON", "< 1.10.0", "1.9.0", true},
	{"nuget", "Newtonsoft.Json", "Newtonsoft.Json", "< 1.0.0.10", "1.0.0.9", true},
	{"nuget", "Newtonsoft.Json", "Newtonsoft.Json", "= 1.0.0-beta", "1.0.0-BETA", true},
	{"nuget", "Newtonsoft.Json", "Newtonsoft.Json", "= 1.0.0", "1.0.0.0", true},
	// composer: Composer's version_compare. A v prefix does not count,
	// dev < alpha < beta < RC < release < patch; names are case-insensitive.
	{"composer", "Symfony/HTTP-Kernel", "symfony/http-kernel", "< 1.0.0", "v0.9.1", true},
	{"composer", "symfony/http-kernel", "symfony/http-kernel", "< 2.0.0", "2.0.0-RC1", true},
	{"composer", "symfony/http-kernel", "symfony/http-kernel", ">= 2.0.0-beta1, < 2.0.0-RC1", "v2.0.0-beta3", true},
	{"composer", "symfony/http-kernel", "symfony/http-kernel", "< 1.0.0", "1.0.0-p1", false},
	{"composer", "symfony/http-kernel", "symfony/http-kernel", "< 1.10.0", "1.9.0", true},
	// rust: Cargo's semver; crate names fold case and _ to -.
	{"rust", "serde_json", "Serde-JSON", "< 1.0.0", "1.0.0-alpha.1", true},
	{"rust", "serde_json", "serde_json", ">= 0.1.0, < 0.1.1", "0.1.1-rc.1", true},
	{"rust", "serde_json", "serde_json", "< 0.10.0", "0.9.5", true},
	{"rust", "serde_json", "serde_json", "< 0.10.0", "0.10.0", false},
}

// TestAffectingPerEcosystem stores one advisory per case and asks each
// case's question of the store: the range, the version and the names go
// through what the gate serves.
func TestAffectingPerEcosystem(t *testing.T) {
	ctx := context.Background()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		var page []*github.GlobalSecurityAdvisory
		for i, c := range matchCases {
			page = append(page, advisory(fmt.Sprintf("GHSA-case-%04d", i), t0, vuln{c.ecosystem, c.stored, c.vulnerable, ""}))
		}
		if _, err := s.Upsert(ctx, page); err != nil {
			t.Fatal(err)
		}
		for i, c := range matchCases {
			id := fmt.Sprintf("GHSA-case-%04d", i)
			got, err := s.Affecting(ctx, c.ecosystem, c.asked, c.version)
			if err != nil {
				t.Errorf("%s %s %s: %v", c.ecosystem, c.asked, c.version, err)
				continue
			}
			hit := false
			for _, a := range got {
				if a.GHSAID == id {
					hit = true
					if len(a.Packages) != 1 || a.Packages[0].VulnerableRange != c.vulnerable || a.Packages[0].Name != c.stored {
						t.Errorf("%s: packages %+v, want the range %q of %s", id, a.Packages, c.vulnerable, c.stored)
					}
				}
			}
			if hit != c.want {
				t.Errorf("%s %s %s in %q: affected = %v, want %v", c.ecosystem, c.asked, c.version, c.vulnerable, hit, c.want)
			}
		}
	})
}

// TestAffectingRefuses: an ecosystem the gate does not match or a version
// the ecosystem cannot read is an error, not an empty answer.
func TestAffectingRefuses(t *testing.T) {
	ctx := context.Background()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		for _, q := range []struct{ ecosystem, version string }{
			{"cargo", "1.0.0"},    // crates.io is "rust" in GitHub's names
			{"PyPI", "1.0"},       // osv's name, not GitHub's
			{"erlang", "1.0.0"},   // GitHub's, but not matched here
			{"npm", ""},           // no version
			{"npm", "latest"},     // a dist-tag, not a version
			{"pip", "==1.0"},      // a requirement, not a version
			{"maven", "1.0, 2.0"}, // two versions
			{"go", "v"},           // only the prefix
		} {
			got, err := s.Affecting(ctx, q.ecosystem, "pkg", q.version)
			if !errors.Is(err, advisories.ErrInvalidQuery) {
				t.Errorf("Affecting(%q, %q) = %v, %v; want ErrInvalidQuery", q.ecosystem, q.version, got, err)
			}
		}
	})
}
