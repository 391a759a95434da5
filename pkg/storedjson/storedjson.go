// Package storedjson is the JSON form in which the services store records
// of their own types (services/registry/model.go, services/featuregate/
// model.go). It is the form protojson wrote when the services stored the
// API's messages, so rows written then read unchanged: compact, <, > and &
// left as they are, int64 as a quoted decimal, times as RFC 3339 in UTC,
// enums by name. Reading is strict: a key the storage type does not have
// is an error, because a row written by a newer version, read without its
// new field, would lose the field when written back.
package storedjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Marshal writes v compactly, without escaping <, > and & (the stored
// form is not HTML) and without a trailing newline.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Unmarshal reads one stored value into v, refusing a key v's type does
// not have and anything after the value.
func Unmarshal(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the stored value")
	}
	return nil
}

// Int64 is an int64 stored as a JSON string (a reader that parses numbers
// as float64 would lose digits); a JSON number reads too, as protojson
// read one.
type Int64 int64

// MarshalJSON writes n quoted.
func (n Int64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(n), 10)), nil
}

// UnmarshalJSON reads a quoted or bare decimal.
func (n *Int64) UnmarshalJSON(raw []byte) error {
	s := string(raw)
	if s == "null" {
		return nil
	}
	if len(s) > 0 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a stored int64: %s", raw)
	}
	*n = Int64(v)
	return nil
}

// Time is a point in time stored as RFC 3339 in UTC, with 0, 3, 6 or 9
// digits of fraction, as few as hold it exactly ("…:30Z", "…:30.120Z").
// An offset other than Z reads too.
type Time time.Time

// FromTimestamp converts ts (nil: none). A timestamp outside the range
// RFC 3339 can write is refused, as protojson refused it.
func FromTimestamp(ts *timestamppb.Timestamp) (*Time, error) {
	if ts == nil {
		return nil, nil
	}
	if err := ts.CheckValid(); err != nil {
		return nil, err
	}
	t := Time(ts.AsTime())
	return &t, nil
}

// Timestamp converts t (nil: none); a time outside a Timestamp's range
// (years 1 to 9999) is an error.
func (t *Time) Timestamp() (*timestamppb.Timestamp, error) {
	if t == nil {
		return nil, nil
	}
	ts := timestamppb.New(time.Time(*t))
	return ts, ts.CheckValid()
}

// MarshalJSON writes t in UTC with the fewest digits of fraction, in
// groups of three, that hold its nanoseconds.
func (t Time) MarshalJSON() ([]byte, error) {
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

// UnmarshalJSON reads an RFC 3339 time.
func (t *Time) UnmarshalJSON(raw []byte) error {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("not a stored time: %s", raw)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("not a stored time: %w", err)
	}
	*t = Time(v)
	return nil
}

// EnumNames are the stored names of an enum's values: listed by the
// storage code, so that renaming a value in the API does not rename it in
// stored rows.
type EnumNames[E ~int32] map[E]string

// Marshal writes v by its stored name. A value without one is refused
// rather than written as a number: a value added to the API is given its
// stored name on purpose.
func (names EnumNames[E]) Marshal(what string, v E) ([]byte, error) {
	name, ok := names[v]
	if !ok {
		return nil, fmt.Errorf("%s %d has no stored name", what, v)
	}
	return json.Marshal(name)
}

// Unmarshal reads a stored name, or a number as protojson read one.
func (names EnumNames[E]) Unmarshal(what string, raw []byte) (E, error) {
	if string(raw) == "null" {
		return 0, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		n, err := strconv.ParseInt(string(raw), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("not a stored %s: %s", what, raw)
		}
		return E(n), nil
	}
	for v, n := range names {
		if n == name {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", what, name)
}
