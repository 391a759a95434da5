package registry_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type connectEnv struct {
	*registrytest.Env
	emu       *ghemu.TestServer
	transit   *vaulttransit.Client
	connector *registry.Connector
	creds     *testenv.VaultCreds
}

// startConnect runs a registry that enables and disconnects against the
// GitHub emulator and vaultdev; the registry works as its own AppRole,
// with deploy/vault/registry.hcl.
func startConnect(t *testing.T) *connectEnv { return startConnectOn(t, registrytest.StartBackends(t)) }

// startConnectOn is startConnect on backends b.
func startConnectOn(t *testing.T, b *registrytest.Backends) *connectEnv {
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "hello"})
	e := registrytest.StartConnected(t, testenv.SQLite(t), b)
	return &connectEnv{Env: e, emu: b.Emu, transit: b.Transit, connector: e.Connector, creds: b.Creds}
}

func (e *connectEnv) create(t *testing.T) *registryv1.Connection {
	resp, err := e.Client.CreateConnection(e.Ctx(t, "alice"), &registryv1.CreateConnectionRequest{
		RequestId: "c-" + testenv.RandomHex(4), License: e.License,
		Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org"}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Connection
}

func (e *connectEnv) keyExists(t *testing.T, name string) bool {
	_, err := e.transit.Key(context.Background(), name)
	if err != nil && !errors.Is(err, vaulttransit.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// startManifest starts enabling connection id, GitHub.com to send the
// browser back to the server's /connect/callback.
func (e *connectEnv) startManifest(t *testing.T, ctx context.Context, id string) *registryv1.StartAppManifestResponse {
	t.Helper()
	start, err := e.Client.StartAppManifest(ctx, &registryv1.StartAppManifestRequest{Id: id, CallbackUrl: "https://ghes.example.com/connect/callback"})
	if err != nil {
		t.Fatal(err)
	}
	return start
}

func TestEnableThroughManifestThenDisconnect(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	conn := e.create(t)
	start := e.startManifest(t, ctx, conn.Id)
	if strings.Contains(start.Manifest, "secret") || !strings.Contains(start.Manifest, `"redirect_url":"https://ghes.example.com/connect/callback"`) {
		t.Errorf("manifest: %s", start.Manifest)
	}
	q := registrytest.Redirect(t)(registrytest.Browser().PostForm(start.PostUrl, url.Values{"manifest": {start.Manifest}}))
	if q.Get("state") != start.State {
		t.Fatalf("state not returned: %v", q)
	}
	// An expired state is refused too.
	expired := strings.Repeat("e", 48)
	sum := sha256.Sum256([]byte(expired))
	if err := e.Store.PutState(context.Background(), hex.EncodeToString(sum[:]), conn.Id, "manifest", "", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: expired})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("expired state: %v", err)
	}
	// A wrong state changes nothing.
	_, err = e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: strings.Repeat("0", 48)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("wrong state: %v", err)
	}
	done, err := e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")})
	if err != nil {
		t.Fatal(err)
	}
	c := done.Connection
	if c.App.GetAppId() == 0 || c.TransitKey.GetName() == "" || !strings.HasPrefix(c.App.GetClientSecretCiphertext(), "vault:v1:") || c.App.GetPermissions()["contents"] != "read" {
		t.Fatalf("after conversion: %v", c)
	}
	if !e.keyExists(t, c.TransitKey.Name) {
		t.Fatal("the App key is not in Vault")
	}
	// Replaying the callback is refused and changes nothing.
	_, err = e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("replayed callback: %v", err)
	}
	if now, _ := e.Store.Get(context.Background(), conn.Id); now.Etag != c.Etag {
		t.Errorf("a refused callback changed the record")
	}
	// Installing: GitHub sends the browser to the setup URL.
	setup := registrytest.Redirect(t)(registrytest.Browser().Get(done.InstallUrl))
	instID := setup.Get("installation_id")
	var n int64
	for _, ch := range instID {
		n = n*10 + int64(ch-'0')
	}
	// An installation of another App is refused.
	_, err = e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: 999999, State: setup.Get("state")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("foreign installation: %v", err)
	}
	fin, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: n, State: setup.Get("state")})
	if err != nil {
		t.Fatal(err)
	}
	if fin.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_CONNECTED || fin.Connection.InstallationId != n {
		t.Fatalf("not connected: %v", fin.Connection)
	}

	// Key rotation: refused until GitHub knows the new key, then done.
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	pem2 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k2)}))
	_, err = e.Client.RotateAppKey(ctx, &registryv1.RotateAppKeyRequest{Id: conn.Id, PrivateKeyPem: pem2})
	if status.Code(err) != codes.FailedPrecondition || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("rotation before GitHub knows the key: %v", err)
	}
	if _, err := e.emu.AddAppKey(c.App.AppId, &k2.PublicKey); err != nil {
		t.Fatal(err)
	}
	rot, err := e.Client.RotateAppKey(ctx, &registryv1.RotateAppKeyRequest{Id: conn.Id, PrivateKeyPem: pem2})
	if err != nil {
		t.Fatal(err)
	}
	if v := rot.Connection.TransitKey.Versions; len(v) != 1 || v[0] < 2 {
		t.Errorf("versions after rotation: %v", v)
	}
	if info, _ := e.transit.Key(context.Background(), c.TransitKey.Name); info.MinVersion != int(rot.Connection.TransitKey.Versions[0]) {
		t.Errorf("old versions not retired: %+v", info)
	}

	// Disconnect: installation removed, key deleted, record kept with its
	// steps and history.
	out, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: conn.Id, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED || len(out.Connection.DisconnectSteps) != 4 {
		t.Errorf("after disconnect: %v", out.Connection)
	}
	if _, ok := e.emu.Installation(n); ok {
		t.Errorf("the installation is still on GitHub")
	}
	if e.keyExists(t, c.TransitKey.Name) {
		t.Errorf("the transit key survived the disconnect")
	}
	again, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: conn.Id})
	if err != nil || again.Connection.Etag != out.Connection.Etag {
		t.Errorf("disconnecting twice: %v", err)
	}
}

