package k8s

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile          = "../monitoring/rules.yml"
	prometheusRuleFile = "components/monitoring/prometheusrule.yaml"
	// writeGenerated, set to 1, makes TestPrometheusRuleIsCurrent write
	// the PrometheusRule instead of comparing it.
	writeGenerated = "GHCONNECT_WRITE_GENERATED"
)

// prometheusRule is components/monitoring/prometheusrule.yaml as
// deploy/monitoring/rules.yml makes it: the rule file's groups, decoded
// strictly into prometheus-operator's PrometheusRuleSpec, as the spec.
func prometheusRule() ([]byte, error) {
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, err
	}
	var spec monitoringv1.PrometheusRuleSpec
	strict, err := kjson.UnmarshalStrict(js, &spec)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(strict...); err != nil {
		return nil, err
	}
	obj := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata": map[string]any{"name": "ghconnect", "labels": map[string]string{
			"app.kubernetes.io/part-of": "ghconnect",
		}},
		"spec": spec,
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return nil, err
	}
	head := "# Generated from deploy/monitoring/rules.yml: edit that file, then run\n" +
		"#   " + writeGenerated + "=1 go test -run TestPrometheusRuleIsCurrent ./deploy/k8s\n"
	return append([]byte(head), out...), nil
}

// TestPrometheusRuleIsCurrent: the component's PrometheusRule carries
// exactly the groups of deploy/monitoring/rules.yml, the file promtool
// checks and unit-tests.
func TestPrometheusRuleIsCurrent(t *testing.T) {
	want, err := prometheusRule()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(writeGenerated) == "1" {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil { //nolint:gosec // G306: a manifest in the repository
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what %s makes: run %s=1 go test -run TestPrometheusRuleIsCurrent ./deploy/k8s", prometheusRuleFile, rulesFile, writeGenerated)
	}
}

// TestMonitoringComponent: the production overlay with the monitoring
// component decodes strictly; each service has a ServiceMonitor that
// selects its Service's metrics port under the job name the rules use,
// and the PrometheusRule is there.
func TestMonitoringComponent(t *testing.T) {
	// Kustomize takes no absolute paths: the temporary kustomization
	// names the overlay and the component relative to itself.
	dir := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err == nil {
			p, err = filepath.Rel(dir, abs)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	prod, comp := rel("overlays/production"), rel("components/monitoring")
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ghconnect\nresources:\n  - " + prod + "\ncomponents:\n  - " + comp + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	objs, err := renderWith(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.PrometheusRules) != 1 || len(objs.PrometheusRules[0].Spec.Groups) == 0 {
		t.Fatalf("PrometheusRules: %d, want 1 with the rules' groups", len(objs.PrometheusRules))
	}
	var p problems
	for _, s := range services {
		var sm *monitoringv1.ServiceMonitor
		for _, x := range objs.ServiceMonitors {
			if x.Name == s.name {
				sm = x
			}
		}
		if sm == nil {
			p.add("%s: no ServiceMonitor", s.name)
			continue
		}
		if sm.Namespace != "ghconnect" {
			p.add("%s: ServiceMonitor in namespace %q, want ghconnect", s.name, sm.Namespace)
		}
		var svcPorts []string
		for _, svc := range objs.Services {
			if selects(sm.Spec.Selector.MatchLabels, svc.Labels) && svc.Namespace == sm.Namespace {
				for _, sp := range svc.Spec.Ports {
					if sp.Port == s.metricsPort {
						svcPorts = append(svcPorts, sp.Name)
					}
				}
			}
		}
		if len(sm.Spec.Endpoints) != 1 {
			p.add("%s: %d endpoints, want 1", s.name, len(sm.Spec.Endpoints))
			continue
		}
		ep := sm.Spec.Endpoints[0]
		if !slices.Contains(svcPorts, ep.Port) || ep.Path != "/metrics" {
			p.add("%s: the ServiceMonitor scrapes port %q path %q; the Service's port %d is named %v", s.name, ep.Port, ep.Path, s.metricsPort, svcPorts)
		}
		job := ""
		for _, r := range ep.RelabelConfigs {
			if r.TargetLabel == "job" && r.Replacement != nil {
				job = *r.Replacement
			}
		}
		if job != "ghconnect-"+s.name {
			p.add("%s: scraped as job %q, want ghconnect-%s (the rules' job names)", s.name, job, s.name)
		}
	}
	report(t, p)
}
