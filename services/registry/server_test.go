package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// env is a running registry with helpers for these tests.
type env struct{ *registrytest.Env }

func (e *env) ctx(t *testing.T, principal string) context.Context { return e.Ctx(t, principal) }

func startRegistry(t *testing.T, dsn string) *env { return &env{registrytest.Start(t, dsn)} }

// startConnected is a registry that enables and disconnects against the
// GitHub emulator and vaultdev, for tests that need connections CONNECTED
// or DISCONNECTED.
func startConnected(t *testing.T, dsn string) *env {
	return &env{registrytest.StartConnected(t, dsn, registrytest.StartBackends(t))}
}

// connect connects the PENDING connection id with an App of its own
// (ConnectExistingApp).
func (e *env) connect(t *testing.T, id string) *registryv1.Connection {
	t.Helper()
	return e.ConnectApp(t, id, ghemu.AppSpec{Owner: "octo-org"}, nil)
}

// install connects the PENDING connection id whose App is registered the
// way the administrator's browser does: StartAppManifest hands out the
// App's install page, GitHub.com sends the browser on to the setup URL,
// and CompleteInstallation connects.
func (e *env) install(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	start, err := e.Client.StartAppManifest(ctx, &registryv1.StartAppManifestRequest{Id: id, CallbackUrl: "https://ghes.example.com/connect/callback"})
	if err != nil {
		t.Fatal(err)
	}
	inst, state := e.Backends.Install(t, start.InstallUrl)
	if _, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: inst, State: state}); err != nil {
		t.Fatal(err)
	}
}

// reqN numbers request ids; the package's tests run in parallel.
var reqN atomic.Int64

// createReq asks to connect the server to the organization org; the
// hostname and version are the registry's own.
func (e *env) createReq(org string) *registryv1.CreateConnectionRequest {
	if e.Backends != nil {
		e.Backends.Emu.AddAccount(org, "Organization")
	}
	return &registryv1.CreateConnectionRequest{
		RequestId: fmt.Sprintf("req-%d-%s", reqN.Add(1), testenv.RandomHex(4)),
		License:   e.License,
		Account:   &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: org},
	}
}

func (e *env) create(t *testing.T, org string) *registryv1.Connection {
	t.Helper()
	resp, err := e.Client.CreateConnection(e.ctx(t, "alice"), e.createReq(org))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return resp.Connection
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
}

func testApp() (*registryv1.GitHubApp, *registryv1.TransitKey) {
	return &registryv1.GitHubApp{AppId: 7, Slug: "ghconnect-ghes", ClientId: "Iv1.abc", Permissions: map[string]string{"contents": "read", "metadata": "read"}},
		&registryv1.TransitKey{Mount: "transit", Name: "app-7", Versions: []int32{1}}
}

func TestCreateGetList(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		c := e.create(t, "octo-org")
		if c.State != registryv1.ConnectionState_CONNECTION_STATE_PENDING || c.CreatedBy != "alice" || c.Etag != "1" {
			t.Fatalf("unexpected new connection: %v", c)
		}
		if c.License.GetCustomerName() != "Octo Corp" || len(c.License.GetSha256()) != 64 || c.License.GetPublicKey() == "" {
			t.Fatalf("license facts missing: %v", c.License)
		}
		got, err := e.Client.GetConnection(e.ctx(t, "bob"), &registryv1.GetConnectionRequest{Id: c.Id})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.String(), got.Connection.String()); diff != "" {
			t.Errorf("get differs from create (-create +get):\n%s", diff)
		}
		_, err = e.Client.GetConnection(e.ctx(t, "bob"), &registryv1.GetConnectionRequest{Id: "nope"})
		wantCode(t, err, codes.NotFound)

		// 7 connections, one after the other (each disconnected before
		// the next), pages of 3, one filtered by state.
		ctx := e.ctx(t, "alice")
		ids := []string{c.Id}
		for i := 1; i < 7; i++ {
			e.disconnect(t, ctx, ids[i-1])
			ids = append(ids, e.create(t, "octo-org").Id)
		}
		connected := e.connect(t, ids[6])
		var seen []string
		tok := ""
		for pages := 0; ; pages++ {
			resp, err := e.Client.ListConnections(ctx, &registryv1.ListConnectionsRequest{PageSize: 3, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range resp.Connections {
				seen = append(seen, c.Id)
			}
			if tok = resp.NextPageToken; tok == "" {
				if pages != 2 {
					t.Errorf("got %d pages, want 3", pages+1)
				}
				break
			}
		}
		sort.Strings(seen)
		sort.Strings(ids)
		if diff := cmp.Diff(ids, seen); diff != "" {
			t.Errorf("paging lost or repeated connections (-want +got):\n%s", diff)
		}
		resp, err := e.Client.ListConnections(ctx, &registryv1.ListConnectionsRequest{States: []registryv1.ConnectionState{registryv1.ConnectionState_CONNECTION_STATE_CONNECTED}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Connections) != 1 || resp.Connections[0].Id != connected.Id || resp.Connections[0].InstallationId != connected.InstallationId {
			t.Errorf("state filter: got %v", resp.Connections)
		}
	})
}