func TestConnectExistingAppAndReconcile(t *testing.T) {
	t.Parallel()
	// Its reconciler deletes the keys it does not know: on the shared
	// Vault, those of the tests beside it (TestDisconnectDeletesOnlyItsOwnKey
	// failed so).
	e := startConnectOn(t, registrytest.StartBackendsOwnVault(t))
	ctx := e.Ctx(t, "alice")
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	appID, err := e.emu.AddApp(ghemu.AppSpec{Slug: "existing", Owner: "octo-org", Permissions: map[string]string{"contents": "read", "metadata": "read"}}, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := e.emu.Install(appID, "octo-org", nil, nil)
	conn := e.create(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrong := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))
	for name, req := range map[string]*registryv1.ConnectExistingAppRequest{
		"wrong key": {Id: conn.Id, AppId: appID, PrivateKeyPem: wrong},
		"not a key": {Id: conn.Id, AppId: appID, PrivateKeyPem: "-----BEGIN NOTHING-----"},
		"wrong app": {Id: conn.Id, AppId: 77, PrivateKeyPem: pemKey},
		"no app id": {Id: conn.Id, PrivateKeyPem: pemKey},
		"empty pem": {Id: conn.Id, AppId: appID},
	} {
		_, err := e.Client.ConnectExistingApp(ctx, req)
		if status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: the error quotes the key", name)
		}
		if e.keyExists(t, vaulttransit.AppKeyName(conn.Id)) {
			t.Errorf("%s: a key was left in Vault", name)
		}
	}
	resp, err := e.Client.ConnectExistingApp(ctx, &registryv1.ConnectExistingAppRequest{Id: conn.Id, AppId: appID, PrivateKeyPem: pemKey})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_CONNECTED || resp.Connection.InstallationId != inst.ID {
		t.Fatalf("existing App: %v", resp.Connection)
	}

	// A disconnect interrupted after its first step, and a key that
	// belongs to no connection: the reconciler finishes and cleans up.
	begun, err := e.Store.Update(ctx, conn.Id, "", registry.BeginDisconnect(), registry.Change{Actor: "alice", RequestID: "r-123", Reason: "leaving"})
	if err != nil {
		t.Fatal(err)
	}
	orphan, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := e.transit.ImportKey(context.Background(), vaulttransit.AppKeyName("no-such-connection"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(orphan)})); err != nil {
		t.Fatal(err)
	}
	e.connector.OrphanGrace = time.Nanosecond // the test's keys are fresh
	if err := e.connector.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := e.Store.Get(context.Background(), conn.Id)
	if after.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
		t.Errorf("interrupted disconnect not finished: %v", after.State)
	}
	if e.keyExists(t, vaulttransit.AppKeyName("no-such-connection")) || e.keyExists(t, vaulttransit.AppKeyName(conn.Id)) {
		t.Errorf("orphan keys left")
	}
	if _, ok := e.emu.Installation(inst.ID); ok {
		t.Errorf("installation left after the reconciled disconnect")
	}

	// The reconciler's events say whose disconnect they complete.
	hist, err := e.Client.ListConnectionHistory(ctx, &registryv1.ListConnectionHistoryRequest{Id: conn.Id, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var beginRev int64
	var finished []string
	for _, ev := range hist.Events {
		switch {
		case ev.Action == "begin_disconnect":
			beginRev = ev.Revision
		case ev.Actor == "system:reconciler":
			finished = append(finished, ev.Action)
			if want := "completes disconnect requested by alice (request r-123, event "; !strings.HasPrefix(ev.Reason, want) || !strings.HasSuffix(ev.Reason, "): leaving") {
				t.Errorf("%s: reason %q, want it to start %q", ev.Action, ev.Reason, want)
			}
			if ev.CompletesRevision != beginRev || beginRev == 0 {
				t.Errorf("%s: completes revision %d, want %d (begin_disconnect)", ev.Action, ev.CompletesRevision, beginRev)
			}
		}
	}
	if len(finished) == 0 || finished[len(finished)-1] != "complete_disconnect" || begun.UpdatedBy != "alice" {
		t.Errorf("the reconciler's events: %v", finished)
	}
}

// GitHub.com's answers to the manifest conversion, as callers see them: a
// refusal (a wrong or used code) is the caller's to fix, an outage or a
// rate limit is Unavailable, to retry, and changes nothing.
func TestGitHubAnswersToTheConversion(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	conn := e.create(t)
	start := e.startManifest(t, ctx, conn.Id)
	q := registrytest.Redirect(t)(registrytest.Browser().PostForm(start.PostUrl, url.Values{"manifest": {start.Manifest}}))
	tests := []struct {
		name   string
		faults ghemu.Faults
		code   string
		want   codes.Code
	}{
		{"wrong code", ghemu.Faults{}, "not-a-code", codes.FailedPrecondition},
		{"server error", ghemu.Faults{ServerErrors: 1}, q.Get("code"), codes.Unavailable},
		{"rate limited", ghemu.Faults{SecondaryLimit: 1, RetryAfter: time.Second}, q.Get("code"), codes.Unavailable},
	}
	for _, tt := range tests {
		e.emu.SetFaults(tt.faults)
		_, err := e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: tt.code, State: q.Get("state")})
		if status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if now, _ := e.Store.Get(context.Background(), conn.Id); now.Etag != conn.Etag {
			t.Errorf("%s: the record changed", tt.name)
		}
	}
	if _, err := e.Client.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")}); err != nil {
		t.Errorf("once GitHub.com answers: %v", err)
	}
}

