package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// midDisconnect is the disconnect step after which the replicated
// system's registry is killed.
const midDisconnect = "disconnect_step:tokens_revoked"

// replicas is how many processes of each service a replicated system runs.
var replicas = map[string]int{"registry": 2, "broker": 3, "featuregate": 2}

// replica names the i-th process of svc (from 1).
func replica(svc string, i int) string { return fmt.Sprintf("%s-%d", svc, i) }

// list is every replica of svc, as a static address list.
func (s *system) list(svc string) string {
	var addrs []string
	for i := 1; i <= replicas[svc]; i++ {
		addrs = append(addrs, s.addr(replica(svc, i)))
	}
	return strings.Join(addrs, ",")
}

// startReplicated starts 2 registries, 3 brokers, 2 feature gates (the
// registries on one PostgreSQL database, the brokers on another, where
// they share users' grants, the gates on a third) and a gateway (its
// sessions on a fourth); each caller balances over every replica of what
// it calls. gateArgs are added to every feature gate's arguments.
func startReplicated(t *testing.T, gateArgs ...string) *system {
	regDB, brokerDB, gateDB := testenv.Postgres(t), testenv.Postgres(t), testenv.Postgres(t)
	s := newSystem(t)
	s.dbs["registry"], s.dbs["broker"], s.dbs["featuregate"], s.dbs["gateway"] = regDB, brokerDB, gateDB, testenv.Postgres(t)
	for svc, n := range replicas {
		for i := 1; i <= n; i++ {
			s.port[replica(svc, i)] = freePort(t)
			s.port[replica(svc, i)+"-http"] = freePort(t)
		}
	}
	common := func(svc string, i int) []string {
		name := replica(svc, i)
		return append([]string{svc, "-grpc-addr", s.addr(name), "-http-addr", s.addr(name + "-http"), "-tokens-file", filepath.Join(s.dir, "tokens"), "-authz-file", filepath.Join(s.dir, "authz.json")}, s.tlsArgs(svc)...)
	}
	creds := func(svc string) []string {
		return []string{"-vault-addr", s.vault, "-vault-role-id-file", filepath.Join(s.dir, "vault-creds", svc+"-role-id"),
			"-vault-secret-id-file", filepath.Join(s.dir, "vault-creds", svc+"-secret-id")}
	}
	// Each registry stops dead (hangs, for SIGKILL to end) right after this
	// step of a disconnect it runs itself; one resuming after it never
	// reaches it.
	crash := []string{"-crash-after", midDisconnect, "-crash-mode", "hang"}
	for i := 1; i <= replicas["registry"]; i++ {
		s.start(replica("registry", i), nil, slices.Concat(common("registry", i), creds("registry"), crash, []string{
			"-database", regDB, "-license-issuers", filepath.Join(s.dir, "issuers.txt"), "-key-check-every", "1s",
			"-server-hostname", "ghes.example.com", "-server-version", "3.14.2",
			"-github-url", s.emu, "-github-web-url", s.emu, "-broker-addr", s.list("broker"), "-featuregate-addr", s.list("featuregate"),
			"-orphan-key-grace", "2s", "-reconcile-every", "500ms", "-leader-retry", "500ms"})...)
		// One at a time: the first migrates the database.
		s.waitHTTP(replica("registry", i), "http://"+s.addr(replica("registry", i)+"-http")+"/readyz")
	}
	for i := 1; i <= replicas["broker"]; i++ {
		s.start(replica("broker", i), nil, append(append(common("broker", i), creds("broker")...),
			"-policy", filepath.Join(s.dir, "policy.json"), "-github-url", s.emu, "-github-web-url", s.emu, "-database", brokerDB, "-registry-addr", s.list("registry"),
			"-broker-addr", s.list("broker"), "-fleet-self", s.addr(replica("broker", i)))...)
	}
	for i := 1; i <= replicas["featuregate"]; i++ {
		s.start(replica("featuregate", i), nil, append(common("featuregate", i),
			append([]string{"-database", gateDB, "-registry-addr", s.list("registry"), "-broker-addr", s.list("broker"), "-github-url", s.emu}, gateArgs...)...)...)
		s.waitHTTP(replica("featuregate", i), "http://"+s.addr(replica("featuregate", i)+"-http")+"/readyz")
	}
	for i := 1; i <= replicas["broker"]; i++ {
		s.waitHTTP(replica("broker", i), "http://"+s.addr(replica("broker", i)+"-http")+"/readyz")
	}
	s.gw = "https://" + s.addr("gateway")
	s.start("gateway", nil, append([]string{"gateway", "-addr", s.addr("gateway"), "-http-addr", s.addr("gateway-http"), "-registry-addr", s.list("registry"), "-broker-addr", s.list("broker"),
		"-featuregate-addr", s.list("featuregate"), "-tls-cert", s.pki.Cert("gateway"), "-tls-key", s.pki.Key("gateway")}, append(s.ssoArgs(), s.dialTLS("gateway")...)...)...)
	s.waitHTTP("gateway", s.gw+"/readyz")
	return s
}