// disconnect disconnects connection id through the Disconnect RPC, as an
// admin does before connecting the server again.
func (e *env) disconnect(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: id}); err != nil {
		t.Fatalf("disconnecting %s: %v", id, err)
	}
}

// op is one move of the lifecycle, made on the store as the flow that
// includes it makes it (no RPC makes a move on its own: each is a step of
// enabling, the key follower or a disconnect).
type op struct {
	name   string
	target registryv1.ConnectionState
	call   func(ctx context.Context, e *env, id string) error
}

var ops = []op{
	{"app_created", registryv1.ConnectionState_CONNECTION_STATE_PENDING, func(ctx context.Context, e *env, id string) error {
		return e.move(ctx, id, registry.AppCreated(testApp()))
	}},
	{"mark_connected", registryv1.ConnectionState_CONNECTION_STATE_CONNECTED, func(ctx context.Context, e *env, id string) error {
		return e.move(ctx, id, registry.MarkConnected(5))
	}},
	{"key_version_adopted", registryv1.ConnectionState_CONNECTION_STATE_CONNECTED, func(ctx context.Context, e *env, id string) error {
		// The version the key has: the connection's disconnect signs with
		// it afterwards.
		return e.move(ctx, id, registry.KeyVersionAdopted([]int32{1}))
	}},
	{"begin_disconnect", registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTING, func(ctx context.Context, e *env, id string) error {
		return e.move(ctx, id, registry.BeginDisconnect())
	}},
	{"complete_disconnect", registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED, func(ctx context.Context, e *env, id string) error {
		return e.move(ctx, id, registry.CompleteDisconnect())
	}},
}

// move makes m on connection id in the store, answering as the server
// would.
func (e *env) move(ctx context.Context, id string, m registry.Move) error {
	_, err := e.Store.Update(ctx, id, "", m, registry.Change{Actor: "alice"})
	return registry.Status(ctx, err)
}

func opNamed(name string) op {
	for _, o := range ops {
		if o.name == name {
			return o
		}
	}
	panic(name)
}

// reach drives a new connection along the happy path to state: CONNECTED
// and DISCONNECTED through the flows that get there in production.
func (e *env) reach(t *testing.T, ctx context.Context, state string) string {
	t.Helper()
	id := e.create(t, "octo-org").Id
	flows := map[string]func() error{
		"connect_existing_app": func() error { e.connect(t, id); return nil },
		"app_manifest":         func() error { e.CreateApp(t, ctx, id); return nil },
		"disconnect": func() error {
			_, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: id})
			return err
		},
	}
	paths := map[string][]string{
		"PENDING":               nil,
		"PENDING_WITH_APP":      {"app_manifest"},
		"CONNECTED":             {"connect_existing_app"},
		"DISCONNECTING":         {"connect_existing_app", "begin_disconnect"},
		"DISCONNECTING_PENDING": {"begin_disconnect"},
		"DISCONNECTED":          {"connect_existing_app", "disconnect"},
	}
	for _, name := range paths[state] {
		step, ok := flows[name]
		if !ok {
			step = func() error { return opNamed(name).call(ctx, e, id) }
		}
		if err := step(); err != nil {
			t.Fatalf("reaching %s: %s: %v", state, name, err)
		}
	}
	return id
}

