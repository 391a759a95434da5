package ghemu

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

func (e *Emulator) routes() {
	e.mux = http.NewServeMux()
	e.api("GET /app", authJWT, e.getApp)
	e.api("GET /app/installations", authJWT, e.listInstallations)
	e.api("GET /apps/{app_slug}", authOptionalToken, e.getAppBySlug)
	e.api("GET /app/installations/{installation_id}", authJWT, e.getInstallation)
	e.api("DELETE /app/installations/{installation_id}", authJWT, e.deleteInstallation)
	e.api("GET /orgs/{org}/installation", authJWT, e.accountInstallation("org", "Organization"))
	e.api("GET /users/{username}/installation", authJWT, e.accountInstallation("username", "User"))
	e.api("GET /enterprises/{enterprise}/installation", authJWT, e.accountInstallation("enterprise", "Enterprise"))
	e.api("GET /repos/{owner}/{repo}/installation", authJWT, e.repoInstallation)
	e.api("POST /app/installations/{installation_id}/access_tokens", authJWT, e.createToken)
	e.api("DELETE /installation/token", authToken, e.revokeToken)
	e.api("GET /installation/repositories", authToken, e.installationRepos)
	e.api("POST /app-manifests/{code}/conversions", authNone, e.convertManifest)
	e.api("GET /rate_limit", authOptionalToken, e.getRateLimit)
	e.api("GET /meta", authNone, e.getMeta)
	e.api("GET /orgs/{org}", authOptionalToken, e.getOrg)
	e.api("GET /search/code", authOptionalToken, e.searchCode)
	e.api("GET /search/issues", authOptionalToken, e.searchIssues)
	e.repoRoutes()
	e.userRoutes()
	e.contributionRoutes()
	e.advisoryRoutes()
	e.serverStatsRoutes()
	e.licenseRoutes()

	// Browser pages of github.com, outside the API and its description.
	e.mux.HandleFunc("POST /settings/apps/new", e.manifestPage(""))
	e.mux.HandleFunc("POST /organizations/{org}/settings/apps/new", e.manifestPage("org"))
	e.mux.HandleFunc("POST /enterprises/{enterprise}/settings/apps/new", e.manifestPage("enterprise"))
	e.mux.HandleFunc("POST /settings/apps/new/confirm", e.createFromManifest(""))
	e.mux.HandleFunc("POST /organizations/{org}/settings/apps/new/confirm", e.createFromManifest("org"))
	e.mux.HandleFunc("POST /enterprises/{enterprise}/settings/apps/new/confirm", e.createFromManifest("enterprise"))
	e.mux.HandleFunc("POST /settings/apps/new/cancel", e.cancelManifest)
	e.mux.HandleFunc("POST /organizations/{org}/settings/apps/new/cancel", e.cancelManifest)
	e.mux.HandleFunc("POST /enterprises/{enterprise}/settings/apps/new/cancel", e.cancelManifest)
	e.mux.HandleFunc("GET /apps/{slug}/installations/new", e.installPage)
	e.mux.HandleFunc("POST /apps/{slug}/installations/new", e.installPage)
	e.mux.HandleFunc("GET /github-apps/{slug}/installations/new", e.installPage)
	e.mux.HandleFunc("POST /apps/{slug}/installations/new/confirm", e.confirmInstall)
	e.mux.HandleFunc("POST /apps/{slug}/installations/new/cancel", e.cancelInstall)

	e.oauthRoutes()
	e.adminRoutes()
	e.mux.HandleFunc("/", e.unknownRoute)
}

