package registry_test

import (
	"context"
	"slices"
	"testing"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/ghconnect/ghconnect/services/registry/registrytest"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// A person's change through the gateway is theirs, with the gateway as
// via, in the event and in its column; the history of every connection
// pages both ways.
func TestHistoryViaAndAllConnections(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := &env{registrytest.StartConnected(t, dsn, registrytest.StartBackends(t), "gateway")}
		asGrace := metadata.AppendToOutgoingContext(e.ctx(t, "gateway"), auth.UserHeader, "grace@example.com", auth.RolesHeader, "admin")
		one, err := e.Client.CreateConnection(asGrace, e.createReq("octo-org"))
		if err != nil {
			t.Fatal(err)
		}
		// grace cancels it through the gateway, and alice connects the
		// server to another account, directly.
		if _, err := e.Client.Disconnect(asGrace, &registryv1.DisconnectRequest{Id: one.Connection.Id, Reason: "moving"}); err != nil {
			t.Fatal(err)
		}
		two := e.create(t, "other-org")

		type row struct{ Conn, Action, Actor, Via string }
		rows := func(evs []*registryv1.ConnectionEvent) []row {
			var out []row
			for _, ev := range evs {
				name := map[string]string{one.Connection.Id: "one", two.Id: "two"}[ev.ConnectionId]
				out = append(out, row{name, ev.Action, ev.Actor, ev.Via})
			}
			return out
		}
		byGrace := func(action string) row { return row{"one", action, "grace@example.com", "gateway"} }
		oldestFirst := []row{
			byGrace("create"),
			byGrace("begin_disconnect"),
			byGrace("disconnect_step:features_off"),
			byGrace("disconnect_step:tokens_revoked"),
			byGrace("disconnect_step:installation_removed"),
			byGrace("disconnect_step:key_deleted"),
			byGrace("complete_disconnect"),
			{"two", "create", "alice", ""},
		}
		newestFirst := slices.Clone(oldestFirst)
		slices.Reverse(newestFirst)

		// One connection, as before.
		h, err := e.Client.ListConnectionHistory(e.ctx(t, "alice"), &registryv1.ListConnectionHistoryRequest{Id: one.Connection.Id})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(oldestFirst[:7], rows(h.Events)); diff != "" {
			t.Errorf("one connection's history (-want +got):\n%s", diff)
		}

		// The column holds via as well as the event.
		db, err := sqldb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, ev := range h.Events {
			var via string
			if err := db.QueryRow(`SELECT via FROM connection_events WHERE revision = $1`, ev.Revision).Scan(&via); err != nil {
				t.Fatal(err)
			}
			if via != "gateway" {
				t.Errorf("revision %d: via column %q", ev.Revision, via)
			}
		}

		// Every connection ("-" or empty), a page of one at a time, in
		// either order.
		for _, tc := range []struct {
			id          string
			newestFirst bool
			want        []row
		}{
			{"-", false, oldestFirst},
			{"", false, oldestFirst},
			{"-", true, newestFirst},
		} {
			var got []*registryv1.ConnectionEvent
			tok := ""
			for pages := 0; ; pages++ {
				if pages > len(tc.want) {
					t.Fatalf("%q newest first %v: more pages than events", tc.id, tc.newestFirst)
				}
				page, err := e.Client.ListConnectionHistory(e.ctx(t, "alice"), &registryv1.ListConnectionHistoryRequest{Id: tc.id, PageSize: 1, PageToken: tok, NewestFirst: tc.newestFirst})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page.Events...)
				if tok = page.NextPageToken; tok == "" {
					break
				}
			}
			if diff := cmp.Diff(tc.want, rows(got)); diff != "" {
				t.Errorf("%q newest first %v (-want +got):\n%s", tc.id, tc.newestFirst, diff)
			}
		}

		// An auditor reads it; a page token works only for the scope and
		// order it was made for.
		asAda := metadata.AppendToOutgoingContext(e.ctx(t, "gateway"), auth.UserHeader, "ada@example.com", auth.RolesHeader, "auditor")
		first, err := e.Client.ListConnectionHistory(asAda, &registryv1.ListConnectionHistoryRequest{Id: "-", PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Client.ListConnectionHistory(asAda, &registryv1.ListConnectionHistoryRequest{Id: "-", PageSize: 1, PageToken: first.NextPageToken, NewestFirst: true})
		wantCode(t, err, codes.InvalidArgument)
		_, err = e.Client.ListConnectionHistory(asAda, &registryv1.ListConnectionHistoryRequest{Id: two.Id, PageToken: first.NextPageToken})
		wantCode(t, err, codes.InvalidArgument)
		_, err = e.Client.ListConnectionHistory(asAda, &registryv1.ListConnectionHistoryRequest{Id: "no-such-connection"})
		wantCode(t, err, codes.NotFound)
	})
}

// Each event is served with its action as an enum and in words, from the
// registry's one table, in the history and on Watch; a row whose action
// this registry does not know (another version's) is said by its name.
func TestHistoryInWords(t *testing.T) {
	t.Parallel()
	registry.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startRegistry(t, dsn)
		ctx := e.ctx(t, "alice")
		id := e.create(t, "octo-org").Id
		for _, m := range []registry.Move{registry.AppCreated(testApp()), registry.BeginDisconnect(), registry.CompleteDisconnect()} {
			if err := e.move(ctx, id, m); err != nil {
				t.Fatal(err)
			}
		}

		type said struct {
			Action  string
			Kind    registryv1.ConnectionAction
			Summary string
		}
		want := []said{
			{"create", registryv1.ConnectionAction_CONNECTION_ACTION_CREATE, "Enabling began: the connection record was created"},
			{"app_created", registryv1.ConnectionAction_CONNECTION_ACTION_APP_CREATED, "Enable: the GitHub App was created on GitHub.com and its private key stored in Vault"},
			{"begin_disconnect", registryv1.ConnectionAction_CONNECTION_ACTION_BEGIN_DISCONNECT, "Disconnect began"},
			{"complete_disconnect", registryv1.ConnectionAction_CONNECTION_ACTION_COMPLETE_DISCONNECT, "Disconnect finished: GitHub Connect is disabled"},
		}
		saying := func(evs []*registryv1.ConnectionEvent) []said {
			var out []said
			for _, ev := range evs {
				out = append(out, said{ev.Action, ev.ActionKind, ev.Summary})
			}
			return out
		}
		h, err := e.Client.ListConnectionHistory(ctx, &registryv1.ListConnectionHistoryRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, saying(h.Events)); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
		stream, err := e.Client.WatchConnections(ctx, &registryv1.WatchConnectionsRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, saying(recvN(t, stream, len(want)))); diff != "" {
			t.Errorf("watch (-want +got):\n%s", diff)
		}

		// A row another version wrote, with an action this one does not
		// know: it reads, said by its name.
		db, err := sqldb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		last := h.Events[len(h.Events)-1].Revision
		if _, err := db.Exec(`UPDATE connection_events SET event = replace(event, '"complete_disconnect"', '"archive_app:v2"') WHERE revision = $1`, last); err != nil {
			t.Fatal(err)
		}
		h, err = e.Client.ListConnectionHistory(ctx, &registryv1.ListConnectionHistoryRequest{Id: id, NewestFirst: true, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]said{{"archive_app:v2", registryv1.ConnectionAction_CONNECTION_ACTION_UNSPECIFIED, "Change: archive app v2"}}, saying(h.Events)); diff != "" {
			t.Errorf("an unknown action (-want +got):\n%s", diff)
		}
	})
}
