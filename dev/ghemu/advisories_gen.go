package ghemu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// cweTable is the weaknesses the generator draws from, with GitHub's
// names, and a summary in the style of GitHub's for each.
var cweTable = []struct {
	CWE
	summary string // %s: the package
}{
	{CWE{"CWE-79", "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"}, "Cross-site Scripting in %s"},
	{CWE{"CWE-89", "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')"}, "SQL Injection in %s"},
	{CWE{"CWE-22", "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')"}, "Path Traversal in %s"},
	{CWE{"CWE-78", "Improper Neutralization of Special Elements used in an OS Command ('OS Command Injection')"}, "%s vulnerable to OS Command Injection"},
	{CWE{"CWE-94", "Improper Control of Generation of Code ('Code Injection')"}, "Code Injection in %s"},
	{CWE{"CWE-400", "Uncontrolled Resource Consumption"}, "%s vulnerable to Uncontrolled Resource Consumption"},
	{CWE{"CWE-1333", "Inefficient Regular Expression Complexity"}, "Regular Expression Denial of Service in %s"},
	{CWE{"CWE-502", "Deserialization of Untrusted Data"}, "Deserialization of Untrusted Data in %s"},
	{CWE{"CWE-918", "Server-Side Request Forgery (SSRF)"}, "Server-Side Request Forgery in %s"},
	{CWE{"CWE-352", "Cross-Site Request Forgery (CSRF)"}, "Cross-Site Request Forgery in %s"},
	{CWE{"CWE-287", "Improper Authentication"}, "Authentication bypass in %s"},
	{CWE{"CWE-863", "Incorrect Authorization"}, "%s has Incorrect Authorization"},
	{CWE{"CWE-20", "Improper Input Validation"}, "Improper Input Validation in %s"},
	{CWE{"CWE-200", "Exposure of Sensitive Information to an Unauthorized Actor"}, "%s exposes sensitive information"},
	{CWE{"CWE-611", "Improper Restriction of XML External Entity Reference"}, "XML External Entity (XXE) in %s"},
	{CWE{"CWE-601", "URL Redirection to Untrusted Site ('Open Redirect')"}, "Open Redirect in %s"},
	{CWE{"CWE-1321", "Improperly Controlled Modification of Object Prototype Attributes ('Prototype Pollution')"}, "Prototype Pollution in %s"},
	{CWE{"CWE-770", "Allocation of Resources Without Limits or Throttling"}, "%s allows unbounded resource allocation"},
	{CWE{"CWE-444", "Inconsistent Interpretation of HTTP Requests ('HTTP Request/Response Smuggling')"}, "HTTP Request Smuggling in %s"},
	{CWE{"CWE-295", "Improper Certificate Validation"}, "%s does not validate TLS certificates"},
}

// GeneratedEcosystems are the ecosystems GeneratedAdvisories spreads
// advisories over.
var GeneratedEcosystems = []string{"npm", "pip", "maven", "rubygems", "go", "nuget", "composer", "rust"}

var genWords = []string{
	"acorn", "beacon", "cipher", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "jasper",
	"kernel", "lumen", "marble", "nimbus", "orbit", "pixel", "quartz", "raven", "sable", "tundra",
	"umbra", "vertex", "willow", "xenon", "yarrow", "zephyr", "parse", "render", "stream", "cache",
	"proxy", "router", "schema", "token", "upload", "yaml", "json", "http", "auth", "image",
}

// packageName is a plausible package name in an ecosystem's style, from
// two words (and an owner word for those with namespaces).
func packageName(eco string, owner, a, b string) string {
	switch eco {
	case "npm":
		if owner[0] < 'e' {
			return "@" + owner + "/" + a + "-" + b
		}
		return a + "-" + b
	case "pip":
		return "py" + a + "-" + b
	case "maven":
		return "org." + owner + "." + a + ":" + a + "-" + b
	case "rubygems":
		return a + "_" + b
	case "go":
		return "github.com/" + owner + "/" + a + b
	case "nuget":
		return title(owner) + "." + title(a) + title(b)
	case "composer":
		return owner + "/" + a + "-" + b
	default: // rust
		return a + "_" + b
	}
}

