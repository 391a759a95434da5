package validate

import (
	validatepb "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	rulesv1 "github.com/ghconnect/ghconnect/gen/ghconnect/rules/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) error
		in   string
		ok   bool
	}{
		{"host simple", Hostname, "ghes.example.com", true},
		{"host single label", Hostname, "localhost", true},
		{"host digits first", Hostname, "1ghes.example.com", true},
		{"host empty", Hostname, "", false},
		{"host empty label", Hostname, "a..b", false},
		{"host trailing hyphen", Hostname, "a-.b", false},
		{"host underscore", Hostname, "a_b.com", false},
		{"host long label", Hostname, strings.Repeat("a", 64) + ".com", false},
		{"host too long", Hostname, strings.Repeat("a.", 127) + "ab", false},
		{"host space", Hostname, "a b", false},
		{"login ok", Login, "octo-org", true},
		{"login 39", Login, strings.Repeat("a", 39), true},
		{"login 40", Login, strings.Repeat("a", 40), false},
		{"login double hyphen", Login, "octo--org", false},
		{"login leading hyphen", Login, "-octo", false},
		{"login dot", Login, "octo.org", false},
		{"slug ok", EnterpriseSlug, "octo-corp", true},
		{"slug upper", EnterpriseSlug, "Octo", false},
		{"version 2", ServerVersion, "3.14", true},
		{"version 3", ServerVersion, "3.14.2", true},
		{"version pre", ServerVersion, "3.15.0-rc.1", true},
		{"version word", ServerVersion, "latest", false},
		{"version v", ServerVersion, "v3.14", false},
		{"repo ok", RepoName, "alpha", true},
		{"repo every kind", RepoName, "Octo.cat_2-x", true},
		{"repo dots", RepoName, "...", true},
		{"repo 100", RepoName, strings.Repeat("a", 100), true},
		{"repo 101", RepoName, strings.Repeat("a", 101), false},
		{"repo empty", RepoName, "", false},
		{"repo dot", RepoName, ".", false},
		{"repo dot dot", RepoName, "..", false},
		{"repo owner", RepoName, "octo/alpha", false},
		{"repo space", RepoName, "al pha", false},
		{"repo accent", RepoName, "caf\u00e9", false},
		{"repo newline", RepoName, "alpha\n", false},
		{"rid ok", RequestID, "req_01-A", true},
		{"rid empty", RequestID, "", false},
		{"rid long", RequestID, strings.Repeat("a", 65), false},
		{"rid slash", RequestID, "a/b", false},
		{"rid dot", RequestID, "req.1", true},
	}
	for _, tt := range tests {
		if err := tt.fn(tt.in); (err == nil) != tt.ok {
			t.Errorf("%s: %q: err = %v, want ok=%v", tt.name, tt.in, err, tt.ok)
		}
	}
}

func TestPageSize(t *testing.T) {
	tests := []struct {
		in   int32
		want int
		ok   bool
	}{
		{0, DefaultPageSize, true},
		{1, 1, true},
		{MaxPageSize, MaxPageSize, true},
		{MaxPageSize + 1, MaxPageSize, true},
		{1 << 30, MaxPageSize, true},
		{-1, 0, false},
	}
	for _, tt := range tests {
		got, err := PageSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("PageSize(%d) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// ServerLogin takes exactly the logins the services' regular expression
// took (it replaced it in the feature gate, the gateway and the broker).
func TestServerLoginMatchesTheExpression(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	cases := []string{"", "a", "mona", "Mona.Lisa_x-y", "0", "_mona", ".mona", "-x", "mona@example.com", "a+b", "mo na", "mona\n",
		"mona/", "möna", "ü", strings.Repeat("a", 100), strings.Repeat("a", 101), "a" + strings.Repeat("é", 50), "a\x00", "a:b"}
	const alphabet = "aZ09_.@+- \n/:\x00\xc3\xa9~"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := r.IntN(8)
		if r.IntN(50) == 0 {
			n = 95 + r.IntN(10)
		}
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, c := range cases {
		if got, want := ServerLogin(c) == nil, re.MatchString(c); got != want {
			t.Errorf("ServerLogin(%q) accepts: %v; the expression: %v", c, got, want)
		}
	}
}

// The x-request-id header and a request's request_id field take the same
// ids: the proto rule's pattern is RequestIDPattern.
func TestRequestIDPatternIsTheProtoRule(t *testing.T) {
	opts := rulesv1.E_RequestId.TypeDescriptor().Options().(*descriptorpb.FieldOptions)
	rules, _ := proto.GetExtension(opts, validatepb.E_Predefined).(*validatepb.PredefinedRules)
	if len(rules.GetCel()) != 1 || !strings.Contains(rules.GetCel()[0].GetExpression(), "'"+RequestIDPattern+"'") {
		t.Errorf("ghconnect.rules.v1.request_id is %v, want the pattern %s", rules.GetCel(), RequestIDPattern)
	}
}
