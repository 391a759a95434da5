package registry_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	kindOrg        = registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION
	kindEnterprise = registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE
)

func (e *connectEnv) createAccount(t *testing.T, a *registryv1.Account) (*registryv1.Connection, error) {
	t.Helper()
	resp, err := e.Client.CreateConnection(e.Ctx(t, "alice"), &registryv1.CreateConnectionRequest{
		RequestId: "c-" + testenv.RandomHex(4), License: e.License, Account: a})
	return resp.GetConnection(), err
}

// violated returns the fields err's bad request names.
func violated(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// The account's id is GitHub.com's, never the one typed: an organization's
// is looked up, a typed one that differs is refused, an unknown
// organization creates nothing.
func TestAccountIDComesFromGitHub(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	org := e.emu.AddAccount("octo-org", "Organization")
	// The refusals first: while a connection is live, any create is
	// refused for that.
	for name, a := range map[string]*registryv1.Account{
		"typed id":             {Kind: kindOrg, Login: "octo-org", Id: 999},
		"unknown organization": {Kind: kindOrg, Login: "no-such-org"},
		"a user":               {Kind: kindOrg, Login: e.emu.AddAccount("mona", "User").Login},
	} {
		_, err := e.createAccount(t, a)
		want := "account.login"
		if a.Id != 0 {
			want = "account.id"
		}
		if status.Code(err) != codes.InvalidArgument || strings.Join(violated(err), " ") != want {
			t.Errorf("%s: %v, want a violation of %s", name, err, want)
		}
	}
	c, err := e.createAccount(t, &registryv1.Account{Kind: kindOrg, Login: "Octo-Org"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.GetAccount(); got.GetId() != org.ID || got.GetLogin() != "octo-org" {
		t.Errorf("account = %v, want octo-org id %d", got, org.ID)
	}
	list, err := e.Client.ListConnections(e.Ctx(t, "alice"), &registryv1.ListConnectionsRequest{})
	if err != nil || len(list.Connections) != 1 {
		t.Errorf("refused creates left connections: %v %v", list.GetConnections(), err)
	}
}

// manifestApp runs the manifest flow of conn up to the App's install page.
func (e *connectEnv) manifestApp(t *testing.T, conn *registryv1.Connection) string {
	t.Helper()
	ctx := e.Ctx(t, "alice")
	start := e.startManifest(t, ctx, conn.Id)
	q := registrytest.Redirect(t)(registrytest.Browser().PostForm(start.PostUrl, url.Values{"manifest": {start.Manifest}}))
	done, err := e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")})
	if err != nil {
		t.Fatal(err)
	}
	return done.InstallUrl
}

// An installation connects only the account the connection records: its
// login, kind and id. One on another account is refused and removed, and
// the connection still waits for the right one.
func TestInstallationOnAnotherAccountIsRefused(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	org := e.emu.AddAccount("octo-org", "Organization")
	e.emu.AddAccount("other-org", "Organization")
	conn, err := e.createAccount(t, &registryv1.Account{Kind: kindOrg, Login: "octo-org"})
	if err != nil {
		t.Fatal(err)
	}
	install := e.manifestApp(t, conn)
	before, _ := e.Store.Get(context.Background(), conn.Id)

	wrong, state := e.Backends.Install(t, install+"&target=other-org")
	_, err = e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: wrong, State: state})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "other-org") || !strings.Contains(err.Error(), "octo-org") {
		t.Fatalf("installation on another account: %v", err)
	}
	if now, _ := e.Store.Get(context.Background(), conn.Id); now.Etag != before.Etag {
		t.Errorf("a refused installation changed the record")
	}
	if _, ok := e.emu.Installation(wrong); ok {
		t.Errorf("the installation on the other account was kept")
	}
	right, _ := e.Backends.Install(t, install)
	fin, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: right, State: state})
	if err != nil {
		t.Fatalf("the right installation after a refused one: %v", err)
	}
	if fin.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_CONNECTED || fin.Connection.Account.GetId() != org.ID {
		t.Errorf("connected: %v", fin.Connection)
	}
}

