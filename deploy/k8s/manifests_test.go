package k8s

import (
	"flag"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/services/broker"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/gateway"
	"github.com/ghconnect/ghconnect/services/registry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const namespace = "ghconnect"

// service is what the manifests must do for one ghconnect service.
type service struct {
	name      string
	envPrefix string
	// register binds the service's real Config to fs: the flags (and so
	// the GHCONNECT_* variables) the binary accepts.
	register func(fs *flag.FlagSet)
	replicas int32 // in the production overlay
	grpcPort int32 // 0: no gRPC server (the gateway)
	httpPort int32 // /healthz and /readyz
	// metricsPort serves /metrics (the gateway's apart from its public
	// port; the others' on httpPort).
	metricsPort int32
	vault       bool // logs in to Vault (through a Vault Agent sidecar)
}

var services = []service{
	{name: "registry", envPrefix: registry.EnvPrefix, register: func(fs *flag.FlagSet) { new(registry.Config).RegisterFlags(fs) },
		replicas: 2, grpcPort: 7001, httpPort: 7101, metricsPort: 7101, vault: true},
	{name: "broker", envPrefix: broker.EnvPrefix, register: func(fs *flag.FlagSet) { new(broker.Config).RegisterFlags(fs) },
		replicas: 3, grpcPort: 7002, httpPort: 7102, metricsPort: 7102, vault: true},
	{name: "featuregate", envPrefix: featuregate.EnvPrefix, register: func(fs *flag.FlagSet) { new(featuregate.Config).RegisterFlags(fs) },
		replicas: 2, grpcPort: 7003, httpPort: 7103, metricsPort: 7103},
	{name: "gateway", envPrefix: gateway.EnvPrefix, register: func(fs *flag.FlagSet) { new(gateway.Config).RegisterFlags(fs) },
		replicas: 2, httpPort: 8080, metricsPort: 8180},
}

// callGraph is who dials whom, read from the services' code (the -*-addr
// flags each one has and uses): caller -> callees.
var callGraph = map[string][]string{
	"gateway":     {"broker", "featuregate", "registry"},
	"registry":    {"broker", "featuregate"},
	"broker":      {"broker", "registry"}, // the fleet: a connection's owner
	"featuregate": {"broker", "registry"},
}

// externalPeers are the peers outside the ghconnect services that may open
// a connection to a service's port, besides its callers in callGraph.
var externalPeers = map[string][]string{
	"broker:grpc":      {"ns:ghconnect.io/broker-callers=true+pod:ghconnect.io/broker-caller=true"},
	"featuregate:grpc": {"ns:ghconnect.io/featuregate-callers=true+pod:ghconnect.io/featuregate-caller=true"},
	"gateway:web":      {"ns:ghconnect.io/gateway-ingress=true"},
	"registry:http":    {"ns:ghconnect.io/monitoring=true"},
	"broker:http":      {"ns:ghconnect.io/monitoring=true"},
	"featuregate:http": {"ns:ghconnect.io/monitoring=true"},
	"gateway:http":     {"ns:ghconnect.io/monitoring=true"},
}

// operatorSecrets are the Secrets the operator creates before applying
// (README.md, "Kubernetes", lists each with its keys): name -> the keys the
// manifests read. Every Secret or ConfigMap the manifests reference is
// either rendered by kustomize or one of these.
var operatorSecrets = map[string][]string{
	"ghconnect-tokens":               {"tokens"},
	"ghconnect-license-issuers":      {"license-issuers"},
	"ghconnect-broker-policy":        {"policy.json"},
	"ghconnect-registry-database":    {"url"},
	"ghconnect-featuregate-database": {"url"},
	"ghconnect-broker-database":      {"url"},
	// Production: the gateway's sign-in sessions.
	"ghconnect-gateway-database": {"url"},
	// Bearer tokens for the services' own calls: base only (production
	// uses client certificates).
	"ghconnect-registry-token":    {"token"},
	"ghconnect-broker-token":      {"token"},
	"ghconnect-featuregate-token": {"token"},
	"ghconnect-gateway-token":     {"token"},
	// Production: TLS.
	"ghconnect-registry-tls":    {"tls.crt", "tls.key"},
	"ghconnect-broker-tls":      {"tls.crt", "tls.key"},
	"ghconnect-featuregate-tls": {"tls.crt", "tls.key"},
	"ghconnect-gateway-tls":     {"tls.crt", "tls.key"},
	"ghconnect-ca":              {"ca.crt"},
	"ghconnect-vault-ca":        {"ca.crt"},
	// Production: single sign-on.
	"ghconnect-gateway-oidc": {"client-secret"},
}

// problems collects what is wrong with a rendering, so the same checks
// run on the real manifests (each problem fails the test) and on broken
// copies (a problem must be found).
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func report(t *testing.T, p problems) {
	t.Helper()
	for _, s := range p {
		t.Error(s)
	}
}

func TestBase(t *testing.T) {
	objs, err := render("base")
	if err != nil {
		t.Fatal(err)
	}
	report(t, checkCommon(objs))
}

func TestProduction(t *testing.T) {
	objs, err := render("overlays/production")
	if err != nil {
		t.Fatal(err)
	}
	report(t, checkCommon(objs))
	report(t, checkProduction(objs))
}

// TestOperatorSecretsDocumented: every operator-provided Secret is used by
// base or production (no stale entries) and named in README.md with its
// keys.
func TestOperatorSecretsDocumented(t *testing.T) {
	used := map[string]bool{}
	for _, dir := range []string{"base", "overlays/production"} {
		objs, err := render(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range objs.Deployments {
			for _, r := range podRefs(&d.Spec.Template.Spec) {
				used[r.name] = true
			}
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, keys := range operatorSecrets {
		if !used[name] {
			t.Errorf("operator Secret %s is referenced by no manifest: remove it from operatorSecrets and README.md", name)
		}
		line := ""
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.Contains(l, "`"+name+"`") {
				line = l
				break
			}
		}
		if line == "" {
			t.Errorf("README.md does not document Secret %s", name)
			continue
		}
		for _, k := range keys {
			if !strings.Contains(line, "`"+k+"`") {
				t.Errorf("README.md's line for Secret %s does not name its key %s", name, k)
			}
		}
	}
}

func flags(s service) *flag.FlagSet {
	fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
	s.register(fs)
	return fs
}

func findDeployment(objs *objects, name string) *appsv1.Deployment {
	for _, d := range objs.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func findContainer(spec *corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == name {
			return &spec.InitContainers[i]
		}
	}
	return nil
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// matchLabelsOf returns a selector's labels; anything but plain
// matchLabels is reported (the checks below reason only about those).
func matchLabelsOf(sel *metav1.LabelSelector, what string, p *problems) map[string]string {
	if sel == nil {
		p.add("%s: no selector", what)
		return nil
	}
	if len(sel.MatchExpressions) > 0 {
		p.add("%s: matchExpressions are not supported by these checks; use matchLabels", what)
	}
	return sel.MatchLabels
}

// selects reports whether a selector's labels all appear in labels (an
// empty selector selects everything).
func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort finds the container port a probe or Service port names.
func resolvePort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

func checkCommon(objs *objects) problems {
	var p problems
	for _, list := range [][]metav1.Object{asObjects(objs.ServiceAccounts), asObjects(objs.Services), asObjects(objs.ConfigMaps),
		asObjects(objs.Secrets), asObjects(objs.Deployments), asObjects(objs.PDBs), asObjects(objs.NetworkPolicies)} {
		for _, o := range list {
			if o.GetNamespace() != namespace {
				p.add("%s is in namespace %q, want %q", o.GetName(), o.GetNamespace(), namespace)
			}
		}
	}
	if len(objs.Namespaces) != 1 || objs.Namespaces[0].Name != namespace {
		p.add("want exactly the Namespace %s", namespace)
	}
	if len(objs.Secrets) > 0 {
		p.add("the manifests carry %d Secret(s): secret values must never be in the repository", len(objs.Secrets))
	}
	if len(objs.Deployments) != len(services) {
		p.add("%d Deployments, want %d", len(objs.Deployments), len(services))
	}
	for _, s := range services {
		d := findDeployment(objs, s.name)
		if d == nil {
			p.add("no Deployment %s", s.name)
			continue
		}
		checkDeployment(objs, s, d, &p)
	}
	checkNetworkPolicies(objs, &p)
	return p
}

func asObjects[T any, PT interface {
	*T
	metav1.Object
}](list []PT) []metav1.Object {
	out := make([]metav1.Object, len(list))
	for i, o := range list {
		out[i] = o
	}
	return out
}

func checkDeployment(objs *objects, s service, d *appsv1.Deployment, p *problems) {
	what := "Deployment " + s.name
	spec := &d.Spec.Template.Spec
	tmpl := d.Spec.Template.Labels
	if sel := matchLabelsOf(d.Spec.Selector, what, p); len(sel) == 0 || !selects(sel, tmpl) {
		p.add("%s: selector %v does not select its template labels %v", what, sel, tmpl)
	}
	// Service and ServiceAccount.
	var svc *corev1.Service
	for _, o := range objs.Services {
		if o.Name == s.name {
			svc = o
		}
	}
	main := findContainer(spec, s.name)
	if main == nil {
		p.add("%s: no container %s", what, s.name)
		return
	}
	if svc == nil {
		p.add("%s: no Service %s", what, s.name)
	} else {
		if len(svc.Spec.Selector) == 0 || !selects(svc.Spec.Selector, tmpl) {
			p.add("Service %s: selector %v does not select the pods %v", s.name, svc.Spec.Selector, tmpl)
		}
		for _, other := range objs.Deployments {
			if other.Name != s.name && selects(svc.Spec.Selector, other.Spec.Template.Labels) {
				p.add("Service %s also selects Deployment %s's pods", s.name, other.Name)
			}
		}
		if s.grpcPort != 0 && svc.Spec.ClusterIP != corev1.ClusterIPNone {
			p.add("Service %s: clusterIP %q, want None (headless, for dns:/// round-robin)", s.name, svc.Spec.ClusterIP)
		}
		want := []int32{s.httpPort}
		if s.metricsPort != s.httpPort {
			want = append(want, s.metricsPort)
		}
		if s.grpcPort != 0 {
			want = append(want, s.grpcPort)
		}
		for _, sp := range svc.Spec.Ports {
			cp, ok := resolvePort(main, sp.TargetPort)
			if !ok {
				p.add("Service %s: port %s targets %s, which container %s does not declare", s.name, sp.Name, sp.TargetPort.String(), s.name)
				continue
			}
			if cp.ContainerPort != sp.Port {
				p.add("Service %s: port %d is forwarded to %d; keep them equal (callers use the documented ports)", s.name, sp.Port, cp.ContainerPort)
			}
			want = slices.DeleteFunc(want, func(n int32) bool { return n == cp.ContainerPort })
		}
		if len(want) > 0 {
			p.add("Service %s does not expose port(s) %v", s.name, want)
		}
	}
	if spec.ServiceAccountName != "ghconnect-"+s.name {
		p.add("%s: serviceAccountName %q, want its own ghconnect-%s", what, spec.ServiceAccountName, s.name)
	}
	var sa *corev1.ServiceAccount
	for _, o := range objs.ServiceAccounts {
		if o.Name == spec.ServiceAccountName {
			sa = o
		}
	}
	if sa == nil {
		p.add("%s: ServiceAccount %q is not in the manifests", what, spec.ServiceAccountName)
	} else if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		p.add("ServiceAccount %s: automountServiceAccountToken must be false", sa.Name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		p.add("%s: automountServiceAccountToken must be false (the Vault Agent gets a projected token)", what)
	}

	// Probes on the main container.
	for _, pr := range []struct {
		name, path string
		probe      *corev1.Probe
	}{{"readinessProbe", "/readyz", main.ReadinessProbe}, {"livenessProbe", "/healthz", main.LivenessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			p.add("%s: %s is not an HTTP GET", what, pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path {
			p.add("%s: %s path %q, want %q", what, pr.name, pr.probe.HTTPGet.Path, pr.path)
		}
		cp, ok := resolvePort(main, pr.probe.HTTPGet.Port)
		if !ok {
			p.add("%s: %s port %s is not a declared container port", what, pr.name, pr.probe.HTTPGet.Port.String())
		} else if cp.ContainerPort != s.httpPort {
			p.add("%s: %s on port %d, want %d", what, pr.name, cp.ContainerPort, s.httpPort)
		}
	}

	// Stopping: the pod keeps serving while callers notice it has left
	// the endpoints, then stops gracefully (10 s) within the grace period.
	if main.Lifecycle == nil || main.Lifecycle.PreStop == nil || main.Lifecycle.PreStop.Sleep == nil || main.Lifecycle.PreStop.Sleep.Seconds < 5 {
		p.add("%s: the main container needs a preStop sleep of 5 s or more", what)
	} else {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if spec.TerminationGracePeriodSeconds != nil {
			grace = *spec.TerminationGracePeriodSeconds
		}
		if need := main.Lifecycle.PreStop.Sleep.Seconds + 10; grace < need {
			p.add("%s: terminationGracePeriodSeconds %d is shorter than the preStop sleep and the 10 s graceful stop (%d s)", what, grace, need)
		}
	}

	// Pod and container security, resources.
	ps := spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 ||
		ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("%s: pod securityContext must set runAsNonRoot, runAsUser 65532 and seccompProfile RuntimeDefault", what)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		p.add("%s: host namespaces are not allowed", what)
	}
	for _, c := range allContainers(spec) {
		checkContainerSecurity(what+" container "+c.Name, c, p)
		for _, kind := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			r, okR := c.Resources.Requests[kind]
			l, okL := c.Resources.Limits[kind]
			if !okR || !okL || r.IsZero() || l.IsZero() {
				p.add("%s container %s: %s request and limit must both be set", what, c.Name, kind)
			} else if r.Cmp(l) > 0 {
				p.add("%s container %s: %s request %s above its limit %s", what, c.Name, kind, r.String(), l.String())
			}
		}
		if c.Name != s.name && c.Name != "vault-agent" {
			p.add("%s: unexpected container %s", what, c.Name)
		}
	}

	checkEnv(s, main, p)
	checkSessions(s, main, p)
	checkRefs(objs, what, spec, p)
	for _, c := range allContainers(spec) {
		checkPaths(objs, what+" container "+c.Name, spec, c, p)
	}
	checkVault(objs, s, spec, main, p)
}

func checkContainerSecurity(what string, c *corev1.Container, p *problems) {
	sc := c.SecurityContext
	if sc == nil {
		p.add("%s: no securityContext", what)
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		p.add("%s: runAsNonRoot must be true", what)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		p.add("%s: runAsUser must be 65532", what)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		p.add("%s: readOnlyRootFilesystem must be true", what)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p.add("%s: allowPrivilegeEscalation must be false", what)
	}
	if sc.Privileged != nil && *sc.Privileged {
		p.add("%s: privileged", what)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		p.add("%s: capabilities must drop ALL and add none", what)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("%s: seccompProfile must be RuntimeDefault", what)
	}
}

// checkEnv: every GHCONNECT_* variable of the service's container is one of
// its flags and its literal value parses as that flag.
func checkEnv(s service, c *corev1.Container, p *problems) {
	fs := flags(s)
	names := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { names[config.EnvName(s.envPrefix, f.Name)] = f })
	if len(c.EnvFrom) > 0 {
		p.add("container %s: envFrom hides variable names from these checks; use env", c.Name)
	}
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			p.add("container %s: %s set twice", c.Name, e.Name)
		}
		seen[e.Name] = true
		if !strings.HasPrefix(e.Name, s.envPrefix+"_") {
			p.add("container %s: variable %s is not %s_<FLAG>", c.Name, e.Name, s.envPrefix)
			continue
		}
		if e.Name == s.envPrefix+"_CRASH_AFTER" {
			p.add("container %s: %s is for the crash tests only", c.Name, e.Name)
		}
		if f, ok := names[e.Name]; ok {
			if e.ValueFrom == nil {
				if err := fs.Set(f.Name, e.Value); err != nil {
					p.add("container %s: %s=%q is not a valid -%s: %v", c.Name, e.Name, e.Value, f.Name, err)
				}
			}
			continue
		}
		p.add("container %s: %s matches no flag of the %s", c.Name, e.Name, s.name)
	}
}

type ref struct {
	kind, name string // kind: Secret or ConfigMap
	key        string // "" for a whole-volume reference
}

// podRefs lists every Secret and ConfigMap a pod spec references.
func podRefs(spec *corev1.PodSpec) []ref {
	var out []ref
	for _, v := range spec.Volumes {
		switch {
		case v.Secret != nil:
			out = append(out, itemsRefs("Secret", v.Secret.SecretName, v.Secret.Items)...)
		case v.ConfigMap != nil:
			out = append(out, itemsRefs("ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items)...)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					out = append(out, itemsRefs("Secret", src.Secret.Name, src.Secret.Items)...)
				}
				if src.ConfigMap != nil {
					out = append(out, itemsRefs("ConfigMap", src.ConfigMap.Name, src.ConfigMap.Items)...)
				}
			}
		}
	}
	for _, c := range allContainers(spec) {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				out = append(out, ref{"Secret", r.Name, r.Key})
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				out = append(out, ref{"ConfigMap", r.Name, r.Key})
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out = append(out, ref{"Secret", e.SecretRef.Name, ""})
			}
			if e.ConfigMapRef != nil {
				out = append(out, ref{"ConfigMap", e.ConfigMapRef.Name, ""})
			}
		}
	}
	return out
}

