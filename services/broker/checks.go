package broker

import (
	"strconv"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/server"
)

// RequestChecks are the rules broker.proto declares for the broker's hot
// requests, IssueToken and IssueUserToken, as Go code: the server runs
// them in place of protovalidate, whose general evaluation (reflection,
// regular expressions, a violation object per rule) cost a cache hit a
// tenth of its throughput. The .proto stays the declaration; these answer
// as protovalidate does, field paths and texts alike, for every input
// TestHotChecksAgree tries. A rule changed in the .proto must be changed
// here too (the test fails until it is).
var RequestChecks = []server.RequestCheck{
	server.Check(checkIssueToken),
	server.Check(checkIssueUserToken),
}

// The texts of protovalidate's built-in rules and of the shared rule
// app_permissions, as the interceptor gives them to callers.
const (
	textConnectionEmpty = "must be at least 1 characters"
	textConnectionLong  = "must be at most 64 bytes"
	textRepoPattern     = "does not match regex pattern `^[A-Za-z0-9._-]{1,100}$`"
	textRepoDots        = "must not be in list [., ..]"
	textRepoIDPositive  = "must be greater than 0"
	textPermissionName  = "does not match regex pattern `^[a-z][a-z_]{0,63}$`"
	textPermissionLevel = "must be in list [read, write, admin]"
	textMinLifetime     = "must be between 0 and 55m0s"
	textUserPattern     = "does not match regex pattern `^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`"
	textSHA256Pattern   = "does not match regex pattern `^[0-9a-f]{64}$`"
	textTooManyRepos    = "must contain no more than 500 item(s)"
	textAppPermissions  = "must map permission names (lower-case letters and _) to read, write or admin"
)

func checkIssueToken(r *brokerv1.IssueTokenRequest, v *apierr.Violations) {
	checkConnectionID(r.GetConnectionId(), v)
	checkRepoNames(r.GetRepositories(), v)
	for i, id := range r.GetRepositoryIds() {
		if id <= 0 {
			v.Add(indexed("repository_ids", i), textRepoIDPositive)
		}
	}
	for name, level := range r.GetPermissions() {
		if !isPermissionName(name) {
			v.Add(keyed("permissions", name), textPermissionName)
		}
		if !isPermissionLevel(level) {
			v.Add(keyed("permissions", name), textPermissionLevel)
		}
	}
	if d := r.GetMinLifetime(); d != nil {
		if t := d.AsDuration(); t < 0 || t > 55*time.Minute {
			v.Add("min_lifetime", textMinLifetime)
		}
	}
}

func checkIssueUserToken(r *brokerv1.IssueUserTokenRequest, v *apierr.Violations) {
	checkConnectionID(r.GetConnectionId(), v)
	if !isServerLogin(r.GetUser()) {
		v.Add("user", textUserPattern)
	}
	if s := r.GetRefusedTokenSha256(); s != "" && !isSHA256Hex(s) {
		v.Add("refused_token_sha256", textSHA256Pattern)
	}
	repos := r.GetRepositories()
	if len(repos) > 500 {
		v.Add("repositories", textTooManyRepos)
	}
	checkRepoNames(repos, v)
	for name, level := range r.GetPermissions() {
		if !isPermissionName(name) || !isPermissionLevel(level) {
			v.Add("permissions", textAppPermissions)
			break
		}
	}
}

// checkConnectionID: min_len 1 (characters), max_bytes 64.
func checkConnectionID(id string, v *apierr.Violations) {
	switch {
	case id == "":
		v.Add("connection_id", textConnectionEmpty)
	case len(id) > 64:
		v.Add("connection_id", textConnectionLong)
	}
}

// checkRepoNames: each item matches ^[A-Za-z0-9._-]{1,100}$ and is not
// "." or "..".
func checkRepoNames(names []string, v *apierr.Violations) {
	for i, s := range names {
		if len(s) == 0 || len(s) > 100 || !allBytes(s, isRepoByte) {
			v.Add(indexed("repositories", i), textRepoPattern)
		} else if s == "." || s == ".." {
			v.Add(indexed("repositories", i), textRepoDots)
		}
	}
}

// isServerLogin: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$.
func isServerLogin(s string) bool {
	return len(s) >= 1 && len(s) <= 100 && isAlnum(s[0]) && allBytes(s, isRepoByte)
}

// isPermissionName: ^[a-z][a-z_]{0,63}$.
func isPermissionName(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && 'a' <= s[0] && s[0] <= 'z' &&
		allBytes(s, func(c byte) bool { return 'a' <= c && c <= 'z' || c == '_' })
}

func isPermissionLevel(s string) bool { return s == "read" || s == "write" || s == "admin" }

// isSHA256Hex: ^[0-9a-f]{64}$.
func isSHA256Hex(s string) bool {
	return len(s) == 64 && allBytes(s, func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' })
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isRepoByte: [A-Za-z0-9._-]. Every byte of a multi-byte character is
// outside it, as the character is outside the pattern's class.
func isRepoByte(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// indexed and keyed write a field path as protovalidate does:
// repositories[3], permissions["contents"].
func indexed(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func keyed(field, key string) string { return field + "[" + strconv.Quote(key) + "]" }
