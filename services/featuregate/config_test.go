package featuregate_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/services/featuregate"
)

// The timing flags of the uploader and of the advisory sync: the defaults
// pass, and values NewUploader or NewAdvisorySync would replace with
// their own (zero, a maximum below the minimum) are refused at start
// rather than changed behind the operator's back.
// jobFlags binds a JobFlags under its prefix, as Config does.
type jobFlags struct {
	*featuregate.JobFlags
	prefix string
}

func (j jobFlags) RegisterFlags(fs *flag.FlagSet) { j.JobFlags.RegisterFlags(fs, j.prefix, "the job") }

func TestTimingFlags(t *testing.T) {
	t.Parallel()
	type flags interface {
		RegisterFlags(*flag.FlagSet)
		Validate() error
	}
	for _, c := range []struct {
		prefix string
		new    func() flags
		good   []string
		bad    [][]string
	}{
		{"contributions", func() flags { return &featuregate.UploadFlags{} },
			[]string{"-contributions-min-backoff", "50ms", "-contributions-max-backoff", "200ms", "-contributions-poll", "100ms", "-contributions-lease-retry", "200ms"},
			[][]string{{"-contributions-poll", "0s"}, {"-contributions-lease-retry", "-1s"}, {"-contributions-max-backoff", "500ms"}}}, // below the 1 s minimum
		{"advisories", func() flags { return &featuregate.AdvisoryFlags{} },
			[]string{"-advisories-every", "1s", "-advisories-min-backoff", "50ms", "-advisories-max-backoff", "200ms", "-advisories-poll", "100ms", "-advisories-lease-retry", "200ms"},
			[][]string{{"-advisories-every", "0s"}, {"-advisories-poll", "-1s"}, {"-advisories-max-backoff", "10s"}}}, // below the 30 s minimum
		{"license-sync", func() flags { return jobFlags{&featuregate.JobFlags{}, "license-sync"} },
			[]string{"-license-sync-every", "1s", "-license-sync-min-backoff", "50ms", "-license-sync-max-backoff", "200ms", "-license-sync-poll", "100ms"},
			[][]string{{"-license-sync-every", "0s"}, {"-license-sync-poll", "-1s"}, {"-license-sync-max-backoff", "10s"}}}, // below the 30 s minimum
	} {
		parse := func(args ...string) error {
			f := c.new()
			fs := flag.NewFlagSet("featuregate", flag.ContinueOnError)
			f.RegisterFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			return f.Validate()
		}
		if err := parse(); err != nil {
			t.Errorf("%s defaults: %v", c.prefix, err)
		}
		if err := parse(c.good...); err != nil {
			t.Errorf("short timings: %v", err)
		}
		for _, bad := range c.bad {
			if err := parse(bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
				t.Errorf("%v: %v, want refused", bad, err)
			}
		}
	}
}
