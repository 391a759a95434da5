package featuregate_test

import (
	"context"
	"slices"
	"testing"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
)

// The audit trail of the settings, through its list API: who (and via
// what) changed which feature from what to what, per connection or for
// all, a page at a time in either order.
func TestListSettingsHistory(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := start(t, dsn)
		one := e.connect(t, allPerms)
		as := func(person, role string) context.Context {
			return metadata.AppendToOutgoingContext(e.ctx(t, "gateway"), auth.UserHeader, person, auth.RolesHeader, role)
		}
		grace, ada := as("grace@example.com", "admin"), as("ada@example.com", "auditor")
		if _, err := e.gate.UpdateSettings(grace, &featuregatev1.UpdateSettingsRequest{ConnectionId: one,
			Features: []*featuregatev1.FeatureSetting{{Feature: search, Enabled: true, IncludePrivate: true}}}); err != nil {
			t.Fatal(err)
		}
		// The registry disconnects one: the gate switches its features
		// off. Then the server is connected again, as two.
		if _, err := e.reg.Client.Disconnect(e.reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: one}); err != nil {
			t.Fatal(err)
		}
		setting := func(f featuregatev1.Feature, on, private bool) *featuregatev1.FeatureSetting {
			return &featuregatev1.FeatureSetting{Feature: f, Enabled: on, IncludePrivate: private}
		}
		searchOn := []*featuregatev1.SettingChange{{Feature: search, From: setting(search, false, false), To: setting(search, true, true)}}
		searchOff := []*featuregatev1.SettingChange{{Feature: search, From: setting(search, true, true), To: setting(search, false, false)}}
		var newest []*featuregatev1.SettingsEvent
		e.eventually(t, "the disconnect is in the gate's history", func() bool {
			resp, err := e.gate.ListSettingsHistory(ada, &featuregatev1.ListSettingsHistoryRequest{ConnectionId: one, NewestFirst: true})
			if err != nil {
				t.Fatal(err)
			}
			newest = resp.Events
			return len(newest) > 0 && newest[0].Action == "disconnected"
		})
		ignore := protocmp.IgnoreFields(&featuregatev1.SettingsEvent{}, "revision", "event_time", "connection_id")
		want := []*featuregatev1.SettingsEvent{
			{Action: "disconnected", ActionKind: featuregatev1.SettingsAction_SETTINGS_ACTION_DISCONNECTED, Actor: "system:registry", Changes: searchOff,
				Summary: "Every feature was switched off: the connection is no longer connected"},
			{Action: "update_settings", ActionKind: featuregatev1.SettingsAction_SETTINGS_ACTION_UPDATE_SETTINGS, Actor: "grace@example.com", Via: "gateway", Changes: searchOn,
				Summary: "Feature settings changed"},
		}
		if diff := cmp.Diff(want, newest[:2], protocmp.Transform(), ignore); diff != "" {
			t.Errorf("one's newest events (-want +got):\n%s", diff)
		}
		two := e.connect(t, allPerms)
		if _, err := e.set(t, two, &featuregatev1.FeatureSetting{Feature: dependabot, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if err := featuregate.Link(context.Background(), e.store, two, "mona", "mona-gh", 5, "search-svc"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.gate.SetUserConsent(e.ctx(t, "search-svc"), &featuregatev1.SetUserConsentRequest{ConnectionId: two, User: "mona", Feature: contributions, OptedIn: true}); err != nil {
			t.Fatal(err)
		}

		// via has its column.
		db, err := sqldb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var via string
		if err := db.QueryRow(`SELECT via FROM gate_events WHERE revision = $1`, newest[1].Revision).Scan(&via); err != nil || via != "gateway" {
			t.Errorf("via column: %q, %v", via, err)
		}

		// Every connection, a page of two at a time, both orders.
		pages := func(newestFirst bool) []*featuregatev1.SettingsEvent {
			var all []*featuregatev1.SettingsEvent
			tok := ""
			for n := 0; n < 50; n++ {
				resp, err := e.gate.ListSettingsHistory(ada, &featuregatev1.ListSettingsHistoryRequest{ConnectionId: "-", PageSize: 2, PageToken: tok, NewestFirst: newestFirst})
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, resp.Events...)
				if tok = resp.NextPageToken; tok == "" {
					return all
				}
			}
			t.Fatal("no last page")
			return nil
		}
		oldest, latest := pages(false), pages(true)
		slices.Reverse(latest)
		if diff := cmp.Diff(oldest, latest, protocmp.Transform()); diff != "" {
			t.Errorf("the two orders differ (-oldest first +newest first, reversed):\n%s", diff)
		}
		var seen []string
		for i, ev := range oldest {
			if i > 0 && ev.Revision <= oldest[i-1].Revision {
				t.Errorf("revision %d after %d", ev.Revision, oldest[i-1].Revision)
			}
			if ev.ConnectionId == two && ev.Action != "update_settings" {
				seen = append(seen, ev.Action+" "+ev.User+" "+ev.GithubLogin+" "+ev.Feature.String()+" | "+ev.ActionKind.String()+": "+ev.Summary)
			}
		}
		if diff := cmp.Diff([]string{
			"connected   FEATURE_UNSPECIFIED | SETTINGS_ACTION_CONNECTED: Features can be switched on: the connection is connected",
			"link_account mona mona-gh FEATURE_UNSPECIFIED | SETTINGS_ACTION_LINK_ACCOUNT: mona linked the GitHub.com account mona-gh",
			"set_consent mona  FEATURE_UNIFIED_CONTRIBUTIONS | SETTINGS_ACTION_SET_CONSENT: mona opted in to Unified contributions",
		}, seen); diff != "" {
			t.Errorf("two's other events (-want +got):\n%s", diff)
		}

		// A page token is for its connection and order only; an auditor
		// reads but does not change.
		first, err := e.gate.ListSettingsHistory(ada, &featuregatev1.ListSettingsHistoryRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range []*featuregatev1.ListSettingsHistoryRequest{
			{PageToken: first.NextPageToken, NewestFirst: true},
			{ConnectionId: two, PageToken: first.NextPageToken},
			{PageToken: "bm9wZQ"},
			{PageSize: -1},
		} {
			if _, err := e.gate.ListSettingsHistory(ada, req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%v: %v, want InvalidArgument", req, err)
			}
		}
		if _, err := e.gate.UpdateSettings(ada, &featuregatev1.UpdateSettingsRequest{ConnectionId: two, Features: []*featuregatev1.FeatureSetting{{Feature: search}}}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("an auditor changed settings: %v", err)
		}
	})
}