func TestEveryTransition(t *testing.T) {
	t.Parallel()
	// ok[state][op]: whether op is allowed in state.
	ok := map[string]map[string]bool{
		"PENDING":               {"app_created": true, "begin_disconnect": true},
		"PENDING_WITH_APP":      {"mark_connected": true, "begin_disconnect": true},
		"CONNECTED":             {"key_version_adopted": true, "begin_disconnect": true},
		"DISCONNECTING":         {"complete_disconnect": true},
		"DISCONNECTING_PENDING": {"complete_disconnect": true},
		"DISCONNECTED":          {},
	}
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		ctx := e.ctx(t, "alice")
		for state, allowedOps := range ok {
			for _, o := range ops {
				id := e.reach(t, ctx, state)
				before, _ := e.Store.Get(ctx, id)
				err := o.call(ctx, e, id)
				after, _ := e.Store.Get(ctx, id)
				switch {
				case allowedOps[o.name] && err != nil:
					t.Errorf("%s in %s: %v", o.name, state, err)
				case allowedOps[o.name] && after.State != o.target:
					t.Errorf("%s in %s: state %v, want %v", o.name, state, after.State, o.target)
				case !allowedOps[o.name] && status.Code(err) != codes.FailedPrecondition:
					t.Errorf("%s in %s: code %v (%v), want FailedPrecondition", o.name, state, status.Code(err), err)
				case !allowedOps[o.name] && before.String() != after.String():
					t.Errorf("%s in %s: refused but the record changed", o.name, state)
				}
				// Disconnected, so the next case can connect the server.
				if after.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
					e.disconnect(t, ctx, id)
				}
			}
		}
	})
}

func TestConcurrentUpdatesOneWins(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		prev := ""
		for round := 0; round < 5; round++ {
			if prev != "" { // one live connection at a time
				e.disconnect(t, e.ctx(t, "alice"), prev)
			}
			c := e.create(t, "octo-org")
			prev = c.Id
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, who := range []string{"alice", "bob"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					app, key := testApp()
					app.Slug = "app-of-" + who
					_, err := e.Store.Update(context.Background(), c.Id, c.Etag, registry.AppCreated(app, key), registry.Change{Actor: who})
					errs[i] = registry.Status(context.Background(), err)
				}()
			}
			wg.Wait()
			codesGot := []codes.Code{status.Code(errs[0]), status.Code(errs[1])}
			sort.Slice(codesGot, func(i, j int) bool { return codesGot[i] < codesGot[j] })
			if diff := cmp.Diff([]codes.Code{codes.OK, codes.Aborted}, codesGot); diff != "" {
				t.Fatalf("round %d: want one winner and one conflict (-want +got):\n%s", round, diff)
			}
			loser := errs[0]
			if loser == nil {
				loser = errs[1]
			}
			if !strings.Contains(status.Convert(loser).Message(), "changed by someone else") {
				t.Errorf("conflict message unclear: %v", loser)
			}
			got, _ := e.Store.Get(context.Background(), c.Id)
			if got.Etag != "2" || got.UpdatedBy != strings.TrimPrefix(got.App.Slug, "app-of-") {
				t.Errorf("record is not exactly the winner's: %v", got)
			}
		}
	})
}

func recvN(t *testing.T, stream grpc.ServerStreamingClient[registryv1.WatchConnectionsResponse], n int) []*registryv1.ConnectionEvent {
	t.Helper()
	var out []*registryv1.ConnectionEvent
	for len(out) < n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv after %d events: %v", len(out), err)
		}
		out = append(out, resp.Event)
	}
	return out
}

