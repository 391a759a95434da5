package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
)

// TestKubernetes runs on the single-node cluster of deploy/k8stest, which
// `run.sh test` brings up and then runs this against (it sets the
// variables). The test reaches everything by its cluster DNS name, as a
// pod would: the gateway through its ClusterIP (kube-proxy), the broker
// through its headless Service with round robin over every ready pod.
//
// It runs the smoke test (enable with the App-manifest flow against the
// in-cluster emulator, a token over mutual TLS, unified search), then,
// under steady traffic through every service, deletes a broker pod, evicts
// registry pods against their PodDisruptionBudget, and rolls every
// Deployment to a new image tag, each with no failed request; and
// disconnects.
func TestKubernetes(t *testing.T) {
	dir := os.Getenv("GHCONNECT_K8S_DIR")
	if dir == "" {
		t.Skip("GHCONNECT_K8S_DIR is not set; make k8s-test runs this against its cluster")
	}
	// Every name resolves through the cluster's DNS (CoreDNS behind its
	// ClusterIP, which the host routes into the node), the way it does in
	// a pod. The test runs alone in its process (run.sh runs just it), so
	// replacing the process's resolver touches no other test.
	dnsAddr := mustEnv(t, "GHCONNECT_K8S_DNS")
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	k := &kube{t: t, kubectl: mustEnv(t, "GHCONNECT_K8S_KUBECTL"), config: filepath.Join(dir, "admin.kubeconfig")}
	s := deployedSystem(t, "https://gateway.ghconnect.svc.cluster.local:8080", "http://ghemu.ghconnect-deps.svc.cluster.local:8300",
		"http://vault.ghconnect-deps.svc.cluster.local:8200", filepath.Join(dir, "secrets"),
		map[string]string{"admin": "admin-token", "search-svc": "search-svc-token", "vault": "vault-root-token"})

	t.Run("only Vault Agent holds a ServiceAccount token", func(t *testing.T) { checkPodTokens(t, k) })
	t.Run("NetworkPolicies refuse pods outside the allowed callers", func(t *testing.T) { checkNetworkPolicies(t, k) })

	const brokerAddr = "dns:///broker.ghconnect.svc.cluster.local:7002"
	id, keyName, token := s.smokeEnable(brokerAddr, "search-svc")
	t.Run("the services' Vault tokens come from Kubernetes auth", func(t *testing.T) { s.checkVaultLogins(t) })
	s.smokeSearch(id, "search-svc")

	broker := brokerv1.NewTokenBrokerServiceClient(s.mustDial(brokerAddr, "search-svc", ""))
	t.Run("the brokers are one fleet", func(t *testing.T) { k.checkFleet(t, s, id, broker) })
	traffic := newTraffic(t, s, id, broker)
	t.Run("a broker pod deleted under traffic", func(t *testing.T) {
		tr := traffic.start(t)
		time.Sleep(2 * time.Second)
		pod := k.pods("broker")[0].name
		start := time.Now()
		k.must("delete", "pod", pod, "--wait=true", "--timeout=120s")
		t.Logf("broker pod %s deleted in %v", pod, time.Since(start).Round(time.Millisecond))
		k.rolledOut("broker")
		time.Sleep(2 * time.Second)
		tr.finish()
		// Measured, not required: a caller's gRPC connection learns of a
		// replacement pod only when it looks the name up again.
		t.Logf("IssueToken calls answered per broker pod since it started: %v", k.podCalls(s, "broker", 7102, "IssueToken"))
	})
	t.Run("evictions honour the PodDisruptionBudgets", func(t *testing.T) {
		tr := traffic.start(t)
		pods := k.pods("registry")
		if len(pods) != 2 {
			t.Fatalf("registry pods: %v", pods)
		}
		if out, err := k.evict(pods[0].name); err != nil {
			t.Fatalf("evicting %s: %v %s", pods[0].name, err, out)
		}
		// The budget allows one registry pod away at a time: the second
		// eviction is refused until the first pod's replacement is ready.
		out, err := k.evict(pods[1].name)
		if err == nil || !strings.Contains(out, "disruption budget") {
			t.Errorf("evicting the second registry pod while the first is away: %v %s", err, out)
		}
		k.rolledOut("registry")
		time.Sleep(2 * time.Second)
		tr.finish()
	})
	t.Run("every Deployment rolled to a new image tag under traffic", func(t *testing.T) {
		tr := traffic.start(t)
		watch := k.watchBudgets()
		time.Sleep(2 * time.Second)
		start := time.Now()
		services := []string{"registry", "broker", "featuregate", "gateway"}
		images := map[string]string{}
		for _, svc := range services {
			image := k.must("get", "deploy", svc, "-o", `jsonpath={.spec.template.spec.containers[?(@.name=="`+svc+`")].image}`)
			repo, _, _ := strings.Cut(image, ":")
			images[svc] = repo + ":" + rolloutTag(image)
			k.must("set", "image", "deploy/"+svc, svc+"="+images[svc])
		}
		for _, svc := range services {
			k.rolledOut(svc)
		}
		t.Logf("registry, broker, feature gate and gateway rolled out in %v", time.Since(start).Round(time.Millisecond))
		for _, svc := range services {
			for _, p := range k.pods(svc) {
				if img := k.must("get", "pod", p.name, "-o", `jsonpath={.spec.containers[?(@.name=="`+svc+`")].image}`); img != images[svc] {
					t.Errorf("pod %s runs %s, not %s", p.name, img, images[svc])
				}
			}
		}
		time.Sleep(2 * time.Second)
		tr.finish()
		watch.finish(t)
	})

	s.smokeDisconnect(id, keyName, token, "kubernetes smoke test")
}

