package ghemu

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// The API a user access token (ghu_…) uses, and the /applications routes an
// App calls with its client id and secret.

func (e *Emulator) userRoutes() {
	e.api("GET /user", authUser, e.getUser)
	e.api("GET /user/installations", authUser, e.userInstallations)
	e.api("GET /user/installations/{installation_id}/repositories", authUser, e.userInstallationRepos)
	e.api("DELETE /applications/{client_id}/grant", authNone, e.deleteUserTokens(true))
	e.api("DELETE /applications/{client_id}/token", authNone, e.deleteUserTokens(false))
	e.api("POST /applications/{client_id}/token/scoped", authNone, e.scopeUserToken)
}

func (t *userToken) live(now time.Time) bool { return !t.revoked && now.Before(t.expires) }

// reaches reports whether a user token can read a private repository: the
// person can, an installation of the App covers it, and the token's scope
// allows it. Callers hold e.mu.
func (e *Emulator) reaches(t *userToken, r *Repo) bool {
	if r == nil || !e.canAccess(t.user, r) {
		return false
	}
	for _, inst := range e.installations {
		if inst.App == t.app && e.covers(inst, r) && t.scope.allows(inst, r) {
			return true
		}
	}
	return false
}

func (s *tokenScope) allows(inst *Installation, r *Repo) bool {
	return s == nil || (inst.Account == s.target && (s.repoIDs == nil || s.repoIDs[r.ID]))
}

// userInstallationList is the App's installations the person reaches: on
// their own account or on an organization they are a member of, within the
// token's scope. Callers hold e.mu.
func (e *Emulator) userInstallationList(t *userToken) []*Installation {
	var out []*Installation
	for _, i := range e.installations {
		if i.App != t.app || (i.Account != t.user && !e.members[i.Account][t.user]) {
			continue
		}
		if t.scope != nil && i.Account != t.scope.target {
			continue
		}
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

func (e *Emulator) getUser(w http.ResponseWriter, _ *http.Request, id identity) {
	e.mu.Lock()
	body := privateUserJSON(id.user.user)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (e *Emulator) userInstallations(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	list := e.userInstallationList(id.user)
	from, to := paginate(w, r, len(list))
	out := make([]any, 0, to-from)
	for _, i := range list[from:to] {
		out = append(out, installationJSON(i))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "installations": out})
}

func (e *Emulator) userInstallationRepos(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	var inst *Installation
	n, _ := strconv.ParseInt(r.PathValue("installation_id"), 10, 64)
	for _, i := range e.userInstallationList(id.user) {
		if i.ID == n {
			inst = i
		}
	}
	if inst == nil {
		e.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/installations#list-repositories-accessible-to-the-user-access-token")
		return
	}
	var repos []*Repo
	for _, repo := range e.accessible(inst) {
		if e.canAccess(id.user.user, repo) && id.user.scope.allows(inst, repo) {
			repos = append(repos, repo)
		}
	}
	from, to := paginate(w, r, len(repos))
	out := make([]any, 0, to-from)
	for _, repo := range repos[from:to] {
		out = append(out, repoJSON(repo))
	}
	sel := inst.Selection
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(repos), "repository_selection": sel, "repositories": out})
}

// clientToken serves the /applications routes: it authenticates the App
// by HTTP basic auth with its client id and secret (the path's client id),
// decodes the JSON body into into, and finds the body's access_token, a
// live token of the App's. On failure it has answered (404 for wrong
// credentials or token, as GitHub does) and returns nil. It takes e.mu;
// on success the caller releases it.
func (e *Emulator) clientToken(w http.ResponseWriter, r *http.Request, into any) (*App, *userToken) {
	body, _ := readAll(r)
	e.mu.Lock()
	app, t := e.clientTokenLocked(w, r, body, into)
	if t == nil {
		e.mu.Unlock()
	}
	return app, t
}

func (e *Emulator) clientTokenLocked(w http.ResponseWriter, r *http.Request, body []byte, into any) (*App, *userToken) {
	user, pass, ok := r.BasicAuth()
	app := e.appByClientID(r.PathValue("client_id"))
	if !ok || app == nil || user != app.ClientID || subtle.ConstantTimeCompare([]byte(pass), []byte(app.ClientSecret)) != 1 {
		writeError(w, http.StatusNotFound, "Not Found", docsURL)
		return nil, nil
	}
	if err := json.Unmarshal(body, into); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", docsURL)
		return nil, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	// body parsed as JSON above; another shape leaves the token empty,
	// which no token has: Not Found.
	_ = json.Unmarshal(body, &tok)
	t := e.userTokens[tok.AccessToken]
	if t == nil || t.app != app || !t.live(e.nowLocked()) {
		writeError(w, http.StatusNotFound, "Not Found", docsURL)
		return nil, nil
	}
	return app, t
}

