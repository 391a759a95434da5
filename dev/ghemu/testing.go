package ghemu

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
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

// Approve is a person's browser on the authorize page: it opens
// authorizeURL (…/login/oauth/authorize?client_id=…), signs in as login
// and approves the App. It returns the query the browser is sent back
// with: code and state, or error, error_description and state when the
// request itself was refused. client nil means http.DefaultClient.
func Approve(t testing.TB, client *http.Client, authorizeURL, login string) url.Values {
	t.Helper()
	return decide(t, client, authorizeURL, login, "approve")
}

// Deny is Approve's counterpart: the person presses Cancel; the query
// carries error=access_denied.
func Deny(t testing.TB, client *http.Client, authorizeURL, login string) url.Values {
	t.Helper()
	return decide(t, client, authorizeURL, login, "deny")
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

func decide(t testing.TB, client *http.Client, authorizeURL, login, decision string) url.Values {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	page, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatalf("authorize URL: %v", err)
	}
	resp, err := c.Get(authorizeURL)
	if err != nil {
		t.Fatalf("authorize page: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		return redirectQuery(t, resp)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize page: %d %s", resp.StatusCode, body)
	}
	form := url.Values{"login": {login}, "decision": {decision}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	resp, err = c.PostForm(page.ResolveReference(&url.URL{Path: "/login/oauth/authorize"}).String(), form)
	if err != nil {
		t.Fatalf("authorize form: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize form as %q: %d, want a redirect: %s", login, resp.StatusCode, body)
	}
	return redirectQuery(t, resp)
}

func redirectQuery(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("redirect: %v", err)
	}
	return to.Query()
}
