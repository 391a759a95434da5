package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/devca"
)

// The smoke test of a deployed system, in three steps shared by the
// compose stack (TestCompose) and the Kubernetes cluster (TestKubernetes).
// The system's gateway, emulator and Vault are s.gw, s.emu and s.vault;
// caller is an internal service with a certificate and a bearer token
// (s.tokens) that the broker's policy lets ask for contents:read, and that
// may search (the role feature-client).

// mustEnv is the environment variable's value; unset fails the test.
func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set", name)
	}
	return v
}

// deployedSystem is a system started by someone else (compose,
// Kubernetes) at these URLs. secrets holds the tokens (tokenFiles: a file
// per principal), the license (dev.ghl) and the PKI (tls/): every hop is
// mutual TLS, the gateway serves HTTPS.
func deployedSystem(t *testing.T, gw, emu, vault, secrets string, tokenFiles map[string]string) *system {
	s := &system{t: t, dir: t.TempDir(), tokens: map[string]string{}, gw: gw, emu: emu, vault: vault}
	for p, f := range tokenFiles {
		s.tokens[p] = strings.TrimSpace(readFile(t, filepath.Join(secrets, f)))
	}
	s.file("license", strings.TrimSpace(readFile(t, filepath.Join(secrets, "dev.ghl"))))
	s.pki = devca.Files{Dir: filepath.Join(secrets, "tls")}
	s.trustPKI()
	return s
}

// smokeEnable enables a connection through the gateway with the
// App-manifest flow against the emulator, checks its App key is in Vault,
// and gets a token from the broker at brokerAddr over gRPC as caller (the
// broker learns of the connection through the registry's Watch). A wrong
// token and a missing certificate get nothing. It returns the connection,
// its transit key's name and the token.
func (s *system) smokeEnable(brokerAddr, caller string) (id, keyName, token string) {
	t := s.t
	t.Helper()
	id = s.create()
	s.enable(id)
	c := s.connection(id)
	if c["state"] != "CONNECTION_STATE_CONNECTED" {
		t.Fatalf("after the manifest flow: %v", c)
	}
	keyName = c["transitKey"].(map[string]any)["name"].(string)
	if !s.vaultKeyExists(keyName) {
		t.Fatalf("no App key %s in Vault", keyName)
	}

	broker := brokerv1.NewTokenBrokerServiceClient(s.mustDial(brokerAddr, caller, ""))
	var tok *brokerv1.IssueTokenResponse
	var lastErr error
	s.eventually("the broker issues a token", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tok, lastErr = broker.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id,
			Repositories: []string{"hello-world"}, Permissions: map[string]string{"contents": "read"}})
		return lastErr == nil
	})
	if tok.GetPermissions()["contents"] != "read" || len(tok.GetRepositories()) != 1 || tok.GetRepositories()[0].GetFullName() != "octo-org/hello-world" {
		t.Errorf("the token grants %v on %v", tok.GetPermissions(), tok.GetRepositories())
	}
	if st := s.githubStatus(tok.GetToken()); st != http.StatusOK {
		t.Fatalf("the broker's token does not work at GitHub: %d", st)
	}
	// A caller with a certificate but a wrong token, and one without a
	// certificate, get nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := filepath.Join(s.dir, "bad-token")
	if err := os.WriteFile(bad, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := brokerv1.NewTokenBrokerServiceClient(s.mustDial(brokerAddr, caller, bad)).
		IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id}); err == nil {
		t.Errorf("the broker issued a token to a caller with a wrong token")
	}
	if _, err := brokerv1.NewTokenBrokerServiceClient(s.mustDial(brokerAddr, "", "")).
		IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id}); err == nil {
		t.Errorf("the broker issued a token to a caller without a certificate")
	}
	return id, keyName, tok.GetToken()
}

// smokeSearch switches unified search on for the connection and searches
// as caller: the feature gate answers through the broker's read-only
// tokens at the emulator. The feature gate learns that the connection is
// CONNECTED through the registry's Watch, so it may refuse for a moment.
func (s *system) smokeSearch(id, caller string) {
	t := s.t
	t.Helper()
	s.eventually("the feature gate switches unified search on", func() bool {
		code, _ := s.rest("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []any{map[string]any{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": true}}})
		return code == http.StatusOK
	})
	// Every feature-gate replica learns of the switch a moment after the
	// one that made it (in the Kubernetes test there are two), so the
	// check and the search are awaited, then must hold.
	var check map[string]any
	effective := func() bool {
		check = s.mustREST("POST", "/v1/connections/"+id+"/features:check", map[string]any{"users": []string{"mona"}, "features": []string{"FEATURE_UNIFIED_SEARCH"}})
		results, _ := check["results"].([]any)
		return len(results) == 1 && results[0].(map[string]any)["effective"] == true
	}
	var code int
	var res map[string]any
	search := func() bool {
		code, res = s.restAs(caller, "POST", "/v1/connections/"+id+"/search", searchRequest)
		return code == http.StatusOK && searchFound(res)
	}
	switched := time.Now()
	s.eventually("unified search is effective for mona on every feature gate", func() bool {
		for range 4 { // round robin reaches each replica
			if !effective() || !search() {
				return false
			}
		}
		return true
	})
	t.Logf("unified search effective and answering through every feature gate %v after the switch", time.Since(switched).Round(time.Millisecond))
	if !effective() {
		t.Errorf("unified search is not effective: %v", check)
	}
	if !search() {
		t.Errorf("search as %s: %d %v", caller, code, res)
	}
}

// searchRequest is a code search for mona that finds octo-org/hello-world.
var searchRequest = map[string]any{"user": "mona", "query": "unified", "kind": "SEARCH_KIND_CODE"}

// searchFound says whether a search answer holds octo-org/hello-world.
func searchFound(res map[string]any) bool {
	results, _ := res["results"].([]any)
	return len(results) > 0 && strings.Contains(fmt.Sprint(results), "octo-org/hello-world")
}

// smokeDisconnect disconnects: the token is revoked at GitHub and the key
// is gone from Vault.
func (s *system) smokeDisconnect(id, keyName, token, reason string) {
	t := s.t
	t.Helper()
	out := s.mustREST("POST", "/v1/connections/"+id+":disconnect", map[string]any{"reason": reason})
	if st := out["connection"].(map[string]any)["state"]; st != "CONNECTION_STATE_DISCONNECTED" {
		t.Fatalf("after disconnect: %v", out)
	}
	if st := s.githubStatus(token); st != http.StatusUnauthorized {
		t.Errorf("the broker's token still works at GitHub after disconnect: %d", st)
	}
	if s.vaultKeyExists(keyName) {
		t.Errorf("the transit key is still in Vault")
	}
	t.Logf("connection %s: enabled, token issued, unified search answered, disconnected", id)
}