// kill ends a process with SIGKILL: no graceful stop, no goodbye to its
// peers.
func (s *system) kill(name string) {
	s.t.Helper()
	cmd := s.procs[name]
	if err := cmd.Process.Kill(); err != nil {
		s.t.Fatal(err)
	}
	cmd.Wait()
	s.t.Logf("killed %s (pid %d)", name, cmd.Process.Pid)
}

// attemptCounter counts the attempts gRPC makes for each call (retries
// included) into the counter the call's context carries.
type attemptCounter struct{}

type attemptsKey struct{}

func (attemptCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (attemptCounter) HandleRPC(ctx context.Context, st stats.RPCStats) {
	if b, ok := st.(*stats.Begin); ok && b.IsClient() {
		if n, ok := ctx.Value(attemptsKey{}).(*atomic.Int32); ok {
			n.Add(1)
		}
	}
}
func (attemptCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (attemptCounter) HandleConn(context.Context, stats.ConnStats)                       {}

// An internal service's view of replicas: 20,000 token requests from 16
// callers balanced over 3 brokers, one of which is killed with SIGKILL in
// the middle; none may fail (the client's own retry of Unavailable
// allowed, and counted). A feature-gate Watch subscriber whose replica is
// killed resumes on the other and sees every change exactly once.
func TestReplicasSurviveLosingOne(t *testing.T) {
	s := startReplicated(t)
	id := s.create()
	s.enable(id)

	d, err := dial.New(dial.Flags{CA: s.pki.CA(), Cert: s.pki.Cert("search-svc"), Key: s.pki.Key("search-svc")}, grpc.WithStatsHandler(attemptCounter{}))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cc, err := d.Dial(s.list("broker"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	broker := brokerv1.NewTokenBrokerServiceClient(cc)
	req := &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"hello-world"}, Permissions: map[string]string{"contents": "read"}}
	issue := func() (int32, error) {
		var n atomic.Int32
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), attemptsKey{}, &n), 10*time.Second)
		defer cancel()
		_, err := broker.IssueToken(ctx, req)
		return n.Load(), err
	}
	// Every broker learns of the connection through the registry's Watch:
	// wait until a round of calls (round_robin reaches each) all succeed.
	s.eventually("every broker issues a token", func() bool {
		for range 3 * replicas["broker"] {
			if _, err := issue(); err != nil {
				return false
			}
		}
		return true
	})

	owner := fleetExchangesOnce(t, s, id, issueAs(broker))
	exchangesBefore := s.emuCounts()[exchangeRoute]

	const total, callers = 20000, 16
	var done, failed, retried atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	third, killed := make(chan struct{}), make(chan struct{})
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := done.Add(1)
				if n > total {
					return
				}
				if n == total/3 { // one caller sees it: the broker goes now
					close(third)
				}
				attempts, err := issue()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				if attempts > 1 {
					retried.Add(1)
				}
			}
		}()
	}
	go func() {
		<-third
		s.kill(owner)
		close(killed)
	}()
	wg.Wait()
	<-killed
	elapsed := time.Since(start)
	exchanges := s.emuCounts()[exchangeRoute] - exchangesBefore
	t.Logf("%d token requests from %d callers over 3 brokers, %s (the connection's owner) killed after %d: %d failed, %d needed a retry, %.0f req/s; %d exchanges at GitHub.com",
		total, callers, owner, total/3, failed.Load(), retried.Load(), float64(total)/elapsed.Seconds(), exchanges)
	if failed.Load() != 0 {
		t.Errorf("%d token requests failed across the broker's death; first: %v", failed.Load(), firstErr.Load())
	}
	// One scope, whose owner went: at most one exchange by the new owner
	// (the survivors' copies serve the rest).
	if exchanges > 1 {
		t.Errorf("%d exchanges for one scope across its owner's death, want at most 1", exchanges)
	}

	t.Run("revocation reaches every broker", func(t *testing.T) { fleetRevokes(t, s, id, owner) })
	t.Run("watch resumes on another feature gate", func(t *testing.T) { watchAcrossGates(t, s, id) })
	t.Run("the reconciler's registry killed mid-disconnect", func(t *testing.T) { killReconcilerMidDisconnect(t, s, id) })
}

