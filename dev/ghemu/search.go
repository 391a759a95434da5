package ghemu

import (
	"crypto/sha1" //nolint:gosec // G505: for Git blob ids in search results, not for security
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// searchQuery is GitHub's q: free words plus repo:, org:, user: and is:
// qualifiers.
type searchQuery struct {
	words      []string
	repo, org  string
	visibility string
}

func parseQuery(q string) searchQuery {
	var s searchQuery
	for _, part := range splitTrim(q) {
		switch k, v, ok := strings.Cut(part, ":"); {
		case ok && k == "repo":
			s.repo = strings.ToLower(v)
		case ok && (k == "org" || k == "user"):
			s.org = strings.ToLower(v)
		case ok && k == "is" && (v == "public" || v == "private"):
			s.visibility = v
		default:
			s.words = append(s.words, strings.ToLower(part))
		}
	}
	return s
}

func (q searchQuery) matches(text string) bool {
	text = strings.ToLower(text)
	for _, w := range q.words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// searchable lists the repositories a search may look at: public ones, and
// private ones only if the token reaches them (a user token: the person can
// read it and an installation of the App covers it). Callers hold e.mu.
func (e *Emulator) searchable(id identity, q searchQuery) []*Repo {
	private := map[int64]bool{}
	if id.token != nil {
		for _, r := range e.tokenRepos(id.token) {
			private[r.ID] = true
		}
	}
	var out []*Repo
	for _, r := range e.sortedRepos() {
		switch {
		case r.Private && !private[r.ID] && (id.user == nil || !e.reaches(id.user, r)),
			q.repo != "" && strings.ToLower(r.FullName()) != q.repo,
			q.org != "" && strings.ToLower(r.Owner.Login) != q.org,
			q.visibility != "" && visibility(r) != q.visibility:
			continue
		}
		out = append(out, r)
	}
	return out
}

func (e *Emulator) searchCode(w http.ResponseWriter, r *http.Request, id identity) {
	q := parseQuery(r.URL.Query().Get("q"))
	if len(q.words) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest/search/search#search-code", "errors": []any{map[string]any{"resource": "Search", "field": "q", "code": "missing"}}})
		return
	}
	e.mu.Lock()
	var items []any
	for _, repo := range e.searchable(id, q) {
		paths := make([]string, 0, len(repo.Files))
		for p := range repo.Files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			if !q.matches(repo.Files[p]) && !q.matches(p) {
				continue
			}
			// Git's blob ids are SHA-1, as GitHub's search answers them:
			// an identifier, not a security measure.
			sum := sha1.Sum([]byte(repo.Files[p])) //nolint:gosec // G401: see above
			sha := hex.EncodeToString(sum[:])
			items = append(items, map[string]any{
				"name": p[strings.LastIndex(p, "/")+1:], "path": p, "sha": sha, "score": 1.0,
				"url":        apiBase + "/repos/" + repo.FullName() + "/contents/" + p + "?ref=" + sha,
				"git_url":    apiBase + "/repos/" + repo.FullName() + "/git/blobs/" + sha,
				"html_url":   htmlBase + "/" + repo.FullName() + "/blob/" + sha + "/" + p,
				"repository": repoURLs(repo),
			})
		}
	}
	e.mu.Unlock()
	writeSearch(w, r, items, nil)
}

func (e *Emulator) searchIssues(w http.ResponseWriter, r *http.Request, id identity) {
	q := parseQuery(r.URL.Query().Get("q"))
	e.mu.Lock()
	var items []any
	for _, repo := range e.searchable(id, q) {
		for _, is := range repo.Issues {
			if !q.matches(is.Title + " " + is.Body) {
				continue
			}
			u := apiBase + "/repos/" + repo.FullName() + "/issues/" + strconv.Itoa(is.Number)
			created := ts(repo.Created)
			items = append(items, map[string]any{
				"id": repo.ID*1000 + int64(is.Number), "node_id": nodeID("I", repo.ID*1000+int64(is.Number)),
				"number": is.Number, "title": is.Title, "body": is.Body, "state": is.State, "locked": false,
				"url": u, "html_url": htmlBase + "/" + repo.FullName() + "/issues/" + strconv.Itoa(is.Number),
				"repository_url": apiBase + "/repos/" + repo.FullName(), "labels_url": u + "/labels{/name}",
				"comments_url": u + "/comments", "events_url": u + "/events", "labels": []any{},
				"assignee": nil, "milestone": nil, "comments": 0, "closed_at": nil,
				"user": userJSON(repo.Owner), "author_association": "OWNER", "repository": repoJSON(repo),
				"created_at": created, "updated_at": created, "score": 1.0,
			})
		}
	}
	e.mu.Unlock()
	writeSearch(w, r, items, map[string]any{"search_type": "lexical"})
}

func writeSearch(w http.ResponseWriter, r *http.Request, items []any, extra map[string]any) {
	from, to := paginate(w, r, len(items))
	page := items[from:to]
	if page == nil {
		page = []any{}
	}
	body := map[string]any{"total_count": len(items), "incomplete_results": false, "items": page}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, http.StatusOK, body)
}

func (e *Emulator) getRateLimit(w http.ResponseWriter, _ *http.Request, id identity) {
	e.mu.Lock()
	limit := e.opts.RateLimit
	used := 0
	reset := e.nowLocked().Add(time.Hour).Unix()
	if key, _ := rateKey(id); key != "" {
		if win := e.usage[key]; win != nil {
			used, reset = win.used, win.reset.Unix()
		}
	}
	e.mu.Unlock()
	core := map[string]any{"limit": limit, "remaining": max(limit-used, 0), "used": used, "reset": reset}
	search := map[string]any{"limit": 30, "remaining": 30, "used": 0, "reset": reset}
	writeJSON(w, http.StatusOK, map[string]any{"resources": map[string]any{"core": core, "search": search}, "rate": core})
}

func (e *Emulator) getMeta(w http.ResponseWriter, _ *http.Request, _ identity) {
	writeJSON(w, http.StatusOK, map[string]any{
		"verifiable_password_authentication": false,
		"hooks":                              []string{"192.0.2.0/24"},
		"api":                                []string{"192.0.2.0/24"},
	})
}