// deleteUserTokens is DELETE /applications/{client_id}/token, which revokes
// the body's token, and with grant DELETE …/grant, the App revoking the
// person's authorization: every token and refresh token of the person for
// the App stops working.
func (e *Emulator) deleteUserTokens(grant bool) handler {
	return func(w http.ResponseWriter, r *http.Request, _ identity) {
		app, t := e.clientToken(w, r, &struct{}{})
		if t == nil {
			return
		}
		defer e.mu.Unlock()
		if grant {
			e.revokeGrant(app, t.user)
		} else {
			t.revoked = true
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// revokeGrant forgets a person's authorization of an App and spends all
// their tokens for it. Callers hold e.mu.
func (e *Emulator) revokeGrant(app *App, user *Account) {
	delete(e.grants, grantKey{app.ID, user.ID})
	for _, t := range e.userTokens {
		if t.app == app && t.user == user {
			t.revoked = true
		}
	}
	for _, rt := range e.refreshTokens {
		if rt.app == app && rt.user == user {
			rt.spent = true
		}
	}
}

type scopeRequest struct {
	Target        string            `json:"target"`
	TargetID      int64             `json:"target_id"`
	Repositories  []string          `json:"repositories"`
	RepositoryIDs []int64           `json:"repository_ids"`
	Permissions   map[string]string `json:"permissions"`
}

// scopeUserToken mints a token limited to one installation's account,
// maybe some of its repositories and lower permissions.
func (e *Emulator) scopeUserToken(w http.ResponseWriter, r *http.Request, _ identity) {
	var req scopeRequest
	app, t := e.clientToken(w, r, &req)
	if t == nil {
		return
	}
	defer e.mu.Unlock()
	invalid := func(msg string) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest/apps/apps#create-a-scoped-access-token"})
	}
	target := e.account(req.Target)
	if req.Target == "" {
		target = nil
		for _, a := range e.accounts {
			if a.ID == req.TargetID && req.TargetID != 0 {
				target = a
			}
		}
	}
	var inst *Installation
	if target != nil {
		for _, i := range e.installations {
			if i.App == app && i.Account == target {
				inst = i
			}
		}
	}
	switch {
	case req.Target == "" && req.TargetID == 0:
		invalid("Either target or target_id is required.")
		return
	case len(req.Repositories) > 0 && len(req.RepositoryIDs) > 0:
		invalid("Only one of repositories or repository_ids may be given.")
		return
	case inst == nil || (t.scope != nil && t.scope.target != target):
		invalid("The target is not an installation of this App the token can reach.")
		return
	}
	scope := &tokenScope{target: target, permissions: inst.Permissions}
	if len(req.Permissions) > 0 {
		if exceeds(req.Permissions, inst.Permissions) {
			invalid("The permissions requested are not granted to this installation.")
			return
		}
		scope.permissions = req.Permissions
	}
	var repos []*Repo
	for _, name := range req.Repositories {
		repos = append(repos, e.repo(target.Login, name))
	}
	for _, rid := range req.RepositoryIDs {
		repos = append(repos, e.reposByID[rid])
	}
	if len(repos) > 0 {
		scope.repoIDs = map[int64]bool{}
		for _, repo := range repos {
			if repo == nil || !e.covers(inst, repo) || !t.scope.allows(inst, repo) {
				invalid("There is at least one repository that does not exist or is not accessible to the parent installation.")
				return
			}
			scope.repoIDs[repo.ID] = true
		}
	}
	now := e.nowLocked()
	st := &userToken{value: randomToken("ghu_", 36), app: app, user: t.user, created: now, expires: t.expires, scope: scope}
	e.userTokens[st.value] = st
	sel := "all"
	if scope.repoIDs != nil || inst.Selection == "selected" {
		sel = "selected"
	}
	sum := sha256.Sum256([]byte(st.value))
	writeJSON(w, http.StatusOK, map[string]any{
		"id": e.nextID(), "url": apiBase + "/authorizations/" + strconv.FormatInt(e.lastID, 10), "scopes": []string{},
		"token": st.value, "token_last_eight": st.value[len(st.value)-8:], "hashed_token": hex.EncodeToString(sum[:]),
		"app":  map[string]any{"client_id": app.ClientID, "name": app.Name, "url": htmlBase + "/apps/" + app.Slug},
		"note": nil, "note_url": nil, "fingerprint": nil,
		"created_at": ts(now), "updated_at": ts(now), "expires_at": ts(st.expires),
		"user": userJSON(t.user),
		"installation": map[string]any{
			"permissions": scope.permissions, "repository_selection": sel, "single_file_name": nil,
			"repositories_url": apiBase + "/user/installations/" + strconv.FormatInt(inst.ID, 10) + "/repositories",
			"account":          userJSON(target),
		},
	})
}

// ExpireUserTokens makes a person's current user access tokens expire now
// (their refresh tokens still work).
func (e *Emulator) ExpireUserTokens(login string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	user, now := e.account(login), e.nowLocked()
	for _, t := range e.userTokens {
		if t.user == user && t.live(now) {
			t.expires = now
		}
	}
}

// RevokeGrant is the person revoking the App's authorization on
// GitHub.com: their access and refresh tokens for it stop working.
func (e *Emulator) RevokeGrant(clientID, login string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if app, user := e.appByClientID(clientID), e.account(login); app != nil && user != nil {
		e.revokeGrant(app, user)
	}
}

// Authorized reports whether a person has authorized the App (and not
// revoked it).
func (e *Emulator) Authorized(clientID, login string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	app, user := e.appByClientID(clientID), e.account(login)
	if app == nil || user == nil {
		return false
	}
	_, ok := e.grants[grantKey{app.ID, user.ID}]
	return ok
}

// UserTokenRevoked reports whether a user access token was revoked (or
// never existed); an expired one is not revoked.
func (e *Emulator) UserTokenRevoked(value string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.userTokens[value]
	return t == nil || t.revoked
}

// LiveUserTokens counts a person's unrevoked, unexpired user access tokens,
// for every App.
func (e *Emulator) LiveUserTokens(login string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	user := e.account(login)
	now := e.nowLocked()
	n := 0
	for _, t := range e.userTokens {
		if t.user == user && t.live(now) {
			n++
		}
	}
	return n
}