// GitHub.com's redirects back are bound to the person who started
// enabling: the same link in another admin's browser, or without a
// person, is refused and changes nothing.
func TestRedirectsBelongToTheAdminWhoStarted(t *testing.T) {
	t.Parallel()
	b := registrytest.StartBackends(t)
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "hello"})
	e := &connectEnv{Env: registrytest.StartConnected(t, testenv.SQLite(t), b, "gateway"), emu: b.Emu, transit: b.Transit}
	as := func(who string) context.Context {
		return metadata.AppendToOutgoingContext(e.Ctx(t, "gateway"), auth.UserHeader, who, auth.RolesHeader, "admin")
	}
	conn := e.create(t)
	start := e.startManifest(t, as("grace@example.com"), conn.Id)
	q := registrytest.Redirect(t)(registrytest.Browser().PostForm(start.PostUrl, url.Values{"manifest": {start.Manifest}}))
	req := &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")}
	for _, ctx := range []context.Context{as("mallory@example.com"), e.Ctx(t, "gateway")} {
		_, err := e.Client.CompleteAppManifest(ctx, req)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "started by grace@example.com") {
			t.Fatalf("someone else's redirect: %v", err)
		}
	}
	if now, _ := e.Store.Get(context.Background(), conn.Id); now.Etag != conn.Etag {
		t.Fatal("a refused redirect changed the record")
	}
	done, err := e.Client.CompleteAppManifest(as("grace@example.com"), req)
	if err != nil {
		t.Fatal(err)
	}
	// The installation's redirect is grace's too.
	setup := registrytest.Redirect(t)(registrytest.Browser().Get(done.InstallUrl))
	id, _ := strconv.ParseInt(setup.Get("installation_id"), 10, 64)
	inst := &registryv1.CompleteInstallationRequest{InstallationId: id, State: setup.Get("state")}
	if _, err := e.Client.CompleteInstallation(as("mallory@example.com"), inst); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("someone else's installation redirect: %v", err)
	}
	fin, err := e.Client.CompleteInstallation(as("grace@example.com"), inst)
	if err != nil {
		t.Fatal(err)
	}
	if fin.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_CONNECTED || fin.Connection.UpdatedBy != "grace@example.com" {
		t.Fatalf("after grace's installation: %v", fin.Connection)
	}
}

