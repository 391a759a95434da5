package monitoring_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/deploy/monitoring"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"go.yaml.in/yaml/v3"
)

// promtool runs bin/promtool (make tools builds it) in dir.
func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	testenv.SkipIfShort(t, "runs bin/promtool")
	bin := filepath.Join(testenv.RepoRoot(), "bin", "promtool")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run make tools", bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRulesPassPromtool: Prometheus's own checker accepts the rules and
// the local Prometheus's configuration, and its rule unit tests
// (rules_test.yml) pass.
func TestRulesPassPromtool(t *testing.T) {
	if out, err := promtool(t, ".", "check", "rules", "rules.yml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := promtool(t, ".", "test", "rules", "rules_test.yml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if out, err := promtool(t, ".", "check", "config", "prometheus.yml"); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// TestRuleTestsCatchAChangedThreshold: the unit tests evaluate the rules.
// With the stuck-disconnect threshold raised from 5 minutes to 50, they
// fail.
func TestRuleTestsCatchAChangedThreshold(t *testing.T) {
	dir := t.TempDir()
	rules, err := os.ReadFile("rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	const from, to = "max(ghconnect_registry_disconnecting_oldest_seconds) > 300", "max(ghconnect_registry_disconnecting_oldest_seconds) > 3000"
	if !strings.Contains(string(rules), from) {
		t.Fatalf("rules.yml no longer holds %q: update this test", from)
	}
	tests, err := os.ReadFile("rules_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(strings.Replace(string(rules), from, to, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := promtool(t, dir, "test", "rules", "--run", "^disconnect-stuck$", "rules_test.yml")
	if err == nil || !strings.Contains(out, "GhconnectDisconnectStuck") {
		t.Fatalf("promtool test rules passed a changed rule: %v\n%s", err, out)
	}
}

// ruleTests is the part of rules_test.yml this file reads.
type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertFiresInATest: each alert has a unit test that expects it
// to fire (and so checks its labels and annotations as rendered).
func TestEveryAlertFiresInATest(t *testing.T) {
	rf, err := monitoring.Rules()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := monitoring.Files.ReadFile("rules_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTests
	if err := yaml.Unmarshal(raw, &rt); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	alerts := rf.Alerts()
	if len(alerts) < 10 {
		t.Fatalf("only %d alerts in rules.yml", len(alerts))
	}
	for _, a := range alerts {
		if !fires[a.Alert] {
			t.Errorf("%s: no unit test in rules_test.yml expects it to fire", a.Alert)
		}
	}
}

const runbookBase = "https://github.com/ghconnect/ghconnect/blob/main/README.md#"

// TestEveryAlertHasARunbook: a severity operators route on, a summary, a
// description in words, and a runbook_url that opens a section the README
// really has.
func TestEveryAlertHasARunbook(t *testing.T) {
	rf, err := monitoring.Rules()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := readmeAnchors(string(readme))
	for _, a := range rf.Alerts() {
		if s := a.Labels["severity"]; s != "page" && s != "ticket" {
			t.Errorf("%s: severity %q, want page or ticket", a.Alert, s)
		}
		if a.Annotations["summary"] == "" || len(strings.Fields(a.Annotations["description"])) < 5 {
			t.Errorf("%s: a summary and a description in words are required", a.Alert)
		}
		anchor, ok := strings.CutPrefix(a.Annotations["runbook_url"], runbookBase)
		if !ok || !anchors[anchor] {
			t.Errorf("%s: runbook_url %q opens no README section (%s<anchor of a heading>)", a.Alert, a.Annotations["runbook_url"], runbookBase)
		}
	}
}

// readmeAnchors are the anchors GitHub gives the README's headings: lower
// case, punctuation dropped, spaces as hyphens.
func readmeAnchors(md string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	inCode := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		h = strings.ReplaceAll(h, "`", "")
		out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
	}
	return out
}

// TestQueriesParse: every query is PromQL, and selects metrics by name.
func TestQueriesParse(t *testing.T) {
	q, err := monitoring.Queries()
	if err != nil {
		t.Fatal(err)
	}
	names, err := monitoring.MetricNames(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("only %d metric names: %v", len(names), names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "ghconnect_") {
			t.Errorf("%s: not a ghconnect metric", n)
		}
	}
}

// writeGenerated, set to 1, makes TestDashboardsAreCurrent write the
// dashboards instead of comparing them.
const writeGenerated = "GHCONNECT_WRITE_GENERATED"

// TestDashboardsAreCurrent: dashboards/*.json are what dashboards.go
// builds, no more and no fewer.
func TestDashboardsAreCurrent(t *testing.T) {
	want, err := monitoring.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(writeGenerated) == "1" {
		old, _ := filepath.Glob("dashboards/*.json")
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		for name, raw := range want {
			if err := os.WriteFile(filepath.Join("dashboards", name), raw, 0o644); err != nil { //nolint:gosec // G306: a file of the repository
				t.Fatal(err)
			}
		}
	}
	have, err := filepath.Glob("dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != len(want) {
		t.Errorf("dashboards/ holds %v; dashboards.go builds %d", have, len(want))
	}
	for name, raw := range want {
		got, err := os.ReadFile(filepath.Join("dashboards", name))
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("dashboards/%s is not what dashboards.go builds (%v): run %s=1 go test -run TestDashboardsAreCurrent ./deploy/monitoring", name, err, writeGenerated)
		}
	}
}

// TestDashboardsCoverTheIssue: the overview has the objectives and their
// budgets, tokens, the cache, Vault and GitHub.com, features and links;
// every service has its own dashboard; each dashboard's queries use the
// ${datasource} variable.
func TestDashboardsCoverTheIssue(t *testing.T) {
	all, err := monitoring.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"overview.json", "broker.json", "registry.json", "featuregate.json", "gateway.json"} {
		if all[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	overview := string(all["overview.json"])
	for _, title := range []string{"IssueToken availability", "IssueToken error budget left", "Check availability", "Cache hits within 10 ms",
		"Disconnects within 5 minutes", "Key follower's last pass", "Tokens issued", "Cache-hit ratio", "Vault and GitHub.com errors", "Features on", "Account links"} {
		if !strings.Contains(overview, `"title": "`+title+`"`) {
			t.Errorf("the overview has no panel %q", title)
		}
	}
	for name, raw := range all {
		exprs, err := monitoring.DashboardQueries(raw)
		if err != nil || len(exprs) < 4 {
			t.Errorf("%s: %d queries, %v", name, len(exprs), err)
		}
		if n := strings.Count(string(raw), `"uid": "${datasource}"`); n < len(exprs) {
			t.Errorf("%s: %d queries, %d of them on ${datasource}", name, len(exprs), n)
		}
	}
}
