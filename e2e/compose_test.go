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
	"github.com/ghconnect/ghconnect/pkg/dial"
	"google.golang.org/grpc"
)

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
	// Every hop is mutual TLS: the gateway serves HTTPS, the broker wants a
	// client certificate (demo-client's, from the stack's CA).
	s.pki = devca.Files{Dir: filepath.Join(secrets, "tls")}
	s.trustPKI()

	id := s.create()
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
	// client certificate; the broker learns of the connection through the
	// registry's Watch.
	broker := brokerv1.NewTokenBrokerServiceClient(s.mustDial(env("GHCONNECT_COMPOSE_BROKER"), "demo-client", ""))
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
	if _, err := brokerv1.NewTokenBrokerServiceClient(s.mustDial(env("GHCONNECT_COMPOSE_BROKER"), "demo-client", bad)).
		IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id}); err == nil {
		t.Errorf("the broker issued a token to a caller with a wrong token")
	}
	if _, err := brokerv1.NewTokenBrokerServiceClient(s.mustDial(env("GHCONNECT_COMPOSE_BROKER"), "", "")).
		IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: id}); err == nil {
		t.Errorf("the broker issued a token to a caller without a certificate")
	}
	if out := os.Getenv("GHCONNECT_COMPOSE_ISSUED"); out != "" {
		// The script checks that no container logged it.
		if err := os.WriteFile(out, []byte(tok.GetToken()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
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
	// Search is for the server's own services: demo-client stands for one.
	code, res := s.restAs("demo-client", "POST", "/v1/connections/"+id+"/search", map[string]any{"user": "mona", "query": "unified", "kind": "SEARCH_KIND_CODE"})
	if code != http.StatusOK {
		t.Fatalf("search as demo-client: %d %v", code, res)
	}
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

// mustDial dials addr with the stack's CA, as principal (its
// certificate; "" for none) and with the bearer token in tokenFile (if
// any).
func (s *system) mustDial(addr, principal, tokenFile string) *grpc.ClientConn {
	f := dial.Flags{CA: s.pki.CA()}
	if principal != "" {
		f.Cert, f.Key = s.pki.Cert(principal), s.pki.Key(principal)
	}
	d, err := dial.New(f)
	if err != nil {
		s.t.Fatal(err)
	}
	conn, err := d.Dial(addr, tokenFile)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close(); d.Close() })
	return conn
}
