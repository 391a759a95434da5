package registry_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry"
)

const leaderRetry = 300 * time.Millisecond

// replica is one registry.Run, as a replica would run it.
type replica struct {
	t       testing.TB
	name    string
	metrics string
	cancel  context.CancelFunc
	done    chan error
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func runReplica(t *testing.T, name string, cfg registry.Config) *replica {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr = freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{t: t, name: name, metrics: "http://" + cfg.HTTPAddr + "/metrics", cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- registry.Run(ctx, cfg) }()
	t.Cleanup(r.stop)
	testenv.EventuallyErr(t, 20*time.Second, name+" is ready", func() error {
		select {
		case err := <-r.done:
			t.Fatalf("%s ended: %v", name, err)
		default:
		}
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answers %s", resp.Status)
		}
		return nil
	})
	return r
}

func (r *replica) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Logf("%s stopped: %v", r.name, err)
	}
}

// metric reads one sample from the replica's /metrics (0 when absent).
func (r *replica) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(r.metrics)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func (r *replica) leads(t *testing.T) (reconciler, keyFollower bool) {
	return r.metric(t, "ghconnect_registry_reconciler_leader") == 1, r.metric(t, "ghconnect_registry_key_follower_leader") == 1
}

func (r *replica) reconciles(t *testing.T) float64 {
	return r.metric(t, `ghconnect_registry_loop_runs_total{loop="reconciler"}`)
}

func (r *replica) followsKeys(t *testing.T) float64 {
	return r.metric(t, `ghconnect_registry_loop_runs_total{loop="key_follower"}`)
}

// leaseConfig is a registry's configuration on dsn with Vault and the
// emulator, its loops fast.
func leaseConfig(t *testing.T, dsn string) registry.Config {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	_, creds := testenv.SharedVault(t)
	tokens, _ := testenv.Tokens(t, "alice")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuers := filepath.Join(t.TempDir(), "issuers")
	if err := os.WriteFile(issuers, []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return registry.Config{DatabaseURL: dsn, Callers: auth.Callers{TokensFile: tokens}, LicenseIssuersFile: issuers,
		ServerHostname: "ghes.example.com", ServerVersion: "3.14.2",
		Vault: creds.Flags("registry"), TransitMount: "transit", GitHubURL: emu.URL, GitHubWebURL: emu.URL,
		KeyCheckEvery: 100 * time.Millisecond, ReconcileEvery: 100 * time.Millisecond, OrphanKeyGrace: time.Minute,
		LeaderRetry: leaderRetry, Log: logging.Options{Level: "warn"}}
}

// interruptedDisconnect leaves a connection DISCONNECTING, as a registry
// that died during a disconnect would: only a reconciler finishes it.
func interruptedDisconnect(t *testing.T, store *registry.Store, id string) {
	t.Helper()
	ctx := context.Background()
	c := &registryv1.Connection{Id: id, ServerHostname: id + ".example.com", ServerVersion: "3.14.2",
		Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org", Id: 1}}
	if _, err := store.Create(ctx, c, "h-"+id, registry.Change{Actor: "alice", RequestID: "r-" + id}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, id, "", registry.BeginDisconnect(), registry.Change{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, store *registry.Store, id string) registryv1.ConnectionState {
	c, err := store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.State
}

// Two registries on one PostgreSQL database: both serve, only the holder
// of each lease reconciles and follows keys; when the holder's database
// session dies, or the holder stops, the other takes over and its
// reconciler finishes what was left.
func TestOneReplicaReconciles(t *testing.T) {
	dsn := registry.Schema.Postgres(t)
	cfg := leaseConfig(t, dsn)
	a := runReplica(t, "a", cfg)
	testenv.Eventually(t, 5*time.Second, "a leads", func() bool { r, k := a.leads(t); return r && k })
	b := runReplica(t, "b", cfg)
	time.Sleep(4 * leaderRetry) // a negative check: b does not take over within several retries
	if r, k := b.leads(t); r || k {
		t.Fatalf("b leads (reconciler %v, key follower %v) while a lives", r, k)
	}
	if b.reconciles(t) != 0 || b.followsKeys(t) != 0 {
		t.Fatalf("b ran %v reconciles, %v key checks without the lease", b.reconciles(t), b.followsKeys(t))
	}
	if n := a.reconciles(t); n < 3 {
		t.Fatalf("the leader reconciled %v times", n)
	}

	store, err := registry.OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db, err := sqldb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// 1. a's lease sessions are terminated (as when PostgreSQL loses a's
	// connections): b takes both leases, a serves on without them.
	pids, err := db.LeaseHolders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 2 {
		t.Fatalf("lease holders: %v, want the reconciler's and the key follower's", pids)
	}
	for _, pid := range pids {
		if _, err := db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
	}
	took := testenv.Eventually(t, leaderRetry+2*time.Second, "b leads", func() bool { r, k := b.leads(t); return r && k })
	testenv.Eventually(t, time.Second, "a stops leading", func() bool { r, k := a.leads(t); return !r && !k })
	t.Logf("b leads %v after a's sessions were terminated", took)
	aRuns := a.reconciles(t)
	time.Sleep(4 * leaderRetry) // a negative check: b does not take over within several retries
	if a.reconciles(t) != aRuns {
		t.Errorf("a reconciles without the lease")
	}
	if n := b.reconciles(t); n < 3 {
		t.Errorf("b reconciled %v times as the leader", n)
	}
	if r, _ := a.leads(t); r {
		t.Errorf("a took the lease back")
	}

	// 2. b stops: a takes over again and finishes an interrupted
	// disconnect, nobody else being there to do it.
	b.stop()
	took = testenv.Eventually(t, leaderRetry+2*time.Second, "a leads again", func() bool { r, k := a.leads(t); return r && k })
	t.Logf("a leads %v after b stopped", took)
	interruptedDisconnect(t, store, "lease-1")
	testenv.Eventually(t, 5*time.Second, "the survivor's reconciler finishes the disconnect", func() bool {
		return state(t, store, "lease-1") == registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED
	})
	h, err := store.Events(context.Background(), 0, "lease-1", 100)
	if err != nil {
		t.Fatal(err)
	}
	var done []string
	for _, ev := range h {
		if ev.Actor == "system:reconciler" {
			done = append(done, ev.Action)
		}
	}
	if got := fmt.Sprint(done); !strings.Contains(got, "complete_disconnect") || strings.Count(got, "complete_disconnect") != 1 {
		t.Errorf("the reconciler's history: %v", done)
	}
}

// On SQLite the registry is one process: it always leads.
func TestSQLiteRegistryAlwaysLeads(t *testing.T) {
	a := runReplica(t, "a", leaseConfig(t, testenv.SQLite(t)))
	testenv.Eventually(t, 5*time.Second, "a leads", func() bool { r, k := a.leads(t); return r && k })
}
