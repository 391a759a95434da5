package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/registrywatch"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

var (
	keysOnce sync.Once
	rsaKeys  []*rsa.PrivateKey
)

// appKey returns one of a few RSA keys generated once per test binary.
func appKey(i int) *rsa.PrivateKey {
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

func pemOf(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// lockedBuffer collects every log line of a test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	emu     *ghemu.TestServer
	vault   *testenv.VaultDev
	transit *vaulttransit.Client
	reg     *registrytest.Env
	broker  *Broker
	tokens  map[string]string
	conn    *grpc.ClientConn
	client  brokerv1.TokenBrokerServiceClient
	logs    *lockedBuffer
	appID   int64
	instID  int64
	connID  string
	keyName string
}

var testPolicy = &Policy{Callers: map[string]*CallerPolicy{
	"search-svc": {Connections: []string{"*"}, Permissions: map[string]string{"contents": "read", "issues": "read", "metadata": "read"}, Repositories: []string{"*"}},
	"deploy-svc": {Connections: []string{"*"}, Permissions: map[string]string{"contents": "write", "metadata": "read"}, Repositories: []string{"alpha"}, Exclusive: true},
	"ops":        {Connections: []string{"*"}, Permissions: map[string]string{"metadata": "read"}, Repositories: []string{"*"}, Exclusive: true, Admin: true},
	"elsewhere":  {Connections: []string{"some-other-connection"}, Permissions: map[string]string{"metadata": "read"}, Repositories: []string{"*"}},
}}

type envOpts struct {
	emu   ghemu.Options
	tweak func(*Options)
	// quiet logs at info to nowhere (benchmarks).
	quiet bool
	// extra registers more services on the broker's gRPC server.
	extra func(*grpc.Server)
}

// start brings up the real parts: vaultdev (a process), the GitHub
// emulator in contract mode, the registry on SQLite, and the broker on a
// loopback gRPC port, with an App whose key lives only in Vault.
func start(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{logs: &lockedBuffer{}}
	e.emu = ghemu.StartForTest(t, o.emu)
	e.vault = testenv.Vault(t)
	var err error
	if e.transit, err = vaulttransit.New(e.vault.Addr, e.vault.Token, "transit"); err != nil {
		t.Fatal(err)
	}
	e.reg = registrytest.Start(t, testenv.SQLite(t), "broker")
	ctx := context.Background()

	for _, r := range []string{"alpha", "beta", "gamma"} {
		e.emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: r, Private: r != "alpha"})
	}
	perms := map[string]string{"contents": "write", "issues": "write", "metadata": "read"}
	if e.appID, err = e.emu.AddApp(ghemu.AppSpec{Slug: "ghconnect", Owner: "octo-org", Permissions: perms}, &appKey(0).PublicKey); err != nil {
		t.Fatal(err)
	}
	inst, err := e.emu.Install(e.appID, "octo-org", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.instID = inst.ID
	e.keyName = "app-" + strconv.FormatInt(e.appID, 10)
	if _, err := e.transit.ImportKey(ctx, e.keyName, pemOf(appKey(0))); err != nil {
		t.Fatal(err)
	}
	rctx := e.reg.Ctx(t, "alice")
	c, err := e.reg.Client.CreateConnection(rctx, &registryv1.CreateConnectionRequest{
		RequestId: "r-" + testenv.RandomHex(4), ServerHostname: "ghes.example.com", ServerVersion: "3.14.2", License: e.reg.License,
		Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org", Id: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e.connID = c.Connection.Id
	if _, err := e.reg.Client.RegisterApp(rctx, &registryv1.RegisterAppRequest{Id: e.connID,
		App:        &registryv1.GitHubApp{AppId: e.appID, Slug: "ghconnect", Permissions: perms},
		TransitKey: &registryv1.TransitKey{Mount: "transit", Name: e.keyName, Versions: []int32{1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Client.MarkConnected(rctx, &registryv1.MarkConnectedRequest{Id: e.connID, InstallationId: e.instID}); err != nil {
		t.Fatal(err)
	}

	logger, _ := logging.NewWithSink(logging.Options{Level: "debug"}, zapcore.AddSync(e.logs))
	if o.quiet {
		logger, _ = logging.NewWithSink(logging.Options{Level: "info"}, zapcore.AddSync(io.Discard))
	}
	tokensFile, tokens := testenv.Tokens(t, "search-svc", "deploy-svc", "ops", "elsewhere", "stranger")
	e.tokens = tokens
	authn, err := auth.LoadTokenFile(tokensFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Logger: logger, Auth: authn, ShutdownTimeout: time.Second, Audited: AuditedMethods})
	opts := Options{VaultAddr: e.vault.Addr, VaultToken: e.vault.Token, GitHubURL: e.emu.URL, Policy: testPolicy, Registerer: srv.Registry, RefreshEvery: time.Hour}
	if o.tweak != nil {
		o.tweak(&opts)
	}
	if e.broker, err = New(opts); err != nil {
		t.Fatal(err)
	}
	NewServer(e.broker).Register(srv)
	if o.extra != nil {
		o.extra(srv.GRPC)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bg, cancel := context.WithCancel(logging.WithLogger(context.Background(), logger))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); srv.Serve(bg, lis, nil) }()
	f := &registrywatch.Follower{Client: e.reg.Client, Token: e.reg.Tokens["broker"], After: e.broker.RegistryRevision, Apply: e.broker.ApplyRegistryEvent}
	go func() { defer wg.Done(); f.Run(bg) }()
	go func() { defer wg.Done(); e.broker.Run(bg) }()
	if e.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	e.client = brokerv1.NewTokenBrokerServiceClient(e.conn)
	t.Cleanup(func() { e.conn.Close(); cancel(); wg.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for c := e.broker.conns.get(e.connID); c == nil || !c.connected; c = e.broker.conns.get(e.connID) {
		if time.Now().After(deadline) {
			t.Fatal("the broker never saw the connection CONNECTED")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func (e *env) ctx(t testing.TB, who string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.tokens[who])
}

func (e *env) issue(t testing.TB, who string, req *brokerv1.IssueTokenRequest) (*brokerv1.IssueTokenResponse, error) {
	if req.ConnectionId == "" {
		req.ConnectionId = e.connID
	}
	return e.client.IssueToken(e.ctx(t, who), req)
}

const accessTokens = "POST /app/installations/{installation_id}/access_tokens"
