package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
)

// leaderGauge reads the registry process name's
// ghconnect_registry_reconciler_leader from its /metrics (-1: no answer).
func (s *system) leaderGauge(name string) int {
	resp, err := http.Get("http://" + s.addr(name+"-http") + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		switch sc.Text() {
		case "ghconnect_registry_reconciler_leader 1":
			return 1
		case "ghconnect_registry_reconciler_leader 0":
			return 0
		}
	}
	return -1
}

// leader is the one registry whose gauge says it holds the reconciler's
// lease, "" unless exactly one does and the others say they do not.
func (s *system) leader() string {
	leader := ""
	for _, n := range s.registries() {
		switch s.leaderGauge(n) {
		case 1:
			if leader != "" {
				return ""
			}
			leader = n
		case -1:
			return ""
		}
	}
	return leader
}

// Two registry processes on one PostgreSQL database. The one holding the
// reconciler's lease runs a disconnect and gets stuck right after revoking
// the tokens (as a hung replica would); while it lives the other does not
// step in. It is killed with SIGKILL: the other takes the lease and its
// reconciler finishes the disconnect, the installation removed on
// GitHub.com and the App key deleted from Vault.
func TestReconcilerLeaseMovesWhenTheLeaderIsKilled(t *testing.T) {
	const step = "disconnect_step:tokens_revoked"
	// Both registries are armed, since which one leads is known only once
	// they run; the survivor resumes after the step and never reaches it.
	s := startSystemWith(t, systemOptions{RegistryDB: testenv.Postgres(t), Registries: 2,
		RegistryArgs: []string{"-crash-after", step, "-crash-mode", "hang"}})
	var leader string
	s.eventually("exactly one registry leads", func() bool { leader = s.leader(); return leader != "" })
	survivor := "registry"
	if leader == survivor {
		survivor = "registry2"
	}
	t.Logf("%s holds the reconciler's lease", leader)
	if s.callersRegistry != leader {
		s.pointCallersAt(leader)
	}

	id := s.create()
	s.enable(id)
	c := s.connection(id)
	inst := c["installationId"].(string)
	key := c["transitKey"].(map[string]any)["name"].(string)
	var tok map[string]any
	s.eventually("the broker issues a token", func() bool {
		code, out := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/tokens", map[string]any{"permissions": map[string]string{"metadata": "read"}})
		tok = out
		return code == 200
	})

	// The leader runs the disconnect and stops after the step; the call
	// hangs with it.
	answered := make(chan int, 1)
	go func() {
		code, _ := s.restAs("admin", "POST", "/v1/connections/"+id+":disconnect", map[string]any{"reason": "lease test"})
		answered <- code
	}()
	s.eventually(leader+" stops after "+step, func() bool {
		return strings.Contains(readFile(t, filepath.Join(s.dir, leader+".log")), "crash test: stopped after "+step)
	})
	c = s.connection(id)
	if c["state"] != "CONNECTION_STATE_DISCONNECTING" {
		t.Fatalf("while the leader is stuck: %v", c["state"])
	}
	// A stuck leader keeps its lease: nobody else reconciles meanwhile.
	time.Sleep(1500 * time.Millisecond) // a negative check: no takeover meanwhile
	if got := s.leader(); got != leader {
		t.Fatalf("while %s is stuck, the leader is %q", leader, got)
	}
	if steps, _ := json.Marshal(s.connection(id)["disconnectSteps"]); strings.Contains(string(steps), "installation_removed") {
		t.Fatalf("someone went on with the disconnect: %s", steps)
	}

	killed := time.Now()
	if err := s.procs[leader].Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	s.waitExit(leader)
	s.eventually(survivor+" takes the lease", func() bool { return s.leaderGauge(survivor) == 1 })
	took := time.Since(killed)
	t.Logf("%s leads %v after %s was killed", survivor, took, leader)
	if took > 5*time.Second {
		t.Errorf("the takeover took %v with -leader-retry 500ms", took)
	}
	// The gateway dials only the dead registry: its call waits up to
	// dial.ReadyWait (10 s) for it to come back, then answers 503.
	select {
	case code := <-answered:
		t.Logf("the interrupted disconnect call ended with %d", code)
	case <-time.After(20 * time.Second):
		t.Error("the disconnect call did not end with the leader")
	}

	// The callers follow the survivor.
	s.pointCallersAt(survivor)
	s.eventually("the survivor's reconciler finishes the disconnect", func() bool {
		return s.connection(id)["state"] == "CONNECTION_STATE_DISCONNECTED"
	})
	converged := time.Since(killed)
	t.Logf("DISCONNECTED %v after the kill", converged)
	c = s.connection(id)
	steps, _ := json.Marshal(c["disconnectSteps"])
	for _, st := range []string{"features_off", "tokens_revoked", "installation_removed", "key_deleted"} {
		if strings.Count(string(steps), `"`+st+`"`) != 1 {
			t.Errorf("steps: %s", steps)
		}
	}
	if s.vaultKeyExists(key) {
		t.Errorf("transit key %s left in Vault", key)
	}
	for _, k := range s.vaultKeys() {
		if k == key {
			t.Errorf("transit key %s still listed", k)
		}
	}
	resp, err := http.Get(s.emu + "/_emu/installations/" + inst)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("installation %s on GitHub.com: %d, want it removed", inst, resp.StatusCode)
	}
	if s.githubStatus(tok["token"].(string)) != http.StatusUnauthorized {
		t.Errorf("token still valid after the disconnect")
	}
	// The survivor finished it: the history shows the reconciler.
	h := s.mustREST("GET", "/v1/connections/"+id+"/history", nil)
	raw, _ := json.Marshal(h)
	if !strings.Contains(string(raw), "system:reconciler") {
		t.Errorf("history has no reconciler step: %s", raw)
	}
}
