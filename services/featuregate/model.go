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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// settingsRecord is a connection's settings as stored. In gate_settings
// it holds no etag, connection_etag or missing_permissions: those are
// derived when read (from the row's version, the registry's record and
// the App's permissions). A snapshot holds them all, as Watch sent them.
// Fields are in the order protojson wrote them.
type settingsRecord struct {
	ConnectionID   string          `json:"connection_id,omitempty"`
	Features       []featureRecord `json:"features,omitempty"`
	Etag           string          `json:"etag,omitempty"`
	UpdateTime     *timeRecord     `json:"update_time,omitempty"`
	UpdatedBy      string          `json:"updated_by,omitempty"`
	ConnectionEtag string          `json:"connection_etag,omitempty"`
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
	Revision  int64Record     `json:"revision,omitempty"`
	Settings  *settingsRecord `json:"settings,omitempty"`
	Connected bool            `json:"connected,omitempty"`
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
	return encodeRecord(rec)
}

// decodeSettings reads gate_settings.settings back; the caller derives
// what is not stored.
func decodeSettings(raw string) (*featuregatev1.Settings, error) {
	var rec settingsRecord
	if err := decodeRecord(raw, &rec); err != nil {
		return nil, fmt.Errorf("decoding gate_settings: %w", err)
	}
	return rec.proto()
}

// encodeSnapshot is what gate_events.snapshot stores of w: all of it.
func encodeSnapshot(w *featuregatev1.WatchResponse) (string, error) {
	rec := snapshotRecord{Revision: int64Record(w.Revision), Connected: w.Connected}
	if w.Settings != nil {
		st, err := settingsToRecord(w.Settings)
		if err != nil {
			return "", err
		}
		rec.Settings = &st
	}
	return encodeRecord(rec)
}

// decodeSnapshot reads gate_events.snapshot back.
func decodeSnapshot(raw string) (*featuregatev1.WatchResponse, error) {
	var rec snapshotRecord
	if err := decodeRecord(raw, &rec); err != nil {
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
	rec := settingsRecord{ConnectionID: st.ConnectionId, Etag: st.Etag, UpdatedBy: st.UpdatedBy, ConnectionEtag: st.ConnectionEtag}
	if st.UpdateTime != nil {
		// protojson refused to store a timestamp out of its range, and
		// a stored one must read back.
		if err := st.UpdateTime.CheckValid(); err != nil {
			return settingsRecord{}, err
		}
		t := timeRecord(st.UpdateTime.AsTime())
		rec.UpdateTime = &t
	}
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
	st := &featuregatev1.Settings{ConnectionId: rec.ConnectionID, Etag: rec.Etag, UpdatedBy: rec.UpdatedBy, ConnectionEtag: rec.ConnectionEtag}
	if rec.UpdateTime != nil {
		st.UpdateTime = timestamppb.New(time.Time(*rec.UpdateTime))
	}
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

// encodeRecord is rec as compact JSON. Like protojson, it leaves <, > and
// & as they are.
func encodeRecord(rec any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// decodeRecord reads one stored value into rec. A field it does not know
// is an error, as it was with protojson: a row written by a later version
// is refused rather than read (and perhaps written back) without what it
// added.
func decodeRecord(raw string, rec any) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the stored value")
	}
	return nil
}

// int64Record is an int64 stored as protojson stores one: as a quoted
// decimal, so that JavaScript readers do not round it. A bare number
// reads too, as protojson accepted both.
type int64Record int64

func (n int64Record) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(n), 10)), nil
}

func (n *int64Record) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var err error
		if s, err = strconv.Unquote(s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("stored int64: %w", err)
	}
	*n = int64Record(v)
	return nil
}

// timeRecord is a timestamp stored as protojson stores one: RFC 3339 in
// UTC, with 0, 3, 6 or 9 digits of fractional seconds, as few as hold it
// exactly ("…:30Z", "…:30.120Z").
type timeRecord time.Time

func (t timeRecord) MarshalJSON() ([]byte, error) {
	u := time.Time(t).UTC()
	layout := "2006-01-02T15:04:05"
	switch ns := u.Nanosecond(); {
	case ns == 0:
	case ns%1e6 == 0:
		layout += ".000"
	case ns%1e3 == 0:
		layout += ".000000"
	default:
		layout += ".000000000"
	}
	return strconv.AppendQuote(nil, u.Format(layout)+"Z"), nil
}

func (t *timeRecord) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("stored timestamp: %w", err)
	}
	*t = timeRecord(v)
	return nil
}
