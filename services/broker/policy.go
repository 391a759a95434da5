package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

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
	// Admin lets the caller revoke every token of a connection.
	Admin bool `json:"admin"`
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
func (c *CallerPolicy) authorize(caller, connection string, repos []string, ids []int64, perms map[string]string, exclusive bool) (scope, error) {
	if c == nil {
		return scope{}, &refusal{fmt.Sprintf("caller %q has no token policy", caller)}
	}
	if !contains(c.Connections, connection) {
		return scope{}, &refusal{fmt.Sprintf("caller %q may not use connection %s", caller, connection)}
	}
	if exclusive && !c.Exclusive {
		return scope{}, &refusal{fmt.Sprintf("caller %q may not ask for exclusive tokens", caller)}
	}
	s := scope{permissions: map[string]string{}}
	if len(perms) == 0 {
		perms = c.Permissions
	}
	if missing := permissions.Missing(c.Permissions, perms); len(missing) > 0 {
		return scope{}, &refusal{fmt.Sprintf("caller %q may not have %s", caller, permissions.String(missing))}
	}
	for k, v := range perms {
		s.permissions[k] = v
	}
	if len(s.permissions) == 0 {
		return scope{}, &refusal{fmt.Sprintf("caller %q is granted no permission", caller)}
	}
	switch {
	case len(repos) == 0 && len(ids) == 0 && !all(c.Repositories):
		repos = c.Repositories
	case len(ids) > 0 && !all(c.Repositories):
		return scope{}, &refusal{fmt.Sprintf("caller %q may name repositories only, not ids", caller)}
	}
	seen := map[string]bool{}
	for _, r := range repos {
		if !contains(c.Repositories, r) {
			return scope{}, &refusal{fmt.Sprintf("caller %q may not access repository %s", caller, r)}
		}
		if l := strings.ToLower(r); !seen[l] {
			seen[l] = true
			s.repos = append(s.repos, l)
		}
	}
	if len(s.repos) == 0 && len(ids) == 0 && !all(c.Repositories) {
		return scope{}, &refusal{fmt.Sprintf("caller %q is granted no repository", caller)}
	}
	sort.Strings(s.repos)
	idSeen := map[int64]bool{}
	for _, id := range ids {
		if !idSeen[id] {
			idSeen[id] = true
			s.repoIDs = append(s.repoIDs, id)
		}
	}
	sort.Slice(s.repoIDs, func(i, j int) bool { return s.repoIDs[i] < s.repoIDs[j] })
	return s, nil
}

// key identifies a scope on an installation of a connection in the cache.
func (s scope) key(connection string, installation int64) string {
	var b strings.Builder
	b.WriteString(connection)
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(installation, 10))
	b.WriteByte('|')
	b.WriteString(strings.Join(s.repos, ","))
	b.WriteByte('|')
	for _, id := range s.repoIDs {
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte(',')
	}
	b.WriteByte('|')
	names := make([]string, 0, len(s.permissions))
	for k := range s.permissions {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k + "=" + s.permissions[k] + ",")
	}
	return b.String()
}