func itemsRefs(kind, name string, items []corev1.KeyToPath) []ref {
	if len(items) == 0 {
		return []ref{{kind, name, ""}}
	}
	var out []ref
	for _, it := range items {
		out = append(out, ref{kind, name, it.Key})
	}
	return out
}

func findConfigMap(objs *objects, name string) *corev1.ConfigMap {
	for _, cm := range objs.ConfigMaps {
		if cm.Name == name {
			return cm
		}
	}
	return nil
}

// checkRefs: each referenced ConfigMap is rendered (with the key), each
// referenced Secret is an operator-provided one with a documented key.
func checkRefs(objs *objects, what string, spec *corev1.PodSpec, p *problems) {
	for _, r := range podRefs(spec) {
		switch r.kind {
		case "ConfigMap":
			cm := findConfigMap(objs, r.name)
			if cm == nil {
				p.add("%s references ConfigMap %s, which is not rendered", what, r.name)
			} else if _, ok := cm.Data[r.key]; r.key != "" && !ok {
				p.add("%s references key %s of ConfigMap %s, which it does not have", what, r.key, r.name)
			}
		case "Secret":
			keys, ok := operatorSecrets[r.name]
			if !ok {
				p.add("%s references Secret %s, which is neither rendered nor in operatorSecrets (README.md)", what, r.name)
			} else if r.key == "" {
				p.add("%s mounts all of Secret %s: list the keys it reads (items)", what, r.name)
			} else if !slices.Contains(keys, r.key) {
				p.add("%s reads key %s of Secret %s; documented keys are %v", what, r.key, r.name, keys)
			}
		}
	}
}

