package auth

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The metadata by which a forwarder (the gateway) names the person it
// serves. Services believe it only from principals the rules list as
// forwarders, and only for the roles listed there.
const (
	UserHeader  = "x-ghconnect-user"
	RolesHeader = "x-ghconnect-user-roles"
)

//go:embed roles.json
var rolesJSON []byte

// Members gives roles to principals: what an -authz-file holds.
type Members struct {
	// Principals maps a caller's name to its roles; "*" lists the roles
	// of every authenticated caller.
	Principals map[string][]string `json:"principals"`
	// Forwarders maps a caller that serves people (the gateway) to the
	// roles it may vouch for; the person's name and roles travel in
	// UserHeader and RolesHeader.
	Forwarders map[string][]string `json:"forwarders"`
}

// Rules decide which principal may call which method: deny by default.
// The roles (role → methods) are the system's and compiled in; who holds
// them is configuration.
type Rules struct {
	methods    map[string]map[string]bool // role → full method names
	principals map[string][]string
	forwarders map[string][]string
}

type rolesFile struct {
	Comment string              `json:"_"`
	Roles   map[string][]string `json:"roles"`
	Members Members             `json:"members"`
}

func parseRoles() rolesFile {
	var f rolesFile
	dec := json.NewDecoder(bytes.NewReader(rolesJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		panic("auth: roles.json: " + err.Error())
	}
	return f
}

// DefaultMembers are the members used without an -authz-file: each
// service under its own name, "admin" (the automation token) as admin,
// and the gateway forwarding admins and auditors.
func DefaultMembers() Members { return parseRoles().Members }

// NewRules builds the rules for members, refusing roles that do not exist.
func NewRules(m Members) (*Rules, error) {
	f := parseRoles()
	r := &Rules{methods: map[string]map[string]bool{}, principals: map[string][]string{}, forwarders: map[string][]string{}}
	for role, methods := range f.Roles {
		r.methods[role] = map[string]bool{}
		for _, fm := range methods {
			r.methods[role][fm] = true
		}
	}
	for what, src := range map[string]map[string][]string{"principals": m.Principals, "forwarders": m.Forwarders} {
		for name, roles := range src {
			if strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("auth: %s: empty principal name", what)
			}
			for _, role := range roles {
				if _, ok := r.methods[role]; !ok {
					return nil, fmt.Errorf("auth: %s: %s: unknown role %q (roles: %s)", what, name, role, strings.Join(r.Roles(), ", "))
				}
			}
		}
	}
	for name, roles := range m.Principals {
		r.principals[name] = slices.Clone(roles)
	}
	for name, roles := range m.Forwarders {
		r.forwarders[name] = slices.Clone(roles)
	}
	return r, nil
}

// DefaultRules are NewRules(DefaultMembers()).
func DefaultRules() *Rules {
	r, err := NewRules(DefaultMembers())
	if err != nil {
		panic(err)
	}
	return r
}

// LoadRules reads an -authz-file (JSON Members); "" gives DefaultRules.
func LoadRules(path string) (*Rules, error) {
	if path == "" {
		return DefaultRules(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var m Members
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	r, err := NewRules(m)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return r, nil
}

// Grant adds roles to a principal (the broker gives its policy's callers
// the token-client role). Unknown roles are an error.
func (r *Rules) Grant(principal string, roles ...string) error {
	for _, role := range roles {
		if _, ok := r.methods[role]; !ok {
			return fmt.Errorf("auth: unknown role %q", role)
		}
		if !slices.Contains(r.principals[principal], role) {
			r.principals[principal] = append(r.principals[principal], role)
		}
	}
	return nil
}

// Permit lets roles call fullMethod as well: for a method a server adds
// beside its service's own (the benchmarks' no-op baseline). Unknown roles
// are an error.
func (r *Rules) Permit(fullMethod string, roles ...string) error {
	for _, role := range roles {
		if _, ok := r.methods[role]; !ok {
			return fmt.Errorf("auth: unknown role %q", role)
		}
	}
	for _, role := range roles {
		r.methods[role][fullMethod] = true
	}
	return nil
}

// Roles lists every role, sorted.
func (r *Rules) Roles() []string {
	out := make([]string, 0, len(r.methods))
	for role := range r.methods {
		out = append(out, role)
	}
	sort.Strings(out)
	return out
}

// RolesFor lists the roles that may call fullMethod, sorted.
func (r *Rules) RolesFor(fullMethod string) []string {
	var out []string
	for _, role := range r.Roles() {
		if r.methods[role][fullMethod] {
			out = append(out, role)
		}
	}
	return out
}

// Allows reports whether p, with its resolved roles, may call fullMethod.
func (r *Rules) Allows(p Principal, fullMethod string) bool {
	for _, role := range p.Roles {
		if r.methods[role][fullMethod] {
			return true
		}
	}
	return false
}

// Resolve gives an authenticated caller its roles. A forwarder's call
// that names a person becomes that person's, with the roles it vouches
// for and Via set to the forwarder; anyone else naming a person is
// refused, so the headers cannot be used to pose as somebody.
func (r *Rules) Resolve(ctx context.Context, p Principal) (Principal, error) {
	// ValueFromIncomingContext copies one header's values, where
	// FromIncomingContext would copy every header of every call.
	users, roleLists := metadata.ValueFromIncomingContext(ctx, UserHeader), metadata.ValueFromIncomingContext(ctx, RolesHeader)
	if len(users) == 0 && len(roleLists) == 0 {
		p.Roles = r.rolesOf(p.Name)
		return p, nil
	}
	allowed, ok := r.forwarders[p.Name]
	if !ok {
		return Principal{}, status.Errorf(codes.PermissionDenied, "%s may not act for another user", p.Name)
	}
	if len(users) != 1 || strings.TrimSpace(users[0]) == "" || len(roleLists) > 1 {
		return Principal{}, status.Error(codes.Unauthenticated, "forwarded user: want exactly one "+UserHeader)
	}
	user := Principal{Name: users[0], Method: "forwarded", Via: p.Name}
	if len(roleLists) == 1 {
		for _, role := range strings.Split(roleLists[0], ",") {
			role = strings.TrimSpace(role)
			if role == "" {
				continue
			}
			if !slices.Contains(allowed, role) {
				return Principal{}, status.Errorf(codes.PermissionDenied, "%s may not vouch for role %q", p.Name, role)
			}
			user.Roles = append(user.Roles, role)
		}
	}
	return user, nil
}

// rolesOf are a direct caller's roles: its own and everybody's ("*").
func (r *Rules) rolesOf(name string) []string {
	roles := slices.Clone(r.principals[name])
	for _, role := range r.principals["*"] {
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	return roles
}

// Guard is what a server checks each call with: who calls (Authn), and
// whether they may (Rules).
type Guard struct {
	Authn Authenticator
	Rules *Rules
}

// Authenticate says who calls, with their roles (a forwarded person
// included).
func (g *Guard) Authenticate(ctx context.Context) (Principal, error) {
	p, err := g.Authn.Authenticate(ctx)
	if err != nil {
		return Principal{}, err
	}
	if g.Rules == nil {
		return Principal{}, status.Error(codes.PermissionDenied, "no authorization rules configured")
	}
	return g.Rules.Resolve(ctx, p)
}

// Authorize refuses the context's caller a method its roles do not allow.
func (g *Guard) Authorize(ctx context.Context, fullMethod string) error {
	p, ok := FromContext(ctx)
	if !ok || g.Rules == nil || !g.Rules.Allows(p, fullMethod) {
		return status.Errorf(codes.PermissionDenied, "%s may not call %s", p.Name, fullMethod)
	}
	return nil
}
