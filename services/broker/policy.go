package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"github.com/ghconnect/ghconnect/pkg/validate"
)

// CallerPolicy is what one caller may get. Everything not granted is
// refused: a caller with no policy gets nothing.
type CallerPolicy struct {
	// Connections the caller may use; "*" for all.
	Connections []string `json:"connections"`
	// Permissions is the most the caller may ask for, per permission.
	Permissions map[string]string `json:"permissions"`
	// Repositories the caller may ask for by name; "*" for all, which also
	// allows asking by id or for every repository of the installation.
	Repositories []string `json:"repositories"`
	// Exclusive lets the caller ask for exclusive (revocable) tokens.
	Exclusive bool `json:"exclusive"`
	// Admin lets the caller revoke every token of a connection and read
	// its signing status (GrantRoles).
	Admin bool `json:"admin"`
	// UserTokens lets the caller run server users' GitHub.com
	// authorization and get their user tokens, on its connections.
	UserTokens bool `json:"user_tokens"`
}

// mayActForUsers says whether caller may handle user authorization and
// user tokens on connection.
func (c *CallerPolicy) mayActForUsers(caller, connection string) error {
	switch {
	case c == nil:
		return &refusal{fmt.Sprintf("caller %q has no token policy", caller)}
	case !c.UserTokens:
		return &refusal{fmt.Sprintf("caller %q may not handle user tokens", caller)}
	case !contains(c.Connections, connection):
		return &refusal{fmt.Sprintf("caller %q may not use connection %s", caller, connection)}
	}
	return nil
}