// isPathVar names the variables whose values are files.
func isPathVar(name string) bool {
	for _, suf := range []string{"_FILE", "_TLS_CERT", "_TLS_KEY", "_DIAL_CERT", "_DIAL_KEY", "_CA", "_CA_CERT", "_CACERT", "_POLICY", "_LICENSE_ISSUERS"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}

// checkPaths: every file a variable (or the agent's -config) names lies
// under one of the container's volume mounts, and is a file that volume
// provides.
func checkPaths(objs *objects, what string, spec *corev1.PodSpec, c *corev1.Container, p *problems) {
	var files []string
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue
		}
		if isPathVar(e.Name) && !path.IsAbs(e.Value) {
			p.add("%s: %s=%q is not an absolute path", what, e.Name, e.Value)
			continue
		}
		if path.IsAbs(e.Value) {
			files = append(files, e.Value)
		}
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") && path.IsAbs(v) {
			files = append(files, v)
		}
	}
	for _, f := range files {
		if msg := provides(objs, spec, c, f); msg != "" {
			p.add("%s: %s", what, msg)
		}
	}
}

// provides explains why file is not available in c ("" if it is).
func provides(objs *objects, spec *corev1.PodSpec, c *corev1.Container, file string) string {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		return file + " is under none of the container's volume mounts"
	}
	rel := strings.TrimPrefix(file, strings.TrimSuffix(best.MountPath, "/")+"/")
	if best.SubPath != "" {
		return best.MountPath + " uses subPath, which is not refreshed on rotation"
	}
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == best.Name {
			vol = &spec.Volumes[i]
		}
	}
	switch {
	case vol == nil:
		return "volume " + best.Name + " is mounted but not defined"
	case vol.Secret != nil || vol.ConfigMap != nil:
		var items []corev1.KeyToPath
		var cmName string
		if vol.Secret != nil {
			items = vol.Secret.Items
		} else {
			items, cmName = vol.ConfigMap.Items, vol.ConfigMap.Name
		}
		if len(items) > 0 {
			for _, it := range items {
				if it.Path == rel {
					return ""
				}
			}
			return fmt.Sprintf("%s: volume %s has no item with path %s", file, vol.Name, rel)
		}
		if cm := findConfigMap(objs, cmName); cm != nil {
			if _, ok := cm.Data[rel]; !ok {
				return fmt.Sprintf("%s: ConfigMap %s has no key %s", file, cm.Name, rel)
			}
		}
	}
	return ""
}

