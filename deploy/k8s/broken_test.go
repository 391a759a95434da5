package k8s

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyManifests copies base/ and overlays/ into a new temporary directory
// and returns it.
func copyManifests(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, top := range []string{"base", "overlays"} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			target := filepath.Join(dst, p)
			if d.IsDir() {
				return os.MkdirAll(target, 0o755)
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, raw, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// edit replaces the first old in dir/file with repl, failing if old is not
// there (so a mutation can never silently do nothing).
func edit(t *testing.T, dir, file, old, repl string) {
	t.Helper()
	p := filepath.Join(dir, file)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(raw), old, repl, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCopyRenders is the control for the tests below: an unmodified copy
// renders and passes every check, so their failures come from their edits.
func TestCopyRenders(t *testing.T) {
	dir := copyManifests(t)
	objs, err := render(filepath.Join(dir, "overlays/production"))
	if err != nil {
		t.Fatal(err)
	}
	report(t, checkCommon(objs))
	report(t, checkProduction(objs))
}

// TestStrictDecodingBites: a misspelt field, a wrongly typed value and a
// kind the decoder does not know each fail rendering.
func TestStrictDecodingBites(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"misspelt field", "base/registry.yaml", "readinessProbe:", "readinesProbe:", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"wrong case in an overlay patch", "overlays/production/broker.yaml", "readOnly: true", "readonly: true", `unknown field "spec.template.spec.initContainers[0].volumeMounts[0].readonly"`},
		{"wrong type", "base/gateway.yaml", "timeoutSeconds: 2", "timeoutSeconds: two", "timeoutSeconds"},
		{"duplicate field", "base/featuregate.yaml", "      enableServiceLinks: false\n", "      enableServiceLinks: false\n      enableServiceLinks: true\n", "enableServiceLinks"},
		{"unknown kind", "overlays/production/pdb.yaml", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: registry",
			"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: x\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: registry",
			`unknown kind "cert-manager.io/v1" "Certificate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyManifests(t)
			edit(t, dir, tc.file, tc.old, tc.new)
			_, err := render(filepath.Join(dir, "overlays/production"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestChecksBite: manifests that decode fine but break a promised property
// are caught by the checks.
func TestChecksBite(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"no such flag", "base/featuregate.yaml", "GHCONNECT_FEATUREGATE_LOG_LEVEL", "GHCONNECT_FEATUREGATE_LOGLEVEL", "GHCONNECT_FEATUREGATE_LOGLEVEL matches no flag"},
		{"bad flag value", "base/broker.yaml", "- name: GHCONNECT_BROKER_LOG_LEVEL\n              value: info", "- name: GHCONNECT_BROKER_CACHE_SIZE\n              value: many", "is not a valid -cache-size"},
		{"file outside the mounts", "base/registry.yaml", "mountPath: /etc/ghconnect/license-issuers", "mountPath: /etc/ghconnect/issuers", "/etc/ghconnect/license-issuers/license-issuers is under none"},
		{"agent may escalate", "base/broker.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "container vault-agent: allowPrivilegeEscalation must be false"},
		{"no memory limit", "overlays/production/gateway.yaml", "memory: 256Mi", "memory: \"0\"", "container gateway: memory request and limit"},
		{"registry open to the feature gate's callers", "base/networkpolicies.yaml", "app.kubernetes.io/name: featuregate\n      ports:\n        - protocol: TCP\n          port: 7001",
			"app.kubernetes.io/name: featuregate\n        - podSelector: {}\n      ports:\n        - protocol: TCP\n          port: 7001", "ingress to registry port 7001"},
		{"undocumented Secret", "base/registry.yaml", "secretName: ghconnect-license-issuers", "secretName: ghconnect-issuers", "Secret ghconnect-issuers, which is neither rendered"},
		{"probe on an undeclared port", "base/featuregate.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: metrics", "readinessProbe port metrics"},
		{"sink not the token file", "base/vault-agent/registry.hcl", `path = "/vault/token/token"`, `path = "/vault/token/t"`, "the Vault Agent's sink"},
		{"stops at once", "base/broker.yaml", "preStop:\n              sleep:\n                seconds: 5", "preStop:\n              sleep:\n                seconds: 0", "broker: the main container needs a preStop sleep"},
		{"grace shorter than the stop", "base/gateway.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 12", "terminationGracePeriodSeconds 12 is shorter"},
		{"wrong replicas", "overlays/production/kustomization.yaml", "count: 3", "count: 1", "Deployment broker: replicas"},
		{"no client certificate required", "overlays/production/registry.yaml", "value: \"true\"", "value: \"false\"", "REQUIRE_CLIENT_CERT must be"},
		{"gateway cannot reach its database", "base/networkpolicies.yaml", "port: 7003\n    - ports:\n        - protocol: TCP\n          port: 5432",
			"port: 7003\n    - ports:\n        - protocol: TCP\n          port: 5433", "egress from gateway to port 5432"},
		{"gateway cannot reach the identity provider", "base/networkpolicies.yaml", "port: 5432\n        - protocol: TCP\n          port: 443\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: registry-egress",
			"port: 5432\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: registry-egress", "egress from gateway to port 443"},
		{"sessions in each pod", "overlays/production/gateway.yaml", "- name: GHCONNECT_GATEWAY_DATABASE\n              valueFrom:\n                secretKeyRef:\n                  name: ghconnect-gateway-database\n                  key: url",
			"- name: GHCONNECT_GATEWAY_DATABASE\n              value: sqlite:/tmp/gateway.db", "share sessions only through PostgreSQL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyManifests(t)
			edit(t, dir, tc.file, tc.old, tc.new)
			objs, err := render(filepath.Join(dir, "overlays/production"))
			if err != nil {
				t.Fatal(err)
			}
			found := append(checkCommon(objs), checkProduction(objs)...)
			for _, p := range found {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; found %q", tc.want, found)
		})
	}
}
