package registry_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// wantLiveRefusal checks err refuses a create because live is live: the
// refusal names its id, account and state, as the admin reads it.
func wantLiveRefusal(t *testing.T, err error, live *registryv1.Connection, state string) {
	t.Helper()
	st := status.Convert(err)
	want := fmt.Sprintf("connection %s for %s is %s: disable it before connecting", live.Id, live.Account.GetLogin(), state)
	if st.Code() != codes.FailedPrecondition || !strings.HasPrefix(st.Message(), want) {
		t.Fatalf("create while %s is live: %v, want FailedPrecondition %q…", live.Id, err, want)
	}
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok && len(pf.Violations) == 1 && pf.Violations[0].Subject == "connections/"+live.Id {
			return
		}
	}
	t.Errorf("the refusal's details do not name connections/%s: %v", live.Id, st.Details())
}

// liveRows counts the connections that are PENDING, CONNECTED or
// DISCONNECTING in the database itself.
func liveRows(t *testing.T, dsn string) int {
	t.Helper()
	db, err := sqldb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM connections WHERE state IN (1, 2, 3)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A server has one connection at a time, as on GHES: another account is
// refused while one is PENDING or CONNECTED, with a message naming it; a
// retry of the first create still answers with it (and its request id
// cannot be reused for another request); once it is disconnected, the
// server can be connected again.
func TestOneLiveConnection(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		ctx := e.ctx(t, "alice")
		req := e.createReq("octo-org")
		first, err := e.Client.CreateConnection(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		live := first.Connection

		_, err = e.Client.CreateConnection(ctx, e.createReq("other-org"))
		wantLiveRefusal(t, err, live, "PENDING")
		if !strings.HasSuffix(status.Convert(err).Message(), "another account") {
			t.Errorf("refusal for another account: %v", err)
		}
		// The same account again is refused as well (not AlreadyExists).
		_, err = e.Client.CreateConnection(ctx, e.createReq("Octo-Org"))
		wantLiveRefusal(t, err, live, "PENDING")
		again, err := e.Client.CreateConnection(ctx, req)
		if err != nil || again.Connection.Id != live.Id {
			t.Fatalf("retry of the first create: %v %v, want %s", again, err, live.Id)
		}
		// Its request id used for another request is refused as such.
		changed := proto.Clone(req).(*registryv1.CreateConnectionRequest)
		changed.Account.Kind = registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE
		_, err = e.Client.CreateConnection(ctx, changed)
		wantCode(t, err, codes.InvalidArgument)
		wantField(t, err, "request_id")

		e.connect(t, live.Id)
		_, err = e.Client.CreateConnection(ctx, e.createReq("other-org"))
		wantLiveRefusal(t, err, live, "CONNECTED")
		if n := liveRows(t, dsn); n != 1 {
			t.Fatalf("%d live connections after refused creates, want 1", n)
		}
		list, err := e.Client.ListConnections(ctx, &registryv1.ListConnectionsRequest{})
		if err != nil || len(list.Connections) != 1 {
			t.Fatalf("refused creates left connections: %v %v", list.GetConnections(), err)
		}

		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: live.Id, Reason: "moving to other-org"}); err != nil {
			t.Fatal(err)
		}
		next := e.create(t, "other-org")
		if next.Id == live.Id || next.State != registryv1.ConnectionState_CONNECTION_STATE_PENDING {
			t.Fatalf("after the disconnect: %v", next)
		}
		// The retry of the first create still answers with the first,
		// DISCONNECTED now.
		again, err = e.Client.CreateConnection(ctx, req)
		if err != nil || again.Connection.Id != live.Id || again.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
			t.Fatalf("retry after the disconnect: %v %v", again, err)
		}
	})
}

// A DISCONNECTING connection is still live: its disconnect is not done.
func TestDisconnectingIsLive(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		ctx := e.ctx(t, "alice")
		c := e.create(t, "octo-org")
		// A registry that died after the disconnect's first step.
		if err := e.move(ctx, c.Id, registry.BeginDisconnect()); err != nil {
			t.Fatal(err)
		}
		_, err := e.Client.CreateConnection(ctx, e.createReq("other-org"))
		wantLiveRefusal(t, err, c, "DISCONNECTING")
		// What the stuck-disconnect alert reads, ten minutes on.
		later := time.Now().Add(10 * time.Minute)
		if got := stateGauge(t, e.Store, later, "ghconnect_registry_disconnecting_oldest_seconds", ""); got < 590 || got > 700 {
			t.Errorf("disconnecting for %v s, want about 600", got)
		}
		if got := stateGauge(t, e.Store, later, "ghconnect_registry_connections", "disconnecting"); got != 1 {
			t.Errorf("%v connections disconnecting, want 1", got)
		}
		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: c.Id}); err != nil {
			t.Fatal(err)
		}
		if got := stateGauge(t, e.Store, later, "ghconnect_registry_disconnecting_oldest_seconds", ""); got != 0 {
			t.Errorf("after the disconnect finished: disconnecting for %v s", got)
		}
		e.create(t, "other-org")
	})
}