var hclString = regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*"([^"]*)"`)

// checkVault: the Vault services log in through their own Vault Agent
// sidecar, which alone holds a (projected, audience-bound) ServiceAccount
// token and writes the Vault token into memory the service reads; the
// others have no Vault at all.
func checkVault(objs *objects, s service, spec *corev1.PodSpec, main *corev1.Container, p *problems) {
	what := "Deployment " + s.name
	agent := findContainer(spec, "vault-agent")
	tokenFile := ""
	for _, e := range main.Env {
		if strings.HasPrefix(e.Name, s.envPrefix+"_VAULT_") && !s.vault {
			p.add("%s: %s set, but the %s has no business with Vault", what, e.Name, s.name)
		}
		if e.Name == s.envPrefix+"_VAULT_TOKEN_FILE" {
			tokenFile = e.Value
		}
		if e.Name == s.envPrefix+"_VAULT_ROLE_ID_FILE" || e.Name == s.envPrefix+"_VAULT_SECRET_ID_FILE" {
			p.add("%s: %s: on Kubernetes the Vault Agent logs in, not AppRole", what, e.Name)
		}
	}
	if !s.vault {
		if agent != nil {
			p.add("%s: a Vault Agent, but the %s does not use Vault", what, s.name)
		}
		for _, v := range spec.Volumes {
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.ServiceAccountToken != nil {
						p.add("%s: a ServiceAccount token volume, but the %s does not use Vault", what, s.name)
					}
				}
			}
		}
		return
	}
	if agent == nil || !slices.ContainsFunc(spec.InitContainers, func(c corev1.Container) bool { return c.Name == "vault-agent" }) {
		p.add("%s: no Vault Agent native sidecar (init container vault-agent)", what)
		return
	}
	if agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		p.add("%s: the vault-agent init container must have restartPolicy Always (a native sidecar)", what)
	}
	if agent.StartupProbe == nil {
		p.add("%s: the vault-agent needs a startup probe, so the %s starts once the token is there", what, s.name)
	}
	if tokenFile == "" {
		p.add("%s: no %s_VAULT_TOKEN_FILE", what, s.envPrefix)
		return
	}
	volOf := func(c *corev1.Container, file string) (*corev1.VolumeMount, *corev1.Volume) {
		for i, m := range c.VolumeMounts {
			if strings.HasPrefix(file, m.MountPath+"/") {
				for j := range spec.Volumes {
					if spec.Volumes[j].Name == m.Name {
						return &c.VolumeMounts[i], &spec.Volumes[j]
					}
				}
			}
		}
		return nil, nil
	}
	mm, mv := volOf(main, tokenFile)
	am, _ := volOf(agent, tokenFile)
	switch {
	case mv == nil || am == nil || am.Name != mm.Name:
		p.add("%s: the token file %s is not on a volume shared by vault-agent and %s", what, tokenFile, s.name)
	case mv.EmptyDir == nil || mv.EmptyDir.Medium != corev1.StorageMediumMemory:
		p.add("%s: the Vault token volume must be an in-memory emptyDir", what)
	case !mm.ReadOnly || am.ReadOnly:
		p.add("%s: the agent writes the token volume, the %s only reads it", what, s.name)
	}
	// The agent's configuration: the role, the JWT it logs in with, the
	// sink the service reads.
	var cfg string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			if cm := findConfigMap(objs, v.ConfigMap.Name); cm != nil && cm.Data["agent.hcl"] != "" {
				cfg = cm.Data["agent.hcl"]
			}
		}
	}
	if cfg == "" {
		p.add("%s: no Vault Agent configuration (agent.hcl) mounted", what)
		return
	}
	vals := map[string]string{}
	for _, m := range hclString.FindAllStringSubmatch(cfg, -1) {
		vals[m[1]] = m[2]
	}
	if vals["role"] != "ghconnect-"+s.name {
		p.add("%s: the Vault Agent logs in as role %q, want ghconnect-%s", what, vals["role"], s.name)
	}
	if vals["path"] != tokenFile {
		p.add("%s: the Vault Agent's sink is %q, the %s reads %q", what, vals["path"], s.name, tokenFile)
	}
	_, jv := volOf(agent, vals["token_path"])
	ok := false
	if jv != nil && jv.Projected != nil {
		for _, src := range jv.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil && t.Audience == "vault" && vals["token_path"] == path.Join(agentMount(agent, jv.Name), t.Path) {
				ok = true
			}
		}
	}
	if !ok {
		p.add("%s: the Vault Agent's token_path %q is not a projected ServiceAccount token with audience vault", what, vals["token_path"])
	}
	if mm2, _ := volOf(main, vals["token_path"]); mm2 != nil {
		p.add("%s: the %s container can read the ServiceAccount token", what, s.name)
	}
}

