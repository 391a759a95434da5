package featuregate_test

import (
	"context"
	"testing"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Rows as the gate stored them before it had storage types of its own:
// protojson.MarshalOptions{UseProtoNames: true} of fully populated
// messages, made with that code. settingsV1 is gate_settings.settings,
// snapshotV1 gate_events.snapshot.
const (
	settingsV1 = `{"connection_id":"conn-1","features":[{"feature":"FEATURE_UNIFIED_SEARCH","enabled":true,"include_private":true},{"feature":"FEATURE_UNIFIED_CONTRIBUTIONS","enabled":true},{"feature":"FEATURE_DEPENDABOT_ALERTS","include_private":true},{"feature":"FEATURE_LICENSE_SYNC"},{"feature":"FEATURE_ACTIONS_ACCESS","enabled":true},{"feature":"FEATURE_SERVER_STATISTICS"}],"update_time":"2026-12-06T10:20:30.120Z","updated_by":"grace@example.com"}`
	snapshotV1 = `{"revision":"7","settings":{"connection_id":"conn-1","features":[{"feature":"FEATURE_UNIFIED_SEARCH","enabled":true,"include_private":true,"missing_permissions":{"contents":"read","metadata":"read"}},{"feature":"FEATURE_UNIFIED_CONTRIBUTIONS"}],"etag":"3","update_time":"2026-12-06T10:20:30.123456789Z","updated_by":"O'Brien <ob@example.com> & co","connection_etag":"reg-etag-9"},"connected":true}`
)

// The messages those rows were made of.
func settingsV1Message() *featuregatev1.Settings {
	return &featuregatev1.Settings{ConnectionId: "conn-1", UpdatedBy: "grace@example.com",
		UpdateTime: timestamppb.New(time.Date(2026, 12, 6, 10, 20, 30, 120000000, time.UTC)),
		Features: []*featuregatev1.FeatureSetting{
			{Feature: featuregatev1.Feature_FEATURE_UNIFIED_SEARCH, Enabled: true, IncludePrivate: true},
			{Feature: featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS, Enabled: true},
			{Feature: featuregatev1.Feature_FEATURE_DEPENDABOT_ALERTS, IncludePrivate: true},
			{Feature: featuregatev1.Feature_FEATURE_LICENSE_SYNC},
			{Feature: featuregatev1.Feature_FEATURE_ACTIONS_ACCESS, Enabled: true},
			{Feature: featuregatev1.Feature_FEATURE_SERVER_STATISTICS},
		}}
}

func snapshotV1Message() *featuregatev1.WatchResponse {
	return &featuregatev1.WatchResponse{Revision: 7, Connected: true, Settings: &featuregatev1.Settings{
		ConnectionId: "conn-1", Etag: "3", ConnectionEtag: "reg-etag-9", UpdatedBy: "O'Brien <ob@example.com> & co",
		UpdateTime: timestamppb.New(time.Date(2026, 12, 6, 10, 20, 30, 123456789, time.UTC)),
		Features: []*featuregatev1.FeatureSetting{
			{Feature: featuregatev1.Feature_FEATURE_UNIFIED_SEARCH, Enabled: true, IncludePrivate: true, MissingPermissions: map[string]string{"metadata": "read", "contents": "read"}},
			{Feature: featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS},
		}}}
}

// openDB opens the store's database itself, to write and read rows
// around the store.
func openDB(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A database written by the version that stored protojson reads
// unchanged: settings, the Watch feed and the view Check answers from.
func TestReadsRowsStoredBefore(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, db := openStore(t, dsn), openDB(t, dsn)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO gate_settings (connection_id, version, settings) VALUES ($1, $2, $3)`, []any{"conn-1", 4, settingsV1}},
			{`INSERT INTO gate_events (revision, connection_id, action, actor, via, event_time, detail, snapshot) VALUES ($1, $2, 'update_settings', 'grace', '', 1, '{}', $3)`,
				[]any{7, "conn-1", snapshotV1}},
			// protojson's output is deliberately unstable: it sometimes
			// put a space after each comma.
			{`INSERT INTO gate_events (revision, connection_id, action, actor, via, event_time, detail, snapshot) VALUES ($1, $2, 'connected', 'system:registry', '', 1, '{}', $3)`,
				[]any{8, "conn-2", `{"revision":"8", "settings":{"connection_id":"conn-2", "features":[{"feature":"FEATURE_LICENSE_SYNC"}], "etag":"1", "update_time":"2026-12-06T10:20:31Z"}}`}},
			// It wrote an int64 quoted, and read a bare number too.
			{`INSERT INTO gate_events (revision, connection_id, action, actor, via, event_time, detail, snapshot) VALUES ($1, $2, 'connected', 'system:registry', '', 1, '{}', $3)`,
				[]any{9, "conn-3", `{"revision":9,"settings":{"connection_id":"conn-3"},"connected":true}`}},
			// An event without a snapshot is no part of the feed.
			{`INSERT INTO gate_events (revision, connection_id, action, actor, via, event_time, detail, snapshot) VALUES ($1, $2, 'set_consent', 'mona', '', 1, '{}', '')`,
				[]any{10, "conn-1"}},
		} {
			if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}

		want := settingsV1Message()
		want.Etag = "4" // the version column's
		got, err := featuregate.StoredSettings(ctx, s, "conn-1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("settings stored before (-want +got):\n%s", diff)
		}

		w1 := snapshotV1Message()
		w2 := &featuregatev1.WatchResponse{Revision: 8, Settings: &featuregatev1.Settings{ConnectionId: "conn-2", Etag: "1",
			UpdateTime: timestamppb.New(time.Date(2026, 12, 6, 10, 20, 31, 0, time.UTC)),
			Features:   []*featuregatev1.FeatureSetting{{Feature: featuregatev1.Feature_FEATURE_LICENSE_SYNC}}}}
		w3 := &featuregatev1.WatchResponse{Revision: 9, Connected: true, Settings: &featuregatev1.Settings{ConnectionId: "conn-3"}}
		for _, c := range []struct {
			after int64
			conn  string
			want  []*featuregatev1.WatchResponse
		}{
			{0, "", []*featuregatev1.WatchResponse{w1, w2, w3}},
			{7, "", []*featuregatev1.WatchResponse{w2, w3}},
			{0, "conn-1", []*featuregatev1.WatchResponse{w1}},
		} {
			got, err := s.Snapshots(ctx, c.after, c.conn, 100)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("snapshots after %d of %q (-want +got):\n%s", c.after, c.conn, diff)
			}
		}
		for _, want := range []*featuregatev1.WatchResponse{w1, w2, w3} {
			got, err := featuregate.ViewSnapshot(ctx, s, want.Settings.ConnectionId)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("view of %s (-want +got):\n%s", want.Settings.ConnectionId, diff)
			}
		}
	})
}

// What the store writes is pinned, and is what the protojson version
// wrote: a change of the stored form is then a test that fails, and a
// migration someone writes on purpose.
func TestStoredForm(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, db := openStore(t, dsn), openDB(t, dsn)

		// The derived fields are set, and left out.
		st := settingsV1Message()
		st.ConnectionEtag = "reg-etag-9"
		st.Features[0].MissingPermissions = map[string]string{"contents": "read"}
		if err := featuregate.WriteSettings(ctx, s, st); err != nil {
			t.Fatal(err)
		}
		// Written again over version 1, so etag is "1" as it is written.
		if err := featuregate.WriteSettings(ctx, s, st); err != nil {
			t.Fatal(err)
		}
		var raw string
		if err := db.QueryRowContext(ctx, `SELECT settings FROM gate_settings WHERE connection_id = 'conn-1'`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if raw != settingsV1 {
			t.Errorf("stored settings:\n got %s\nwant %s", raw, settingsV1)
		}

		w := snapshotV1Message()
		rev, err := featuregate.AppendSnapshot(ctx, s, w)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT snapshot FROM gate_events WHERE revision = $1`, rev).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		// The snapshot stores its revision, the row's.
		want := snapshotV1
		if rev != 1 {
			t.Fatalf("first event's revision %d, want 1", rev)
		}
		want = `{"revision":"1"` + want[len(`{"revision":"7"`):]
		if raw != want {
			t.Errorf("stored snapshot:\n got %s\nwant %s", raw, want)
		}
	})
}