// Creates racing, in one replica or across two on the same database,
// leave exactly one live connection; creates racing with one request id
// create one connection and all answer with it.
func TestConcurrentCreatesOneLive(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		b := registrytest.StartBackends(t)
		replicas := []*env{{registrytest.StartConnected(t, dsn, b)}, {registrytest.StartConnected(t, dsn, b)}}
		const callers = 6
		race := func(reqs []*registryv1.CreateConnectionRequest) ([]*registryv1.Connection, []error) {
			out, errs := make([]*registryv1.Connection, len(reqs)), make([]error, len(reqs))
			ctxs := make([]context.Context, len(reqs))
			for i := range reqs {
				ctxs[i] = replicas[i%2].ctx(t, "alice")
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, req := range reqs {
				wg.Go(func() {
					<-start
					resp, err := replicas[i%2].Client.CreateConnection(ctxs[i], req)
					out[i], errs[i] = resp.GetConnection(), err
				})
			}
			close(start)
			wg.Wait()
			return out, errs
		}
		for round := range 3 {
			reqs := make([]*registryv1.CreateConnectionRequest, callers)
			for i := range reqs {
				reqs[i] = replicas[i%2].createReq(fmt.Sprintf("org-%d-%d", round, i))
			}
			got, errs := race(reqs)
			var winner *registryv1.Connection
			for i, err := range errs {
				if err == nil {
					if winner != nil {
						t.Fatalf("round %d: two creates won: %s and %s", round, winner.Id, got[i].Id)
					}
					winner = got[i]
				}
			}
			if winner == nil {
				t.Fatalf("round %d: no create won: %v", round, errs)
			}
			for _, err := range errs {
				if err != nil {
					wantLiveRefusal(t, err, winner, "PENDING")
				}
			}
			if n := liveRows(t, dsn); n != 1 {
				t.Fatalf("round %d: %d live connections, want 1", round, n)
			}
			if _, err := replicas[round%2].Client.Disconnect(replicas[round%2].ctx(t, "alice"), &registryv1.DisconnectRequest{Id: winner.Id}); err != nil {
				t.Fatal(err)
			}
		}

		// One request id, retried at once on one replica (each replica
		// trusts licenses of its own issuer).
		replicas[1] = replicas[0]
		req := replicas[0].createReq("octo-org")
		reqs := make([]*registryv1.CreateConnectionRequest, callers)
		for i := range reqs {
			reqs[i] = req
		}
		got, errs := race(reqs)
		for i, err := range errs {
			if err != nil || got[i].Id != got[0].Id {
				t.Fatalf("one request id, call %d: %v %v, want connection %s", i, got[i], err, got[0].GetId())
			}
		}
		if n := liveRows(t, dsn); n != 1 {
			t.Fatalf("one request id made %d live connections", n)
		}
	})
}

// The database itself keeps a second connection from holding the live
// slot, whatever a store's code checked.
func TestLiveSlotIsUnique(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startConnected(t, dsn)
		ctx := e.ctx(t, "alice")
		old := e.create(t, "octo-org")
		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: old.Id}); err != nil {
			t.Fatal(err)
		}
		e.create(t, "other-org")
		db, err := sqldb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, err = db.Exec(`UPDATE connections SET state = 1, live_slot = 1 WHERE id = $1`, old.Id)
		if !sqldb.IsUniqueViolation(err) {
			t.Fatalf("a second row took the live slot: %v", err)
		}
	})
}

// legacyConnection is a row as a registry before the one-live rule wrote
// it, in the schema of its time.
type legacyConnection struct {
	conn    *registryv1.Connection
	created time.Time
}

// legacyDatabase makes dsn a database from before the one-live rule
// (migrations 001 to 004) holding conns.
func legacyDatabase(t *testing.T, dsn string, conns ...legacyConnection) {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := testenv.MigrationsBefore(t, registry.MigrationFiles, "005", 4)
	if err := db.Migrate(ctx, old); err != nil {
		t.Fatal(err)
	}
	for i, lc := range conns {
		c := lc.conn
		c.CreateTime = timestamppb.New(lc.created)
		// As that registry's store wrote it: protojson with the proto
		// field names.
		rec, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var active any = strings.ToLower(c.ServerHostname + "|" + c.Account.Kind.String() + "|" + c.Account.Login)
		if c.State == registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
			active = nil
		}
		if _, err := db.Exec(`INSERT INTO connections (id, request_id, request_hash, state, active_key, version, create_time, record) VALUES ($1, $2, $3, $4, $5, 1, $6, $7)`,
			c.Id, fmt.Sprintf("legacy-%d", i), "h", int32(c.State), active, lc.created.UnixMicro(), string(rec)); err != nil {
			t.Fatal(err)
		}
	}
}

