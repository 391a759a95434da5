package vaulttransit

import (
	"encoding/base64"
	"testing"
)

func TestParseSignature(t *testing.T) {
	sig := base64.RawURLEncoding.EncodeToString([]byte("signature-bytes"))
	for _, tt := range []struct {
		in      string
		version int
		ok      bool
	}{
		{"vault:v1:" + sig, 1, true},
		{"vault:v12:" + sig, 12, true},
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