func agentMount(c *corev1.Container, vol string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			return m.MountPath
		}
	}
	return ""
}

// peerString names a NetworkPolicy peer for comparison.
func peerString(peer networkingv1.NetworkPolicyPeer) string {
	lbl := func(sel *metav1.LabelSelector) string {
		if len(sel.MatchExpressions) > 0 {
			return "<matchExpressions>"
		}
		var parts []string
		for k, v := range sel.MatchLabels {
			parts = append(parts, k+"="+v)
		}
		sort.Strings(parts)
		if len(parts) == 0 {
			return "<all>"
		}
		return strings.Join(parts, ",")
	}
	var parts []string
	if peer.IPBlock != nil {
		parts = append(parts, "ip:"+peer.IPBlock.CIDR)
	}
	if peer.NamespaceSelector != nil {
		parts = append(parts, "ns:"+lbl(peer.NamespaceSelector))
	}
	if peer.PodSelector != nil {
		parts = append(parts, "pod:"+lbl(peer.PodSelector))
	}
	return strings.Join(parts, "+")
}

func portMatches(ports []networkingv1.NetworkPolicyPort, cp corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		if pp.Protocol != nil && *pp.Protocol != corev1.ProtocolTCP {
			continue
		}
		if pp.Port == nil ||
			(pp.Port.Type == intstr.Int && (pp.Port.IntVal == cp.ContainerPort || (pp.EndPort != nil && pp.Port.IntVal <= cp.ContainerPort && cp.ContainerPort <= *pp.EndPort))) ||
			(pp.Port.Type == intstr.String && pp.Port.StrVal == cp.Name) {
			return true
		}
	}
	return false
}