// checkNetworkPolicies runs a probe pod (tcpprobe) in two namespaces of
// its own and has it try each service's gRPC or HTTPS port on one of its
// pods. From an unlabelled namespace nothing opens. From a namespace
// labelled for internal callers, a pod labelled as a broker and feature
// gate caller reaches those two and nothing else: the registry admits only
// ghconnect's own services, the gateway only the ingress controller's
// namespace.
func checkNetworkPolicies(t *testing.T, k *kube) {
	var targets []string
	for _, svc := range []struct {
		name string
		port int
	}{{"registry", 7001}, {"broker", 7002}, {"featuregate", 7003}, {"gateway", 8080}} {
		targets = append(targets, fmt.Sprintf("%s=%s:%d", svc.name, k.pods(svc.name)[0].ip, svc.port))
	}
	// The allowed caller first: once its probe finds its two services
	// open, the policy engine knows the probe pods' namespaces, and the
	// outsider's closed ports are the policies' doing.
	for _, p := range []struct{ ns, nsLabels, podLabels, expectOpen, want string }{
		{"k8stest-callers", `{"ghconnect.io/broker-callers": "true", "ghconnect.io/featuregate-callers": "true"}`,
			`{"ghconnect.io/broker-caller": "true", "ghconnect.io/featuregate-caller": "true"}`, "broker,featuregate",
			"registry closed, broker open, featuregate open, gateway closed"},
		{"k8stest-outsider", "{}", "{}", "", "registry closed, broker closed, featuregate closed, gateway closed"},
	} {
		args, _ := json.Marshal(append([]string{"-expect-open", p.expectOpen}, targets...))
		manifest := fmt.Sprintf(`{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": %q, "labels": %s}}
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": %q, "labels": %s},
 "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
  "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
  "containers": [{"name": "probe", "image": "k8stest.local/tcpprobe:dev", "args": %s,
   "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}
`, p.ns, p.nsLabels, p.ns, p.podLabels, args)
		f := filepath.Join(t.TempDir(), "probe.json")
		if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		k.mustAll("apply", "-f", f)
		t.Cleanup(func() { _, _ = k.all("delete", "namespace", p.ns, "--wait=false") })
		k.mustAll("-n", p.ns, "wait", "pod/probe", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s")
		logs := k.mustAll("-n", p.ns, "logs", "probe")
		var got []string
		for _, line := range strings.Split(logs, "\n") {
			name, rest, _ := strings.Cut(line, " ")
			state, _, _ := strings.Cut(rest, ":")
			got = append(got, name+" "+state)
		}
		if g := strings.Join(got, ", "); g != p.want {
			t.Errorf("from a pod in %s: %s, want %s\n%s", p.ns, g, p.want, logs)
		} else {
			t.Logf("from a pod in %s: %s", p.ns, g)
		}
	}
}

// checkPodTokens: no container of ghconnect's pods gets the usual
// ServiceAccount token; the only token mounted is the projected one with
// audience "vault", and only the Vault Agent sidecars (registry, broker)
// mount it.
func checkPodTokens(t *testing.T, k *kube) {
	var pods struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				AutomountServiceAccountToken *bool
				Volumes                      []struct {
					Name      string
					Projected *struct {
						Sources []struct {
							ServiceAccountToken *struct{ Audience string }
						}
					}
				}
				Containers, InitContainers []struct {
					Name         string
					VolumeMounts []struct{ Name string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(k.must("get", "pods", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	agents := 0
	for _, p := range pods.Items {
		if a := p.Spec.AutomountServiceAccountToken; a == nil || *a {
			t.Errorf("pod %s: automountServiceAccountToken is not false", p.Metadata.Name)
		}
		tokenVolumes := map[string]bool{}
		for _, v := range p.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					tokenVolumes[v.Name] = true
					if src.ServiceAccountToken.Audience != "vault" {
						t.Errorf("pod %s: volume %s holds a token for audience %q", p.Metadata.Name, v.Name, src.ServiceAccountToken.Audience)
					}
				}
			}
		}
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			for _, m := range c.VolumeMounts {
				if !tokenVolumes[m.Name] {
					continue
				}
				if c.Name != "vault-agent" {
					t.Errorf("pod %s: container %s mounts the ServiceAccount token", p.Metadata.Name, c.Name)
				} else {
					agents++
				}
			}
		}
	}
	// registry ×2 and broker ×3, each with its agent.
	if agents != 5 {
		t.Errorf("%d Vault Agent containers mount the vault token, want 5", agents)
	}
}

// checkVaultLogins: Vault's tokens of policy ghconnect-registry and
// ghconnect-broker were made by logins with Kubernetes auth, as the
// ServiceAccounts ghconnect-registry and ghconnect-broker (the AppRoles
// vault-setup also makes are not used in the cluster).
func (s *system) checkVaultLogins(t *testing.T) {
	vault := func(method, path string, body any) map[string]any {
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, s.vault+path, rd)
		req.Header.Set("X-Vault-Token", s.tokens["vault"])
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, err)
		}
		return out
	}
	keys, _ := vault("LIST", "/v1/auth/token/accessors", nil)["data"].(map[string]any)["keys"].([]any)
	logins := map[string]int{}
	for _, a := range keys {
		data, _ := vault("POST", "/v1/auth/token/lookup-accessor", map[string]any{"accessor": a})["data"].(map[string]any)
		policies := fmt.Sprint(data["policies"])
		for _, svc := range []string{"registry", "broker"} {
			if !strings.Contains(policies, "ghconnect-"+svc) {
				continue
			}
			meta, _ := data["meta"].(map[string]any)
			if data["path"] != "auth/kubernetes/login" || meta["service_account_name"] != "ghconnect-"+svc || meta["service_account_namespace"] != "ghconnect" {
				t.Errorf("a Vault token of %s's policy from %v (%v)", svc, data["path"], meta)
				continue
			}
			logins[svc]++
		}
	}
	t.Logf("Vault tokens by Kubernetes auth: %v", logins)
	if logins["registry"] < 2 || logins["broker"] < 3 {
		t.Errorf("Vault tokens by Kubernetes auth: %v, want one per registry (2) and broker (3) pod at least", logins)
	}
}

