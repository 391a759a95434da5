package featuregate_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The Go form of Check's rules (featuregate.RequestChecks) answers every
// input exactly as protovalidate answers it from featuregate.proto: the
// same code, field paths, texts and order. The inputs take each rule to
// its edges.
func TestHotCheckAgrees(t *testing.T) {
	ctx := context.Background()
	id := "2f0c1d7e-8a4b-4c55-9e3a-6b1f0d2c3a4e"
	strs := []string{"", "a", "A", "0", "mona", "Mona.Lisa_2-x", "-mona", ".mona", "_x", "x.", "ok-", ".", "a b", "a/b", "a\n",
		"é", "aé", "\xff", "a\x00", strings.Repeat("a", 64), strings.Repeat("é", 32), strings.Repeat("é", 33), strings.Repeat("a", 65),
		strings.Repeat("a", 100), strings.Repeat("a", 101)}
	all := []featuregatev1.Feature{featuregatev1.Feature_FEATURE_UNIFIED_SEARCH}
	var reqs []*featuregatev1.CheckRequest
	for _, s := range strs {
		reqs = append(reqs,
			&featuregatev1.CheckRequest{ConnectionId: s, Users: []string{"mona"}, Features: all},
			&featuregatev1.CheckRequest{ConnectionId: id, Users: []string{s}, Features: all},
			&featuregatev1.CheckRequest{ConnectionId: id, Users: []string{"mona", s, "hubot", s}, Features: all},
		)
	}
	for _, fs := range [][]featuregatev1.Feature{nil, {}, {0}, {1}, {6}, {7}, {-1}, {1, 0, 99, 2}, {1 << 30}} {
		reqs = append(reqs, &featuregatev1.CheckRequest{ConnectionId: id, Users: []string{"mona"}, Features: fs})
	}
	many := func(n int) []string { return slices.Repeat([]string{"mona"}, n) }
	reqs = append(reqs,
		&featuregatev1.CheckRequest{ConnectionId: id, Users: nil, Features: all},
		&featuregatev1.CheckRequest{ConnectionId: id, Users: many(1000), Features: all},
		&featuregatev1.CheckRequest{ConnectionId: id, Users: many(1001), Features: all},
		&featuregatev1.CheckRequest{ConnectionId: id, Users: append(many(1000), "-x"), Features: all},
		&featuregatev1.CheckRequest{},
		&featuregatev1.CheckRequest{ConnectionId: strings.Repeat("x", 65), Users: []string{"", "ok"}, Features: []featuregatev1.Feature{0, 9}},
	)
	check := featuregate.RequestChecks[0]
	for _, m := range reqs {
		want, got := testenv.StatusLines(server.DeclaredRules(ctx, m), false), testenv.StatusLines(check.Err(m), false)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%.200v (-protovalidate +Go):\n%s", m, diff)
		}
		if want[0] == codes.Internal.String() {
			t.Errorf("%.200v: the declared rules failed", m)
		}
	}
	if len(featuregate.RequestChecks) != 1 || check.Name() != "ghconnect.featuregate.v1.CheckRequest" {
		t.Errorf("the checks: %d, the first of %s; want CheckRequest's alone", len(featuregate.RequestChecks), check.Name())
	}
}

// The rules TestHotCheckAgrees holds the Go form to are the ones it was
// written for: a rule added, removed or changed in CheckRequest (or the
// shared rules it uses) changes this fingerprint, and the test says so
// until checks.go, TestHotCheckAgrees's inputs and the fingerprint are
// brought up to date together.
func TestHotCheckRulesUnchanged(t *testing.T) {
	const want = "2f9b9d173b2bbfec"
	if got := testenv.RulesFingerprint(t, []protoreflect.FullName{"ghconnect.featuregate.v1.CheckRequest"},
		"ghconnect.rules.v1.connection_id", "ghconnect.rules.v1.server_login"); got != want {
		t.Errorf("CheckRequest's rules changed (fingerprint %s, was %s): make checks.go answer as the new rules do, "+
			"give TestHotCheckAgrees inputs at their edges, then set the fingerprint", got, want)
	}
}
