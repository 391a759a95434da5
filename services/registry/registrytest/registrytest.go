// Package registrytest runs a real connection registry (real store, real
// gRPC server on a loopback port, bearer-token authentication) for the
// tests of the registry and of the services that depend on it; with
// Backends it enables and disconnects against the GitHub emulator and
// vaultdev, so connections reach CONNECTED and DISCONNECTED the way they do
// in production.
package registrytest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Hostname and Version are the test registries' own, the server's
// settings every connection records.
const (
	Hostname = "ghes.example.com"
	Version  = "3.14.2"
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
	// Backends and Connector are set by StartConnected.
	Backends  *Backends
	Connector *registry.Connector
}

// Start runs a registry over the store at dsn until the test ends.
func Start(t testing.TB, dsn string, principals ...string) *Env {
	t.Helper()
	return StartWith(t, dsn, nil, principals...)
}

// StartWith is Start with a hook that changes the server's options (for
// example its connector, or its own settings) before it is built.
func StartWith(t testing.TB, dsn string, configure func(*registry.Options, *registry.Store), principals ...string) *Env {
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
	// The server's own hostname and version, as -server-hostname and
	// -server-version give them: every connection records them.
	opts := registry.Options{Issuers: []ed25519.PublicKey{issuer.Public().(ed25519.PublicKey)},
		Defaults: registry.Defaults{Hostname: Hostname, Version: Version}, WatchPollInterval: 50 * time.Millisecond}
	if configure != nil {
		configure(&opts, store)
	}
	reg, err := registry.NewServer(store, opts)
	if err != nil {
		t.Fatal(err)
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

// Backends are the real parts a registry enables and disconnects with: the
// GitHub emulator (contract mode) and vaultdev, set up with ghconnect's
// policies.
type Backends struct {
	Emu   *ghemu.TestServer
	Vault *testenv.VaultDev
	Creds *testenv.VaultCreds
	// Transit is Vault transit as the registry's own AppRole.
	Transit *vaulttransit.Client
}

// StartBackends starts the emulator until the test ends, over the test
// binary's shared vaultdev.
func StartBackends(t testing.TB) *Backends {
	t.Helper()
	// The manifest flow is scripted: GitHub.com approves at once.
	b := &Backends{Emu: ghemu.StartForTest(t, ghemu.Options{AutoApprove: true})}
	b.Vault, b.Creds = testenv.SharedVault(t)
	b.Transit = vaulttransit.New(b.Creds.Login(t, "registry"), "transit")
	return b
}

// StartBackendsOwnVault is StartBackends with a Vault of the test's own,
// for a test that reconciles: the reconciler deletes every App key in
// Vault that its registry does not hold, which on the shared Vault are
// the keys of the tests running beside it.
func StartBackendsOwnVault(t testing.TB) *Backends {
	t.Helper()
	b := &Backends{Emu: ghemu.StartForTest(t, ghemu.Options{AutoApprove: true})}
	b.Vault = testenv.Vault(t)
	b.Creds = b.Vault.Setup(t, 0, 0)
	b.Transit = vaulttransit.New(b.Creds.Login(t, "registry"), "transit")
	return b
}

// StartConnected runs a registry over dsn that enables and disconnects
// against b. Its connector has no broker and no feature gate: their
// disconnect steps are recorded as nothing to do.
func StartConnected(t testing.TB, dsn string, b *Backends, principals ...string) *Env {
	t.Helper()
	api, err := url.Parse(b.Emu.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var c *registry.Connector
	e := StartWith(t, dsn, func(o *registry.Options, st *registry.Store) {
		c = &registry.Connector{Store: st, Transit: b.Transit, GitHubAPI: api, GitHubWeb: b.Emu.URL, HTTP: http.DefaultClient}
		o.Connector = c
		o.GitHub = &registry.GitHub{API: api, HTTP: http.DefaultClient}
	}, principals...)
	e.Backends, e.Connector = b, c
	return e
}

var (
	appKeyOnce sync.Once
	appKey     *rsa.PrivateKey
)

// AppKey is an RSA key made once per test binary, for the Apps of tests
// that need no key of their own.
func AppKey() *rsa.PrivateKey {
	appKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		appKey = k
	})
	return appKey
}

// PEM is k as GitHub.com hands App keys out: PKCS#1.
func PEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// ConnectApp connects the PENDING connection id the way an operator
// connects an App that already exists: spec's App is made on the emulator
// with key (nil: AppKey), installed on its owner, and its key and client
// secret handed to ConnectExistingApp.
func (e *Env) ConnectApp(t testing.TB, id string, spec ghemu.AppSpec, key *rsa.PrivateKey) *registryv1.Connection {
	t.Helper()
	return e.ConnectAppOn(t, id, spec, key, nil)
}

// ConnectAppOn is ConnectApp with the App installed on the repositories
// named (nil: all of the account's).
func (e *Env) ConnectAppOn(t testing.TB, id string, spec ghemu.AppSpec, key *rsa.PrivateKey, repos []string) *registryv1.Connection {
	t.Helper()
	if key == nil {
		key = AppKey()
	}
	if spec.Slug == "" {
		spec.Slug = "app-" + testenv.RandomHex(4)
	}
	appID, err := e.Backends.Emu.AddApp(spec, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Backends.Emu.Install(appID, spec.Owner, nil, repos); err != nil {
		t.Fatal(err)
	}
	app, _ := e.Backends.Emu.App(appID)
	resp, err := e.Client.ConnectExistingApp(e.Ctx(t, "alice"), &registryv1.ConnectExistingAppRequest{Id: id, AppId: appID, PrivateKeyPem: string(PEM(key)), ClientSecret: app.ClientSecret})
	if err != nil {
		t.Fatalf("connecting %s: %v", id, err)
	}
	return resp.Connection
}

// CreateApp takes the PENDING connection id through the App manifest flow
// as the administrator's browser does: the manifest is posted to
// GitHub.com, which creates the App and sends the browser back with a
// code that CompleteAppManifest converts. The connection is left PENDING
// with its App, waiting for the installation at the URL returned.
func (e *Env) CreateApp(t testing.TB, ctx context.Context, id string) (installURL string) {
	t.Helper()
	start, err := e.Client.StartAppManifest(ctx, &registryv1.StartAppManifestRequest{Id: id, CallbackUrl: "https://ghes.example.com/connect/callback"})
	if err != nil {
		t.Fatal(err)
	}
	q := Redirect(t)(Browser().PostForm(start.PostUrl, url.Values{"manifest": {start.Manifest}}))
	done, err := e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")})
	if err != nil {
		t.Fatal(err)
	}
	return done.InstallUrl
}

// Install opens an App's install page as the administrator's browser
// does and returns what GitHub.com sends the browser on to the App's setup
// URL with: the installation id and the state.
func (b *Backends) Install(t testing.TB, installURL string) (installationID int64, state string) {
	t.Helper()
	q := Redirect(t)(Browser().Get(installURL))
	installationID, err := strconv.ParseInt(q.Get("installation_id"), 10, 64)
	if err != nil {
		t.Fatalf("setup redirect without an installation: %v", q)
	}
	return installationID, q.Get("state")
}

// Browser is an HTTP client that takes redirects one at a time, for a test
// to look at each.
func Browser() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Redirect takes an answer that must be a redirect (302) and returns the
// query of where it sends the browser.
func Redirect(t testing.TB) func(*http.Response, error) url.Values {
	return func(resp *http.Response, err error) url.Values {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("browser got %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query()
	}
}
