package ghemu

// GitHub.com's pages where an admin approves what an App asks for: the
// page that creates an App from a manifest and the page that installs an
// App. Each posts to a confirm route (which does what Options.AutoApprove
// does at once) or to a cancel route (which sends the browser back with
// error=access_denied: GitHub.com itself offers no way back on cancel;
// the emulator's is modelled on the OAuth flow's, so a server can test how
// it handles an admin who gave up).

import (
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Descriptions the cancel routes send back with error=access_denied.
const (
	manifestCancelled = "The user cancelled the creation of the GitHub App."
	installCancelled  = "The user cancelled the installation."
)

var approvalPages = template.Must(template.New("pages").Parse(`
{{define "top"}}<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.}} · GitHub</title></head>
<body>
<main>
<h1>{{.}}</h1>
{{end}}
{{define "bottom"}}</main>
</body>
</html>
{{end}}
{{define "hidden"}}{{range .}}<input type="hidden" name="{{index . 0}}" value="{{index . 1}}">
{{end}}{{end}}

{{define "manifest"}}{{template "top" .Title}}<dl>
<dt>GitHub App name</dt>
<dd>{{.Name}}</dd>
<dt>Homepage URL</dt>
<dd>{{.URL}}</dd>
{{if .Description}}<dt>Description</dt>
<dd>{{.Description}}</dd>
{{end}}</dl>
<h2 id="permissions">Permissions</h2>
<ul aria-labelledby="permissions">
{{range .Permissions}}<li>{{.}}</li>
{{else}}<li>No permissions</li>
{{end}}</ul>
{{if .Events}}<h2 id="events">Events</h2>
<ul aria-labelledby="events">
{{range .Events}}<li>{{.}}</li>
{{end}}</ul>
{{end}}<form method="post" action="{{.ConfirmAction}}">
{{template "hidden" .Hidden}}<p><button type="submit">Create GitHub App</button></p>
</form>
<form method="post" action="{{.CancelAction}}">
{{template "hidden" .Hidden}}<p><button type="submit">Cancel</button></p>
</form>
{{template "bottom"}}{{end}}

{{define "install"}}{{template "top" .Title}}<p>Install on <strong>{{.Account}}</strong></p>
{{if .Installed}}<p role="alert">{{.AppName}} is already installed on {{.Account}}.</p>
{{end}}<p id="permissions">{{.AppName}} will be able to:</p>
<ul aria-labelledby="permissions">
{{range .Permissions}}<li>{{.}}</li>
{{else}}<li>No permissions</li>
{{end}}</ul>
<form method="post" action="{{.ConfirmAction}}">
{{template "hidden" .Hidden}}<fieldset>
<legend>Repository access</legend>
<p><input type="radio" id="repository_selection_all" name="repository_selection" value="all" checked>
<label for="repository_selection_all">All repositories</label></p>
<p><input type="radio" id="repository_selection_selected" name="repository_selection" value="selected">
<label for="repository_selection_selected">Only select repositories</label></p>
<fieldset>
<legend>Repositories of {{.Account}}</legend>
{{range .Repos}}<p><input type="checkbox" id="repository-{{.ID}}" name="repository_ids" value="{{.ID}}">
<label for="repository-{{.ID}}">{{.FullName}}</label></p>
{{else}}<p>{{.Account}} has no repositories.</p>
{{end}}</fieldset>
</fieldset>
<p><button type="submit">Install</button></p>
</form>
<form method="post" action="{{.CancelAction}}">
{{template "hidden" .Hidden}}<p><button type="submit">Cancel</button></p>
</form>
{{template "bottom"}}{{end}}

{{define "message"}}{{template "top" .Title}}<p>{{.Message}}</p>
{{template "bottom"}}{{end}}
`))

func renderApproval(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	// The templates and their data are ours: Execute fails only writing
	// to a client that has gone.
	_ = approvalPages.ExecuteTemplate(w, name, data)
}

// permissionWords are permissions as a person reads them, by name:
// "Contents: read", "Pull requests: write".
func permissionWords(perms map[string]string) []string {
	names := make([]string, 0, len(perms))
	for k := range perms {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, k := range names {
		out = append(out, words(k)+": "+perms[k])
	}
	return out
}

// words turns a permission or event name into words: "pull_requests" is
// "Pull requests".
func words(name string) string {
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// hiddenFields are the non-empty fields a page's forms carry on, in order.
func hiddenFields(kv ...string) [][2]string {
	var out [][2]string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, [2]string{kv[i], kv[i+1]})
		}
	}
	return out
}

// manifestReview is the page a manifest is posted to: the App it
// describes, for its owner, with "Create GitHub App" (POST
// <path>/confirm) and "Cancel" (POST <path>/cancel).
func (e *Emulator) manifestReview(ownerParam string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, ok := readManifest(w, r)
		if !ok {
			return
		}
		e.mu.Lock()
		owner := e.manifestOwner(r, ownerParam)
		var login string
		if owner != nil {
			login = owner.Login
		}
		e.mu.Unlock()
		if owner == nil {
			http.Error(w, "no such account", http.StatusNotFound)
			return
		}
		perms := m.DefaultPermissions
		if perms == nil {
			perms = map[string]string{"metadata": "read"} // what newApp gives
		}
		var events []string
		for _, ev := range m.DefaultEvents {
			events = append(events, words(ev))
		}
		renderApproval(w, http.StatusOK, "manifest", map[string]any{
			"Title": "Create GitHub App for " + login, "Name": m.Name, "URL": m.URL, "Description": m.Description,
			"Permissions": permissionWords(perms), "Events": events,
			"ConfirmAction": r.URL.Path + "/confirm", "CancelAction": r.URL.Path + "/cancel",
			"Hidden": hiddenFields("manifest", r.Form.Get("manifest"), "state", r.Form.Get("state")),
		})
	}
}

