package ghemu

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// tokenLifetime is how long GitHub's installation tokens live.
const tokenLifetime = time.Hour

var permissionLevel = map[string]int{"read": 1, "write": 2, "admin": 3}

// exceeds reports whether any requested permission is above what is
// granted.
func exceeds(requested, granted map[string]string) bool {
	for k, v := range requested {
		if permissionLevel[granted[k]] < permissionLevel[v] {
			return true
		}
	}
	return false
}

type tokenRequest struct {
	Repositories  []string          `json:"repositories"`
	RepositoryIDs []int64           `json:"repository_ids"`
	Permissions   map[string]string `json:"permissions"`
}

// createToken mints an installation token, downscoped to the request, and
// refuses what the installation cannot grant the way GitHub does (422).
func (e *Emulator) createToken(w http.ResponseWriter, r *http.Request, id identity) {
	var req tokenRequest
	if body, _ := readAll(r); len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "Problems parsing JSON", docsURL)
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	inst := e.appInstallation(r, id.app)
	if inst == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
		return
	}
	perms := inst.Permissions
	if len(req.Permissions) > 0 {
		if exceeds(req.Permissions, inst.Permissions) {
			writeError(w, http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.", "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
			return
		}
		perms = req.Permissions
	}
	var chosen []*Repo
	seen := map[int64]bool{}
	add := func(repo *Repo) bool {
		if !e.covers(inst, repo) {
			return false
		}
		if !seen[repo.ID] {
			seen[repo.ID] = true
			chosen = append(chosen, repo)
		}
		return true
	}
	ok := true
	for _, name := range req.Repositories {
		ok = ok && add(e.repo(inst.Account.Login, name))
	}
	for _, rid := range req.RepositoryIDs {
		ok = ok && add(e.reposByID[rid])
	}
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.", "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
		return
	}
	now := e.nowLocked()
	t := &token{value: newTokenValue(), installation: inst, permissions: perms, selection: inst.Selection, created: now, expires: now.Add(tokenLifetime)}
	if len(chosen) > 0 {
		t.selection = "selected"
		for _, repo := range chosen {
			t.repoIDs = append(t.repoIDs, repo.ID)
		}
	} else if inst.Selection == "selected" {
		chosen = e.accessible(inst)
	}
	e.tokens[t.value] = t
	body := map[string]any{
		"token": t.value, "expires_at": ts(t.expires), "permissions": perms, "repository_selection": t.selection,
	}
	if len(chosen) > 0 {
		repos := make([]any, 0, len(chosen))
		for _, repo := range chosen {
			repos = append(repos, repoJSON(repo))
		}
		body["repositories"] = repos
	}
	writeJSON(w, http.StatusCreated, body)
}

func (e *Emulator) revokeToken(w http.ResponseWriter, _ *http.Request, id identity) {
	e.mu.Lock()
	id.token.revoked = true
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// tokenRepos lists what a token reaches. Callers hold e.mu.
func (e *Emulator) tokenRepos(t *token) []*Repo {
	if t.repoIDs == nil {
		return e.accessible(t.installation)
	}
	var out []*Repo
	for _, id := range t.repoIDs {
		if r := e.reposByID[id]; e.covers(t.installation, r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (e *Emulator) installationRepos(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	repos := e.tokenRepos(id.token)
	from, to := paginate(w, r, len(repos))
	out := make([]any, 0, to-from)
	for _, repo := range repos[from:to] {
		out = append(out, repoJSON(repo))
	}
	sel := id.token.selection
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(repos), "repository_selection": sel, "repositories": out})
}

// TokenRevoked reports whether a token was revoked (or never existed).
func (e *Emulator) TokenRevoked(value string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tokens[value]
	return t == nil || t.revoked
}

// LiveTokens counts the unrevoked, unexpired tokens of an installation.
func (e *Emulator) LiveTokens(installationID int64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.nowLocked()
	n := 0
	for _, t := range e.tokens {
		if t.installation.ID == installationID && !t.revoked && now.Before(t.expires) {
			n++
		}
	}
	return n
}