// A record made before ids were looked up may carry a typed id: an
// installation on the account of that login but another id is refused,
// and so is one on an account of another kind.
func TestInstallationMustMatchKindAndID(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	e.emu.AddAccount("octo-org", "Organization")
	for name, a := range map[string]*registryv1.Account{
		"typed id":   {Kind: kindOrg, Login: "octo-org", Id: 999},
		"enterprise": {Kind: kindEnterprise, Login: "octo-org"},
	} {
		id := "legacy-" + testenv.RandomHex(4)
		if _, err := e.Store.Create(context.Background(), &registryv1.Connection{Id: id, ServerHostname: "ghes.example.com", ServerVersion: "3.14.2", Account: a},
			"h-"+id, registry.Change{Actor: "alice", RequestID: "r-" + id}); err != nil {
			t.Fatal(err)
		}
		conn, _ := e.Store.Get(context.Background(), id)
		inst, state := e.Backends.Install(t, e.manifestApp(t, conn))
		_, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: inst, State: state})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s: %v, want FailedPrecondition", name, err)
		}
		if now, _ := e.Store.Get(context.Background(), id); now.State != registryv1.ConnectionState_CONNECTION_STATE_PENDING {
			t.Errorf("%s: %v after a refused installation", name, now.State)
		}
		// Cancelled, so the next record can be made: one live
		// connection at a time.
		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
	}
}

// An enterprise has no public lookup by slug: its id is recorded from the
// installation, by the manifest flow and by an existing App alike.
func TestEnterpriseIDFromInstallation(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	ent := e.emu.AddAccount("octo-corp", "Enterprise")
	conn, err := e.createAccount(t, &registryv1.Account{Kind: kindEnterprise, Login: "octo-corp"})
	if err != nil || conn.Account.GetId() != 0 {
		t.Fatalf("enterprise connection: %v %v", conn, err)
	}
	inst, state := e.Backends.Install(t, e.manifestApp(t, conn))
	fin, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: inst, State: state})
	if err != nil || fin.Connection.Account.GetId() != ent.ID {
		t.Fatalf("installed: %v %v, want enterprise id %d", fin.GetConnection(), err, ent.ID)
	}

	// Disabled, so that another enterprise can be connected.
	if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: conn.Id}); err != nil {
		t.Fatal(err)
	}
	other := e.emu.AddAccount("octo-inc", "Enterprise")
	conn2, err := e.createAccount(t, &registryv1.Account{Kind: kindEnterprise, Login: "octo-inc"})
	if err != nil {
		t.Fatal(err)
	}
	got := e.ConnectApp(t, conn2.Id, ghemu.AppSpec{Owner: "octo-inc"}, nil)
	if got.Account.GetId() != other.ID {
		t.Errorf("existing App: account %v, want id %d", got.Account, other.ID)
	}
}

