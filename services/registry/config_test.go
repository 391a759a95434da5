package registry_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/services/registry"
)

// The server's hostname and version are required flags: no request names
// them, so a registry without them could create no connection.
func TestConfigNeedsServerSettings(t *testing.T) {
	t.Parallel()
	validate := func(args ...string) string {
		var cfg registry.Config
		fs := flag.NewFlagSet("registry", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(append([]string{"-license-issuers", "issuers.txt", "-tokens-file", "tokens"}, args...)); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			return err.Error()
		}
		return ""
	}
	for _, tc := range []struct {
		args []string
		want []string // in the error; none: valid
	}{
		{nil, []string{"-server-hostname is required", "-server-version is required"}},
		{[]string{"-server-hostname", "ghes.example.com"}, []string{"-server-version is required"}},
		{[]string{"-server-hostname", "bad_host", "-server-version", "3.14.2"}, []string{"-server-hostname: "}},
		{[]string{"-server-hostname", "ghes.example.com", "-server-version", "latest"}, []string{"-server-version: "}},
		{[]string{"-server-hostname", "ghes.example.com", "-server-version", "3.14.2"}, nil},
	} {
		got := validate(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%v: %q, want it to say %q", tc.args, got, w)
			}
		}
		if tc.want == nil && strings.Contains(got, "-server-") {
			t.Errorf("%v: %q", tc.args, got)
		}
	}
}
