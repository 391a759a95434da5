package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fatals records a failure instead of ending the test, so that a test can
// look at what a helper reported.
type fatals struct {
	testing.TB
	msg string
}

func (f *fatals) Helper() {}

func (f *fatals) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

// EventuallyErr returns once cond is nil; when cond never is, the failure
// names the wait and the last error, not an earlier one.
func TestEventuallyErr(t *testing.T) {
	looks := 0
	took := EventuallyErr(t, 5*time.Second, "the third look", func() error {
		if looks++; looks < 3 {
			return fmt.Errorf("look %d", looks)
		}
		return nil
	})
	if looks != 3 || took <= 0 {
		t.Errorf("returned after %d looks, %v", looks, took)
	}

	f := &fatals{TB: t}
	looks = 0
	EventuallyErr(f, 50*time.Millisecond, "a thing that never happens", func() error {
		looks++
		return fmt.Errorf("look %d", looks)
	})
	if want := fmt.Sprintf("not within 50ms: a thing that never happens: look %d", looks); f.msg != want {
		t.Errorf("failure %q, want %q", f.msg, want)
	}
	if looks < 2 {
		t.Errorf("gave up after %d looks", looks)
	}
}

// Eventually fails with what it waited for when cond never holds.
func TestEventuallyFails(t *testing.T) {
	f := &fatals{TB: t}
	Eventually(f, 30*time.Millisecond, "never", func() bool { return false })
	if !strings.HasPrefix(f.msg, "not within 30ms: never") {
		t.Errorf("failure %q", f.msg)
	}
	f.msg = ""
	Eventually(f, time.Second, "at once", func() bool { return true })
	if f.msg != "" {
		t.Errorf("a condition that holds failed: %q", f.msg)
	}
}
