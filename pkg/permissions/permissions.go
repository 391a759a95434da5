// Package permissions is the one definition of GitHub App permission
// levels (read < write < admin) and the comparisons of permission sets by
// them: what one set lacks of another, whether it covers it, what two
// grant together. Every service ranks levels here; the admin page ranks
// none (the API serves what these derive).
package permissions

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Level ranks a permission level: read 1, write 2, admin 3; 0 for
// anything else (no permission). A switch, not a map: the broker's cache
// hit ranks levels on every call.
func Level(l string) int {
	switch l {
	case "read":
		return 1
	case "write":
		return 2
	case "admin":
		return 3
	}
	return 0
}

var name = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

// Validate checks that every name looks like a GitHub App permission and
// every level is read, write or admin.
func Validate(set map[string]string) error {
	for _, k := range sortedKeys(set) {
		if !name.MatchString(k) {
			return fmt.Errorf("%q is not a permission name (lower-case letters and _)", k)
		}
		if Level(set[k]) == 0 {
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
		if Level(have[k]) < Level(w) {
			out[k] = w
		}
	}
	return out
}

// Covers reports whether have grants every permission of want at its
// level or above: Missing is empty, without building it (nothing is
// allocated).
func Covers(have, want map[string]string) bool {
	for k, w := range want {
		if Level(have[k]) < Level(w) {
			return false
		}
	}
	return true
}

// Union is what the sets ask together: each permission any of them names,
// at the highest level any asks. The sets are not changed.
func Union(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, set := range sets {
		for k, l := range set {
			if Level(l) > Level(out[k]) {
				out[k] = l
			}
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