func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	return slices.Contains(np.Spec.PolicyTypes, t)
}

// ingressPeers lists who may connect to port cp of pods labelled labels;
// "<anyone>" when a rule admits every source.
func ingressPeers(objs *objects, labels map[string]string, cp corev1.ContainerPort) []string {
	set := map[string]bool{}
	for _, np := range objs.NetworkPolicies {
		if !hasType(np, networkingv1.PolicyTypeIngress) || !selects(np.Spec.PodSelector.MatchLabels, labels) || len(np.Spec.PodSelector.MatchExpressions) > 0 {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			if !portMatches(rule.Ports, cp) {
				continue
			}
			if len(rule.From) == 0 {
				set["<anyone>"] = true
			}
			for _, peer := range rule.From {
				set[peerString(peer)] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// egressAllowed reports whether pods labelled from may connect to pods
// labelled to (in the namespace) on port.
func egressAllowed(objs *objects, from, to map[string]string, port int32) bool {
	restricted := false
	for _, np := range objs.NetworkPolicies {
		if !hasType(np, networkingv1.PolicyTypeEgress) || !selects(np.Spec.PodSelector.MatchLabels, from) {
			continue
		}
		restricted = true
		for _, rule := range np.Spec.Egress {
			if !portMatches(rule.Ports, corev1.ContainerPort{ContainerPort: port}) {
				continue
			}
			if len(rule.To) == 0 {
				return true
			}
			for _, peer := range rule.To {
				if peer.IPBlock == nil && peer.NamespaceSelector == nil && peer.PodSelector != nil && selects(peer.PodSelector.MatchLabels, to) {
					return true
				}
			}
		}
	}
	return !restricted
}

func checkNetworkPolicies(objs *objects, p *problems) {
	deny := map[networkingv1.PolicyType]bool{}
	for _, np := range objs.NetworkPolicies {
		if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 {
			if hasType(np, networkingv1.PolicyTypeIngress) && len(np.Spec.Ingress) == 0 {
				deny[networkingv1.PolicyTypeIngress] = true
			}
			if hasType(np, networkingv1.PolicyTypeEgress) && len(np.Spec.Egress) == 0 {
				deny[networkingv1.PolicyTypeEgress] = true
			}
		}
	}
	if !deny[networkingv1.PolicyTypeIngress] {
		p.add("no default-deny ingress NetworkPolicy for the namespace")
	}
	callers := map[string][]string{}
	for caller, callees := range callGraph {
		for _, callee := range callees {
			callers[callee] = append(callers[callee], caller)
		}
	}
	for _, s := range services {
		d := findDeployment(objs, s.name)
		if d == nil {
			continue
		}
		main := findContainer(&d.Spec.Template.Spec, s.name)
		if main == nil {
			continue
		}
		labels := d.Spec.Template.Labels
		for _, cp := range main.Ports {
			key := s.name + ":" + cp.Name
			var want []string
			if cp.ContainerPort == s.grpcPort {
				for _, c := range callers[s.name] {
					want = append(want, "pod:app.kubernetes.io/name="+c)
				}
			}
			want = append(want, externalPeers[key]...)
			sort.Strings(want)
			if got := ingressPeers(objs, labels, cp); !slices.Equal(got, want) {
				p.add("ingress to %s port %d: admitted %v, want exactly %v", s.name, cp.ContainerPort, got, want)
			}
		}
		// The configured upstreams are the call graph, and egress lets
		// each call out.
		var dialed []string
		for _, e := range main.Env {
			rest, ok := strings.CutPrefix(e.Name, s.envPrefix+"_")
			if !ok || !strings.HasSuffix(rest, "_ADDR") || rest == "GRPC_ADDR" || rest == "HTTP_ADDR" || rest == "VAULT_ADDR" {
				continue
			}
			callee := strings.ToLower(strings.TrimSuffix(rest, "_ADDR"))
			dialed = append(dialed, callee)
			var cs *service
			for i := range services {
				if services[i].name == callee {
					cs = &services[i]
				}
			}
			if cs == nil {
				p.add("%s: %s names no ghconnect service", s.name, e.Name)
				continue
			}
			want := fmt.Sprintf("dns:///%s.%s.svc.cluster.local:%d", callee, namespace, cs.grpcPort)
			if e.Value != want {
				p.add("%s: %s=%q, want %q (headless Service, round-robin over its pods)", s.name, e.Name, e.Value, want)
			}
			if cd := findDeployment(objs, callee); cd != nil && !egressAllowed(objs, labels, cd.Spec.Template.Labels, cs.grpcPort) {
				p.add("egress from %s to %s:%d is not allowed", s.name, callee, cs.grpcPort)
			}
		}
		sort.Strings(dialed)
		if !slices.Equal(dialed, callGraph[s.name]) {
			p.add("%s dials %v, the code's call graph says %v", s.name, dialed, callGraph[s.name])
		}
		// Outside the cluster: its database, and for single sign-on the
		// identity provider. (No pod matches nil labels: only a rule open
		// to every destination on the port lets these out.)
		for env, port := range map[string]int32{s.envPrefix + "_DATABASE": 5432, s.envPrefix + "_OIDC_ISSUER": 443} {
			if slices.ContainsFunc(main.Env, func(e corev1.EnvVar) bool { return e.Name == env }) && !egressAllowed(objs, labels, nil, port) {
				p.add("egress from %s to port %d outside the cluster is not allowed, but it sets %s", s.name, port, env)
			}
		}
	}
}

// checkSessions: gateway replicas with single sign-on share the sessions
// only through one PostgreSQL database (a SQLite file is each replica's
// own, and its default is in the read-only root filesystem).
func checkSessions(s service, main *corev1.Container, p *problems) {
	env := map[string]corev1.EnvVar{}
	for _, e := range main.Env {
		env[strings.TrimPrefix(e.Name, s.envPrefix+"_")] = e
	}
	if _, sso := env["OIDC_ISSUER"]; !sso {
		return
	}
	db, ok := env["DATABASE"]
	switch {
	case !ok:
		p.add("Deployment %s: single sign-on without %s_DATABASE: sessions would be in a SQLite file of each pod", s.name, s.envPrefix)
	case db.ValueFrom == nil && !strings.HasPrefix(db.Value, "postgres://") && !strings.HasPrefix(db.Value, "postgresql://"):
		p.add("Deployment %s: %s_DATABASE=%q: its replicas share sessions only through PostgreSQL", s.name, s.envPrefix, db.Value)
	}
}

// checkProduction: what only the production overlay promises.
func checkProduction(objs *objects) problems {
	var p problems
	if len(objs.PDBs) != len(services) {
		p.add("%d PodDisruptionBudgets, want one per service", len(objs.PDBs))
	}
	for _, s := range services {
		d := findDeployment(objs, s.name)
		if d == nil {
			continue
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != s.replicas {
			p.add("Deployment %s: replicas %v, want %d", s.name, d.Spec.Replicas, s.replicas)
		}
		n := 0
		for _, pdb := range objs.PDBs {
			sel := matchLabelsOf(pdb.Spec.Selector, "PodDisruptionBudget "+pdb.Name, &p)
			if len(sel) == 0 || !selects(sel, d.Spec.Template.Labels) {
				continue
			}
			n++
			switch {
			case pdb.Spec.MinAvailable != nil && pdb.Spec.MaxUnavailable == nil:
				if pdb.Spec.MinAvailable.Type != intstr.Int || pdb.Spec.MinAvailable.IntVal < 1 || pdb.Spec.MinAvailable.IntVal >= s.replicas {
					p.add("PodDisruptionBudget %s: minAvailable %s must be between 1 and replicas-1", pdb.Name, pdb.Spec.MinAvailable.String())
				}
			case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MinAvailable == nil:
				if pdb.Spec.MaxUnavailable.Type != intstr.Int || pdb.Spec.MaxUnavailable.IntVal != 1 {
					p.add("PodDisruptionBudget %s: maxUnavailable %s, want 1", pdb.Name, pdb.Spec.MaxUnavailable.String())
				}
			default:
				p.add("PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", pdb.Name)
			}
		}
		if n != 1 {
			p.add("Deployment %s: %d PodDisruptionBudgets select its pods, want 1", s.name, n)
		}
		spec := &d.Spec.Template.Spec
		main := findContainer(spec, s.name)
		if main == nil {
			continue
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range main.Env {
			env[strings.TrimPrefix(e.Name, s.envPrefix+"_")] = e
		}
		want := map[string]string{
			"TLS_CERT":  "/etc/ghconnect/tls/tls.crt",
			"TLS_KEY":   "/etc/ghconnect/tls/tls.key",
			"DIAL_CA":   "/etc/ghconnect/ca/ca.crt",
			"DIAL_CERT": "/etc/ghconnect/tls/tls.crt",
			"DIAL_KEY":  "/etc/ghconnect/tls/tls.key",
		}
		if s.grpcPort != 0 {
			want["CLIENT_CA"] = "/etc/ghconnect/ca/ca.crt"
			want["REQUIRE_CLIENT_CERT"] = "true"
		}
		if s.vault {
			want["VAULT_CA_CERT"] = "/etc/ghconnect/vault-ca/ca.crt"
		}
		for k, v := range want {
			if e, ok := env[k]; !ok || e.Value != v {
				p.add("Deployment %s: %s_%s must be %q in production", s.name, s.envPrefix, k, v)
			}
		}
		for _, k := range []string{"SERVICE_TOKEN_FILE", "REGISTRY_TOKEN_FILE", "BROKER_TOKEN_FILE"} {
			if _, ok := env[k]; ok {
				p.add("Deployment %s: %s_%s in production: outbound hops use the client certificate", s.name, s.envPrefix, k)
			}
		}
		// The certificate is this service's own.
		for _, v := range spec.Volumes {
			if v.Secret != nil && strings.HasSuffix(v.Secret.SecretName, "-tls") && v.Secret.SecretName != "ghconnect-"+s.name+"-tls" {
				p.add("Deployment %s mounts another service's certificate %s", s.name, v.Secret.SecretName)
			}
		}
		if s.grpcPort == 0 {
			for _, pr := range []*corev1.Probe{main.ReadinessProbe, main.LivenessProbe} {
				if pr != nil && pr.HTTPGet != nil && pr.HTTPGet.Scheme != corev1.URISchemeHTTPS {
					p.add("Deployment %s: probes must use HTTPS (the gateway serves TLS on its port)", s.name)
				}
			}
		}
		if s.vault {
			if agent := findContainer(spec, "vault-agent"); agent != nil && !slices.ContainsFunc(agent.Env, func(e corev1.EnvVar) bool {
				return e.Name == "VAULT_CACERT" && e.Value == "/etc/ghconnect/vault-ca/ca.crt"
			}) {
				p.add("Deployment %s: the Vault Agent must verify Vault with VAULT_CACERT", s.name)
			}
		}
		for _, c := range allContainers(spec) {
			if strings.HasSuffix(c.Image, ":dev") || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
				p.add("Deployment %s container %s: image %q has no release tag", s.name, c.Name, c.Image)
			}
		}
	}
	return p
}