// Every field of the messages the gate stores is stored, except those
// derived when read, named here: a field added to Settings,
// FeatureSetting or WatchResponse (or a feature added) fails this test
// until the storage types have it.
func TestStorageCoversTheAPI(t *testing.T) {
	t.Parallel()
	// Derived on every read, never stored in gate_settings.
	derived := map[protoreflect.FullName][]protoreflect.Name{
		"ghconnect.featuregate.v1.Settings":       {"etag", "connection_etag"},
		"ghconnect.featuregate.v1.FeatureSetting": {"missing_permissions"},
	}
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := openStore(t, dsn)

		st := fullSettings(t)
		if err := featuregate.WriteSettings(ctx, s, proto.Clone(st).(*featuregatev1.Settings)); err != nil {
			t.Fatal(err)
		}
		got, err := featuregate.StoredSettings(ctx, s, st.ConnectionId)
		if err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(st).(*featuregatev1.Settings)
		clearFields(t, want.ProtoReflect(), derived)
		want.Etag = "1"
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("settings read back (-want +got):\n%s", diff)
		}

		w := &featuregatev1.WatchResponse{}
		populate(t, w.ProtoReflect())
		w.Settings = fullSettings(t)
		rev, err := featuregate.AppendSnapshot(ctx, s, proto.Clone(w).(*featuregatev1.WatchResponse))
		if err != nil {
			t.Fatal(err)
		}
		snaps, err := s.Snapshots(ctx, rev-1, "", 1)
		if err != nil {
			t.Fatal(err)
		}
		w.Revision = rev
		if diff := cmp.Diff([]*featuregatev1.WatchResponse{w}, snaps, protocmp.Transform()); diff != "" {
			t.Errorf("snapshot read back (-want +got):\n%s", diff)
		}
	})
}

