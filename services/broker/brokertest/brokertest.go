// Package brokertest runs a real token broker for tests: vaultdev (a
// process), the GitHub emulator in contract mode, a registry on SQLite, and
// the broker on a loopback gRPC port, with a connected GitHub App whose key
// lives only in Vault.
package brokertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/registrywatch"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/broker"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

var (
	keysOnce sync.Once
	rsaKeys  []*rsa.PrivateKey
)

// AppKey returns one of a few RSA keys generated once per test binary.
func AppKey(i int) *rsa.PrivateKey {
	keysOnce.Do(func() {
		for n := 0; n < 3; n++ {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

// PEM is k as GitHub issues App keys: PKCS#1.
func PEM(k *rsa.PrivateKey) []byte { return registrytest.PEM(k) }

// LockedBuffer collects every log line of a test.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Env is a running broker and everything behind it.
type Env struct {
	// Metrics is the broker's /metrics registry.
	Metrics *prometheus.Registry
	Emu     *ghemu.TestServer
	Vault   *testenv.VaultDev
	Creds   *testenv.VaultCreds
	// BrokerVault is the broker's own AppRole login.
	BrokerVault *vaultauth.Session
	Transit     *vaulttransit.Client
	Reg         *registrytest.Env
	Broker      *broker.Broker
	Tokens      map[string]string
	Conn        *grpc.ClientConn
	Client      brokerv1.TokenBrokerServiceClient
	Logs        *LockedBuffer
	AppID       int64
	InstID      int64
	ConnID      string
	KeyName     string
	// DB is the broker's database.
	DB *sqldb.DB
	// Addr is the broker's gRPC address.
	Addr string

	tokensFile string
	// fleet lists every broker of the fleet (StartFleet), lis is this
	// one's listener, made before the list.
	fleet string
	lis   net.Listener
}

// Policy is the callers' policy the harness starts the broker with.
var Policy = &broker.Policy{Callers: map[string]*broker.CallerPolicy{
	"search-svc": {Connections: []string{"*"}, Permissions: map[string]string{"contents": "read", "issues": "read", "metadata": "read"}, Repositories: []string{"*"}, UserTokens: true},
	"deploy-svc": {Connections: []string{"*"}, Permissions: map[string]string{"contents": "write", "metadata": "read"}, Repositories: []string{"alpha"}, Exclusive: true},
	"ops":        {Connections: []string{"*"}, Permissions: map[string]string{"metadata": "read"}, Repositories: []string{"*"}, Exclusive: true, Admin: true},
	"elsewhere":  {Connections: []string{"some-other-connection"}, Permissions: map[string]string{"metadata": "read"}, Repositories: []string{"*"}},
}}

// Options adjust the harness.
type Options struct {
	Emu   ghemu.Options
	Tweak func(*broker.Options)
	// VaultTokenTTL and VaultMaxTTL bound the services' Vault logins (0:
	// the setup step's defaults). Either set starts the test's own Vault.
	VaultTokenTTL, VaultMaxTTL time.Duration
	// OwnVault starts a vaultdev for this test alone, for a test that
	// stops, seals or restarts it; the others share one per test binary.
	OwnVault bool
	// quiet logs at info to nowhere (benchmarks).
	Quiet bool
	// Extra registers more services on the broker's gRPC server, with
	// the rules that authorize them.
	Extra func(*grpc.Server, *auth.Rules)
	// Database is where the broker keeps users' grants (empty: a new
	// SQLite file).
	Database string
	// AppPermissions are the connection App's permissions (nil: contents
	// and issues write, metadata read).
	AppPermissions map[string]string
	// Enterprise, if set, connects to the enterprise of that slug (octo-org
	// one of its organizations; the App installed on the enterprise)
	// instead of the organization octo-org.
	Enterprise string
}

// UserCallback is the server's user callback, one of the harness App's
// callback URLs.
const UserCallback = "https://ghes.example.com/connect/user/callback"

// Start brings up the real parts: vaultdev (a process), the GitHub
// emulator in contract mode, the registry on SQLite, and the broker on a
// loopback gRPC port, with an App whose key lives only in Vault.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	return startInto(t, o, &Env{})
}

func startInto(t testing.TB, o Options, e *Env) *Env {
	t.Helper()
	e.Logs = &LockedBuffer{}
	e.Emu = ghemu.StartForTest(t, o.Emu)
	if o.OwnVault || o.VaultTokenTTL != 0 || o.VaultMaxTTL != 0 {
		e.Vault = testenv.Vault(t)
		e.Creds = e.Vault.Setup(t, o.VaultTokenTTL, o.VaultMaxTTL)
	} else {
		e.Vault, e.Creds = testenv.SharedVault(t)
	}
	// Tests import key versions as the registry does, with its AppRole.
	e.Transit = vaulttransit.New(e.Creds.Login(t, "registry"), "transit")
	var err error
	e.Reg = registrytest.StartConnected(t, testenv.SQLite(t), &registrytest.Backends{Emu: e.Emu, Vault: e.Vault, Creds: e.Creds, Transit: e.Transit}, "broker")

	for _, r := range []string{"alpha", "beta", "gamma"} {
		e.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: r, Private: r != "alpha"})
	}
	account := &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org"}
	if o.Enterprise != "" {
		e.Emu.AddOrgToEnterprise("octo-org", o.Enterprise)
		account = &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE, Login: o.Enterprise}
	}
	c, err := e.Reg.Client.CreateConnection(e.Reg.Ctx(t, "alice"), &registryv1.CreateConnectionRequest{
		RequestId: "r-" + testenv.RandomHex(4), License: e.Reg.License, Account: account})
	if err != nil {
		t.Fatal(err)
	}
	// The operator connects the App that exists on GitHub.com; the
	// registry imports its key into Vault transit.
	perms := o.AppPermissions
	if perms == nil {
		perms = map[string]string{"contents": "write", "issues": "write", "metadata": "read"}
	}
	conn := e.Reg.ConnectApp(t, c.Connection.Id, ghemu.AppSpec{Slug: "ghconnect", Owner: account.GetLogin(), Permissions: perms, CallbackURLs: []string{UserCallback}}, AppKey(0))
	e.ConnID, e.AppID, e.InstID, e.KeyName = conn.Id, conn.App.GetAppId(), conn.InstallationId, conn.TransitKey.GetName()

	dsn := o.Database
	if dsn == "" {
		dsn = testenv.SQLite(t)
	}
	db, err := broker.OpenDatabase(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.DB = db
	e.BrokerVault = e.Creds.Login(t, "broker")
	e.serve(t, o)
	return e
}

// StartFleet starts n brokers of one fleet (each connection owned by
// one, which the others ask), as Start and Replica do, on one database,
// Vault, registry and GitHub.com.
func StartFleet(t testing.TB, n int, o Options) []*Env {
	t.Helper()
	var lis []net.Listener
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = append(lis, l)
		addrs = append(addrs, l.Addr().String())
	}
	e := &Env{fleet: strings.Join(addrs, ","), lis: lis[0]}
	e = startInto(t, o, e)
	out := []*Env{e}
	for _, l := range lis[1:] {
		r := *e
		r.Logs, r.lis = &LockedBuffer{}, l
		r.serve(t, o)
		out = append(out, &r)
	}
	return out
}

