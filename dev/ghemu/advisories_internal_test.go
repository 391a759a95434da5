package ghemu

import (
	"fmt"
	"testing"
)

// TestCVSS31Score checks the generator's scores against the CVSS 3.1
// calculator's for known vectors.
func TestCVSS31Score(t *testing.T) {
	for vector, want := range map[string]float64{
		"AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": 9.8,
		"AV:N/AC:H/PR:H/UI:R/S:C/C:H/I:H/A:H": 7.6, // GitHub's example advisory
		"AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N": 6.1,
		"AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H": 7.5,
		"AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N": 5.5,
		"AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H": 10.0,
		"AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N": 1.6,
		"AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:L": 8.2, // seed.example.json's
	} {
		var m [8]byte
		if _, err := fmt.Sscanf(vector, "AV:%c/AC:%c/PR:%c/UI:%c/S:%c/C:%c/I:%c/A:%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &m[6], &m[7]); err != nil {
			t.Fatal(err)
		}
		if got := cvss31Score(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]); got != want {
			t.Errorf("%s: %v, want %v", vector, got, want)
		}
	}
}

func TestVersionRanges(t *testing.T) {
	for _, tc := range []struct {
		version, rng string
		in           bool
	}{
		{"1.2.2", ">= 1.0.0, < 1.2.3", true},
		{"1.2.3", ">= 1.0.0, < 1.2.3", false},
		{"0.9.9", ">= 1.0.0, < 1.2.3", false},
		{"1.0", ">= 1.0.0, < 1.2.3", true},
		{"1.10.0", "< 1.9.0", false},
		{"v1.8.0", "< 1.9.0", true},
		{"1.9.0-beta.2", "< 1.9.0", true},
		{"1.9.0-beta.2", ">= 1.9.0-beta.10", false},
		{"2.0.0", "= 2.0.0", true},
		{"2.0.1", "= 2.0.0", false},
		{"4.17.21", "<= 4.17.21", true},
		{"4.17.22", "> 4.17.21", true},
		{"1.0.0+build", "= 1.0.0", true},
	} {
		if got := inVersionRange("npm", tc.version, tc.rng); got != tc.in {
			t.Errorf("%s in %q: %v, want %v", tc.version, tc.rng, got, tc.in)
		}
	}
	for _, bad := range []string{"", "1.0.0", ">= ", ">= 1.0.0,", "~> 1.0"} {
		if _, err := parseVersionRange(bad); err == nil {
			t.Errorf("range %q accepted", bad)
		}
	}
}
