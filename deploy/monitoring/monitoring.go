// Package monitoring holds ghconnect's Prometheus rules (rules.yml, with
// their promtool unit tests in rules_test.yml), the local Prometheus's
// scrape configuration (prometheus.yml) and the Grafana dashboards
// (dashboards/*.json, built by dashboards.go), and reads them for the
// tests that keep them honest: every metric they name must be one the services
// export (e2e TestMonitoringNamesExportedMetrics), every alert must have
// a unit test that fires it and a runbook section in the README.
package monitoring

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Files are the rules, their tests and the dashboards as committed.
//
//go:embed rules.yml rules_test.yml dashboards/*.json
var Files embed.FS

// RuleFile is the part of a Prometheus rule file the tests read.
type RuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is one recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Rules reads rules.yml.
func Rules() (*RuleFile, error) {
	raw, err := Files.ReadFile("rules.yml")
	if err != nil {
		return nil, err
	}
	var rf RuleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		return nil, fmt.Errorf("rules.yml: %w", err)
	}
	return &rf, nil
}

// Alerts are the alerting rules, in file order.
func (rf *RuleFile) Alerts() []Rule {
	var out []Rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// Queries are every PromQL expression in the rules and the committed
// dashboards, by where each comes from.
func Queries() (map[string][]string, error) {
	rf, err := Rules()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out["rules.yml "+r.Alert+r.Record] = append(out["rules.yml "+r.Alert+r.Record], r.Expr)
		}
	}
	dash, err := fs.Glob(Files, "dashboards/*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range dash {
		raw, err := Files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if out[name], err = DashboardQueries(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}

// recorded is a name the rules record ("level:metric:operations"): not
// exported by a service.
func recorded(name string) bool { return strings.Contains(name, ":") }

// fromPrometheus are series Prometheus itself writes for every target.
var fromPrometheus = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}

// grafanaVars are the intervals Grafana fills in, as durations PromQL
// parses.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// MetricNames are the metrics the queries select that a service must
// export, sorted; a histogram's _bucket, _sum and _count are named as
// such. Names the rules record, and Prometheus's own per-target series,
// are left out.
func MetricNames(queries map[string][]string) ([]string, error) {
	p := parser.NewParser(parser.Options{})
	seen := map[string]bool{}
	for where, exprs := range queries {
		for _, e := range exprs {
			expr, err := p.ParseExpr(grafanaVars.Replace(e))
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", where, e, err)
			}
			var bad error
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				if vs.Name == "" {
					bad = fmt.Errorf("%s: %q selects metrics by a pattern, which no test can check", where, e)
					return bad
				}
				if !recorded(vs.Name) && !slices.Contains(fromPrometheus, vs.Name) {
					seen[vs.Name] = true
				}
				return nil
			})
			if bad != nil {
				return nil, bad
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