// exchangeRoute is the emulator's counter of installation token exchanges.
const exchangeRoute = "POST /app/installations/{installation_id}/access_tokens"

// issueAs asks broker for a token of repos (contents:read).
func issueAs(broker brokerv1.TokenBrokerServiceClient) func(id string, repos []string) error {
	return func(id string, repos []string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := broker.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: repos, Permissions: map[string]string{"contents": "read"}})
		return err
	}
}

// brokerSigns counts the App JWT signatures Vault's audit log records for
// the brokers.
func (s *system) brokerSigns() int {
	n := 0
	for _, e := range s.vaultAudit(false) {
		if e.Type == "response" && strings.HasPrefix(e.Request.Path, "transit/sign/") && e.Error == "" && e.Auth.Metadata["role_name"] == "ghconnect-broker" {
			n++
		}
	}
	return n
}

// fleetExchangesOnce: 1,000 scopes (sets of the organization's 10
// repositories) asked 10 times each by 16 callers balanced over the 3
// brokers cost at most 1,000 exchanges at GitHub.com and at most one
// JWT signature (the test is far shorter than a JWT's 10 minutes), all
// by the connection's owner; the other two answer from copies (offered
// by the owner, or fetched from it). It returns the owner.
func fleetExchangesOnce(t *testing.T, s *system, id string, issue func(string, []string) error) string {
	var seed ghemu.SeedData
	repos := []string{"hello-world", "internal-tools"}
	for i := range 8 {
		name := fmt.Sprintf("fleet-%d", i)
		seed.Repositories = append(seed.Repositories, ghemu.RepoSpec{Owner: "octo-org", Name: name})
		repos = append(repos, name)
	}
	s.emuSend("POST", "/_emu/seed", seed, http.StatusNoContent, nil)
	const scopes, each, callers = 1000, 10, 16
	scope := func(i int) []string { // the i-th non-empty subset
		var out []string
		for b, r := range repos {
			if (i+1)&(1<<b) != 0 {
				out = append(out, r)
			}
		}
		return out
	}
	exchanges0, signs0 := s.emuCounts()[exchangeRoute], s.brokerSigns()
	exchangedBefore := map[string]float64{}
	for i := 1; i <= replicas["broker"]; i++ {
		name := replica("broker", i)
		exchangedBefore[name] = s.metric(name+"-http", `ghconnect_broker_github_exchanges_total{outcome="ok"}`)
	}
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1) - 1; n < scopes*each; n = next.Add(1) - 1 {
				if err := issue(id, scope(int(n)%scopes)); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	exchanges, signs := s.emuCounts()[exchangeRoute]-exchanges0, s.brokerSigns()-signs0
	owner, owners := "", 0
	per := make([]string, 0, replicas["broker"])
	for i := 1; i <= replicas["broker"]; i++ {
		name := replica("broker", i)
		port := name + "-http"
		ex := s.metric(port, `ghconnect_broker_github_exchanges_total{outcome="ok"}`) - exchangedBefore[name]
		served := s.metric(port, "ghconnect_broker_peer_served_total")
		fetched := s.metric(port, `ghconnect_broker_peer_fetches_total{outcome="ok"}`)
		offered := s.metric(port, `ghconnect_broker_peer_offers_sent_total{outcome="ok"}`)
		kept := s.metric(port, `ghconnect_broker_peer_offers_received_total{outcome="kept"}`)
		hits := s.metric(port, `ghconnect_broker_cache_requests_total{result="hit"}`)
		per = append(per, fmt.Sprintf("%s: %v exchanges, %v served to the others, %v offered them, %v fetched from the owner, %v offers kept, %v hits",
			name, ex, served, offered, fetched, kept, hits))
		if ex > 0 {
			owner, owners = name, owners+1
		}
	}
	t.Logf("fleet: %d scopes × %d requests from %d callers over 3 brokers in %v (%.0f req/s): %d exchanges at GitHub.com, %d JWT signatures in Vault's audit log (%d since the connection was enabled); %s",
		scopes, each, callers, elapsed.Round(time.Millisecond), float64(scopes*each)/elapsed.Seconds(), exchanges, signs, signs+signs0, strings.Join(per, "; "))
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed; first: %v", failed.Load(), firstErr.Load())
	}
	if exchanges > scopes {
		t.Errorf("%d exchanges for %d scopes: a scope was exchanged by more than one broker", exchanges, scopes)
	}
	if signs > 1 {
		t.Errorf("%d JWT signatures for one connection within one JWT lifetime, want at most 1", signs)
	}
	if owners != 1 {
		t.Fatalf("%d brokers exchanged, want 1: the connection's owner", owners)
	}
	return owner
}