// fullSettings are settings with every field set, and a fully set
// FeatureSetting for each feature there is.
func fullSettings(t *testing.T) *featuregatev1.Settings {
	st := &featuregatev1.Settings{}
	populate(t, st.ProtoReflect())
	one := st.Features[0]
	st.Features = nil
	values := featuregatev1.Feature(0).Descriptor().Values()
	for i := 0; i < values.Len(); i++ {
		if n := values.Get(i).Number(); n != 0 {
			f := proto.Clone(one).(*featuregatev1.FeatureSetting)
			f.Feature = featuregatev1.Feature(n)
			st.Features = append(st.Features, f)
		}
	}
	return st
}

// populate sets every field of m (recursively) to a value of its own that
// is not the zero value, so a field that is not stored shows.
func populate(t *testing.T, m protoreflect.Message) {
	t.Helper()
	if m.Descriptor().FullName() == "google.protobuf.Timestamp" {
		ts := timestamppb.New(time.Date(2026, 12, 6, 10, 20, 30, 123456000, time.UTC))
		proto.Merge(m.Interface(), ts)
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			v := m.NewField(fd)
			v.Map().Set(scalar(t, fd.MapKey()).MapKey(), element(t, fd.MapValue(), v.Map().NewValue))
			m.Set(fd, v)
		case fd.IsList():
			v := m.NewField(fd)
			v.List().Append(element(t, fd, v.List().NewElement))
			m.Set(fd, v)
		default:
			m.Set(fd, element(t, fd, func() protoreflect.Value { return m.NewField(fd) }))
		}
	}
}

func element(t *testing.T, fd protoreflect.FieldDescriptor, newValue func() protoreflect.Value) protoreflect.Value {
	t.Helper()
	if fd.Message() == nil {
		return scalar(t, fd)
	}
	v := newValue()
	populate(t, v.Message())
	return v
}

// scalar is a value for fd that is not zero and differs from other
// fields' (an int64 beyond what a float64 holds exactly).
func scalar(t *testing.T, fd protoreflect.FieldDescriptor) protoreflect.Value {
	t.Helper()
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(string(fd.Name()) + " <&> value")
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(1<<60 + int64(fd.Number()))
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(1000 + int32(fd.Number()))
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		for i := 0; i < values.Len(); i++ {
			if n := values.Get(i).Number(); n != 0 {
				return protoreflect.ValueOfEnum(n)
			}
		}
	}
	t.Fatalf("populate has no value for %s (%v): give it one", fd.FullName(), fd.Kind())
	return protoreflect.Value{}
}

// clearFields clears, in m and the messages in it, the fields named in
// derived, each of which must exist.
func clearFields(t *testing.T, m protoreflect.Message, derived map[protoreflect.FullName][]protoreflect.Name) {
	t.Helper()
	for _, name := range derived[m.Descriptor().FullName()] {
		fd := m.Descriptor().Fields().ByName(name)
		if fd == nil {
			t.Fatalf("%s has no field %s", m.Descriptor().FullName(), name)
		}
		m.Clear(fd)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				clearFields(t, v.List().Get(i).Message(), derived)
			}
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			clearFields(t, v.Message(), derived)
		}
		return true
	})
}
