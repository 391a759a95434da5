package ghemu

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// What a GHES server asks GitHub.com about an action it is to run from
// GitHub.com (owner/repo@ref): the repository (does it exist, is it
// private), its commit for the ref, and the tarball of that commit, which
// GitHub serves from its codeload host (codeload.go).

// codeloadTokenLifetime is how long the token of a private tarball's
// download URL lives.
const codeloadTokenLifetime = 5 * time.Minute

// codeloadToken lets one download URL fetch one private commit's tarball.
type codeloadToken struct {
	repoID  int64
	sha     string
	expires time.Time
}

func (e *Emulator) repoRoutes() {
	e.api("GET /repos/{owner}/{repo}", authOptionalToken, e.getRepo)
	e.apiMultiSegment("GET /repos/{owner}/{repo}/commits/{ref}", "ref", authOptionalToken, e.getCommit)
	e.apiMultiSegment("GET /repos/{owner}/{repo}/tarball/{ref}", "ref", authOptionalToken, e.getTarball)
	e.private(codeloadRoute, authNone, e.codeload)
}

// readable reports whether a request's identity may read a repository:
// anyone a public one; a private one an installation token that reaches it
// or a user token whose person can read it through an installation of the
// App (as search decides). Callers hold e.mu.
func (e *Emulator) readable(id identity, r *Repo) bool {
	switch {
	case r == nil:
		return false
	case !r.Private:
		return true
	case id.token != nil:
		t := id.token
		return e.covers(t.installation, r) && (t.repoIDs == nil || slices.Contains(t.repoIDs, r.ID))
	case id.user != nil:
		return e.reaches(id.user, r)
	}
	return false
}

// readableRepo is the repository the path names if the identity may read
// it; otherwise nil, and it answers 404 as GitHub does for a repository
// that does not exist. Callers hold e.mu.
func (e *Emulator) readableRepo(w http.ResponseWriter, r *http.Request, id identity, doc string) *Repo {
	repo := e.repo(r.PathValue("owner"), r.PathValue("repo"))
	if !e.readable(id, repo) {
		writeError(w, http.StatusNotFound, "Not Found", doc)
		return nil
	}
	return repo
}

func (e *Emulator) getRepo(w http.ResponseWriter, r *http.Request, id identity) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if repo := e.readableRepo(w, r, id, "https://docs.github.com/rest/repos/repos#get-a-repository"); repo != nil {
		writeJSON(w, http.StatusOK, fullRepoJSON(repo))
	}
}

// getCommit answers a commit for a ref (branch, tag, SHA or SHA prefix):
// 422 "No commit found for SHA: …" for a ref that names none, as GitHub
// does. With Accept: application/vnd.github.sha (go-github's
// GetCommitSHA1) the answer is the SHA alone, with its ETag, and 304 for
// an If-None-Match of it.
func (e *Emulator) getCommit(w http.ResponseWriter, r *http.Request, id identity) {
	const doc = "https://docs.github.com/rest/commits/commits#get-a-commit"
	e.mu.Lock()
	repo := e.readableRepo(w, r, id, doc)
	if repo == nil {
		e.mu.Unlock()
		return
	}
	ref := r.PathValue("ref")
	c := resolve(repo, ref)
	var body map[string]any
	if c != nil {
		body = commitJSON(repo, c)
	}
	e.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref, doc)
		return
	}
	if accept := r.Header.Get("Accept"); strings.Contains(accept, "application/vnd.github.sha") || strings.Contains(accept, "application/vnd.github.v3.sha") {
		etag := `"` + c.SHA + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.github.sha; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(c.SHA))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// getTarball redirects to the tarball of the commit a ref names on the
// emulated codeload host; a private repository's URL carries a token for
// that commit, good for codeloadTokenLifetime. 404 for a ref that names no
// commit.
func (e *Emulator) getTarball(w http.ResponseWriter, r *http.Request, id identity) {
	const doc = "https://docs.github.com/rest/repos/contents#download-a-repository-archive-tar"
	e.mu.Lock()
	defer e.mu.Unlock()
	repo := e.readableRepo(w, r, id, doc)
	if repo == nil {
		return
	}
	c := resolve(repo, r.PathValue("ref"))
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found", doc)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	loc := scheme + "://" + r.Host + "/_codeload/" + url.PathEscape(repo.Owner.Login) + "/" + url.PathEscape(repo.Name) + "/legacy.tar.gz/" + c.SHA
	if repo.Private {
		now := e.nowLocked()
		for k, t := range e.codeloadTokens {
			if !now.Before(t.expires) {
				delete(e.codeloadTokens, k)
			}
		}
		tok := randomToken("", 40)
		e.codeloadTokens[tok] = codeloadToken{repoID: repo.ID, sha: c.SHA, expires: now.Add(codeloadTokenLifetime)}
		loc += "?token=" + tok
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}

// fullRepoJSON is a full-repository, as GET /repos/{owner}/{repo} answers.
func fullRepoJSON(r *Repo) map[string]any {
	m := repoJSON(r)
	var org any
	if r.Owner.Type == "Organization" {
		org = userJSON(r.Owner)
	}
	for k, v := range map[string]any{
		"has_discussions": false, "network_count": 0, "subscribers_count": 0, "organization": org,
		"topics": []string{}, "is_template": false, "allow_forking": true, "web_commit_signoff_required": false,
	} {
		m[k] = v
	}
	return m
}

// commitJSON is a commit as GET /repos/{owner}/{repo}/commits/{ref}
// answers it. Its author and committer are no GitHub user (null), as for
// an email GitHub does not know.
func commitJSON(r *Repo, c *Commit) map[string]any {
	u, h := apiBase+"/repos/"+r.FullName(), htmlBase+"/"+r.FullName()
	who := map[string]any{"name": "ghemu", "email": "ghemu@users.noreply.github.com", "date": ts(c.Time)}
	parents := []any{}
	for _, p := range c.Parents {
		parents = append(parents, map[string]any{"sha": p, "url": u + "/commits/" + p, "html_url": h + "/commit/" + p})
	}
	tree := treeSHA(c)
	return map[string]any{
		"sha": c.SHA, "node_id": "C_" + c.SHA, "url": u + "/commits/" + c.SHA, "html_url": h + "/commit/" + c.SHA,
		"comments_url": u + "/commits/" + c.SHA + "/comments",
		"commit": map[string]any{
			"url": u + "/git/commits/" + c.SHA, "author": who, "committer": who, "message": c.Message,
			"tree": map[string]any{"sha": tree, "url": u + "/git/trees/" + tree}, "comment_count": 0,
			"verification": map[string]any{"verified": false, "reason": "unsigned", "payload": nil, "signature": nil, "verified_at": nil},
		},
		"author": nil, "committer": nil, "parents": parents,
	}
}