// fleetRevokes: with the fleet's owner gone, an exclusive token issued
// by one surviving broker is revoked through the other; a shared token
// that both hold (one exchanged it, the other keeps a copy) is revoked at
// GitHub.com by an admin's RevokeConnectionTokens sent to either, and
// neither serves it again.
func fleetRevokes(t *testing.T, s *system, id, gone string) {
	client := func(principal, name string) brokerv1.TokenBrokerServiceClient {
		d, err := dial.New(dial.Flags{CA: s.pki.CA(), Cert: s.pki.Cert(principal), Key: s.pki.Key(principal)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		cc, err := d.Dial(s.addr(name), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return brokerv1.NewTokenBrokerServiceClient(cc)
	}
	var survivors []string
	for i := 1; i <= replicas["broker"]; i++ {
		if name := replica("broker", i); name != gone {
			survivors = append(survivors, name)
		}
	}
	a, b := client("search-svc", survivors[0]), client("search-svc", survivors[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"internal-tools"}, Permissions: map[string]string{"issues": "read"}}

	ex, err := a.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"hello-world"}, Permissions: map[string]string{"contents": "read"}, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.RevokeToken(ctx, &brokerv1.RevokeTokenRequest{Token: ex.GetToken()}); err != nil {
		t.Fatalf("revoking %s's exclusive token through %s: %v", survivors[0], survivors[1], err)
	}
	if got := s.githubStatus(ex.GetToken()); got != http.StatusUnauthorized {
		t.Errorf("the exclusive token revoked through another broker: GitHub.com answers %d, want 401", got)
	}

	ta, err := a.IssueToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.IssueToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if ta.GetToken() != tb.GetToken() {
		t.Fatalf("%s and %s hold different tokens for one scope", survivors[0], survivors[1])
	}
	resp, err := client("registry", survivors[1]).RevokeConnectionTokens(ctx, &brokerv1.RevokeConnectionTokensRequest{ConnectionId: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RevokeConnectionTokens through %s: %d revoked, %d failed (%s is gone)", survivors[1], resp.GetRevoked(), resp.GetFailed(), gone)
	if got := s.githubStatus(ta.GetToken()); got != http.StatusUnauthorized {
		t.Errorf("a shared token after RevokeConnectionTokens: GitHub.com answers %d, want 401", got)
	}
	for _, c := range []brokerv1.TokenBrokerServiceClient{a, b} {
		again, err := c.IssueToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if again.GetToken() == ta.GetToken() {
			t.Errorf("a broker still serves the revoked token")
		}
	}
}

// killReconcilerMidDisconnect: the registry holding the reconciler's lease
// runs a disconnect and is killed with SIGKILL right after revoking the
// tokens; the other registry takes the lease and its reconciler finishes
// the disconnect, with no App key left in Vault and the installation gone.
func killReconcilerMidDisconnect(t *testing.T, s *system, id string) {
	var leader, other string
	s.eventually("exactly one registry leads", func() bool {
		a, b := s.leaderGauge(replica("registry", 1)), s.leaderGauge(replica("registry", 2))
		switch {
		case a == 1 && b == 0:
			leader, other = replica("registry", 1), replica("registry", 2)
		case a == 0 && b == 1:
			leader, other = replica("registry", 2), replica("registry", 1)
		default:
			return false
		}
		return true
	})
	c := s.connection(id)
	key := c["transitKey"].(map[string]any)["name"].(string)
	inst := c["installationId"].(string)
	// The admin's disconnect goes to the leader itself, over mutual TLS
	// with the admin's certificate.
	d, err := dial.New(dial.Flags{CA: s.pki.CA(), Cert: s.pki.Cert("admin"), Key: s.pki.Key("admin")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cc, err := d.Dial(s.addr(leader), "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The leader stops in the middle of it (what this test is
		// about): an error is the expected answer.
		_, _ = registryv1.NewConnectionRegistryServiceClient(cc).Disconnect(ctx, &registryv1.DisconnectRequest{Id: id, Reason: "replica test"})
	}()
	s.eventually(leader+" stops after "+midDisconnect, func() bool {
		return strings.Contains(readFile(t, filepath.Join(s.dir, leader+".log")), "crash test: stopped after "+midDisconnect)
	})
	s.kill(leader)
	killed := time.Now()
	s.eventually(other+" takes the reconciler's lease", func() bool { return s.leaderGauge(other) == 1 })
	s.eventually("the disconnect converges", func() bool {
		return s.connection(id)["state"] == "CONNECTION_STATE_DISCONNECTED"
	})
	t.Logf("%s killed mid-disconnect; %s finished it %v later", leader, other, time.Since(killed).Round(time.Millisecond))
	if s.vaultKeyExists(key) {
		t.Errorf("orphan key: %s is still in Vault", key)
	}
	resp, err := s.http.Get(s.emu + "/_emu/installations/" + inst)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("installation %s on GitHub.com: %d, want it removed", inst, resp.StatusCode)
	}
}

// watchAcrossGates: a subscriber on featuregate-1 sees some changes, the
// replica is killed, the subscriber resumes on featuregate-2 from its last
// revision while changes go on; in the end what it saw equals a fresh
// Watch's full history, with no revision missing or repeated.
func watchAcrossGates(t *testing.T, s *system, id string) {
	d, err := dial.New(dial.Flags{CA: s.pki.CA(), Cert: s.pki.Cert("search-svc"), Key: s.pki.Key("search-svc")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	gate := func(i int) featuregatev1.FeatureGateServiceClient {
		cc, err := d.Dial(s.addr(replica("featuregate", i)), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return featuregatev1.NewFeatureGateServiceClient(cc)
	}
	type event struct {
		rev int64
		on  bool
	}
	unified := func(r *featuregatev1.WatchResponse) bool {
		for _, f := range r.GetSettings().GetFeatures() {
			if f.GetFeature() == featuregatev1.Feature_FEATURE_UNIFIED_SEARCH {
				return f.GetEnabled()
			}
		}
		return false
	}
	var mu sync.Mutex
	var seen []event
	var resumedAt int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribed := make(chan struct{})
	watchDone := make(chan error, 1)
	go func() {
		client, after := gate(1), int64(0)
		for attempt := 0; ; attempt++ {
			stream, err := client.Watch(ctx, &featuregatev1.WatchRequest{AfterRevision: after, ConnectionId: id})
			if err != nil {
				watchDone <- err
				return
			}
			if attempt == 0 {
				close(subscribed)
			}
			for {
				r, err := stream.Recv()
				if err != nil {
					if ctx.Err() != nil {
						watchDone <- nil
						return
					}
					if attempt > 0 {
						watchDone <- fmt.Errorf("second stream broke too: %w", err)
						return
					}
					break // featuregate-1 died: resume on featuregate-2
				}
				mu.Lock()
				seen = append(seen, event{r.GetRevision(), unified(r)})
				mu.Unlock()
				after = r.GetRevision()
			}
			mu.Lock()
			resumedAt = after
			mu.Unlock()
			client = gate(2)
		}
	}()
	<-subscribed
	toggle := func(on bool) {
		s.mustREST("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []any{map[string]any{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": on}}})
	}
	const changes = 20
	for i := range changes {
		if i == changes/2 {
			s.kill(replica("featuregate", 1))
		}
		toggle(i%2 == 0)
	}
	// The reference: the whole history from the surviving replica.
	var want []event
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	ref, err := gate(2).Watch(rctx, &featuregatev1.WatchRequest{ConnectionId: id})
	if err != nil {
		t.Fatal(err)
	}
	// Every change is made and answered by now: the history is what
	// arrives until the stream falls quiet.
	events := make(chan event)
	go func() {
		defer close(events)
		for {
			r, err := ref.Recv()
			if err != nil {
				return
			}
			events <- event{r.GetRevision(), unified(r)}
		}
	}()
	for quiet := false; !quiet; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("reference watch ended after %v", want)
			}
			want = append(want, ev)
		case <-time.After(time.Second):
			quiet = true
		}
	}
	rcancel()
	if len(want) < changes {
		t.Fatalf("the full history has %d events for %d changes: %v", len(want), changes, want)
	}
	s.eventually("the subscriber catches up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(want) && seen[len(seen)-1].rev >= want[len(want)-1].rev
	})
	cancel()
	if err := <-watchDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if resumedAt == 0 {
		t.Fatalf("the subscriber never resumed: featuregate-1's stream did not end (%d events)", len(seen))
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("subscriber saw (resumed after revision %d):\n%v\nthe full history is:\n%v", resumedAt, seen, want)
	}
	t.Logf("watch: %d events, resumed on featuregate-2 after revision %d, none lost or repeated", len(seen), resumedAt)
}
