package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// githubStatus uses a token at the emulator.
func (s *system) githubStatus(token string) int {
	req, _ := http.NewRequest("GET", s.emu+"/installation/repositories", nil)
	req.Header.Set("Authorization", "token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEndToEnd(t *testing.T) {
	s := startSystem(t)
	id := s.create("ghes.example.com")
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
	res := s.mustREST("POST", "/v1/connections/"+id+"/search", map[string]any{"user": "mona", "query": "unified", "kind": "SEARCH_KIND_CODE"})
	if results, _ := res["results"].([]any); len(results) == 0 || !strings.Contains(fmt.Sprint(results), "octo-org/hello-world") {
		t.Errorf("unified search: %v", res)
	}

	// Key rotation while callers keep asking for fresh (exclusive) tokens.
	stop := make(chan struct{})
	var failures []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, out := issue(map[string]any{"exclusive": true, "permissions": map[string]string{"metadata": "read"}}); code != 200 {
				mu.Lock()
				failures = append(failures, fmt.Sprint(code, out))
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, newPEM, newPub := newKeyPEM(t)
	pemFile := filepath.Join(s.dir, "new-key.pem")
	os.WriteFile(pemFile, []byte(newPEM), 0o600)
	if out, err := s.ctl("rotate-key", "-connection", id, "-pem", pemFile); err == nil || !strings.Contains(out, "does not accept the new key") {
		t.Errorf("rotation before GitHub knows the key: %v %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	if resp, err := http.Post(s.emu+"/_emu/apps/"+appID+"/keys", "text/plain", strings.NewReader(newPub)); err != nil || resp.StatusCode != 204 {
		t.Fatalf("adding the key on GitHub: %v", err)
	}
	if out, err := s.ctl("rotate-key", "-connection", id, "-pem", pemFile); err != nil {
		t.Fatalf("rotate: %v %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	req, _ := http.NewRequest("PUT", s.emu+"/_emu/apps/"+appID+"/keys", strings.NewReader(newPub))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("dropping the old key on GitHub: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d token requests failed during the rotation; first: %s", len(failures), failures[0])
	}
	if len(issued) < 10 {
		t.Errorf("only %d tokens issued during the rotation", len(issued))
	}

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
