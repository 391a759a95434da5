package broker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The Go forms of the hot requests' rules (broker.RequestChecks) answer
// every input exactly as protovalidate answers it from broker.proto: the
// same code, field paths, texts and order. The inputs take each rule to
// its edges.
func TestHotChecksAgree(t *testing.T) {
	ctx := context.Background()
	checks := map[string]server.RequestCheck{}
	for _, c := range broker.RequestChecks {
		checks[string(c.Name())] = c
	}
	id := "2f0c1d7e-8a4b-4c55-9e3a-6b1f0d2c3a4e"
	strs := []string{"", "a", "A", "0", "mona", "Mona.Lisa_2-x", "-mona", ".mona", "_x", "x.", "ok-", ".", "..", "...", "a..b", "a b", "a/b", "a\n", "\na",
		"é", "aé", "\xff", "a\x00", strings.Repeat("a", 64), strings.Repeat("é", 32), strings.Repeat("é", 33), strings.Repeat("a", 65),
		strings.Repeat("a", 99), strings.Repeat("a", 100), strings.Repeat("a", 101), strings.Repeat("0", 64), strings.Repeat("f", 64),
		strings.Repeat("F", 64), strings.Repeat("0", 63), strings.Repeat("0", 65), strings.Repeat("0", 63) + "g"}
	perms := []map[string]string{nil, {}, {"contents": "read"}, {"contents": "write", "issues": "admin"}, {"a": "read"}, {"Contents": "read"},
		{"_x": "read"}, {"x_": "read"}, {"contents": "none"}, {"contents": ""}, {"contents": "READ"}, {"": "read"}, {"": ""}, {"cont3nts": "read"},
		{"contents": "read", "é": "write"}, {strings.Repeat("a", 64): "read"}, {strings.Repeat("a", 65): "admin"},
		{"contents": "all", "Issues": "read"}, {"a b": "x", "c-d": "read", "e": "y"}}
	var reqs []proto.Message
	for _, s := range strs {
		reqs = append(reqs,
			&brokerv1.IssueTokenRequest{ConnectionId: s},
			&brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{s}},
			&brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"alpha", s, s}},
			&brokerv1.IssueUserTokenRequest{ConnectionId: s, User: "mona"},
			&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: s},
			&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", RefusedTokenSha256: s},
			&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", Repositories: []string{s, "beta"}},
		)
	}
	for _, p := range perms {
		reqs = append(reqs,
			&brokerv1.IssueTokenRequest{ConnectionId: id, Permissions: p},
			&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", Permissions: p},
		)
	}
	for _, ids := range [][]int64{nil, {1}, {0}, {-1}, {1, 0, 2, -9}, {1 << 62}, {-1 << 63}} {
		reqs = append(reqs, &brokerv1.IssueTokenRequest{ConnectionId: id, RepositoryIds: ids})
	}
	for _, d := range []*durationpb.Duration{nil, {}, durationpb.New(time.Nanosecond), durationpb.New(-time.Nanosecond), durationpb.New(55 * time.Minute),
		durationpb.New(55*time.Minute + time.Nanosecond), durationpb.New(5 * time.Minute), {Seconds: -1}, {Seconds: 3300, Nanos: 1}, {Nanos: -1}} {
		reqs = append(reqs, &brokerv1.IssueTokenRequest{ConnectionId: id, MinLifetime: d})
	}
	many := func(n int, s string) []string { return slices.Repeat([]string{s}, n) }
	reqs = append(reqs,
		&brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: many(600, "alpha")},
		&brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: many(150, ".")},
		&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", Repositories: many(500, "alpha")},
		&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", Repositories: many(501, "alpha")},
		&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona", Repositories: many(501, "..")},
		&brokerv1.IssueTokenRequest{ConnectionId: "", Repositories: []string{"a b", ".."}, RepositoryIds: []int64{0},
			Permissions: map[string]string{"X": "none"}, MinLifetime: durationpb.New(time.Hour)},
		&brokerv1.IssueUserTokenRequest{ConnectionId: strings.Repeat("x", 65), User: "-x", RefusedTokenSha256: "x",
			Repositories: []string{"."}, Permissions: map[string]string{"x": "y"}},
	)
	for _, m := range reqs {
		name := string(m.ProtoReflect().Descriptor().FullName())
		c, ok := checks[name]
		if !ok {
			t.Fatalf("no check for %s", name)
		}
		perms := m.ProtoReflect().Descriptor().Fields().ByName("permissions")
		sorted := m.ProtoReflect().Get(perms).Map().Len() > 1
		want, got := testenv.StatusLines(server.DeclaredRules(ctx, m), sorted), testenv.StatusLines(c.Err(m), sorted)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %v (-protovalidate +Go):\n%s", name, m, diff)
		}
		if want[0] == codes.Internal.String() {
			t.Errorf("%s %v: the declared rules failed", name, m)
		}
	}
	if len(checks) != 2 {
		t.Errorf("%d checks, want IssueTokenRequest's and IssueUserTokenRequest's", len(checks))
	}
}

// The rules TestHotChecksAgree holds the Go forms to are the ones they were
// written for: a rule added, removed or changed in broker.proto (or the
// shared app_permissions it uses) changes this fingerprint, and the test
// says so until checks.go, TestHotChecksAgree's inputs and the fingerprint
// are brought up to date together.
func TestHotChecksRulesUnchanged(t *testing.T) {
	const want = "c2ba36d166129841"
	var msgs []protoreflect.FullName
	for _, c := range broker.RequestChecks {
		msgs = append(msgs, c.Name())
	}
	if got := testenv.RulesFingerprint(t, msgs, "ghconnect.rules.v1.app_permissions"); got != want {
		t.Errorf("the hot requests' rules changed (fingerprint %s, was %s): make checks.go answer as the new rules do, "+
			"give TestHotChecksAgree inputs at their edges, then set the fingerprint", got, want)
	}
}

// BenchmarkHotChecks is what the broker's hot requests cost to check, as
// the server checks them (the Go forms) and by protovalidate from
// broker.proto; pkg/server's BenchmarkRequestRules is the latter alone.
func BenchmarkHotChecks(b *testing.B) {
	ctx := context.Background()
	id := "2f0c1d7e-8a4b-4c55-9e3a-6b1f0d2c3a4e"
	reqs := []proto.Message{
		&brokerv1.IssueTokenRequest{ConnectionId: id, Repositories: []string{"alpha"}, Permissions: map[string]string{"contents": "read"}},
		&brokerv1.IssueUserTokenRequest{ConnectionId: id, User: "mona"},
	}
	for i, c := range broker.RequestChecks {
		m := reqs[i]
		name := string(m.ProtoReflect().Descriptor().Name())
		b.Run(name+"/Go", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Err(m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/protovalidate", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := server.DeclaredRules(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
