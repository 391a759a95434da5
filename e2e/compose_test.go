package e2e

import (
	"os"
	"testing"

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
	// The broker wants a client certificate: demo-client's, from the
	// stack's CA.
	s := deployedSystem(t, gw, mustEnv(t, "GHCONNECT_COMPOSE_GITHUB"), mustEnv(t, "GHCONNECT_COMPOSE_VAULT"),
		mustEnv(t, "GHCONNECT_COMPOSE_SECRETS"), map[string]string{"admin": "admin-token", "demo-client": "demo-client-token", "vault": "vault-token"})

	id, keyName, tok := s.smokeEnable(mustEnv(t, "GHCONNECT_COMPOSE_BROKER"), "demo-client")
	if out := os.Getenv("GHCONNECT_COMPOSE_ISSUED"); out != "" {
		// The script checks that no container logged it.
		if err := os.WriteFile(out, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.smokeSearch(id, "demo-client")
	s.smokeDisconnect(id, keyName, tok, "compose smoke test")
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
