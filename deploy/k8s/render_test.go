package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// objects is a rendered kustomization, every object decoded into its
// Kubernetes API type.
type objects struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Deployments     []*appsv1.Deployment
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
	ServiceMonitors []*monitoringv1.ServiceMonitor
	PrometheusRules []*monitoringv1.PrometheusRule
}

// render runs kustomize on dir (as `kubectl apply -k dir` would build it)
// and decodes the result strictly.
func render(dir string) (*objects, error) {
	return renderWith(dir, krusty.MakeDefaultOptions())
}

// renderWith is render with kustomize's options.
func renderWith(dir string, opts *krusty.Options) (*objects, error) {
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	out := &objects{}
	for _, r := range m.Resources() {
		raw, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		if err := out.add(raw); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err)
		}
	}
	return out, nil
}

// add decodes one YAML object into the type its apiVersion and kind name.
// A field the type does not have, a duplicate key, a value of the wrong
// type or a kind not listed here is an error.
func (o *objects) add(doc []byte) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		return err
	}
	var target any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		target = appendNew(&o.Namespaces)
	case "v1 ServiceAccount":
		target = appendNew(&o.ServiceAccounts)
	case "v1 Service":
		target = appendNew(&o.Services)
	case "v1 ConfigMap":
		target = appendNew(&o.ConfigMaps)
	case "v1 Secret":
		target = appendNew(&o.Secrets)
	case "apps/v1 Deployment":
		target = appendNew(&o.Deployments)
	case "policy/v1 PodDisruptionBudget":
		target = appendNew(&o.PDBs)
	case "networking.k8s.io/v1 NetworkPolicy":
		target = appendNew(&o.NetworkPolicies)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		target = appendNew(&o.ServiceMonitors)
	case "monitoring.coreos.com/v1 PrometheusRule":
		target = appendNew(&o.PrometheusRules)
	default:
		return fmt.Errorf("unknown kind %q %q: add it to the strict decoder", tm.APIVersion, tm.Kind)
	}
	// Not encoding/json's Decoder with DisallowUnknownFields: it matches
	// field names case-insensitively, so "readonly" would pass as
	// readOnly, which the API server rejects. sigs.k8s.io/json decodes as
	// the API server does: case-sensitive, and with every strict check
	// (unknown and duplicate fields) on.
	strict, err := kjson.UnmarshalStrict(js, target)
	if err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if err := errors.Join(strict...); err != nil {
		return fmt.Errorf("strict decoding: %w", err)
	}
	return nil
}

// appendNew appends a new zero T to *list and returns it.
func appendNew[T any](list *[]*T) *T {
	v := new(T)
	*list = append(*list, v)
	return v
}

func TestRenderStrict(t *testing.T) {
	for _, dir := range []string{"base", "overlays/production"} {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			objs, err := render(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs.Deployments) != 4 {
				t.Errorf("%d Deployments, want 4", len(objs.Deployments))
			}
		})
	}
}
