package featuregate_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/services/featuregate"
)

// The uploader's timing flags: the defaults pass, and values NewUploader
// would replace with its own (zero, a maximum below the minimum) are
// refused at start rather than changed behind the operator's back.
func TestUploadFlags(t *testing.T) {
	t.Parallel()
	parse := func(args ...string) error {
		var f featuregate.UploadFlags
		fs := flag.NewFlagSet("featuregate", flag.ContinueOnError)
		f.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Validate()
	}
	if err := parse(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := parse("-contributions-min-backoff", "50ms", "-contributions-max-backoff", "200ms", "-contributions-poll", "100ms", "-contributions-lease-retry", "200ms"); err != nil {
		t.Errorf("short timings: %v", err)
	}
	for _, bad := range [][]string{
		{"-contributions-poll", "0s"},
		{"-contributions-lease-retry", "-1s"},
		{"-contributions-max-backoff", "500ms"}, // below the 1 s minimum
	} {
		if err := parse(bad...); err == nil || !strings.Contains(err.Error(), "-contributions-") {
			t.Errorf("%v: %v, want refused", bad, err)
		}
	}
}