// A database made before the rule may hold several live connections: the
// migration keeps them all (the newest takes the slot), a new connection
// is refused while any is live, each can still be disconnected, and once
// none is live the server can be connected again.
func TestMigrationKeepsLegacyLiveConnections(t *testing.T) {
	t.Parallel()
	testenv.Stores(t, func(t *testing.T, dsn string) {
		now := time.Now()
		org := func(login string) *registryv1.Account {
			return &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION, Login: login, Id: 1}
		}
		// The older one was enabled for real: its App is installed on
		// GitHub.com and its key is in Vault.
		b := registrytest.StartBackends(t)
		b.Emu.AddAccount("octo-org", "Organization")
		appID, err := b.Emu.AddApp(ghemu.AppSpec{Slug: "legacy-app", Owner: "octo-org"}, &registrytest.AppKey().PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := b.Emu.Install(appID, "octo-org", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Transit.ImportKey(context.Background(), vaulttransit.AppKeyName("legacy-older"), registrytest.PEM(registrytest.AppKey())); err != nil {
			t.Fatal(err)
		}
		older := &registryv1.Connection{Id: "legacy-older", State: registryv1.ConnectionState_CONNECTION_STATE_CONNECTED, ServerHostname: "ghes.example.com", ServerVersion: "3.14.2",
			Account: org("octo-org"), App: &registryv1.GitHubApp{AppId: appID, Slug: "legacy-app"}, InstallationId: inst.ID,
			TransitKey: &registryv1.TransitKey{Mount: "transit", Name: vaulttransit.AppKeyName("legacy-older"), Versions: []int32{1}}}
		newer := &registryv1.Connection{Id: "legacy-newer", State: registryv1.ConnectionState_CONNECTION_STATE_PENDING, ServerHostname: "ghes2.example.com", ServerVersion: "3.14.2",
			Account: org("other-org")}
		gone := &registryv1.Connection{Id: "legacy-gone", State: registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED, ServerHostname: "ghes.example.com", ServerVersion: "3.14.2",
			Account: org("third-org")}
		legacyDatabase(t, dsn,
			legacyConnection{gone, now.Add(-3 * time.Hour)},
			legacyConnection{older, now.Add(-2 * time.Hour)},
			legacyConnection{newer, now.Add(-time.Hour)})

		e := &env{registrytest.StartConnected(t, dsn, b)} // migrates
		ctx := e.ctx(t, "alice")
		db, err := sqldb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var holder string
		if err = db.QueryRow(`SELECT id FROM connections WHERE live_slot IS NOT NULL`).Scan(&holder); err != nil || holder != newer.Id {
			t.Fatalf("the live slot is %q (%v), want the newest live connection %s", holder, err, newer.Id)
		}
		if n := liveRows(t, dsn); n != 2 {
			t.Fatalf("%d live connections after the migration, want both kept", n)
		}

		_, err = e.Client.CreateConnection(ctx, e.createReq("fourth-org"))
		wantLiveRefusal(t, err, newer, "PENDING")
		if _, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: newer.Id}); err != nil {
			t.Fatal(err)
		}
		// The older one is live still, without the slot: still refused.
		_, err = e.Client.CreateConnection(ctx, e.createReq("fourth-org"))
		wantLiveRefusal(t, err, older, "CONNECTED")
		done, err := e.Client.Disconnect(ctx, &registryv1.DisconnectRequest{Id: older.Id, Etag: "1"})
		if err != nil || done.Connection.State != registryv1.ConnectionState_CONNECTION_STATE_DISCONNECTED {
			t.Fatalf("disconnecting the older live connection: %v %v", done, err)
		}
		if _, ok := b.Emu.Installation(inst.ID); ok {
			t.Errorf("the older connection's installation is still on GitHub.com")
		}
		c := e.create(t, "fourth-org")
		if err := db.QueryRow(`SELECT id FROM connections WHERE live_slot IS NOT NULL`).Scan(&holder); err != nil || holder != c.Id {
			t.Fatalf("the live slot is %q (%v), want the new connection %s", holder, err, c.Id)
		}
	})
}
