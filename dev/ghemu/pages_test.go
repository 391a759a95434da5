package ghemu_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

// pageForm is a form of an approval page: where it posts, its hidden
// fields and its submit buttons' labels.
type pageForm struct {
	action  string
	hidden  url.Values
	buttons []string
}

var (
	formRE   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
	buttonRE = regexp.MustCompile(`<button type="submit">([^<]*)</button>`)
	inputID  = regexp.MustCompile(`<input type="(?:radio|checkbox)" id="([^"]*)"`)
)

// browse sends a request as a browser that takes no redirect and returns
// the answer and its body.
func browse(t *testing.T, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodGet {
		resp, err = noRedirect().Get(u)
	} else {
		resp, err = noRedirect().PostForm(u, form)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// approvalPage checks an approval page is a 200, accessible HTML page
// with no script and returns its forms by the label of their button.
func approvalPage(t *testing.T, resp *http.Response, body string) map[string]pageForm {
	t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{"<!DOCTYPE html>", "<title>", "<main>", "</main>"} {
		if !strings.Contains(body, want) {
			t.Errorf("page without %s: %s", want, body)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "<link") || strings.Contains(body, "src=") || strings.Contains(body, "style") {
		t.Errorf("page with a script or an external asset: %s", body)
	}
	for _, m := range inputID.FindAllStringSubmatch(body, -1) {
		if !strings.Contains(body, `<label for="`+m[1]+`">`) {
			t.Errorf("input %s has no label", m[1])
		}
	}
	forms := map[string]pageForm{}
	for _, m := range formRE.FindAllStringSubmatch(body, -1) {
		f := pageForm{action: html.UnescapeString(m[1]), hidden: url.Values{}}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			f.hidden.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
		}
		for _, b := range buttonRE.FindAllStringSubmatch(m[2], -1) {
			f.buttons = append(f.buttons, b[1])
			forms[b[1]] = f
		}
	}
	return forms
}

// redirectTo takes browse's answer, which must be a redirect, and returns
// where it goes.
func redirectTo(t *testing.T) func(*http.Response, string) *url.URL {
	t.Helper()
	return func(resp *http.Response, body string) *url.URL {
		t.Helper()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("want a redirect, got %d: %s", resp.StatusCode, body)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
}

func TestManifestPage(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	manifest := func(name string) string {
		b, _ := json.Marshal(map[string]any{
			"name": name, "url": "https://ghes.example.com", "description": "Connect <ghes>",
			"redirect_url": "https://ghes.example.com/connect/callback?from=emu", "setup_url": "https://ghes.example.com/connect/setup",
			"default_permissions": map[string]string{"contents": "read", "issues": "read", "metadata": "read", "pull_requests": "write"},
			"default_events":      []string{"pull_request", "push"},
		})
		return string(b)
	}
	page := w.emu.URL + "/organizations/octo-org/settings/apps/new"
	resp, body := browse(t, http.MethodPost, page+"?state=st-1", url.Values{"manifest": {manifest("GHES <Connect> & co")}})
	forms := approvalPage(t, resp, body)
	for _, want := range []string{
		"<title>Create GitHub App for octo-org · GitHub</title>", "<h1>Create GitHub App for octo-org</h1>",
		"GHES &lt;Connect&gt; &amp; co", "https://ghes.example.com", "Connect &lt;ghes&gt;",
		"<li>Contents: read</li>", "<li>Issues: read</li>", "<li>Metadata: read</li>", "<li>Pull requests: write</li>",
		"<li>Pull request</li>", "<li>Push</li>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("manifest page without %q: %s", want, body)
		}
	}
	if strings.Contains(body, "<Connect>") || strings.Contains(body, "<ghes>") {
		t.Errorf("manifest page does not escape: %s", body)
	}
	create, cancel := forms["Create GitHub App"], forms["Cancel"]
	if create.action != "/organizations/octo-org/settings/apps/new/confirm" || cancel.action != "/organizations/octo-org/settings/apps/new/cancel" {
		t.Fatalf("forms: %+v", forms)
	}
	want := url.Values{"manifest": {manifest("GHES <Connect> & co")}, "state": {"st-1"}}
	if !cmp.Equal(create.hidden, want) || !cmp.Equal(cancel.hidden, want) {
		t.Errorf("hidden fields: %v and %v, want %v", create.hidden, cancel.hidden, want)
	}

	// Create GitHub App: the code converts into the App, as today.
	loc := redirectTo(t)(browse(t, http.MethodPost, w.emu.URL+create.action, create.hidden))
	if loc.Host != "ghes.example.com" || loc.Path != "/connect/callback" || loc.Query().Get("from") != "emu" || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("confirm: %v", loc)
	}
	conv, _, err := w.client("").Apps.CompleteAppManifest(ctx, loc.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	if conv.GetName() != "GHES <Connect> & co" || conv.GetOwner().GetLogin() != "octo-org" || conv.GetPEM() == "" {
		t.Errorf("conversion: %+v", conv)
	}
	// The name is now taken: the page still shows, the confirm refuses.
	resp, body = browse(t, http.MethodPost, page, url.Values{"manifest": {manifest("GHES <Connect> & co")}})
	again := approvalPage(t, resp, body)["Create GitHub App"]
	if resp, body := browse(t, http.MethodPost, w.emu.URL+again.action, again.hidden); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Name is already in use") {
		t.Errorf("confirm of a taken name: %d %s", resp.StatusCode, body)
	}

	// Cancel: back to redirect_url with access_denied and the state; no
	// App is made.
	resp, body = browse(t, http.MethodPost, page, url.Values{"manifest": {manifest("Never made")}, "state": {"st-2"}})
	cancel = approvalPage(t, resp, body)["Cancel"]
	loc = redirectTo(t)(browse(t, http.MethodPost, w.emu.URL+cancel.action, cancel.hidden))
	q := loc.Query()
	if loc.Path != "/connect/callback" || q.Get("error") != "access_denied" || q.Get("error_description") != "The user cancelled the creation of the GitHub App." ||
		q.Get("state") != "st-2" || q.Get("code") != "" || q.Get("from") != "emu" {
		t.Errorf("cancel: %v", loc)
	}
	if resp, _ := browse(t, http.MethodPost, w.emu.URL+"/organizations/octo-org/settings/apps/new/cancel", url.Values{"manifest": {manifest("Never made")}}); resp.Header.Get("Location") == "" ||
		strings.Contains(resp.Header.Get("Location"), "state=") {
		t.Errorf("cancel without a state: %v", resp.Header.Get("Location"))
	}

	// A personal App and an enterprise's.
	resp, body = browse(t, http.MethodPost, w.emu.URL+"/settings/apps/new", url.Values{"manifest": {manifest("Personal")}})
	if f := approvalPage(t, resp, body)["Create GitHub App"]; !strings.Contains(body, "<h1>Create GitHub App for emulator-user</h1>") || f.action != "/settings/apps/new/confirm" || f.hidden.Has("state") {
		t.Errorf("personal manifest page: %+v %s", f, body)
	}
	resp, body = browse(t, http.MethodPost, w.emu.URL+"/enterprises/octo-corp/settings/apps/new", url.Values{"manifest": {manifest("Enterprise")}})
	f := approvalPage(t, resp, body)["Create GitHub App"]
	if !strings.Contains(body, "<h1>Create GitHub App for octo-corp</h1>") || f.action != "/enterprises/octo-corp/settings/apps/new/confirm" {
		t.Errorf("enterprise manifest page: %+v %s", f, body)
	}
	loc = redirectTo(t)(browse(t, http.MethodPost, w.emu.URL+f.action, f.hidden))
	if conv, _, err := w.client("").Apps.CompleteAppManifest(ctx, loc.Query().Get("code")); err != nil || conv.GetOwner().GetID() != w.emu.AddAccount("octo-corp", "Enterprise").ID {
		t.Errorf("enterprise App: %v %v", conv, err)
	}

	// Without permissions it asks for metadata, as the App gets.
	bare, _ := json.Marshal(map[string]any{"name": "Bare", "url": "https://x.example", "redirect_url": "https://x.example/cb"})
	if _, body := browse(t, http.MethodPost, page, url.Values{"manifest": {string(bare)}}); !strings.Contains(body, "<li>Metadata: read</li>") || strings.Contains(body, "Events") {
		t.Errorf("bare manifest page: %s", body)
	}

	// Bad manifests are refused on every step; unknown owners too.
	for _, path := range []string{"", "/confirm", "/cancel"} {
		for _, m := range []string{"", "{", `{"name": "x", "url": "https://x.example"}`, `{"name": "x", "url": "https://x.example", "redirect_url": "not a url"}`} {
			if resp, body := browse(t, http.MethodPost, page+path, url.Values{"manifest": {m}}); resp.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("POST …/new%s with manifest %q: %d %s", path, m, resp.StatusCode, body)
			}
		}
	}
	for _, path := range []string{"", "/confirm"} {
		if resp, _ := browse(t, http.MethodPost, w.emu.URL+"/organizations/nobody/settings/apps/new"+path, url.Values{"manifest": {manifest("Nobody's")}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown organization on …/new%s: %d", path, resp.StatusCode)
		}
	}
}

// installWorld adds an App with a setup URL, not installed anywhere, and
// another organization with a repository of its own.
func installWorld(t *testing.T, opts ghemu.Options, setupURL string) (*world, int64) {
	t.Helper()
	w := newWorld(t, opts)
	w.emu.AddRepo(ghemu.RepoSpec{Owner: "octo-other", Name: "elsewhere"})
	id, err := w.emu.AddApp(ghemu.AppSpec{Slug: "page-installer", Name: "Page <Installer>", Owner: "octo-org", SetupURL: setupURL,
		Permissions: map[string]string{"contents": "read", "issues": "write", "metadata": "read"}}, &w.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return w, id
}

// installedRepos lists what an installation token of the App reaches.
func installedRepos(t *testing.T, w *world, appID, instID int64) (selection string, names []string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	app := w.client("Bearer " + appJWT(w.key, strconv.FormatInt(appID, 10), now.Add(-time.Minute), now.Add(9*time.Minute)))
	inst, _, err := app.Apps.GetInstallation(ctx, instID)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := app.Apps.CreateInstallationToken(ctx, instID, &github.InstallationTokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := w.client("token "+tok.GetToken()).Apps.ListRepos(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Repositories {
		names = append(names, r.GetFullName())
	}
	sort.Strings(names)
	return inst.GetRepositorySelection(), names
}

func TestInstallPage(t *testing.T) {
	w, appID := installWorld(t, ghemu.Options{}, "https://ghes.example.com/connect/setup?step=2")
	page := w.emu.URL + "/apps/page-installer/installations/new"
	repoID := func(owner, name string) string {
		t.Helper()
		id := w.emu.AddRepo(ghemu.RepoSpec{Owner: owner, Name: name}) // existing: its id
		return strconv.FormatInt(id, 10)
	}
	public, private, elsewhere := repoID("octo-org", "public-repo"), repoID("octo-org", "private-repo"), repoID("octo-other", "elsewhere")

	resp, body := browse(t, http.MethodGet, page+"?state=st-9", nil)
	forms := approvalPage(t, resp, body)
	for _, want := range []string{
		"<title>Install Page &lt;Installer&gt; · GitHub</title>", "<h1>Install Page &lt;Installer&gt;</h1>", "Install on <strong>octo-org</strong>",
		"Page &lt;Installer&gt; will be able to:", "<li>Contents: read</li>", "<li>Issues: write</li>", "<li>Metadata: read</li>",
		`<input type="radio" id="repository_selection_all" name="repository_selection" value="all" checked>`,
		`<label for="repository_selection_all">All repositories</label>`,
		`<input type="radio" id="repository_selection_selected" name="repository_selection" value="selected">`,
		`<label for="repository_selection_selected">Only select repositories</label>`,
		`<input type="checkbox" id="repository-` + public + `" name="repository_ids" value="` + public + `">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("install page without %q: %s", want, body)
		}
	}
	// The account's repositories, by full name, and no one else's.
	i1, i2, i3 := strings.Index(body, ">octo-org/other-private<"), strings.Index(body, ">octo-org/private-repo<"), strings.Index(body, ">octo-org/public-repo<")
	if i1 < 0 || i2 < i1 || i3 < i2 || strings.Contains(body, "elsewhere") || strings.Contains(body, "already installed") {
		t.Errorf("install page's repositories: %s", body)
	}
	install, cancel := forms["Install"], forms["Cancel"]
	want := url.Values{"target": {"octo-org"}, "state": {"st-9"}}
	if install.action != "/apps/page-installer/installations/new/confirm" || cancel.action != "/apps/page-installer/installations/new/cancel" ||
		!cmp.Equal(install.hidden, want) || !cmp.Equal(cancel.hidden, want) {
		t.Fatalf("forms: %+v", forms)
	}
	// The same page by POST and at /github-apps/.
	if resp, body := browse(t, http.MethodPost, page, url.Values{"state": {"st-9"}}); !cmp.Equal(approvalPage(t, resp, body)["Install"], install, cmp.AllowUnexported(pageForm{})) {
		t.Errorf("POST install page: %s", body)
	}
	if resp, body := browse(t, http.MethodGet, w.emu.URL+"/github-apps/page-installer/installations/new?state=st-9", nil); !cmp.Equal(approvalPage(t, resp, body)["Install"], install, cmp.AllowUnexported(pageForm{})) {
		t.Errorf("/github-apps/ install page: %s", body)
	}

	confirm := func(extra url.Values) (*http.Response, string) {
		form := url.Values{}
		for k, v := range install.hidden {
			form[k] = v
		}
		for k, v := range extra {
			form[k] = v
		}
		return browse(t, http.MethodPost, w.emu.URL+install.action, form)
	}
	// Refusals install nothing.
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"repository_selection": {"selected"}}, "Select at least one repository"},
		{url.Values{"repository_selection": {"selected"}, "repository_ids": {""}}, "Select at least one repository"},
		{url.Values{"repository_selection": {"selected"}, "repository_ids": {public, elsewhere}}, "octo-other/elsewhere does not belong to octo-org"},
		{url.Values{"repository_selection": {"selected"}, "repository_ids": {"999999"}}, "no repository has id 999999"},
		{url.Values{"repository_selection": {"selected"}, "repository_ids": {"x"}}, `"x" is not a repository id`},
		{url.Values{"repository_selection": {"some"}}, "repository_selection must be all or selected"},
	} {
		if resp, body := confirm(c.form); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, c.want) {
			t.Errorf("confirm %v: %d %s, want 422 %q", c.form, resp.StatusCode, body, c.want)
		}
	}
	// Only select repositories: those, and nothing else.
	loc := redirectTo(t)(confirm(url.Values{"repository_selection": {"selected"}, "repository_ids": {public, private, public}}))
	q := loc.Query()
	instID, _ := strconv.ParseInt(q.Get("installation_id"), 10, 64)
	if loc.Host != "ghes.example.com" || loc.Path != "/connect/setup" || q.Get("step") != "2" || q.Get("setup_action") != "install" || q.Get("state") != "st-9" || instID == 0 {
		t.Fatalf("confirm: %v", loc)
	}
	if sel, names := installedRepos(t, w, appID, instID); sel != "selected" || !cmp.Equal(names, []string{"octo-org/private-repo", "octo-org/public-repo"}) {
		t.Errorf("installation: %s %v", sel, names)
	}
	// Installed: the page says so, a second install is refused.
	if _, body := browse(t, http.MethodGet, page, nil); !strings.Contains(body, `<p role="alert">Page &lt;Installer&gt; is already installed on octo-org.</p>`) {
		t.Errorf("page of an installed App: %s", body)
	}
	if resp, body := confirm(nil); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "already installed") {
		t.Errorf("second install: %d %s", resp.StatusCode, body)
	}

	// Another account (target): its repositories; Cancel, then All.
	resp, body = browse(t, http.MethodGet, page+"?target=octo-other&state=st-10", nil)
	forms = approvalPage(t, resp, body)
	if !strings.Contains(body, "Install on <strong>octo-other</strong>") || !strings.Contains(body, ">octo-other/elsewhere<") || strings.Contains(body, "octo-org/") {
		t.Errorf("install page for octo-other: %s", body)
	}
	loc = redirectTo(t)(browse(t, http.MethodPost, w.emu.URL+forms["Cancel"].action, forms["Cancel"].hidden))
	q = loc.Query()
	if loc.Path != "/connect/setup" || q.Get("error") != "access_denied" || q.Get("error_description") != "The user cancelled the installation." ||
		q.Get("state") != "st-10" || q.Get("installation_id") != "" || q.Get("step") != "2" {
		t.Errorf("cancel: %v", loc)
	}
	form := forms["Install"].hidden
	form.Set("repository_selection", "all")
	loc = redirectTo(t)(browse(t, http.MethodPost, w.emu.URL+forms["Install"].action, form))
	instID, _ = strconv.ParseInt(loc.Query().Get("installation_id"), 10, 64)
	if sel, names := installedRepos(t, w, appID, instID); sel != "all" || !cmp.Equal(names, []string{"octo-other/elsewhere"}) {
		t.Errorf("installation on octo-other: %s %v", sel, names)
	}

	// Unknown App or account.
	for _, u := range []string{"/apps/nope/installations/new", "/apps/page-installer/installations/new?target=nobody"} {
		if resp, _ := browse(t, http.MethodGet, w.emu.URL+u, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
	for _, u := range []string{"/apps/nope/installations/new/confirm", "/apps/nope/installations/new/cancel"} {
		if resp, _ := browse(t, http.MethodPost, w.emu.URL+u, url.Values{"repository_selection": {"all"}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d", u, resp.StatusCode)
		}
	}
	if resp, _ := browse(t, http.MethodPost, w.emu.URL+install.action, url.Values{"target": {"nobody"}, "repository_selection": {"selected"}, "repository_ids": {public}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("confirm for an unknown account: %d", resp.StatusCode)
	}
}

func TestInstallPageWithoutSetupURL(t *testing.T) {
	w, _ := installWorld(t, ghemu.Options{}, "")
	w.emu.AddAccount("octo-empty", "Organization")
	resp, body := browse(t, http.MethodGet, w.emu.URL+"/apps/page-installer/installations/new?target=octo-empty", nil)
	forms := approvalPage(t, resp, body)
	if !strings.Contains(body, "octo-empty has no repositories.") {
		t.Errorf("page for an account without repositories: %s", body)
	}
	resp, body = browse(t, http.MethodPost, w.emu.URL+forms["Cancel"].action, forms["Cancel"].hidden)
	approvalPage(t, resp, body)
	if !strings.Contains(body, "<h1>Installation cancelled</h1>") {
		t.Errorf("cancel without a setup URL: %s", body)
	}
	if resp, body := browse(t, http.MethodPost, w.emu.URL+forms["Install"].action, forms["Install"].hidden); resp.StatusCode != http.StatusOK || body != "installed\n" {
		t.Errorf("install without a setup URL: %d %q", resp.StatusCode, body)
	}
}

// TestAutoApprove: the pages act at once, as before the pages existed.
func TestAutoApprove(t *testing.T) {
	w, appID := installWorld(t, ghemu.Options{AutoApprove: true}, "https://ghes.example.com/connect/setup")
	m, _ := json.Marshal(map[string]any{"name": "Instant", "url": "https://x.example", "redirect_url": "https://x.example/cb"})
	loc := redirectTo(t)(browse(t, http.MethodPost, w.emu.URL+"/organizations/octo-org/settings/apps/new", url.Values{"manifest": {string(m)}, "state": {"s"}}))
	if loc.Query().Get("code") == "" || loc.Query().Get("state") != "s" {
		t.Errorf("manifest: %v", loc)
	}
	if conv, _, err := w.client("").Apps.CompleteAppManifest(context.Background(), loc.Query().Get("code")); err != nil || conv.GetName() != "Instant" {
		t.Errorf("conversion: %v %v", conv, err)
	}
	loc = redirectTo(t)(browse(t, http.MethodGet, w.emu.URL+"/apps/page-installer/installations/new?state=s2&repositories=public-repo", nil))
	instID, _ := strconv.ParseInt(loc.Query().Get("installation_id"), 10, 64)
	if loc.Query().Get("setup_action") != "install" || loc.Query().Get("state") != "s2" {
		t.Errorf("install: %v", loc)
	}
	if sel, names := installedRepos(t, w, appID, instID); sel != "selected" || !cmp.Equal(names, []string{"octo-org/public-repo"}) {
		t.Errorf("installation: %s %v", sel, names)
	}
}