// rolloutTag is the tag to roll an image to: run.sh tags every ghconnect
// image "rollout" as well as "dev"; a second rollout goes back.
func rolloutTag(image string) string {
	if strings.HasSuffix(image, ":rollout") {
		return "dev"
	}
	return "rollout"
}

// kube runs the cluster's kubectl as its admin, in the namespace ghconnect.
type kube struct {
	t       *testing.T
	kubectl string
	config  string
}

func (k *kube) run(args ...string) (string, error) {
	return k.all(append([]string{"-n", "ghconnect"}, args...)...)
}

// all runs kubectl with no namespace chosen.
func (k *kube) all(args ...string) (string, error) {
	cmd := exec.Command(k.kubectl, append([]string{"--kubeconfig", k.config}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (k *kube) must(args ...string) string {
	k.t.Helper()
	return k.mustAll(append([]string{"-n", "ghconnect"}, args...)...)
}

func (k *kube) mustAll(args ...string) string {
	k.t.Helper()
	out, err := k.all(args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pod is a pod's name and address.
type pod struct{ name, ip string }

// pods are the running pods of a service that are not being deleted.
func (k *kube) pods(app string) []pod {
	k.t.Helper()
	out := k.must("get", "pods", "-l", "app.kubernetes.io/name="+app, "--field-selector=status.phase=Running",
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.metadata.deletionTimestamp}{"\n"}{end}`)
	var pods []pod
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			pods = append(pods, pod{name: f[0], ip: f[1]})
		}
	}
	if len(pods) == 0 {
		k.t.Fatalf("no running %s pod", app)
	}
	return pods
}

// podSample sums, per running pod of the service, the samples of its
// metrics (at the pod's address) whose line starts with prefix.
func (k *kube) podSample(s *system, app string, port int, prefix string) map[string]float64 {
	return k.podSamples(s, app, port, func(line string) bool { return strings.HasPrefix(line, prefix) })
}

// podSamples sums, per running pod of the service, the samples of its
// metrics (at the pod's address) on the lines match accepts.
func (k *kube) podSamples(s *system, app string, port int, match func(line string) bool) map[string]float64 {
	k.t.Helper()
	out := map[string]float64{}
	for _, p := range k.pods(app) {
		out[p.name] = 0
		resp, err := s.http.Get(fmt.Sprintf("http://%s:%d/metrics", p.ip, port))
		if err != nil {
			k.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if match(line) {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				out[p.name] += v
			}
		}
	}
	return out
}

// checkFleet: three scopes the brokers have not seen, asked 9 times each
// through the Service (round_robin over the 3 broker pods, which find
// each other through the same headless Service), cost 3 exchanges at
// GitHub.com, all by the one pod that owns the connection and gives the
// others its tokens over mutual TLS (offered, or fetched).
func (k *kube) checkFleet(t *testing.T, s *system, id string, broker brokerv1.TokenBrokerServiceClient) {
	exchanges := func() map[string]float64 {
		return k.podSample(s, "broker", 7102, `ghconnect_broker_github_exchanges_total{outcome="ok"}`)
	}
	before := exchanges()
	for _, repos := range [][]string{{"internal-tools"}, {"hello-world", "internal-tools"}, {"hello-world"}} {
		for range 9 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := broker.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: repos, Permissions: map[string]string{"metadata": "read"}})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	after, fetched, kept := exchanges(), k.podSample(s, "broker", 7102, `ghconnect_broker_peer_fetches_total{outcome="ok"}`),
		k.podSample(s, "broker", 7102, `ghconnect_broker_peer_offers_received_total{outcome="kept"}`)
	total, owners := 0.0, 0
	for pod := range after {
		total += after[pod] - before[pod]
		if after[pod] > before[pod] {
			owners++
		}
	}
	t.Logf("fleet: 3 new scopes × 9 requests: %v exchanges; exchanges per pod %v (before %v), fetched from the owner %v, offers kept %v",
		total, after, before, fetched, kept)
	if total != 3 {
		t.Errorf("%v exchanges for 3 new scopes, want 3", total)
	}
	if owners != 1 {
		t.Errorf("%d broker pods exchanged, want 1: the connection's owner", owners)
	}
	for pod := range after {
		if after[pod] == before[pod] && fetched[pod]+kept[pod] == 0 {
			t.Errorf("broker pod %s neither exchanged nor got a token from the owner", pod)
		}
	}
}

// podCalls sums, per running pod of the service, the gRPC calls of the
// method it answered OK (its metrics, at the pod's address).
func (k *kube) podCalls(s *system, app string, port int, method string) map[string]float64 {
	return k.podSamples(s, app, port, func(line string) bool {
		return strings.HasPrefix(line, "ghconnect_grpc_requests_total{") && strings.Contains(line, method) && strings.Contains(line, `code="OK"`)
	})
}

// rolledOut waits until the Deployment has rolled out and is Available.
func (k *kube) rolledOut(name string) {
	k.t.Helper()
	k.must("rollout", "status", "deploy/"+name, "--timeout=300s")
	k.must("wait", "deploy/"+name, "--for=condition=Available", "--timeout=120s")
}

// evict asks the API server to evict a pod (what a node drain does), which
// it refuses with 429 when the pod's PodDisruptionBudget allows no
// disruption now.
func (k *kube) evict(pod string) (string, error) {
	body, _ := json.Marshal(map[string]any{"apiVersion": "policy/v1", "kind": "Eviction",
		"metadata": map[string]any{"name": pod, "namespace": "ghconnect"}})
	f := filepath.Join(k.t.TempDir(), "eviction.json")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		k.t.Fatal(err)
	}
	return k.run("create", "--raw", "/api/v1/namespaces/ghconnect/pods/"+pod+"/eviction", "-f", f)
}

// budgetWatch samples the PodDisruptionBudgets and the Deployments every
// half second: no budget may ever have fewer healthy pods than it wants.
type budgetWatch struct {
	stop         chan struct{}
	done         chan struct{}
	mu           sync.Mutex
	samples      int
	breaches     []string
	minAvailable map[string]int
}

func (k *kube) watchBudgets() *budgetWatch {
	w := &budgetWatch{stop: make(chan struct{}), done: make(chan struct{}), minAvailable: map[string]int{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			pdbs, err1 := k.run("get", "pdb", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.currentHealthy} {.status.desiredHealthy}{"\n"}{end}`)
			deps, err2 := k.run("get", "deploy", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.availableReplicas}{"\n"}{end}`)
			w.mu.Lock()
			if err1 == nil && err2 == nil {
				w.samples++
				for _, line := range strings.Split(pdbs, "\n") {
					f := strings.Fields(line)
					if len(f) != 3 {
						continue
					}
					healthy, _ := strconv.Atoi(f[1])
					desired, _ := strconv.Atoi(f[2])
					if healthy < desired {
						w.breaches = append(w.breaches, fmt.Sprintf("%s: %d healthy, %d wanted", f[0], healthy, desired))
					}
				}
				for _, line := range strings.Split(deps, "\n") {
					f := strings.Fields(line)
					if len(f) == 0 {
						continue
					}
					n := 0
					if len(f) == 2 {
						n, _ = strconv.Atoi(f[1])
					}
					if m, ok := w.minAvailable[f[0]]; !ok || n < m {
						w.minAvailable[f[0]] = n
					}
				}
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *budgetWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d samples of the budgets; fewest available pods per Deployment: %v", w.samples, w.minAvailable)
	if w.samples < 3 {
		t.Errorf("only %d samples of the PodDisruptionBudgets", w.samples)
	}
	if len(w.breaches) > 0 {
		t.Errorf("PodDisruptionBudgets breached: %v", w.breaches)
	}
}

// traffic is a steady stream of calls through every service, from
// several callers at once: tokens from the broker over gRPC (round robin
// over its headless Service), the connection read through the gateway
// (the registry), and a unified search through the gateway (the feature
// gate, which asks the broker, which asks the emulator).
type traffic struct {
	s      *system
	id     string
	broker brokerv1.TokenBrokerServiceClient
	// h2 speaks HTTP/2 to the gateway: a gateway pod stopping sends
	// GOAWAY, and the client retries what the pod did not take on a new
	// connection (HTTP/1.1 cannot tell a request the server dropped
	// unread from one it took).
	h2 *http.Client
}

// trafficKinds name the three kinds of call.
var trafficKinds = []string{"broker IssueToken (gRPC)", "gateway GET connection", "gateway search"}

func newTraffic(t *testing.T, s *system, id string, broker brokerv1.TokenBrokerServiceClient) *traffic {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(readFile(t, s.pki.CA())))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &traffic{s: s, id: id, broker: broker, h2: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

// run is one stream of traffic under way.
type run struct {
	t      *testing.T
	tr     *traffic
	stop   chan struct{}
	wg     sync.WaitGroup
	ok     [3]atomic.Int64
	failed [3]atomic.Int64
	mu     sync.Mutex
	errs   []string
	began  time.Time
}

const trafficCallers = 6

func (tr *traffic) start(t *testing.T) *run {
	r := &run{t: t, tr: tr, stop: make(chan struct{}), began: time.Now()}
	for c := range trafficCallers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for i := c; ; i++ {
				select {
				case <-r.stop:
					return
				default:
				}
				kind := i % len(trafficKinds)
				if err := tr.call(kind); err != nil {
					r.failed[kind].Add(1)
					r.mu.Lock()
					if len(r.errs) < 10 {
						r.errs = append(r.errs, fmt.Sprintf("%s after %v: %v", trafficKinds[kind], time.Since(r.began).Round(time.Millisecond), err))
					}
					r.mu.Unlock()
				} else {
					r.ok[kind].Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return r
}

// finish stops the traffic and fails the test on any failed call.
func (r *run) finish() {
	r.t.Helper()
	close(r.stop)
	r.wg.Wait()
	elapsed := time.Since(r.began)
	var total, failed int64
	var parts []string
	for k, name := range trafficKinds {
		ok, bad := r.ok[k].Load(), r.failed[k].Load()
		total += ok + bad
		failed += bad
		parts = append(parts, fmt.Sprintf("%s %d ok, %d failed", name, ok, bad))
		if ok == 0 {
			r.t.Errorf("no %s succeeded", name)
		}
	}
	r.t.Logf("%d calls from %d callers over %v (%.0f/s): %s", total, trafficCallers, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), strings.Join(parts, "; "))
	if failed > 0 {
		r.t.Errorf("%d calls failed; the first: %s", failed, strings.Join(r.errs, "\n  "))
	}
}

// call makes one call of the kind; any error or unexpected answer fails.
func (tr *traffic) call(kind int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	switch kind {
	case 0:
		tok, err := tr.broker.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: tr.id,
			Repositories: []string{"hello-world"}, Permissions: map[string]string{"contents": "read"}})
		if err != nil {
			return err
		}
		if tok.GetToken() == "" {
			return fmt.Errorf("no token")
		}
		return nil
	case 1:
		out, err := tr.rest(ctx, "admin", "GET", "/v1/connections/"+tr.id, nil)
		if err != nil {
			return err
		}
		if c, _ := out["connection"].(map[string]any); c["state"] != "CONNECTION_STATE_CONNECTED" {
			return fmt.Errorf("connection: %v", out)
		}
		return nil
	default:
		out, err := tr.rest(ctx, "search-svc", "POST", "/v1/connections/"+tr.id+"/search", searchRequest)
		if err != nil {
			return err
		}
		if !searchFound(out) {
			return fmt.Errorf("search found nothing: %v", out)
		}
		return nil
	}
}

func (tr *traffic) rest(ctx context.Context, who, method, path string, body any) (map[string]any, error) {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, tr.s.gw+path, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tr.s.tokens[who])
	resp, err := tr.h2.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s %s: %d, %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out, nil
}