// The server's own hostname and version are every connection's, and its
// license is used when a request brings none; GetServerDefaults shows
// them. The hostname and version cannot be left out.
func TestServerDefaults(t *testing.T) {
	t.Parallel()
	for _, d := range []registry.Defaults{
		{Hostname: "bad_host", Version: "3.14.2"},
		{Hostname: "ghes.example.com", Version: "latest"},
		{Version: "3.14.2"},
		{Hostname: "ghes.example.com"},
		{Hostname: "ghes.example.com", Version: "3.14.2", License: "not a license"},
	} {
		if _, err := registry.NewServer(nil, registry.Options{Defaults: d}); err == nil {
			t.Errorf("server settings %+v were taken", d)
		}
	}
	_, issuer, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	license, err := registry.MintLicense(issuer, "Octo Corp", 500, time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := registrytest.StartWith(t, testenv.SQLite(t), func(o *registry.Options, _ *registry.Store) {
		o.Issuers = append(o.Issuers, issuer.Public().(ed25519.PublicKey))
		o.Defaults = registry.Defaults{Hostname: "ghes7.example.com", Version: "3.15.1", License: license}
	})
	ctx := e.Ctx(t, "alice")
	d, err := e.Client.GetServerDefaults(ctx, &registryv1.GetServerDefaultsRequest{})
	if err != nil || d.ServerHostname != "ghes7.example.com" || d.ServerVersion != "3.15.1" || d.License.GetCustomerName() != "Octo Corp" {
		t.Fatalf("defaults: %v %v", d, err)
	}
	resp, err := e.Client.CreateConnection(ctx, &registryv1.CreateConnectionRequest{RequestId: "defaults",
		Account: &registryv1.Account{Kind: kindOrg, Login: "octo-org"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Connection; c.ServerHostname != "ghes7.example.com" || c.ServerVersion != "3.15.1" || c.License.GetSha256() != d.License.GetSha256() {
		t.Errorf("created with the server's settings: %v", c)
	}

	// A registry without them creates nothing.
	bare, err := registry.NewServer(e.Store, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bare.CreateConnection(ctx, &registryv1.CreateConnectionRequest{RequestId: "no-settings", License: e.License,
		Account: &registryv1.Account{Kind: kindOrg, Login: "octo-org"}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "-server-hostname") {
		t.Errorf("create without the server's settings: %v", err)
	}
}

// A client built when the request still had server_hostname (2) and
// server_version (3) sends them as fields the request no longer has: a
// value other than the server's own is refused, as a field violation,
// rather than silently replaced; the server's own passes.
func TestRemovedServerFields(t *testing.T) {
	t.Parallel()
	e := registrytest.Start(t, testenv.SQLite(t))
	ctx := e.Ctx(t, "alice")
	old := func(host, version string) *registryv1.CreateConnectionRequest {
		req := &registryv1.CreateConnectionRequest{RequestId: "old-" + testenv.RandomHex(4), License: e.License,
			Account: &registryv1.Account{Kind: kindOrg, Login: "octo-org"}}
		var raw []byte
		for num, v := range map[protowire.Number]string{2: host, 3: version} {
			raw = protowire.AppendTag(raw, num, protowire.BytesType)
			raw = protowire.AppendString(raw, v)
		}
		req.ProtoReflect().SetUnknown(raw)
		return req
	}
	for _, tc := range []struct {
		host, version string
		fields        string
	}{
		{"other.example.com", registrytest.Version, "server_hostname"},
		{registrytest.Hostname, "3.15.0", "server_version"},
		{"other.example.com", "3.15.0", "server_hostname server_version"},
	} {
		_, err := e.Client.CreateConnection(ctx, old(tc.host, tc.version))
		got := violated(err)
		slices.Sort(got)
		if status.Code(err) != codes.InvalidArgument || strings.Join(got, " ") != tc.fields {
			t.Errorf("%s %s: %v, want violations of %s", tc.host, tc.version, err, tc.fields)
		}
		if err != nil && !strings.Contains(err.Error(), "this server's own") {
			t.Errorf("%s %s: the refusal does not say why: %v", tc.host, tc.version, err)
		}
	}
	resp, err := e.Client.CreateConnection(ctx, old("GHES.example.com", registrytest.Version))
	if err != nil || resp.Connection.ServerHostname != registrytest.Hostname {
		t.Fatalf("an old client sending the server's own settings: %v %v", resp, err)
	}
}

// TestNewServerRefusesBadOptions: a server is built whole or not at all.
func TestNewServerRefusesBadOptions(t *testing.T) {
	e := registrytest.Start(t, testenv.SQLite(t))
	for name, o := range map[string]registry.Options{
		"a connector without the server's store": {Connector: &registry.Connector{}},
		"a negative watch poll interval":         {WatchPollInterval: -time.Second},
	} {
		if _, err := registry.NewServer(e.Store, o); err == nil {
			t.Errorf("%s was taken", name)
		}
	}
	if _, err := registry.NewServer(e.Store, registry.Options{Connector: &registry.Connector{Store: e.Store}}); err != nil {
		t.Errorf("a connector over the server's store: %v", err)
	}
}