func title(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// sourceRepo is the GitHub repository a generated package lives in.
func sourceRepo(owner, a, b string) string {
	return htmlBase + "/" + owner + "/" + a + "-" + b
}

// vulnerableFunction is a function name in the ecosystem's style; GitHub
// lists them mostly for Go, and for some Python and Rust advisories.
func vulnerableFunction(eco, pkg, a, b string) string {
	switch eco {
	case "go":
		return pkg[strings.LastIndex(pkg, "/")+1:] + "." + title(a) + title(b)
	case "pip":
		return strings.ReplaceAll(pkg, "-", "_") + "." + a + "_" + b
	default:
		return pkg + "::" + a + "_" + b
	}
}

// GeneratedAdvisories makes n reviewed advisories, the same for the same n
// and seed: spread over GeneratedEcosystems, each with one to three
// vulnerable version ranges in GitHub's syntax, a CVSS 3.1 vector and the
// score it works out to, CWEs, GHSA and (mostly) CVE identifiers, and
// timestamps between 2018 and 2025.
func GeneratedAdvisories(n int, seed int64) []Advisory {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)) //nolint:gosec // G404, G115: reproducible test data, not secrets
	word := func() string { return genWords[rng.IntN(len(genWords))] }
	ids := make(map[string]bool, n)
	cves := make(map[string]bool, n)
	start := time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	end := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC).Unix()
	lastUpdate := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	out := make([]Advisory, 0, n)
	for len(out) < n {
		id := ghsaFrom(rng.IntN)
		if ids[id] {
			continue
		}
		ids[id] = true
		eco := GeneratedEcosystems[rng.IntN(len(GeneratedEcosystems))]
		owner, a, b := word(), word(), word()
		pkg := packageName(eco, owner, a, b)
		published := time.Unix(start+rng.Int64N(end-start), 0).UTC()
		updated := published.Add(time.Duration(rng.IntN(500*24)) * time.Hour)
		if updated.After(lastUpdate) {
			updated = lastUpdate
		}
		cwe := cweTable[rng.IntN(len(cweTable))]
		adv := Advisory{
			GHSAID: id, Type: "reviewed",
			Summary:            fmt.Sprintf(cwe.summary, pkg),
			SourceCodeLocation: sourceRepo(owner, a, b),
			CWEs:               []CWE{cwe.CWE},
			PublishedAt:        published, UpdatedAt: updated, GitHubReviewedAt: published,
		}
		if rng.IntN(5) == 0 {
			second := cweTable[rng.IntN(len(cweTable))].CWE
			if second != cwe.CWE {
				adv.CWEs = append(adv.CWEs, second)
			}
		}
		vector, score := randomCVSS(rng)
		adv.CVSS = &CVSS{VectorString: vector, Score: score}
		adv.Severity = severityOf(score)
		if rng.IntN(10) != 0 { // most reviewed advisories have a CVE
			for adv.CVEID == "" || cves[adv.CVEID] {
				adv.CVEID = fmt.Sprintf("CVE-%d-%d", published.Year(), 1000+rng.IntN(60000))
			}
			cves[adv.CVEID] = true
			if rng.IntN(10) < 7 {
				adv.NVDPublishedAt = published.Add(-time.Duration(rng.IntN(30*24)) * time.Hour)
			}
			p := math.Round(math.Pow(rng.Float64(), 6)*97000) / 100000 // mostly tiny, as EPSS is
			adv.EPSS = &EPSS{Percentage: p, Percentile: math.Round(math.Pow(p/0.97, 0.2)*100000) / 100000}
			adv.References = append(adv.References, "https://nvd.nist.gov/vuln/detail/"+adv.CVEID)
		}
		adv.References = append(adv.References,
			sourceRepo(owner, a, b)+"/security/advisories/"+id,
			htmlBase+"/advisories/"+id)
		adv.Vulnerabilities = randomVulnerabilities(rng, eco, pkg, word)
		first := adv.Vulnerabilities[0]
		adv.Description = fmt.Sprintf("### Impact\n%s versions %s are affected: %s.\n\n### Patches\n%s\n\n### References\n%s\n",
			pkg, first.VulnerableVersionRange, strings.ToLower(cwe.Name), patchesText(first), strings.Join(adv.References, "\n"))
		out = append(out, adv)
	}
	return out
}