func TestWatchResume(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		wctx, cancel := context.WithCancel(e.ctx(t, "alice"))
		stream, err := e.Client.WatchConnections(wctx, &registryv1.WatchConnectionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		c := e.create(t, "octo-org")
		ctx := e.ctx(t, "alice")
		e.CreateApp(t, ctx, c.Id)
		got := recvN(t, stream, 2)
		if got[0].Action != "create" || got[1].Action != "app_created" || got[1].Connection.App.GetAppId() == 0 {
			t.Fatalf("unexpected events: %v", got)
		}
		last := got[1].Revision
		cancel() // the subscriber drops

		// Changes while nobody watches: c is enabled, then disabled, and
		// the server connected again.
		e.install(t, ctx, c.Id)
		e.disconnect(t, ctx, c.Id)
		other := e.create(t, "octo-org")

		stream, err = e.Client.WatchConnections(e.ctx(t, "alice"), &registryv1.WatchConnectionsRequest{AfterRevision: last})
		if err != nil {
			t.Fatal(err)
		}
		missed := recvN(t, stream, 8)
		var actions []string
		for i, ev := range missed {
			actions = append(actions, ev.Action)
			if ev.Revision <= last || (i > 0 && ev.Revision <= missed[i-1].Revision) {
				t.Errorf("revisions not increasing past %d: %d", last, ev.Revision)
			}
		}
		disconnect := []string{"begin_disconnect", "disconnect_step:features_off", "disconnect_step:tokens_revoked",
			"disconnect_step:installation_removed", "disconnect_step:key_deleted", "complete_disconnect"}
		if diff := cmp.Diff(append(append([]string{"mark_connected"}, disconnect...), "create"), actions); diff != "" {
			t.Errorf("resumed stream (-want +got):\n%s", diff)
		}
		// And it stays live.
		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: other.Id}); err != nil {
			t.Fatal(err)
		}
		live := recvN(t, stream, 1)
		if live[0].ConnectionId != other.Id || live[0].ToState != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTING {
			t.Errorf("live event: %v", live[0])
		}

		// Filtered by connection.
		fstream, err := e.Client.WatchConnections(e.ctx(t, "alice"), &registryv1.WatchConnectionsRequest{ConnectionId: other.Id})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range recvN(t, fstream, 2) {
			if ev.ConnectionId != other.Id {
				t.Errorf("filter leaked %s", ev.ConnectionId)
			}
		}

		// c's history, in pages of 4: 9 events, 3 pages.
		var all []string
		tok := ""
		for pages := 1; ; pages++ {
			hist, err := e.Client.ListConnectionHistory(ctx, &registryv1.ListConnectionHistoryRequest{Id: c.Id, PageSize: 4, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range hist.Events {
				all = append(all, ev.Action+"/"+ev.Actor)
			}
			if tok = hist.NextPageToken; tok == "" {
				if pages != 3 {
					t.Errorf("history in %d pages, want 3", pages)
				}
				break
			}
			if pages == 3 {
				t.Fatalf("history has a page too many")
			}
		}
		want := []string{"create/alice", "app_created/alice", "mark_connected/alice"}
		for _, a := range disconnect {
			want = append(want, a+"/alice")
		}
		if diff := cmp.Diff(want, all); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
	})
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				if v.Field == field {
					return
				}
			}
		}
	}
	t.Errorf("no field violation for %q in %v", field, err)
}

func TestValidation(t *testing.T) {
	t.Parallel()
	e := startRegistry(t, testenv.SQLite(t))
	ctx := e.ctx(t, "alice")
	expired, _ := registry.MintLicense(e.Issuer, "Octo Corp", 5, time.Now().Add(-48*time.Hour), time.Hour)
	tests := []struct {
		name  string
		edit  func(r *registryv1.CreateConnectionRequest)
		field string
	}{
		{"no request id", func(r *registryv1.CreateConnectionRequest) { r.RequestId = "" }, "request_id"},
		{"no account", func(r *registryv1.CreateConnectionRequest) { r.Account = nil }, "account"},
		{"no kind", func(r *registryv1.CreateConnectionRequest) { r.Account.Kind = 0 }, "account.kind"},
		{"bad login", func(r *registryv1.CreateConnectionRequest) { r.Account.Login = "octo--org" }, "account.login"},
		{"bad enterprise slug", func(r *registryv1.CreateConnectionRequest) {
			r.Account.Kind = registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE
			r.Account.Login = "Octo_Corp"
		}, "account.login"},
		{"negative account id", func(r *registryv1.CreateConnectionRequest) { r.Account.Id = -1 }, "account.id"},
		{"no license", func(r *registryv1.CreateConnectionRequest) { r.License = "" }, "license"},
		{"tampered license", func(r *registryv1.CreateConnectionRequest) { r.License = r.License[:len(r.License)-4] + "AAAA" }, "license"},
		{"expired license", func(r *registryv1.CreateConnectionRequest) { r.License = expired }, "license"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := e.createReq("octo-org")
			tt.edit(req)
			_, err := e.Client.CreateConnection(ctx, req)
			wantCode(t, err, codes.InvalidArgument)
			wantField(t, err, tt.field)
		})
	}
	c := e.create(t, "octo-org")
	badUpdates := []struct {
		name  string
		call  func() error
		field string
	}{
		{"connect without installation", func() error {
			_, err := e.Client.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{State: strings.Repeat("0", 48)})
			return err
		}, "installation_id"},
		{"list negative page", func() error {
			_, err := e.Client.ListConnections(ctx, &registryv1.ListConnectionsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"list bad token", func() error {
			_, err := e.Client.ListConnections(ctx, &registryv1.ListConnectionsRequest{PageToken: "%%%"})
			return err
		}, "page_token"},
		{"watch negative revision", func() error {
			s, err := e.Client.WatchConnections(ctx, &registryv1.WatchConnectionsRequest{AfterRevision: -1})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "after_revision"},
	}
	for _, tt := range badUpdates {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, codes.InvalidArgument)
			wantField(t, err, tt.field)
		})
	}
	// Nothing above changed anything: one connection, one event.
	after, _ := e.Store.Get(ctx, c.Id)
	if after.Etag != "1" {
		t.Errorf("rejected requests changed the record: %v", after)
	}
	list, _, _ := e.Store.List(ctx, 100, "", nil)
	evs, _ := e.Store.Events(ctx, 0, "", 100)
	if len(list) != 1 || len(evs) != 1 {
		t.Errorf("rejected requests left %d connections and %d events, want 1 and 1", len(list), len(evs))
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := startRegistry(t, testenv.SQLite(t))
	bare, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, ctx := range map[string]context.Context{
		"none":        bare,
		"wrong token": metadata.AppendToOutgoingContext(bare, "authorization", "Bearer wrong"),
		"basic":       metadata.AppendToOutgoingContext(bare, "authorization", "Basic "+e.Tokens["alice"]),
	} {
		_, err := e.Client.CreateConnection(ctx, e.createReq("octo-org"))
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: code %v, want Unauthenticated", name, status.Code(err))
		}
		s, err := e.Client.WatchConnections(ctx, &registryv1.WatchConnectionsRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: watch code %v, want Unauthenticated", name, status.Code(err))
		}
	}
	if list, _, _ := e.Store.List(bare, 10, "", nil); len(list) != 0 {
		t.Errorf("unauthenticated create stored %d connections", len(list))
	}
	// Health answers without credentials.
	h, err := healthpb.NewHealthClient(e.Conn).Check(bare, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", h, err)
	}
}

