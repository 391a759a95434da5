// Storage types of the feature gate: what gate_settings.settings and
// gate_events.snapshot hold, as JSON.
//
// Storage has types of its own instead of saving the public API messages.
// It used to save featuregatev1.Settings and WatchResponse as protojson, so
// renaming or retyping a field of featuregate.proto silently changed what
// was stored, and an API change became a data migration nobody wrote. Now
// an API change only changes the conversions below; the stored form
// changes only when these types do, and that is a migration we write on
// purpose.
//
// The stored form is the one protojson wrote (proto field names, enums by
// name, int64 as a quoted number, RFC 3339 timestamps, zero values left
// out, fields in the same order), so rows written by earlier versions read
// unchanged and no migration was needed to switch.

package featuregate

import (
	"fmt"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/storedjson"
)

// settingsRecord is a connection's settings as stored. In gate_settings
// it holds no etag, connection_etag or missing_permissions: those are
// derived when read (from the row's version, the registry's record and
// the App's permissions). A snapshot holds them all, as Watch sent them.
// Fields are in the order protojson wrote them.
type settingsRecord struct {
	ConnectionID   string           `json:"connection_id,omitempty"`
	Features       []featureRecord  `json:"features,omitempty"`
	Etag           string           `json:"etag,omitempty"`
	UpdateTime     *storedjson.Time `json:"update_time,omitempty"`
	UpdatedBy      string           `json:"updated_by,omitempty"`
	ConnectionEtag string           `json:"connection_etag,omitempty"`
}

// featureRecord is one feature's setting as stored.
type featureRecord struct {
	// Feature is the feature's stored name (see storedFeatureNames); empty
	// for FEATURE_UNSPECIFIED, which protojson left out as a zero value.
	Feature            string            `json:"feature,omitempty"`
	Enabled            bool              `json:"enabled,omitempty"`
	IncludePrivate     bool              `json:"include_private,omitempty"`
	MissingPermissions map[string]string `json:"missing_permissions,omitempty"`
}

// snapshotRecord is gate_events.snapshot: a connection's state after an
// event, as Watch sends it. Revision repeats the row's revision column;
// it was always stored, so it still is.
type snapshotRecord struct {
	Revision  storedjson.Int64 `json:"revision,omitempty"`
	Settings  *settingsRecord  `json:"settings,omitempty"`
	Connected bool             `json:"connected,omitempty"`
}

// storedFeatureNames are the stored names of the features: the names
// protojson gave their enum values when they were first stored. A feature
// renamed in the API keeps its stored name here; a new feature needs one
// (TestStorageCoversTheAPI fails until it has).
var storedFeatureNames = map[featuregatev1.Feature]string{
	featuregatev1.Feature_FEATURE_UNIFIED_SEARCH:        "FEATURE_UNIFIED_SEARCH",
	featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS: "FEATURE_UNIFIED_CONTRIBUTIONS",
	featuregatev1.Feature_FEATURE_DEPENDABOT_ALERTS:     "FEATURE_DEPENDABOT_ALERTS",
	featuregatev1.Feature_FEATURE_LICENSE_SYNC:          "FEATURE_LICENSE_SYNC",
	featuregatev1.Feature_FEATURE_ACTIONS_ACCESS:        "FEATURE_ACTIONS_ACCESS",
	featuregatev1.Feature_FEATURE_SERVER_STATISTICS:     "FEATURE_SERVER_STATISTICS",
}

var featuresByStoredName = func() map[string]featuregatev1.Feature {
	out := make(map[string]featuregatev1.Feature, len(storedFeatureNames))
	for f, name := range storedFeatureNames {
		out[name] = f
	}
	return out
}()

// encodeSettings is what gate_settings.settings stores of st: st without
// the fields derived on every read.
func encodeSettings(st *featuregatev1.Settings) (string, error) {
	rec, err := settingsToRecord(st)
	if err != nil {
		return "", err
	}
	rec.Etag, rec.ConnectionEtag = "", ""
	for i := range rec.Features {
		rec.Features[i].MissingPermissions = nil
	}
	b, err := storedjson.Marshal(rec)
	return string(b), err
}

// decodeSettings reads gate_settings.settings back; the caller derives
// what is not stored.
func decodeSettings(raw string) (*featuregatev1.Settings, error) {
	var rec settingsRecord
	if err := storedjson.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding gate_settings: %w", err)
	}
	return rec.proto()
}

// encodeSnapshot is what gate_events.snapshot stores of w: all of it.
func encodeSnapshot(w *featuregatev1.WatchResponse) (string, error) {
	rec := snapshotRecord{Revision: storedjson.Int64(w.Revision), Connected: w.Connected}
	if w.Settings != nil {
		st, err := settingsToRecord(w.Settings)
		if err != nil {
			return "", err
		}
		rec.Settings = &st
	}
	b, err := storedjson.Marshal(rec)
	return string(b), err
}

// decodeSnapshot reads gate_events.snapshot back.
func decodeSnapshot(raw string) (*featuregatev1.WatchResponse, error) {
	var rec snapshotRecord
	if err := storedjson.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decoding gate_events: %w", err)
	}
	w := &featuregatev1.WatchResponse{Revision: int64(rec.Revision), Connected: rec.Connected}
	if rec.Settings != nil {
		st, err := rec.Settings.proto()
		if err != nil {
			return nil, err
		}
		w.Settings = st
	}
	return w, nil
}

func settingsToRecord(st *featuregatev1.Settings) (settingsRecord, error) {
	// A timestamp out of range is refused, as protojson refused it: a
	// stored one must read back.
	t, err := storedjson.FromTimestamp(st.UpdateTime)
	if err != nil {
		return settingsRecord{}, err
	}
	rec := settingsRecord{ConnectionID: st.ConnectionId, Etag: st.Etag, UpdateTime: t, UpdatedBy: st.UpdatedBy, ConnectionEtag: st.ConnectionEtag}
	for _, f := range st.Features {
		fr := featureRecord{Enabled: f.Enabled, IncludePrivate: f.IncludePrivate, MissingPermissions: f.MissingPermissions}
		if f.Feature != featuregatev1.Feature_FEATURE_UNSPECIFIED {
			name, ok := storedFeatureNames[f.Feature]
			if !ok {
				return settingsRecord{}, fmt.Errorf("feature %v has no stored name", f.Feature)
			}
			fr.Feature = name
		}
		rec.Features = append(rec.Features, fr)
	}
	return rec, nil
}

func (rec *settingsRecord) proto() (*featuregatev1.Settings, error) {
	t, err := rec.UpdateTime.Timestamp()
	if err != nil {
		return nil, err
	}
	st := &featuregatev1.Settings{ConnectionId: rec.ConnectionID, Etag: rec.Etag, UpdateTime: t, UpdatedBy: rec.UpdatedBy, ConnectionEtag: rec.ConnectionEtag}
	for _, fr := range rec.Features {
		f := &featuregatev1.FeatureSetting{Enabled: fr.Enabled, IncludePrivate: fr.IncludePrivate, MissingPermissions: fr.MissingPermissions}
		if fr.Feature != "" {
			var ok bool
			if f.Feature, ok = featuresByStoredName[fr.Feature]; !ok {
				return nil, fmt.Errorf("unknown stored feature %q", fr.Feature)
			}
		}
		st.Features = append(st.Features, f)
	}
	return st, nil
}
