package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func (s *system) restAs(who, method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.gw+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+s.tokens[who])
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	// A body that is no JSON object leaves out nil: callers look at the
	// status first.
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// githubStatus uses a token at the emulator.
func (s *system) githubStatus(token string) int {
	req, _ := http.NewRequest("GET", s.emu+"/installation/repositories", nil)
	req.Header.Set("Authorization", "token "+token)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEndToEnd(t *testing.T) {
	s := startSystem(t)
	id := s.create()
	s.enable(id)
	c := s.connection(id)
	if c["state"] != "CONNECTION_STATE_CONNECTED" {
		t.Fatalf("after the manifest flow: %v", c)
	}
	appID := c["app"].(map[string]any)["appId"].(string)
	keyName := c["transitKey"].(map[string]any)["name"].(string)
	inst := c["installationId"].(string)
	if !s.vaultKeyExists(keyName) {
		t.Fatal("no App key in Vault")
	}

	var mu sync.Mutex
	var issued []string
	issue := func(body map[string]any) (int, map[string]any) {
		code, out := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/tokens", body)
		if tok, ok := out["token"].(string); ok {
			mu.Lock()
			issued = append(issued, tok)
			mu.Unlock()
		}
		return code, out
	}
	// The broker learns of the connection through the registry's Watch.
	var out map[string]any
	s.eventually("the broker issues a token", func() bool {
		var code int
		code, out = issue(map[string]any{"repositories": []string{"hello-world"}, "permissions": map[string]string{"contents": "read"}})
		return code == 200
	})
	if s.githubStatus(out["token"].(string)) != 200 {
		t.Fatalf("the broker's token does not work at GitHub")
	}

	s.mustREST("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []any{map[string]any{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": true}}})
	// Search is for the server's own services (search-svc), on behalf of
	// a user; an admin may not call it.
	code, res := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/search", map[string]any{"user": "mona", "query": "unified", "kind": "SEARCH_KIND_CODE"})
	if code != 200 {
		t.Fatalf("search as search-svc: %d %v", code, res)
	}
	if results, _ := res["results"].([]any); len(results) == 0 || !strings.Contains(fmt.Sprint(results), "octo-org/hello-world") {
		t.Errorf("unified search: %v", res)
	}

	// Key rotation done in Vault by the operator, following the README's
	// runbook verbatim, while callers keep asking for fresh tokens (new
	// exclusive tokens: each one is an exchange at GitHub.com).
	stop := make(chan struct{})
	var failures []string
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := map[string]any{"exclusive": true, "permissions": map[string]string{"metadata": "read"}}
				if w == 1 {
					body = map[string]any{"exclusive": true, "repositories": []string{"hello-world"}, "permissions": map[string]string{"contents": "read"}}
				}
				if code, out := issue(body); code != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprint(code, out))
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond) // the callers' pace
			}
		}()
	}
	_, newPEM, newPub := newKeyPEM(t)
	pemFile := filepath.Join(s.dir, "new-key.pem")
	if err := os.WriteFile(pemFile, []byte(newPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	runbookEnv := []string{"VAULT_ADDR=" + s.vault, "KEY=" + keyName, "NEW_PEM=" + pemFile, "CREDS=" + filepath.Join(s.dir, "vault-creds")}
	// Over plain HTTP the CLI will not send a private key to a gateway.
	plain := exec.Command(filepath.Join(s.bin, "ghconnectctl"), "-gateway", strings.Replace(s.gw, "https://", "http://", 1), "-token-file", filepath.Join(s.dir, "admin-token"),
		"rotate-key", "-connection", id, "-pem", pemFile)
	if out, err := plain.CombinedOutput(); err == nil || !strings.Contains(string(out), "refusing to send a private key over plain HTTP") {
		t.Errorf("rotate-key over http: %v %s", err, out)
	}
	// 1. The operator imports the new key as version 2 in Vault.
	runbook(t, "import", runbookEnv)
	s.eventually("the registry says GitHub.com does not accept version 2 yet", func() bool {
		tk := s.connection(id)["transitKey"].(map[string]any)
		return tk["pendingVersion"] == float64(2) && strings.Contains(fmt.Sprint(tk["notice"]), "key version 2 is in Vault but GitHub.com does not accept it yet")
	})
	if out, err := s.ctl("status"); err != nil || !strings.Contains(out, "key version 2 is in Vault but GitHub.com does not accept it yet") {
		t.Errorf("status during the rotation: %v %s", err, out)
	}
	s.eventually("the broker's signing status says so too", func() bool {
		st := s.mustREST("GET", "/v1/connections/"+id+"/signingStatus", nil)
		return st["pendingVersion"] == float64(2) && strings.Contains(fmt.Sprint(st["notice"]), "does not accept it yet")
	})
	// 2. The operator adds the new public key to the App on GitHub.com.
	if resp, err := s.http.Post(s.emu+"/_emu/apps/"+appID+"/keys", "text/plain", strings.NewReader(newPub)); err != nil || resp.StatusCode != 204 {
		t.Fatalf("adding the key on GitHub: %v", err)
	}
	s.eventually("version 2 is adopted, version 1 kept as the fallback", func() bool {
		tk := s.connection(id)["transitKey"].(map[string]any)
		return fmt.Sprint(tk["versions"]) == "[1 2]" && tk["notice"] == "" && tk["pendingVersion"] == float64(0)
	})
	s.eventually("the broker signs with version 2", func() bool {
		st := s.mustREST("GET", "/v1/connections/"+id+"/signingStatus", nil)
		return st["currentVersion"] == float64(2)
	})
	// 3. The operator deletes the old key on GitHub.com, then retires it in
	// Vault.
	req, _ := http.NewRequest("PUT", s.emu+"/_emu/apps/"+appID+"/keys", strings.NewReader(newPub))
	if resp, err := s.http.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("dropping the old key on GitHub: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // traffic runs on version 2 alone before the retirement
	runbook(t, "retire", runbookEnv)
	s.eventually("the retired version leaves the record", func() bool {
		return fmt.Sprint(s.connection(id)["transitKey"].(map[string]any)["versions"]) == "[2]"
	})
	time.Sleep(500 * time.Millisecond) // and after it
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d token requests failed during the rotation; first: %s", len(failures), failures[0])
	}
	if len(issued) < 20 {
		t.Errorf("only %d tokens issued during the rotation", len(issued))
	}

	// The CLI's convenience: import straight into Vault as the operator;
	// GitHub.com does not know this key, so the registry says so.
	_, thirdPEM, _ := newKeyPEM(t)
	if err := os.WriteFile(pemFile, []byte(thirdPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(s.dir, "vault-creds")
	if out, err := s.ctl("rotate-key", "-connection", id, "-pem", pemFile, "-vault-addr", s.vault,
		"-vault-role-id-file", filepath.Join(creds, "operator-role-id"), "-vault-secret-id-file", filepath.Join(creds, "operator-secret-id")); err != nil ||
		!strings.Contains(out, "key version 3 is in Vault but GitHub.com does not accept it yet") {
		t.Errorf("rotate-key through Vault: %v %s", err, out)
	}
	if code, _ := issue(map[string]any{"exclusive": true, "permissions": map[string]string{"metadata": "read"}}); code != 200 {
		t.Errorf("version 2 stopped signing while version 3 waits for GitHub.com: %d", code)
	}

	// Vault's audit log: each signature the broker made is one sign entry
	// of the broker's AppRole; no plaintext key material, and no service
	// call with the root token.
	s.checkVaultAudit(keyName, []string{newPEM[40:100], thirdPEM[40:100]})

	// Disconnect with the operator CLI.
	if out, err := s.ctl("disconnect", "-connection", id, "-reason", "end of the test"); err != nil || !strings.Contains(out, "DISCONNECTED") {
		t.Fatalf("disconnect: %v %s", err, out)
	}
	c = s.connection(id)
	if c["state"] != "CONNECTION_STATE_DISCONNECTED" || len(c["disconnectSteps"].([]any)) != 4 {
		t.Errorf("after disconnect: %v", c)
	}
	for _, tok := range issued {
		if s.githubStatus(tok) != http.StatusUnauthorized {
			t.Errorf("a token still works at GitHub after disconnect")
			break
		}
	}
	var live map[string]int
	s.emuJSON("/_emu/tokens/"+inst, &live)
	if live["live"] != 0 {
		t.Errorf("%d live tokens after disconnect", live["live"])
	}
	if s.vaultKeyExists(keyName) {
		t.Errorf("the transit key is still in Vault")
	}
	check := s.mustREST("POST", "/v1/connections/"+id+"/features:check", map[string]any{"users": []string{"mona"},
		"features": []string{"FEATURE_UNIFIED_SEARCH", "FEATURE_DEPENDABOT_ALERTS", "FEATURE_UNIFIED_CONTRIBUTIONS"}})
	for _, r := range check["results"].([]any) {
		if r.(map[string]any)["effective"] == true {
			t.Errorf("a feature is effective after disconnect: %v", r)
		}
	}
	hist := s.mustREST("GET", "/v1/connections/"+id+"/history?pageSize=100", nil)
	if n := len(hist["events"].([]any)); n < 9 {
		t.Errorf("history has %d events", n)
	}
	if out, err := s.ctl("status"); err != nil || !strings.Contains(out, "DISCONNECTED") {
		t.Errorf("status: %v %s", err, out)
	}

	logs := s.logs()
	secrets := append([]string{newPEM[40:100], s.tokens["admin"], s.tokens["vault"], s.tokens["search-svc"]}, issued...)
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("a secret reached a log: %.10s…", sec)
		}
	}
	if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, "CONTRACT VIOLATION") {
		t.Errorf("logs hold a private key or a contract violation")
	}
}