func patchesText(v Vulnerability) string {
	if v.FirstPatchedVersion == "" {
		return "No patched version is available yet."
	}
	return "Fixed in " + v.FirstPatchedVersion + "."
}

// randomVulnerabilities is one to three vulnerable ranges: of the package
// on separate major versions, or of other packages of the same ecosystem.
func randomVulnerabilities(rng *rand.Rand, eco, pkg string, word func() string) []Vulnerability {
	n := 1 + rng.IntN(3)
	out := make([]Vulnerability, 0, n)
	major := rng.IntN(6)
	for i := 0; i < n; i++ {
		name := pkg
		if i > 0 && rng.IntN(2) == 0 {
			name = packageName(eco, word(), word(), word())
		}
		v := Vulnerability{Package: AdvisoryPackage{Ecosystem: eco, Name: name}, VulnerableFunctions: []string{}}
		minor, patch := rng.IntN(20), 1+rng.IntN(30)
		fixed := fmt.Sprintf("%d.%d.%d", major, minor, patch)
		switch k := rng.IntN(20); {
		case k < 8: // a range within a major version
			v.VulnerableVersionRange = fmt.Sprintf(">= %d.0.0, < %s", major, fixed)
			v.FirstPatchedVersion = fixed
		case k < 15:
			v.VulnerableVersionRange = "< " + fixed
			v.FirstPatchedVersion = fixed
		case k < 18: // no fix yet
			v.VulnerableVersionRange = fmt.Sprintf("<= %d.%d.%d", major, minor, patch-1)
		default: // one bad release
			v.VulnerableVersionRange = fmt.Sprintf("= %d.%d.%d", major, minor, patch-1)
			v.FirstPatchedVersion = fixed
		}
		if eco == "go" || rng.IntN(6) == 0 {
			v.VulnerableFunctions = append(v.VulnerableFunctions, vulnerableFunction(eco, name, word(), word()))
		}
		out = append(out, v)
		major++
	}
	return out
}

// randomCVSS draws CVSS 3.1 base metrics and works out their base score
// with the specification's formula, so vector, score and severity agree.
func randomCVSS(rng *rand.Rand) (string, float64) {
	pick := func(opts string) byte { return opts[rng.IntN(len(opts))] }
	av, ac, pr, ui, s := pick("NNNNALP"), pick("LLLH"), pick("NNLH"), pick("NNR"), pick("UUUC")
	c, i, a := pick("HHLN"), pick("HLNN"), pick("HNNL")
	if c == 'N' && i == 'N' && a == 'N' {
		c = 'L' // a vulnerability impacts something
	}
	vector := fmt.Sprintf("CVSS:3.1/AV:%c/AC:%c/PR:%c/UI:%c/S:%c/C:%c/I:%c/A:%c", av, ac, pr, ui, s, c, i, a)
	return vector, cvss31Score(av, ac, pr, ui, s, c, i, a)
}

func cvss31Score(av, ac, pr, ui, s, c, i, a byte) float64 {
	changed := s == 'C'
	weight := map[byte]float64{'N': 0.85, 'A': 0.62, 'L': 0.55, 'P': 0.2}[av] *
		map[byte]float64{'L': 0.77, 'H': 0.44}[ac] *
		map[byte]float64{'N': 0.85, 'R': 0.62}[ui]
	prw := map[byte]float64{'N': 0.85, 'L': 0.62, 'H': 0.27}[pr]
	if changed && pr != 'N' {
		prw = map[byte]float64{'L': 0.68, 'H': 0.5}[pr]
	}
	exploitability := 8.22 * weight * prw
	cia := map[byte]float64{'H': 0.56, 'L': 0.22, 'N': 0}
	iss := 1 - (1-cia[c])*(1-cia[i])*(1-cia[a])
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	if impact <= 0 {
		return 0
	}
	base := impact + exploitability
	if changed {
		base *= 1.08
	}
	return roundUp(math.Min(base, 10))
}

// roundUp is CVSS 3.1's Roundup: the smallest one-decimal number not
// below x, computed in integers to avoid floating-point surprises.
func roundUp(x float64) float64 {
	n := int64(math.Round(x * 100000))
	if n%10000 == 0 {
		return float64(n) / 100000
	}
	return float64(n/10000+1) / 10
}
