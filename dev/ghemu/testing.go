package ghemu

import (
	"net/http/httptest"
	"testing"
)

// TestServer is an emulator serving on a loopback port.
type TestServer struct {
	*Emulator
	// URL is the base URL, e.g. for go-github's BaseURL (add a "/").
	URL string
}

// StartForTest starts an emulator in contract mode: every violation fails
// the test. It stops when the test ends.
func StartForTest(t testing.TB, opts Options) *TestServer {
	t.Helper()
	if opts.Contract == nil {
		c, err := SharedContract()
		if err != nil {
			t.Fatal(err)
		}
		opts.Contract = c
	}
	if opts.OnViolation == nil {
		opts.OnViolation = func(err error) { t.Errorf("GitHub emulator: %v", err) }
	}
	e := New(opts)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &TestServer{Emulator: e, URL: srv.URL}
}