// runbook runs a block of the key-rotation runbook the gateway serves
// (services/gateway/ui/key-rotation.html) verbatim.
func runbook(t *testing.T, name string, env []string) {
	t.Helper()
	page, err := os.ReadFile(filepath.Join(repoRoot(), "services", "gateway", "ui", "key-rotation.html"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(page), `<code data-runbook="`+name+`">`)
	block, _, ok2 := strings.Cut(rest, "</code>")
	if !ok || !ok2 {
		t.Fatalf("the runbook has no block %q", name)
	}
	cmd := exec.Command("bash", "-c", html.UnescapeString(block))
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runbook %s: %v\n%s", name, err, out)
	}
}

// checkVaultAudit reads Vault's file audit log.
func (s *system) checkVaultAudit(keyName string, secrets []string) {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.dir, "vault-audit.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, sec := range secrets {
		if strings.Contains(string(raw), sec) {
			s.t.Errorf("the audit log holds private key material")
		}
	}
	if strings.Contains(string(raw), "PRIVATE KEY") {
		s.t.Errorf("the audit log holds a PEM private key")
	}
	signs := map[string]int{}
	for _, e := range s.vaultAudit(true) {
		if e.Type != "response" || !strings.HasPrefix(e.Request.Path, "transit/") {
			continue
		}
		role := e.Auth.Metadata["role_name"]
		if role == "" && slices.Contains(e.Auth.Policies, "root") && (strings.HasPrefix(e.Request.Path, "transit/sign/") || strings.HasPrefix(e.Request.Path, "transit/decrypt/")) {
			s.t.Errorf("a root token signed or decrypted: %s", e.Request.Path)
		}
		if e.Request.Path == "transit/sign/"+keyName && e.Error == "" {
			signs[role]++
		}
	}
	brokerSigns := s.metric("broker-http", `ghconnect_broker_vault_signs_total{outcome="ok"}`)
	if signs["ghconnect-broker"] == 0 || float64(signs["ghconnect-broker"]) != brokerSigns {
		s.t.Errorf("audit log: %d signs by ghconnect-broker, broker counted %v", signs["ghconnect-broker"], brokerSigns)
	}
	for role := range signs {
		if role != "ghconnect-broker" && role != "ghconnect-registry" {
			s.t.Errorf("audit log: %d signs by %q", signs[role], role)
		}
	}
	s.t.Logf("Vault audit: signs by identity %v; broker's own count %v", signs, brokerSigns)
}

// vaultAuditEntry is what the tests read of a line of Vault's audit log.
type vaultAuditEntry struct {
	Type string `json:"type"`
	Auth struct {
		Policies []string          `json:"policies"`
		Metadata map[string]string `json:"metadata"`
	} `json:"auth"`
	Request struct {
		Path string `json:"path"`
	} `json:"request"`
	Error string `json:"error"`
}

// vaultAudit reads Vault's file audit log; strict, a line that does not
// parse fails the test (else it is skipped: Vault may be writing it).
func (s *system) vaultAudit(strict bool) []vaultAuditEntry {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.dir, "vault-audit.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []vaultAuditEntry
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e vaultAuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			if strict {
				s.t.Fatalf("audit line: %v", err)
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// metric reads one sample from a service's /metrics.
func (s *system) metric(port, sample string) float64 {
	s.t.Helper()
	resp, err := s.http.Get("http://" + s.addr(port) + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
