// Package registrytest runs a real connection registry (real store, real
// gRPC server on a loopback port, bearer-token authentication) for the
// tests of the registry and of the services that depend on it.
package registrytest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"testing"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Env is a running registry.
type Env struct {
	Addr   string
	Conn   *grpc.ClientConn
	Client registryv1.ConnectionRegistryServiceClient
	Store  *registry.Store
	// Tokens maps each principal ("alice", "bob", and any extra asked for)
	// to its bearer token.
	Tokens map[string]string
	Issuer ed25519.PrivateKey
	// License is a valid license signed by Issuer.
	License string
}

// Start runs a registry over the store at dsn until the test ends.
func Start(t testing.TB, dsn string, principals ...string) *Env {
	t.Helper()
	return StartWith(t, dsn, nil, principals...)
}

// StartWith is Start with a hook that configures the server (for example
// its connector) before it serves.
func StartWith(t testing.TB, dsn string, configure func(*registry.Server, *registry.Store), principals ...string) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := registry.OpenStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tokensFile, tokens := testenv.Tokens(t, append([]string{"alice", "bob"}, principals...)...)
	authn, err := auth.LoadTokenFile(tokensFile)
	if err != nil {
		t.Fatal(err)
	}
	_, issuer, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// alice and bob are admins; the other principals keep their default
	// roles (the services by their names).
	rules := auth.DefaultRules()
	if err := rules.Grant("alice", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := rules.Grant("bob", "admin"); err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Guard: &auth.Guard{Authn: authn, Rules: rules}, ShutdownTimeout: time.Second})
	reg := registry.NewServer(store, []ed25519.PublicKey{issuer.Public().(ed25519.PublicKey)})
	reg.SetWatchPollInterval(50 * time.Millisecond)
	if configure != nil {
		configure(reg, store)
	}
	reg.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, nil) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry serve: %v", err)
		}
		store.Close()
	})
	lic, err := registry.MintLicense(issuer, "Octo Corp", 500, time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{
		Addr:    lis.Addr().String(),
		Conn:    conn,
		Client:  registryv1.NewConnectionRegistryServiceClient(conn),
		Store:   store,
		Tokens:  tokens,
		Issuer:  issuer,
		License: lic,
	}
}

// Ctx returns a context, cancelled when the test ends, authenticated as
// principal.
func (e *Env) Ctx(t testing.TB, principal string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.Tokens[principal])
}