// cancelManifest is the manifest page's Cancel: back to the manifest's
// redirect_url with error=access_denied and the state.
func (e *Emulator) cancelManifest(w http.ResponseWriter, r *http.Request) {
	m, ok := readManifest(w, r)
	if !ok {
		return
	}
	q := url.Values{"error": {"access_denied"}, "error_description": {manifestCancelled}}
	if s := r.Form.Get("state"); s != "" {
		q.Set("state", s)
	}
	http.Redirect(w, r, withQuery(m.RedirectURL, q), http.StatusFound)
}

// pageRepo is a repository the install page offers.
type pageRepo struct {
	ID       int64
	FullName string
}

// installReview is the install page: the account, what the App will be
// able to do, all or selected repositories, "Install" (POST
// /apps/{slug}/installations/new/confirm) and "Cancel" (…/cancel).
func (e *Emulator) installReview(w http.ResponseWriter, r *http.Request) {
	// A malformed body leaves its fields empty: the App's owner, no state.
	_ = r.ParseForm()
	e.mu.Lock()
	app, target := e.installTarget(w, r)
	if app == nil {
		e.mu.Unlock()
		return
	}
	var repos []pageRepo
	for _, repo := range e.reposByOwner[target] {
		repos = append(repos, pageRepo{ID: repo.ID, FullName: repo.FullName()})
	}
	installed := false
	for _, i := range e.installations {
		installed = installed || (i.App == app && i.Account == target)
	}
	name, login, perms, slug := app.Name, target.Login, permissionWords(app.Permissions), app.Slug
	e.mu.Unlock()
	sort.Slice(repos, func(i, j int) bool { return strings.ToLower(repos[i].FullName) < strings.ToLower(repos[j].FullName) })
	base := "/apps/" + url.PathEscape(slug) + "/installations/new"
	renderApproval(w, http.StatusOK, "install", map[string]any{
		"Title": "Install " + name, "AppName": name, "Account": login, "Installed": installed,
		"Permissions": perms, "Repos": repos,
		"ConfirmAction": base + "/confirm", "CancelAction": base + "/cancel",
		"Hidden": hiddenFields("target", login, "state", r.Form.Get("state")),
	})
}

// confirmInstall is the install page's Install: repository_selection
// "all" (or none) installs on every repository of the target, "selected"
// on the repository_ids checked, which must be the target's.
func (e *Emulator) confirmInstall(w http.ResponseWriter, r *http.Request) {
	// A malformed body leaves its fields empty, which the checks below
	// refuse as missing.
	_ = r.ParseForm()
	var repos []string
	switch r.Form.Get("repository_selection") {
	case "", "all":
	case "selected":
		e.mu.Lock()
		app, target := e.installTarget(w, r)
		if app == nil {
			e.mu.Unlock()
			return
		}
		names, msg := e.selectedRepos(target, r.Form["repository_ids"])
		e.mu.Unlock()
		if msg != "" {
			http.Error(w, msg, http.StatusUnprocessableEntity)
			return
		}
		repos = names
	default:
		http.Error(w, "repository_selection must be all or selected", http.StatusUnprocessableEntity)
		return
	}
	e.finishInstall(w, r, repos)
}

// selectedRepos checks the repository ids an admin selected for target
// and returns their names, or why they cannot be installed on. Callers
// hold e.mu.
func (e *Emulator) selectedRepos(target *Account, ids []string) (names []string, msg string) {
	seen := map[int64]bool{}
	for _, v := range ids {
		if v == "" {
			continue
		}
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, "repository_ids: " + strconv.Quote(v) + " is not a repository id"
		}
		repo := e.reposByID[id]
		switch {
		case repo == nil:
			return nil, "repository_ids: no repository has id " + v
		case repo.Owner != target:
			return nil, "repository_ids: " + repo.FullName() + " does not belong to " + target.Login
		case !seen[id]:
			seen[id] = true
			names = append(names, repo.Name)
		}
	}
	if len(names) == 0 {
		return nil, "Select at least one repository"
	}
	return names, ""
}

// cancelInstall is the install page's Cancel: back to the App's setup URL
// with error=access_denied and the state, or a page saying nothing was
// installed when the App has no setup URL.
func (e *Emulator) cancelInstall(w http.ResponseWriter, r *http.Request) {
	// A malformed body leaves its fields empty: the App's owner, no state.
	_ = r.ParseForm()
	e.mu.Lock()
	app, target := e.installTarget(w, r)
	if app == nil {
		e.mu.Unlock()
		return
	}
	name, login, setup := app.Name, target.Login, app.SetupURL
	e.mu.Unlock()
	if setup == "" {
		renderApproval(w, http.StatusOK, "message", map[string]any{
			"Title": "Installation cancelled", "Message": name + " was not installed on " + login + ".",
		})
		return
	}
	q := url.Values{"error": {"access_denied"}, "error_description": {installCancelled}}
	if s := r.Form.Get("state"); s != "" {
		q.Set("state", s)
	}
	http.Redirect(w, r, withQuery(setup, q), http.StatusFound)
}