func TestWatchEndsWithStream(t *testing.T) {
	t.Parallel()
	e := startRegistry(t, testenv.SQLite(t))
	ctx, cancel := context.WithCancel(e.ctx(t, "alice"))
	s, err := e.Client.WatchConnections(ctx, &registryv1.WatchConnectionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = s.Recv()
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("recv after cancel: %v", err)
	}
}

// Only admins change connections: a service's own credentials reach only
// the methods that service calls, and a person the gateway vouches for
// gets the roles it vouches for, recorded under their own name.
func TestAuthorizationPerMethod(t *testing.T) {
	t.Parallel()
	e := &env{registrytest.Start(t, testenv.SQLite(t), "broker", "gateway")}
	asPerson := func(name, roles string) context.Context {
		return metadata.AppendToOutgoingContext(e.ctx(t, "gateway"), auth.UserHeader, name, auth.RolesHeader, roles)
	}
	resp, err := e.Client.CreateConnection(asPerson("grace@example.com", "admin"), e.createReq("octo-org"))
	if err != nil {
		t.Fatal(err)
	}
	c := resp.Connection
	if c.CreatedBy != "grace@example.com" {
		t.Errorf("created by %q, want the person", c.CreatedBy)
	}
	for _, svc := range []string{"broker", "gateway"} {
		_, err := e.Client.Disconnect(e.ctx(t, svc), &registryv1.DisconnectRequest{Id: c.Id})
		wantCode(t, err, codes.PermissionDenied)
		_, err = e.Client.CreateConnection(e.ctx(t, svc), e.createReq("octo-org"))
		wantCode(t, err, codes.PermissionDenied)
	}
	// The broker may watch, which is what it calls.
	stream, err := e.Client.WatchConnections(e.ctx(t, "broker"), &registryv1.WatchConnectionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("broker watch: %v", err)
	}

	if _, err := e.Client.GetConnection(asPerson("ada@example.com", "auditor"), &registryv1.GetConnectionRequest{Id: c.Id}); err != nil {
		t.Fatalf("auditor read: %v", err)
	}
	_, err = e.Client.Disconnect(asPerson("ada@example.com", "auditor"), &registryv1.DisconnectRequest{Id: c.Id})
	wantCode(t, err, codes.PermissionDenied)
	// bob's bearer token is not a forwarder's: naming someone else is refused.
	_, err = e.Client.GetConnection(metadata.AppendToOutgoingContext(e.ctx(t, "bob"), auth.UserHeader, "alice"), &registryv1.GetConnectionRequest{Id: c.Id})
	wantCode(t, err, codes.PermissionDenied)
}