// serve runs a broker over e's Vault login, database and registry on a
// loopback port, and waits until it sees e's connection CONNECTED.
func (e *Env) serve(t testing.TB, o Options) {
	t.Helper()
	logger, _ := logging.NewWithSink(logging.Options{Level: "debug"}, zapcore.AddSync(e.Logs))
	if o.Quiet {
		logger, _ = logging.NewWithSink(logging.Options{Level: "info"}, zapcore.AddSync(io.Discard))
	}
	if e.tokensFile == "" {
		// Replicas share the callers' tokens, "broker" the fleet's own.
		e.tokensFile, e.Tokens = testenv.Tokens(t, "search-svc", "deploy-svc", "ops", "elsewhere", "stranger", "registry", "broker")
	}
	authn, err := auth.LoadTokenFile(e.tokensFile)
	if err != nil {
		t.Fatal(err)
	}
	rules := auth.DefaultRules()
	srv := server.New(server.Options{Logger: logger, Guard: &auth.Guard{Authn: authn, Rules: rules}, ShutdownTimeout: time.Second, Audited: broker.AuditedMethods, RequestChecks: broker.RequestChecks})
	e.Metrics = srv.Registry
	opts := broker.Options{Vault: e.BrokerVault, GitHubURL: e.Emu.URL, GitHubWebURL: e.Emu.URL, Database: e.DB, Policy: Policy, Registerer: srv.Registry, RefreshEvery: time.Hour}
	if e.fleet != "" {
		d, err := dial.New(dial.Flags{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		tokenFile := filepath.Join(t.TempDir(), "broker-token")
		if err := os.WriteFile(tokenFile, []byte(e.Tokens["broker"]), 0o600); err != nil {
			t.Fatal(err)
		}
		opts.Fleet, opts.Dialer = broker.FleetOptions{Peers: e.fleet, Self: e.lis.Addr().String(), TokenFile: tokenFile}, d
	}
	if o.Tweak != nil {
		o.Tweak(&opts)
	}
	if err := opts.Policy.GrantRoles(rules); err != nil {
		t.Fatal(err)
	}
	if e.Broker, err = broker.New(opts); err != nil {
		t.Fatal(err)
	}
	broker.NewServer(e.Broker).Register(srv)
	if o.Extra != nil {
		o.Extra(srv.GRPC, rules)
	}
	lis := e.lis
	if lis == nil {
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	e.Addr = lis.Addr().String()
	bg, cancel := context.WithCancel(logging.WithLogger(context.Background(), logger))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); srv.Serve(bg, lis, nil) }()
	f := &registrywatch.Follower{Client: e.Reg.Client, Token: e.Reg.Tokens["broker"], After: e.Broker.RegistryRevision, Apply: e.Broker.ApplyRegistryEvent}
	go func() { defer wg.Done(); f.Run(bg) }()
	go func() { defer wg.Done(); e.Broker.Run(bg) }()
	if e.Conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	e.Client = brokerv1.NewTokenBrokerServiceClient(e.Conn)
	t.Cleanup(func() { e.Conn.Close(); cancel(); wg.Wait() })
	testenv.Eventually(t, 10*time.Second, "the broker sees the connection CONNECTED", func() bool { return e.Broker.Connected(e.ConnID) })
}

// Replica runs another broker beside e's, on the same database, Vault,
// registry and GitHub.com, as a second replica does in production.
func (e *Env) Replica(t testing.TB) *Env {
	t.Helper()
	r := *e
	r.Logs, r.lis, r.fleet = &LockedBuffer{}, nil, ""
	r.serve(t, Options{})
	return &r
}

// Ctx is a context authenticated as caller who, cancelled when the test
// ends.
func (e *Env) Ctx(t testing.TB, who string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.Tokens[who])
}

// Issue asks for a token as caller who (on the harness's connection when
// the request names none).
func (e *Env) Issue(t testing.TB, who string, req *brokerv1.IssueTokenRequest) (*brokerv1.IssueTokenResponse, error) {
	if req.ConnectionId == "" {
		req.ConnectionId = e.ConnID
	}
	return e.Client.IssueToken(e.Ctx(t, who), req)
}

// AccessTokens is the emulator's route of token exchanges.
const AccessTokens = "POST /app/installations/{installation_id}/access_tokens" //nolint:gosec // G101: a route, not a credential
