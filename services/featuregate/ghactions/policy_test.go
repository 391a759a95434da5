package ghactions_test

import (
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/services/featuregate/ghactions"
)

func TestPolicyDecides(t *testing.T) {
	selected := ghactions.Policy{Allowed: ghactions.AllowSelected, GitHubOwned: true, VerifiedCreators: true,
		Patterns: []string{"octo-org/*", "tools/lint@v2", "tools/build@releases/*", "!octo-org/bad-action", "!*/*@main"}}
	for _, c := range []struct {
		name     string
		p        ghactions.Policy
		action   [3]string
		verified bool
		allowed  bool
		needs    bool
		reason   string
	}{
		{"all allows anything", ghactions.DefaultPolicy(), [3]string{"someone", "thing", "v1"}, false, true, false, "allows all"},
		{"all still blocks", ghactions.Policy{Allowed: ghactions.AllowAll, Patterns: []string{"!evil/*"}}, [3]string{"Evil", "x", "v1"}, false, false, false, `blocked by the enterprise's actions policy ("!evil/*")`},
		{"owner pattern", selected, [3]string{"octo-org", "setup", "v3"}, false, true, false, `"octo-org/*"`},
		{"names are not case sensitive", selected, [3]string{"Octo-Org", "Setup", "v3"}, false, true, false, `"octo-org/*"`},
		{"block wins over allow", selected, [3]string{"octo-org", "bad-action", "v1"}, false, false, false, "blocked"},
		{"block by ref", selected, [3]string{"actions", "checkout", "main"}, false, false, false, `"!*/*@main"`},
		{"exact ref", selected, [3]string{"tools", "lint", "v2"}, false, true, false, `"tools/lint@v2"`},
		{"other ref of it", ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"tools/lint@v2"}}, [3]string{"tools", "lint", "v3"}, false, false, false, "not among"},
		{"ref with a slash", selected, [3]string{"tools", "build", "releases/v1"}, false, true, false, `"tools/build@releases/*"`},
		{"github owned", selected, [3]string{"actions", "checkout", "v4"}, false, true, false, "GitHub made"},
		{"verified creator asked", selected, [3]string{"acme", "deploy", "v1"}, false, false, true, "not among"},
		{"verified creator", selected, [3]string{"acme", "deploy", "v1"}, true, true, true, "verified creator"},
		{"verified not allowed", ghactions.Policy{Allowed: ghactions.AllowSelected, GitHubOwned: true}, [3]string{"acme", "deploy", "v1"}, true, false, false, "not among"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.p.Validate(); err != nil {
				t.Fatalf("policy: %v", err)
			}
			o, r, ref := c.action[0], c.action[1], c.action[2]
			if got := c.p.NeedsVerification(o, r, ref); got != c.needs {
				t.Errorf("NeedsVerification = %v, want %v", got, c.needs)
			}
			d := c.p.Decide(o, r, ref, c.verified)
			if d.Allowed != c.allowed || !strings.Contains(d.Reason, c.reason) {
				t.Errorf("Decide = %+v, want allowed %v with %q", d, c.allowed, c.reason)
			}
		})
	}
}

func TestPolicyRefusesBadPatterns(t *testing.T) {
	for _, c := range []struct {
		p    ghactions.Policy
		want string
	}{
		{ghactions.Policy{}, "allowed: must be ALL or SELECTED"},
		{ghactions.Policy{Allowed: ghactions.AllowAll, GitHubOwned: true}, "only with SELECTED"},
		{ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"no-slash"}}, `patterns[0] "no-slash"`},
		{ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"a/b/c"}}, `patterns[0]`},
		{ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"ok/ok", "bad owner/x"}}, `patterns[1] "bad owner/x": the owner`},
		{ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"a/[x"}}, `the repository`},
		{ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"a/b@"}}, `the ref`},
		{ghactions.Policy{Allowed: ghactions.AllowSelected, Patterns: []string{"a/b@x y"}}, `the ref`},
	} {
		err := c.p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}