// GrantRoles gives the policy's admin callers the role token-admin:
// revoking every token of a connection and reading its signing status.
// That is the one place those methods are decided for the policy's
// callers (the token methods, which every caller may call, are the
// policy's to decide per request, and it audits their refusals).
func (p *Policy) GrantRoles(r *auth.Rules) error {
	for name, c := range p.Callers {
		if c.Admin {
			if err := r.Grant(name, "token-admin"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Policy maps caller principals to their policies.
type Policy struct {
	Callers map[string]*CallerPolicy `json:"callers"`
}

// LoadPolicy reads and checks a policy file (JSON).
func LoadPolicy(path string) (*Policy, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return &p, p.Validate()
}

// Validate checks every caller's policy.
func (p *Policy) Validate() error {
	for name, c := range p.Callers {
		if c == nil {
			return fmt.Errorf("policy: caller %q has no policy", name)
		}
		if err := permissions.Validate(c.Permissions); err != nil {
			return fmt.Errorf("policy: caller %q: %w", name, err)
		}
		for _, r := range c.Repositories {
			if r != "*" && validate.RepoName(r) != nil {
				return fmt.Errorf("policy: caller %q: repository %q is not a repository name", name, r)
			}
		}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == "*" || strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

func all(list []string) bool {
	for _, x := range list {
		if x == "*" {
			return true
		}
	}
	return false
}

// scope is what a token covers, normalised so equal scopes compare equal.
type scope struct {
	repos       []string // sorted, lower-case
	repoIDs     []int64  // sorted
	permissions map[string]string
}

// refusal names what the policy refused.
type refusal struct{ what string }

func (r *refusal) Error() string { return r.what }

// authorize turns a request into the scope to ask GitHub for: what the
// caller asked, within its policy; empty asks mean "all the policy allows".
// The scope's repositories go in buf when they fit (a caller's array on
// its stack: the cache-hit path allocates nothing for them); see owned.
func (c *CallerPolicy) authorize(caller, connection string, repos []string, ids []int64, perms map[string]string, exclusive bool, buf []string) (scope, error) {
	if c == nil {
		return scope{}, &refusal{fmt.Sprintf("caller %q has no token policy", caller)}
	}
	if !contains(c.Connections, connection) {
		return scope{}, &refusal{fmt.Sprintf("caller %q may not use connection %s", caller, connection)}
	}
	if exclusive && !c.Exclusive {
		return scope{}, &refusal{fmt.Sprintf("caller %q may not ask for exclusive tokens", caller)}
	}
	if len(perms) == 0 {
		perms = c.Permissions
	}
	if !permissions.Covers(c.Permissions, perms) {
		return scope{}, &refusal{fmt.Sprintf("caller %q may not have %s", caller, permissions.String(permissions.Missing(c.Permissions, perms)))}
	}
	if len(perms) == 0 {
		return scope{}, &refusal{fmt.Sprintf("caller %q is granted no permission", caller)}
	}
	// The scope shares perms (the request's or the policy's map): nothing
	// writes to either.
	s := scope{permissions: perms}
	switch {
	case len(repos) == 0 && len(ids) == 0 && !all(c.Repositories):
		repos = c.Repositories
	case len(ids) > 0 && !all(c.Repositories):
		return scope{}, &refusal{fmt.Sprintf("caller %q may name repositories only, not ids", caller)}
	}
	if len(repos) > cap(buf) {
		buf = make([]string, 0, len(repos))
	}
	if len(repos) > 0 {
		s.repos = buf[:0]
	}
	for _, r := range repos {
		if !contains(c.Repositories, r) {
			return scope{}, &refusal{fmt.Sprintf("caller %q may not access repository %s", caller, r)}
		}
		s.repos = append(s.repos, strings.ToLower(r))
	}
	if len(s.repos) == 0 && len(ids) == 0 && !all(c.Repositories) {
		return scope{}, &refusal{fmt.Sprintf("caller %q is granted no repository", caller)}
	}
	slices.Sort(s.repos)
	s.repos = slices.Compact(s.repos)
	if len(ids) > 0 {
		s.repoIDs = slices.Clone(ids)
		slices.Sort(s.repoIDs)
		s.repoIDs = slices.Compact(s.repoIDs)
	}
	return s, nil
}

// owned is a copy of the scope sharing nothing with it, for keeping
// beyond the call that authorized it (its buf may be on that call's
// stack). Nothing of s is kept, so the compiler lets buf stay there.
// (The copies are made by hand: slices.Clone and maps.Clone would leak
// their argument as far as escape analysis can tell.)
func (s scope) owned() scope {
	o := scope{permissions: make(map[string]string, len(s.permissions))}
	if len(s.repos) > 0 {
		o.repos = make([]string, len(s.repos))
		copy(o.repos, s.repos)
	}
	if len(s.repoIDs) > 0 {
		o.repoIDs = make([]int64, len(s.repoIDs))
		copy(o.repoIDs, s.repoIDs)
	}
	for k, v := range s.permissions {
		o.permissions[k] = v
	}
	return o
}

// appendKey appends to dst the key that identifies the scope on an
// installation of a connection in the cache.
func (s scope) appendKey(dst []byte, connection string, installation int64) []byte {
	dst = append(dst, connection...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, installation, 10)
	dst = append(dst, '|')
	for i, r := range s.repos {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, r...)
	}
	dst = append(dst, '|')
	for _, id := range s.repoIDs {
		dst = strconv.AppendInt(dst, id, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, '|')
	var small [16]string
	names := small[:0]
	for k := range s.permissions {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = append(dst, s.permissions[k]...)
		dst = append(dst, ',')
	}
	return dst
}

// scopeOfKey reads the scope back from its cache key (renewal needs it; the
// cache keeps only the key).
func scopeOfKey(key string) (scope, bool) {
	parts := strings.Split(key, "|")
	if len(parts) != 5 {
		return scope{}, false
	}
	s := scope{permissions: map[string]string{}}
	if parts[2] != "" {
		s.repos = strings.Split(parts[2], ",")
	}
	for _, id := range strings.Split(strings.TrimSuffix(parts[3], ","), ",") {
		if id == "" {
			continue
		}
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return scope{}, false
		}
		s.repoIDs = append(s.repoIDs, n)
	}
	for _, kv := range strings.Split(strings.TrimSuffix(parts[4], ","), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			s.permissions[k] = v
		}
	}
	return s, true
}
