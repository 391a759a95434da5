// Package permissions compares GitHub App permission sets: which permission
// names exist in a set and whether one set covers another, by level (read <
// write < admin).
package permissions

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

var levels = map[string]int{"read": 1, "write": 2, "admin": 3}

var name = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

// Validate checks that every name looks like a GitHub App permission and
// every level is read, write or admin.
func Validate(set map[string]string) error {
	for _, k := range sortedKeys(set) {
		if !name.MatchString(k) {
			return fmt.Errorf("%q is not a permission name (lower-case letters and _)", k)
		}
		if _, ok := levels[set[k]]; !ok {
			return fmt.Errorf("%s: level %q must be read, write or admin", k, set[k])
		}
	}
	return nil
}

// Missing returns what want asks beyond have: each permission have lacks or
// grants at a lower level, with the level wanted. Empty means covered.
func Missing(have, want map[string]string) map[string]string {
	out := map[string]string{}
	for k, w := range want {
		if levels[have[k]] < levels[w] {
			out[k] = w
		}
	}
	return out
}

// String renders a set as "a:read, b:write", sorted, for messages.
func String(set map[string]string) string {
	parts := make([]string, 0, len(set))
	for _, k := range sortedKeys(set) {
		parts = append(parts, k+":"+set[k])
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(set map[string]string) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
