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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// bearer is a gRPC per-call bearer token over plaintext (the compose
// stack has no TLS yet).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// TestCompose is the smoke test of the containers: docker-compose.yml with
// the demo profile, as `make compose-test` (deploy/compose/test.sh) brings
// it up. It enables a connection through the gateway with the App-manifest
// flow against the emulator, gets a token from the broker over gRPC as an
// internal caller, switches unified search on and searches, and
// disconnects.
func TestCompose(t *testing.T) {
	gw := os.Getenv("GHCONNECT_COMPOSE_GATEWAY")
	if gw == "" {
		t.Skip("GHCONNECT_COMPOSE_GATEWAY is not set; make compose-test runs this against the compose stack")
	}
	env := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("%s is not set", name)
		}
		return v
	}
	secrets := env("GHCONNECT_COMPOSE_SECRETS")
	s := &system{t: t, dir: t.TempDir(), tokens: map[string]string{}, gw: gw,
		emu: env("GHCONNECT_COMPOSE_GITHUB"), vault: env("GHCONNECT_COMPOSE_VAULT")}
	for _, p := range []string{"admin", "demo-client", "vault"} {
		s.tokens[p] = strings.TrimSpace(readFile(t, filepath.Join(secrets, p+"-token")))
	}
	s.file("license", strings.TrimSpace(readFile(t, filepath.Join(secrets, "dev.ghl"))))

	id := s.create(fmt.Sprintf("ghes-%s.example.com", randomToken()[:8]))
	s.enable(id)
	c := s.connection(id)
	if c["state"] != "CONNECTION_STATE_CONNECTED" {
		t.Fatalf("after the manifest flow: %v", c)
	}
	keyName := c["transitKey"].(map[string]any)["name"].(string)
	if !s.vaultKeyExists(keyName) {
		t.Fatalf("no App key %s in Vault", keyName)
	}

	// An internal service asks the broker for a token over gRPC with its
	// bearer token; the broker learns of the connection through the
	// registry's Watch.
	broker := brokerv1.NewTokenBrokerServiceClient(mustDial(t, env("GHCONNECT_COMPOSE_BROKER"), s.tokens["demo-client"]))
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
	// A caller without a policy entry gets nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := brokerv1.NewTokenBrokerServiceClient(mustDial(t, env("GHCONNECT_COMPOSE_BROKER"), "not-a-token")).
		IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id}); err == nil {
		t.Errorf("the broker issued a token to an unknown caller")
	}
	if out := os.Getenv("GHCONNECT_COMPOSE_ISSUED"); out != "" {
		// The script checks that no container logged it.
		os.WriteFile(out, []byte(tok.GetToken()+"\n"), 0o600)
	}

	// The feature gate: unified search on, then a search through the
	// broker's read-only tokens at the emulator.
	// The feature gate learns that the connection is CONNECTED through the
	// registry's Watch, so it may refuse for a moment.
	s.eventually("the feature gate switches unified search on", func() bool {
		code, _ := s.rest("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []any{map[string]any{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": true}}})
		return code == http.StatusOK
	})
	check := s.mustREST("POST", "/v1/connections/"+id+"/features:check", map[string]any{"users": []string{"mona"}, "features": []string{"FEATURE_UNIFIED_SEARCH"}})
	if results, _ := check["results"].([]any); len(results) != 1 || results[0].(map[string]any)["effective"] != true {
		t.Errorf("unified search is not effective: %v", check)
	}
	res := s.mustREST("POST", "/v1/connections/"+id+"/search", map[string]any{"user": "mona", "query": "unified", "kind": "SEARCH_KIND_CODE"})
	if results, _ := res["results"].([]any); len(results) == 0 || !strings.Contains(fmt.Sprint(results), "octo-org/hello-world") {
		t.Errorf("unified search: %v", res)
	}

	// Disconnect: tokens revoked at GitHub, the key gone from Vault.
	out := s.mustREST("POST", "/v1/connections/"+id+":disconnect", map[string]any{"reason": "compose smoke test"})
	if st := out["connection"].(map[string]any)["state"]; st != "CONNECTION_STATE_DISCONNECTED" {
		t.Fatalf("after disconnect: %v", out)
	}
	if st := s.githubStatus(tok.GetToken()); st != http.StatusUnauthorized {
		t.Errorf("the broker's token still works at GitHub after disconnect: %d", st)
	}
	if s.vaultKeyExists(keyName) {
		t.Errorf("the transit key is still in Vault")
	}
	t.Logf("connection %s: enabled, token issued, unified search answered, disconnected", id)
}

func mustDial(t *testing.T, addr, token string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
