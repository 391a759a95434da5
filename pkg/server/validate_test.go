package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// violations renders an error's field violations as "field: description".
func violations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	return out
}

// The rules the protos declare answer in apierr's shape: the field's path
// as "counts[1].user".
func TestRequestRules(t *testing.T) {
	rules := newRequestRules()
	ctx := context.Background()
	login := "must be a server login: 1 to 100 letters, digits, _ . -, starting with a letter or digit"
	for name, tc := range map[string]struct {
		req  proto.Message
		want []string
	}{
		"valid":    {&registryv1.GetConnectionRequest{Id: "c1"}, nil},
		"empty id": {&registryv1.GetConnectionRequest{}, []string{"id: must not be empty"}},
		"long id":  {&registryv1.GetConnectionRequest{Id: strings.Repeat("x", 65)}, []string{"id: must be at most 64 characters"}},
		"nested": {&featuregatev1.ReportContributionsRequest{ConnectionId: "c1", Counts: []*featuregatev1.ContributionCount{
			{User: "mona", Day: "2026-01-01"}, {User: "a b", Day: "2026-01-01", Count: -1},
		}}, []string{"counts[1].user: " + login, "counts[1].count: must not be negative"}},
		"required": {&registryv1.CreateConnectionRequest{RequestId: "r.1"}, []string{"account: is required"}},
		"request id": {&registryv1.CreateConnectionRequest{RequestId: "r 1", Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION}},
			[]string{"request_id: must be 1 to 64 characters of A-Z, a-z, 0-9, ., _ or -"}},
		"map rule": {&registryv1.StartAppManifestRequest{Id: "c1", CallbackUrl: "https://ghes.example.com/cb", Permissions: map[string]string{"contents": "all"}},
			[]string{"permissions: must map permission names (lower-case letters and _) to read, write or admin"}},
		"map value": {&brokerv1.IssueTokenRequest{ConnectionId: "c1", Permissions: map[string]string{"contents": "all"}},
			[]string{`permissions["contents"]: must be in list [read, write, admin]`}},
	} {
		err := rules.check(ctx, tc.req)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
		if diff := cmp.Diff(tc.want, violations(err)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// The Go checks that stay for what no request carries (a signed-in
// person's login, a policy's repositories, the x-request-id header) take
// what the protos' rules take.
func TestGoChecksAgreeWithRules(t *testing.T) {
	rules := newRequestRules()
	ctx := context.Background()
	inputs := []string{"", "a", "mona", "Mona.Lisa_2-x", "-mona", ".mona", "_x", "a b", "a/b", "é", ".", "..", "a..b", "x.", "ok-",
		strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a", 100), strings.Repeat("a", 101)}
	for _, in := range inputs {
		for _, c := range []struct {
			name string
			goOK bool
			req  proto.Message
		}{
			{"ServerLogin", validate.ServerLogin(in) == nil, &featuregatev1.GetAccountLinkRequest{ConnectionId: "c", User: in}},
			{"RepoName", validate.RepoName(in) == nil, &brokerv1.IssueTokenRequest{ConnectionId: "c", Repositories: []string{in}}},
			{"RequestID", validate.RequestID(in) == nil, &registryv1.CreateConnectionRequest{RequestId: in, Account: &registryv1.Account{Kind: registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION}}},
		} {
			if ruleOK := rules.check(ctx, c.req) == nil; ruleOK != c.goOK {
				t.Errorf("%s(%q): Go says %v, the rule %v", c.name, in, c.goOK, ruleOK)
			}
		}
	}
}

// BenchmarkRequestRules is what the rules cost the broker's hot requests
// (a cache hit's IssueToken, a user token's IssueUserToken).
func BenchmarkRequestRules(b *testing.B) {
	rules := newRequestRules()
	ctx := context.Background()
	id := "2f0c1d7e-8a4b-4c55-9e3a-6b1f0d2c3a4e"
	for name, req := range map[string]proto.Message{
		"IssueToken":     &brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"alpha"}, Permissions: map[string]string{"contents": "read"}},
		"IssueUserToken": &brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona"},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := rules.check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The broker's hot requests use built-in rules (Go code) where the others
// use the shared CEL ones: each takes what the shared rule takes.
func TestHotRulesAgree(t *testing.T) {
	rules := newRequestRules()
	ctx := context.Background()
	ok := func(m proto.Message) bool { return rules.check(ctx, m) == nil }
	strs := []string{"", "a", "mona", "Mona.Lisa_2-x", "-mona", "a b", "é", strings.Repeat("a", 64), strings.Repeat("é", 32), strings.Repeat("a", 65), strings.Repeat("a", 100), strings.Repeat("a", 101)}
	for _, in := range strs {
		shared := ok(&brokerv1.GetUserGrantRequest{ConnectionId: in, User: "mona"})
		for name, hot := range map[string]bool{
			"IssueToken":     ok(&brokerv1.IssueTokenRequest{ConnectionId: in}),
			"IssueUserToken": ok(&brokerv1.IssueUserTokenRequest{ConnectionId: in, User: "mona"}),
		} {
			if hot != shared {
				t.Errorf("%s connection_id %q: %v, the shared rule %v", name, in, hot, shared)
			}
		}
		if hot, shared := ok(&brokerv1.IssueUserTokenRequest{ConnectionId: "c", User: in}), ok(&brokerv1.GetUserGrantRequest{ConnectionId: "c", User: in}); hot != shared {
			t.Errorf("IssueUserToken user %q: %v, the shared rule %v", in, hot, shared)
		}
	}
	perms := []map[string]string{nil, {"contents": "read"}, {"contents": "write", "issues": "admin"}, {"Contents": "read"}, {"_x": "read"},
		{"contents": "none"}, {"contents": ""}, {"": "read"}, {"cont3nts": "read"}, {strings.Repeat("a", 64): "read"}, {strings.Repeat("a", 65): "read"}}
	for _, p := range perms {
		shared := ok(&registryv1.StartAppManifestRequest{Id: "c", CallbackUrl: "https://ghes.example.com/cb", Permissions: p})
		for name, hot := range map[string]bool{
			"IssueToken":     ok(&brokerv1.IssueTokenRequest{ConnectionId: "c", Permissions: p}),
			"IssueUserToken": ok(&brokerv1.IssueUserTokenRequest{ConnectionId: "c", User: "mona", Permissions: p}),
		} {
			if hot != shared {
				t.Errorf("%s permissions %v: %v, the shared rule %v", name, p, hot, shared)
			}
		}
	}
}

// Every rule of every ghconnect message compiles: a rule that does not
// would answer its calls with Internal.
func TestEveryRuleCompiles(t *testing.T) {
	rules := newRequestRules()
	n := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if !strings.HasPrefix(string(mt.Descriptor().FullName()), "ghconnect.") {
			return true
		}
		n++
		var invalid *protovalidate.ValidationError
		if err := rules.v.Validate(mt.New().Interface()); err != nil && !errors.As(err, &invalid) {
			t.Errorf("%s: %v", mt.Descriptor().FullName(), err)
		}
		return true
	})
	if n < 50 {
		t.Errorf("only %d ghconnect messages registered", n)
	}
}

// A request type with a RequestCheck is checked by it, not by
// protovalidate; the others still by protovalidate.
func TestRequestChecksReplaceRules(t *testing.T) {
	c := Check(func(r *registryv1.GetConnectionRequest, v *apierr.Violations) {
		if r.GetId() != "go" {
			v.Add("id", "the Go form says no")
		}
	})
	if c.Name() != "ghconnect.registry.v1.GetConnectionRequest" {
		t.Errorf("name %s", c.Name())
	}
	rules := newRequestRules(c)
	ctx := context.Background()
	if diff := cmp.Diff([]string{"id: the Go form says no"}, violations(rules.check(ctx, &registryv1.GetConnectionRequest{}))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := rules.check(ctx, &registryv1.GetConnectionRequest{Id: "go"}); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff([]string{"id: must not be empty"}, violations(DeclaredRules(ctx, &registryv1.GetConnectionRequest{}))); diff != "" {
		t.Errorf("DeclaredRules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"account: is required"}, violations(rules.check(ctx, &registryv1.CreateConnectionRequest{RequestId: "r.1"}))); diff != "" {
		t.Errorf("another type (-want +got):\n%s", diff)
	}
}