func (e *Emulator) getApp(w http.ResponseWriter, _ *http.Request, id identity) {
	e.mu.Lock()
	body := appJSON(id.app)
	body["installations_count"] = e.countInstallations(id.app)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// getAppBySlug answers GET /apps/{app_slug}: a public App to anyone, a
// private one only to a token of its own account (an installation on it,
// or the account's user); to anyone else it does not exist.
func (e *Emulator) getAppBySlug(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	var app *App
	for _, a := range e.apps {
		if strings.EqualFold(a.Slug, r.PathValue("app_slug")) {
			app = a
		}
	}
	visible := app != nil && (app.Public ||
		(id.installation != nil && id.installation.Account == app.Owner) ||
		(id.user != nil && id.user.user == app.Owner))
	var body map[string]any
	if visible {
		body = appJSON(app)
	}
	e.mu.Unlock()
	if !visible {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#get-an-app")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// DeleteApp is the App's owner deleting it on GitHub.com: its
// installations and their tokens go with it.
func (e *Emulator) DeleteApp(appID int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deleteAppLocked(appID)
}

func (e *Emulator) deleteAppLocked(appID int64) {
	for id, i := range e.installations {
		if i.App.ID == appID {
			delete(e.installations, id)
		}
	}
	for _, u := range e.userTokens {
		if u.app != nil && u.app.ID == appID {
			u.revoked = true
		}
	}
	delete(e.apps, appID)
}

func (e *Emulator) countInstallations(a *App) int {
	n := 0
	for _, i := range e.installations {
		if i.App == a {
			n++
		}
	}
	return n
}

// page reads per_page (default 30, at most 100) and page (from 1).
func page(r *http.Request) (perPage, pageNo int) {
	perPage, pageNo = 30, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		pageNo = v
	}
	return perPage, pageNo
}

// paginate slices n items and sets GitHub's Link header.
func paginate(w http.ResponseWriter, r *http.Request, n int) (from, to int) {
	perPage, pageNo := page(r)
	last := max((n+perPage-1)/perPage, 1)
	from = min((pageNo-1)*perPage, n)
	to = min(from+perPage, n)
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, apiBase, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if pageNo < last {
		links = append(links, link(pageNo+1, "next"), link(last, "last"))
	}
	if pageNo > 1 {
		links = append(links, link(1, "first"), link(pageNo-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	return from, to
}

func (e *Emulator) listInstallations(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	var list []*Installation
	for _, i := range e.installations {
		if i.App == id.app {
			list = append(list, i)
		}
	}
	sort.Slice(list, func(a, b int) bool { return list[a].ID < list[b].ID })
	from, to := paginate(w, r, len(list))
	out := []any{}
	for _, i := range list[from:to] {
		out = append(out, installationJSON(i))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// appInstallation finds an installation of the authenticated App by path id.
func (e *Emulator) appInstallation(r *http.Request, app *App) *Installation {
	n, err := strconv.ParseInt(r.PathValue("installation_id"), 10, 64)
	if err != nil {
		return nil
	}
	if i := e.installations[n]; i != nil && i.App == app {
		return i
	}
	return nil
}

func (e *Emulator) getInstallation(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.appInstallation(r, id.app)
	if i == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#get-an-installation-for-the-authenticated-app")
		return
	}
	writeJSON(w, http.StatusOK, installationJSON(i))
}

func (e *Emulator) deleteInstallation(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.appInstallation(r, id.app)
	if i == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#delete-an-installation-for-the-authenticated-app")
		return
	}
	delete(e.installations, i.ID)
	for _, t := range e.tokens {
		if t.installation == i {
			t.revoked = true
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) accountInstallation(param, typ string) handler {
	return func(w http.ResponseWriter, r *http.Request, id identity) {
		e.mu.Lock()
		defer e.mu.Unlock()
		a := e.account(r.PathValue(param))
		if a != nil && (a.Type == typ || (typ == "User" && a.Type == "Organization")) {
			for _, i := range e.installations {
				if i.App == id.app && i.Account == a {
					writeJSON(w, http.StatusOK, installationJSON(i))
					return
				}
			}
		}
		writeError(w, http.StatusNotFound, "Not Found", docsURL)
	}
}

// getOrg is an organization's public profile: anyone may read it.
func (e *Emulator) getOrg(w http.ResponseWriter, r *http.Request, _ identity) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.account(r.PathValue("org"))
	if a == nil || a.Type != "Organization" {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/orgs/orgs#get-an-organization")
		return
	}
	writeJSON(w, http.StatusOK, orgJSON(a))
}

func (e *Emulator) repoInstallation(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if repo := e.repo(r.PathValue("owner"), r.PathValue("repo")); repo != nil {
		for _, i := range e.installations {
			if i.App != id.app {
				continue
			}
			if e.covers(i, repo) {
				writeJSON(w, http.StatusOK, installationJSON(i))
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, "Not Found", docsURL)
}

// installPage is github.com's install page. With Options.AutoApprove it
// installs at once (installNow); otherwise it shows the page where the
// admin chooses the repositories (installReview, pages.go).
func (e *Emulator) installPage(w http.ResponseWriter, r *http.Request) {
	if e.autoApprove.Load() {
		e.installNow(w, r)
		return
	}
	e.installReview(w, r)
}

// installTarget finds the page's App (by the path's slug) and the account
// to install it on (the form's or query's target, default the App's
// owner); when either is missing it has answered 404. Callers hold e.mu.
func (e *Emulator) installTarget(w http.ResponseWriter, r *http.Request) (*App, *Account) {
	var app *App
	for _, a := range e.apps {
		if a.Slug == r.PathValue("slug") {
			app = a
		}
	}
	if app == nil {
		http.Error(w, "no such App", http.StatusNotFound)
		return nil, nil
	}
	target := app.Owner
	if t := r.Form.Get("target"); t != "" {
		target = e.account(t)
	}
	if target == nil {
		http.Error(w, "no such account", http.StatusNotFound)
		return nil, nil
	}
	return app, target
}

// installNow installs the App on the account named by target (default:
// the App's owner), on every repository or on those named by repositories
// (comma-separated), and sends the browser to the App's setup URL.
func (e *Emulator) installNow(w http.ResponseWriter, r *http.Request) {
	// A malformed body leaves its fields empty, which the checks below
	// refuse as missing.
	_ = r.ParseForm()
	var repos []string
	if v := r.Form.Get("repositories"); v != "" {
		repos = strings.Split(v, ",")
	}
	e.finishInstall(w, r, repos)
}

// finishInstall installs the page's App on its target, on repos (nil:
// all), and sends the browser to the App's setup URL with the
// installation, or answers "installed" when the App has none.
func (e *Emulator) finishInstall(w http.ResponseWriter, r *http.Request, repos []string) {
	e.mu.Lock()
	app, target := e.installTarget(w, r)
	if app == nil {
		e.mu.Unlock()
		return
	}
	appID, login, setup := app.ID, target.Login, app.SetupURL
	e.mu.Unlock()
	inst, err := e.Install(appID, login, nil, repos)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	if setup == "" {
		w.Write([]byte("installed\n"))
		return
	}
	q := url.Values{"installation_id": {strconv.FormatInt(inst.ID, 10)}, "setup_action": {"install"}}
	if s := r.Form.Get("state"); s != "" {
		q.Set("state", s)
	}
	http.Redirect(w, r, withQuery(setup, q), http.StatusFound)
}

func withQuery(base string, q url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + q.Encode()
}