// After the App's owner adds a permission on GitHub.com and the account
// accepts it, a refresh records what the installation now grants; only an
// admin may ask.
func TestRefreshAppPermissions(t *testing.T) {
	t.Parallel()
	b := registrytest.StartBackends(t)
	b.Emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "hello"})
	e := registrytest.StartConnected(t, testenv.SQLite(t), b, "broker")
	created, err := e.Client.CreateConnection(e.Ctx(t, "alice"), &registryv1.CreateConnectionRequest{
		RequestId: "c-" + testenv.RandomHex(4), License: e.License,
		Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: "octo-org"}})
	if err != nil {
		t.Fatal(err)
	}
	conn := e.ConnectApp(t, created.Connection.Id, ghemu.AppSpec{Owner: "octo-org", Permissions: map[string]string{"metadata": "read"}}, nil)
	if _, ok := conn.App.GetPermissions()["vulnerability_alerts"]; ok {
		t.Fatalf("the App starts with vulnerability_alerts: %v", conn.App.GetPermissions())
	}
	granted := `{"metadata":"read","vulnerability_alerts":"read"}`
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/_emu/installations/%d/permissions", b.Emu.URL, conn.InstallationId), strings.NewReader(granted))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("emulator: %v %v", resp, err)
	}
	_, err = e.Client.RefreshAppPermissions(e.Ctx(t, "broker"), &registryv1.RefreshAppPermissionsRequest{Id: conn.Id})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the broker refreshed: %v", err)
	}
	out, err := e.Client.RefreshAppPermissions(e.Ctx(t, "alice"), &registryv1.RefreshAppPermissionsRequest{Id: conn.Id})
	if err != nil {
		t.Fatal(err)
	}
	if out.Connection.App.GetPermissions()["vulnerability_alerts"] != "read" {
		t.Fatalf("after refresh: %v", out.Connection.App.GetPermissions())
	}
	type change struct{ Gained, Lost map[string]string }
	said := func(r *registryv1.RefreshAppPermissionsResponse) change {
		return change{r.PermissionsGained, r.PermissionsLost}
	}
	if diff := cmp.Diff(change{map[string]string{"vulnerability_alerts": "read"}, nil}, said(out), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("what the refresh found (-want +got):\n%s", diff)
	}
	hist, err := e.Client.ListConnectionHistory(e.Ctx(t, "alice"), &registryv1.ListConnectionHistoryRequest{Id: conn.Id})
	if err != nil || hist.Events[len(hist.Events)-1].Action != "app_permissions_refreshed" {
		t.Fatalf("history: %v %v", hist, err)
	}
	// The history says what the refresh found.
	if got, want := hist.Events[len(hist.Events)-1].Reason, "gained vulnerability_alerts:read"; got != want {
		t.Errorf("refresh recorded %q, want %q", got, want)
	}
	req, _ = http.NewRequest(http.MethodPut, fmt.Sprintf("%s/_emu/installations/%d/permissions", b.Emu.URL, conn.InstallationId), strings.NewReader(`{"metadata":"write"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("emulator: %v %v", resp, err)
	}
	for _, tc := range []struct {
		want string
		said change
	}{
		{"gained metadata:write; lost vulnerability_alerts:read", change{map[string]string{"metadata": "write"}, map[string]string{"vulnerability_alerts": "read"}}},
		{"no change: metadata:write", change{}},
	} {
		want := tc.want
		out, err := e.Client.RefreshAppPermissions(e.Ctx(t, "alice"), &registryv1.RefreshAppPermissionsRequest{Id: conn.Id})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.said, said(out), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: the response (-want +got):\n%s", want, diff)
		}
		hist, err = e.Client.ListConnectionHistory(e.Ctx(t, "alice"), &registryv1.ListConnectionHistoryRequest{Id: conn.Id})
		if err != nil {
			t.Fatal(err)
		}
		if got := hist.Events[len(hist.Events)-1].Reason; got != want {
			t.Errorf("refresh recorded %q, want %q", got, want)
		}
	}
}

// A connection's record cannot point its disconnect at a key that is not
// its own. The RegisterApp RPC once let any admin record another
// connection's transit key, or the secrets key, on a PENDING connection
// and then disconnect it: Vault's key was deleted. The RPC is gone; in
// depth, a disconnect deletes only the key named by its own connection's
// id, and the registry's policy cannot touch the secrets key.
func TestDisconnectDeletesOnlyItsOwnKey(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	victim := e.ConnectApp(t, e.create(t).Id, ghemu.AppSpec{Owner: "octo-org"}, nil)
	sealed, err := e.transit.Encrypt(context.Background(), vaulttransit.SecretsKey, []byte("an App's client secret"))
	if err != nil {
		t.Fatal(err)
	}
	// The forged records are another server's, on the same Vault: this
	// one has its live connection, the victim.
	other := registrytest.StartConnected(t, testenv.SQLite(t), e.Backends)
	octx := other.Ctx(t, "alice")
	for _, name := range []string{vaulttransit.AppKeyName(victim.Id), vaulttransit.SecretsKey} {
		login := "org-" + testenv.RandomHex(3)
		e.emu.AddAccount(login, "Organization")
		resp, err := other.Client.CreateConnection(octx, &registryv1.CreateConnectionRequest{
			RequestId: "c-" + testenv.RandomHex(4), License: other.License,
			Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: login}})
		if err != nil {
			t.Fatal(err)
		}
		// The record names another key, as RegisterApp allowed.
		forged := registry.AppCreated(&registryv1.GitHubApp{AppId: 99, Slug: "forged"}, &registryv1.TransitKey{Mount: "transit", Name: name, Versions: []int32{1}})
		if _, err := other.Store.Update(context.Background(), resp.Connection.Id, "", forged, registry.Change{Actor: "mallory"}); err != nil {
			t.Fatal(err)
		}
		done, err := other.Client.Disconnect(octx, &registryv1.DisconnectRequest{Id: resp.Connection.Id})
		if err != nil || done.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
			t.Fatalf("disconnecting the connection naming %s: %v %v", name, done, err)
		}
	}
	if !e.keyExists(t, vaulttransit.AppKeyName(victim.Id)) {
		t.Errorf("another connection's disconnect deleted the victim's key")
	}
	if pt, err := e.transit.Decrypt(context.Background(), vaulttransit.SecretsKey, sealed); err != nil || string(pt) != "an App's client secret" {
		t.Errorf("the secrets key no longer decrypts: %v", err)
	}
	// The victim still signs: GitHub.com answers its App.
	if _, err := e.Client.RefreshAppPermissions(ctx, &registryv1.RefreshAppPermissionsRequest{Id: victim.Id}); err != nil {
		t.Errorf("the victim no longer signs: %v", err)
	}
	// And the side door itself is closed.
	for _, m := range []string{"RegisterApp", "UpdateKeyVersions", "BeginDisconnect"} {
		err := e.Conn.Invoke(ctx, "/ghconnect.registry.v1.ConnectionRegistryService/"+m, &registryv1.GetConnectionRequest{Id: victim.Id}, &registryv1.GetConnectionResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", m, err)
		}
	}
}

// A disconnect asked from a stale view (Alice's PENDING page, after Dave
// finished enabling) changes nothing and says what the connection is now.
func TestStaleCancelDoesNotDisconnect(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := e.Ctx(t, "alice")
	pending := e.create(t)
	live := e.ConnectApp(t, pending.Id, ghemu.AppSpec{Owner: "octo-org"}, nil)
	_, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: pending.Id, Reason: "enabling cancelled", Etag: pending.Etag})
	if status.Code(err) != codes.Aborted || !strings.Contains(status.Convert(err).Message(), "CONNECTED now") {
		t.Fatalf("stale cancel: %v", err)
	}
	after, _ := e.Store.Get(context.Background(), pending.Id)
	if after.State != registryv1.ConnectionState_CONNECTION_STATE_CONNECTED || after.Etag != live.Etag {
		t.Fatalf("the stale cancel changed the connection: %v", after)
	}
	// With the current etag, it goes ahead.
	done, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: pending.Id, Reason: "leaving", Etag: after.Etag})
	if err != nil || done.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
		t.Fatalf("disconnect with the current etag: %v %v", done, err)
	}
}
