package advisories

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// ErrInvalidQuery says an Affecting call named an ecosystem the gate does
// not match or a version that ecosystem cannot read: the caller's mistake
// (the RPC answers InvalidArgument), never "no advisories".
var ErrInvalidQuery = errors.New("invalid advisory query")

// semanticEcosystems maps GitHub's ecosystem names (the advisories'
// vulnerabilities[].package.ecosystem) to osv-scalibr's, whose semantic
// package compares versions by each ecosystem's own rules. GitHub's other
// ecosystems (actions, erlang, pub, swift, other) are stored as synced but
// cannot be asked about.
var semanticEcosystems = map[string]string{
	"npm":      "npm",
	"pip":      "PyPI",
	"maven":    "Maven",
	"rubygems": "RubyGems",
	"go":       "Go",
	"nuget":    "NuGet",
	"composer": "Packagist",
	"rust":     "crates.io",
}

// pypiSeparators are the runs PEP 503 folds into one "-".
var pypiSeparators = regexp.MustCompile(`[-_.]+`)

// normalizeName is the form of a package name that lookups key on: names
// that the ecosystem's registry treats as one package become one string,
// and names it keeps apart stay apart.
//
//   - pip: PEP 503 (lowercase, runs of -, _ and . as one -), as PyPI and
//     pip resolve names.
//   - composer: lowercase; Packagist names are case-insensitive.
//   - nuget: lowercase; package ids are case-insensitive.
//   - rust: lowercase with _ as -; crates.io refuses a crate whose name
//     differs from an existing one only so, so the folded name still names
//     one crate.
//   - npm, maven, rubygems, go: as written. npm still serves old mixed-case
//     packages that differ from a lowercase one (JSONStream, jsonstream),
//     Maven coordinates and gem names are case-sensitive, and Go module
//     paths are too (github.com/Sirupsen/logrus is not sirupsen's).
func normalizeName(ecosystem, name string) string {
	name = strings.TrimSpace(name)
	switch ecosystem {
	case "pip":
		return pypiSeparators.ReplaceAllString(strings.ToLower(name), "-")
	case "composer", "nuget":
		return strings.ToLower(name)
	case "rust":
		return strings.ReplaceAll(strings.ToLower(name), "_", "-")
	}
	return name
}

// normalizeEcosystem is GitHub's spelling of an ecosystem (lowercase).
func normalizeEcosystem(ecosystem string) string {
	return strings.ToLower(strings.TrimSpace(ecosystem))
}

// parseVersion reads version as ecosystem's (GitHub's name) rules. The
// library reads any string somehow (PyPI's parser falls back to the
// pre-PEP 440 legacy order, which old releases on PyPI still need), so a
// version must also look like one: no spaces or commas, and a digit first
// (after a leading v, which Go and Composer versions carry).
func parseVersion(ecosystem, version string) (semantic.Version, error) {
	eco, ok := semanticEcosystems[ecosystem]
	if !ok {
		return nil, fmt.Errorf("%w: unknown ecosystem %q (known: npm, pip, maven, rubygems, go, nuget, composer, rust)", ErrInvalidQuery, ecosystem)
	}
	if err := checkVersionShape(version); err != nil {
		return nil, fmt.Errorf("%w: %s version %q: %v", ErrInvalidQuery, ecosystem, version, err)
	}
	v, err := semantic.Parse(version, eco)
	if err != nil {
		return nil, fmt.Errorf("%w: %s version %q: %v", ErrInvalidQuery, ecosystem, version, err)
	}
	return v, nil
}

func checkVersionShape(version string) error {
	if version == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(version, " \t\r\n,") {
		return errors.New("spaces or commas")
	}
	s := strings.TrimPrefix(strings.TrimPrefix(version, "v"), "V")
	if s == "" || s[0] < '0' || s[0] > '9' {
		return errors.New("does not start with a number")
	}
	return nil
}

// constraint is one "op version" of a vulnerable range.
type constraint struct {
	op      string // =, <, <=, >, >=
	version string
}

// parseRange reads GitHub's vulnerable_version_range: comma-separated
// constraints, each an operator (=, <, <=, >, >=) and a version, all of
// which a vulnerable version meets (">= 1.0.0, < 1.2.3", "= 2.0.0").
func parseRange(r string) ([]constraint, error) {
	if strings.TrimSpace(r) == "" {
		return nil, errors.New("empty vulnerable range")
	}
	var out []constraint
	for part := range strings.SplitSeq(r, ",") {
		part = strings.TrimSpace(part)
		var c constraint
		// Two-character operators first: "<=" also starts with "<".
		for _, op := range []string{"<=", ">=", "<", ">", "="} {
			if strings.HasPrefix(part, op) {
				c = constraint{op: op, version: strings.TrimSpace(part[len(op):])}
				break
			}
		}
		if c.op == "" {
			return nil, fmt.Errorf("vulnerable range %q: %q has no operator (=, <, <=, >, >=)", r, part)
		}
		if err := checkVersionShape(c.version); err != nil {
			return nil, fmt.Errorf("vulnerable range %q: version %q: %v", r, c.version, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// checkRange says whether r is a range Affecting can read for ecosystem:
// its syntax, and each version by the ecosystem's parser where the gate
// matches that ecosystem.
func checkRange(ecosystem, r string) error {
	cs, err := parseRange(r)
	if err != nil {
		return err
	}
	eco, ok := semanticEcosystems[ecosystem]
	if !ok {
		return nil
	}
	for _, c := range cs {
		if _, err := semantic.Parse(c.version, eco); err != nil {
			return fmt.Errorf("vulnerable range %q: %w", r, err)
		}
	}
	return nil
}

// inRange says whether v meets every constraint of range r.
func inRange(v semantic.Version, r string) (bool, error) {
	cs, err := parseRange(r)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		// CompareStr orders v against the bound: -1 when v is lower.
		cmp, err := v.CompareStr(c.version)
		if err != nil {
			return false, fmt.Errorf("vulnerable range %q: %w", r, err)
		}
		var ok bool
		switch c.op {
		case "=":
			ok = cmp == 0
		case "<":
			ok = cmp < 0
		case "<=":
			ok = cmp <= 0
		case ">":
			ok = cmp > 0
		case ">=":
			ok = cmp >= 0
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
