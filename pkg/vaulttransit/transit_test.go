package vaulttransit

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// Version numbers beyond int32 (what the services keep) read as absent.
func TestJSONIntRange(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want int
		ok   bool
	}{
		{json.Number("3"), 3, true},
		{float64(3), 3, true},
		{json.Number("2147483647"), 2147483647, true},
		{json.Number("2147483648"), 0, false},
		{float64(1 << 40), 0, false},
		{json.Number("-1"), 0, false},
		{float64(1.5), 0, false},
		{"3", 0, false},
		{nil, 0, false},
	} {
		if got, ok := jsonInt(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("jsonInt(%#v) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseSignature(t *testing.T) {
	sig := base64.RawURLEncoding.EncodeToString([]byte("signature-bytes"))
	for _, tt := range []struct {
		in      string
		version int
		ok      bool
	}{
		{"vault:v1:" + sig, 1, true},
		{"vault:v12:" + sig, 12, true},
		{"vault:v2147483647:" + sig, 2147483647, true},
		{"vault:v2147483648:" + sig, 0, false},
		{"vault:v0:" + sig, 0, false},
		{"vault:1:" + sig, 0, false},
		{"vault:v1:" + sig + ":x", 0, false},
		{"vault:v1:!!", 0, false},
		{"", 0, false},
	} {
		v, got, err := ParseSignature(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (v != tt.version || string(got) != "signature-bytes")) {
			t.Errorf("ParseSignature(%q) = %d, %q, %v", tt.in, v, got, err)
		}
	}
}
