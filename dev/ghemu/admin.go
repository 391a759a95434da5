package ghemu

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// adminRoutes are the emulator's own controls under /_emu/, for processes
// that run it as a binary: seeding, counters, faults.
func (e *Emulator) adminRoutes() {
	e.mux.HandleFunc("POST /_emu/seed", func(w http.ResponseWriter, r *http.Request) {
		var s SeedData
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := e.Seed(s); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("PUT /_emu/auto-approve", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			AutoApprove *bool `json:"auto_approve"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.AutoApprove == nil {
			writeError(w, http.StatusUnprocessableEntity, `want {"auto_approve": true|false}`, "")
			return
		}
		e.SetAutoApprove(*body.AutoApprove)
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/counts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Counts())
	})
	e.mux.HandleFunc("POST /_emu/counts/reset", func(w http.ResponseWriter, _ *http.Request) {
		e.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("PUT /_emu/faults", func(w http.ResponseWriter, r *http.Request) {
		var f struct {
			LatencyMS        int64 `json:"latency_ms"`
			ServerErrors     int   `json:"server_errors"`
			SecondaryLimit   int   `json:"secondary_limit"`
			RetryAfterS      int64 `json:"retry_after_s"`
			ClockOffsetS     int64 `json:"clock_offset_s"`
			ReplicationLagMS int64 `json:"replication_lag_ms"`
		}
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.SetFaults(Faults{
			Latency: time.Duration(f.LatencyMS) * time.Millisecond, ServerErrors: f.ServerErrors, SecondaryLimit: f.SecondaryLimit,
			RetryAfter: time.Duration(f.RetryAfterS) * time.Second, ClockOffset: time.Duration(f.ClockOffsetS) * time.Second,
			ReplicationLag: time.Duration(f.ReplicationLagMS) * time.Millisecond,
		})
		w.WriteHeader(http.StatusNoContent)
	})
	// An App's public keys: what its owner does on GitHub.com's App page
	// when rotating the private key.
	e.mux.HandleFunc("POST /_emu/apps/{app_id}/keys", func(w http.ResponseWriter, r *http.Request) {
		id, key, ok := appKeyRequest(w, r)
		if !ok {
			return
		}
		if _, err := e.AddAppKey(id, key); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("DELETE /_emu/apps/{app_id}/keys", func(w http.ResponseWriter, r *http.Request) {
		id, key, ok := appKeyRequest(w, r)
		if !ok {
			return
		}
		e.RemoveAppKey(id, key)
		w.WriteHeader(http.StatusNoContent)
	})
	// The App's owner deletes the App in its settings on GitHub.com.
	e.mux.HandleFunc("DELETE /_emu/apps/{app_id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("app_id"), 10, 64)
		if err != nil {
			http.Error(w, "bad app id", http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		found := e.apps[id] != nil
		e.deleteAppLocked(id)
		e.mu.Unlock()
		if !found {
			http.Error(w, "no such App", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// PUT keeps only the given key: the owner deleted every older one.
	e.mux.HandleFunc("PUT /_emu/apps/{app_id}/keys", func(w http.ResponseWriter, r *http.Request) {
		id, key, ok := appKeyRequest(w, r)
		if !ok {
			return
		}
		e.mu.Lock()
		app := e.apps[id]
		if app != nil {
			app.keys = map[string]*rsa.PublicKey{keyID(key): key}
		}
		e.mu.Unlock()
		if app == nil {
			http.Error(w, "no such App", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// Whether an installation exists (what its account's settings page
	// shows), for tests that check it was removed.
	e.mux.HandleFunc("GET /_emu/installations/{installation_id}", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if i := e.installationOf(w, r); i != nil {
			writeJSON(w, http.StatusOK, installationJSON(i))
		}
	})
	// The App's owner changed its permissions and the account accepted
	// them on the installation: both now grant the given permissions.
	e.mux.HandleFunc("PUT /_emu/installations/{installation_id}/permissions", func(w http.ResponseWriter, r *http.Request) {
		var perms map[string]string
		if json.NewDecoder(r.Body).Decode(&perms) != nil {
			http.Error(w, "want a JSON object of permissions", http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		i := e.installationOf(w, r)
		if i == nil {
			return
		}
		e.setPermissions(i, perms)
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/tokens/{installation_id}", func(w http.ResponseWriter, r *http.Request) {
		var id int64
		// An id that is no number stays 0: no installation has it, so it
		// has no live tokens, which is the answer.
		_ = json.Unmarshal([]byte(r.PathValue("installation_id")), &id)
		writeJSON(w, http.StatusOK, map[string]int{"live": e.LiveTokens(id)})
	})
	e.peopleAdminRoutes()
	e.advisoryAdminRoutes()
	e.repoAdminRoutes()
}

// repoAdminRoutes are what repositories' owners do on GitHub.com: create
// and delete repositories, push commits, move branches and tags; and
// GitHub verifying an organization. Errors are JSON {"message": …}: 404
// for a missing repository or organization, 422 for an invalid change,
// 400 for a body that is not JSON.
func (e *Emulator) repoAdminRoutes() {
	// POST creates the repository ({"private": bool, "files": {…}}; 201),
	// or sets an existing one's visibility (200).
	e.mux.HandleFunc("POST /_emu/repos/{owner}/{repo}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Private bool              `json:"private"`
			Files   map[string]string `json:"files"`
		}
		if !decodeAdmin(w, r, &body) {
			return
		}
		owner, name := r.PathValue("owner"), r.PathValue("repo")
		status := http.StatusOK
		if e.SetPrivate(owner, name, body.Private) != nil {
			e.AddRepo(RepoSpec{Owner: owner, Name: name, Private: body.Private, Files: body.Files})
			status = http.StatusCreated
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		repo := e.repo(owner, name)
		if repo == nil { // deleted meanwhile
			adminError(w, noRepo(owner, name))
			return
		}
		writeJSON(w, status, map[string]any{
			"id": repo.ID, "full_name": repo.FullName(), "private": repo.Private,
			"default_branch": repo.DefaultBranch, "sha": repo.Branches[repo.DefaultBranch],
		})
	})
	e.mux.HandleFunc("DELETE /_emu/repos/{owner}/{repo}", func(w http.ResponseWriter, r *http.Request) {
		if !e.DeleteRepo(r.PathValue("owner"), r.PathValue("repo")) {
			adminError(w, noRepo(r.PathValue("owner"), r.PathValue("repo")))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// The body is a CommitSpec: {"ref", "message", "files", "payload_bytes"}.
	e.mux.HandleFunc("POST /_emu/repos/{owner}/{repo}/commits", func(w http.ResponseWriter, r *http.Request) {
		var spec CommitSpec
		if !decodeAdmin(w, r, &spec) {
			return
		}
		sha, err := e.PushCommit(r.PathValue("owner"), r.PathValue("repo"), spec)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"sha": sha})
	})
	e.mux.HandleFunc("PUT /_emu/repos/{owner}/{repo}/refs/{ref...}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			SHA string `json:"sha"`
		}
		if !decodeAdmin(w, r, &body) {
			return
		}
		if err := e.SetRef(r.PathValue("owner"), r.PathValue("repo"), r.PathValue("ref"), body.SHA); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("PUT /_emu/orgs/{org}/verified", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Verified bool `json:"verified"`
		}
		if !decodeAdmin(w, r, &body) {
			return
		}
		if err := e.SetVerified(r.PathValue("org"), body.Verified); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// decodeAdmin reads a control's JSON body into v (an empty body leaves v
// as it is); false after answering 400.
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	if err := json.Unmarshal(raw, v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON: " + err.Error()})
		return false
	}
	return true
}

// adminError answers a Go API error: 404 for what does not exist, 422 for
// the rest.
func adminError(w http.ResponseWriter, err error) {
	status := http.StatusUnprocessableEntity
	if errors.Is(err, errNotFound) {
		status = http.StatusNotFound
	}
	writeJSON(w, status, map[string]string{"message": err.Error()})
}

// advisoryAdminRoutes are GitHub's curators at work on the advisory
// database: AddAdvisory, UpdateAdvisory and WithdrawAdvisory over HTTP.
// Each answers the advisory as stored, in the seed's JSON.
func (e *Emulator) advisoryAdminRoutes() {
	e.mux.HandleFunc("POST /_emu/advisories", func(w http.ResponseWriter, r *http.Request) {
		var spec Advisory
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a, err := e.AddAdvisory(spec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		writeJSON(w, http.StatusCreated, a)
	})
	// PATCH sets the fields the body names and leaves the others;
	// updated_at becomes now.
	e.mux.HandleFunc("PATCH /_emu/advisories/{ghsa_id}", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		// Decoded once onto a scratch advisory, so a malformed body is
		// refused before anything changes.
		if err := json.Unmarshal(raw, &Advisory{}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.adminAdvisoryChange(w, r, func(id string) (Advisory, error) {
			return e.UpdateAdvisory(id, func(a *Advisory) { _ = json.Unmarshal(raw, a) })
		})
	})
	e.mux.HandleFunc("POST /_emu/advisories/{ghsa_id}/withdraw", func(w http.ResponseWriter, r *http.Request) {
		e.adminAdvisoryChange(w, r, e.WithdrawAdvisory)
	})
}

// adminAdvisoryChange applies change to the advisory the path names: 404
// if there is none, 422 if the change leaves it invalid.
func (e *Emulator) adminAdvisoryChange(w http.ResponseWriter, r *http.Request, change func(ghsaID string) (Advisory, error)) {
	id := r.PathValue("ghsa_id")
	if _, ok := e.GetAdvisory(id); !ok {
		http.Error(w, "no such advisory", http.StatusNotFound)
		return
	}
	a, err := change(id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// peopleAdminRoutes are the controls over people and their authorizations:
// what happens on GitHub.com's own pages, outside the API.
func (e *Emulator) peopleAdminRoutes() {
	e.mux.HandleFunc("POST /_emu/users/{login}", func(w http.ResponseWriter, r *http.Request) {
		a := e.AddUser(r.PathValue("login"))
		writeJSON(w, http.StatusOK, map[string]any{"login": a.Login, "id": a.ID, "type": a.Type})
	})
	e.mux.HandleFunc("PUT /_emu/orgs/{org}/members/{login}", func(w http.ResponseWriter, r *http.Request) {
		e.AddMember(r.PathValue("org"), r.PathValue("login"))
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("DELETE /_emu/orgs/{org}/members/{login}", func(w http.ResponseWriter, r *http.Request) {
		e.RemoveMember(r.PathValue("org"), r.PathValue("login"))
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("PUT /_emu/repos/{owner}/{repo}/collaborators/{login}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.AddCollaborator(r.PathValue("owner"), r.PathValue("repo"), r.PathValue("login")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("DELETE /_emu/repos/{owner}/{repo}/collaborators/{login}", func(w http.ResponseWriter, r *http.Request) {
		e.RemoveCollaborator(r.PathValue("owner"), r.PathValue("repo"), r.PathValue("login"))
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("POST /_emu/users/{login}/expire-tokens", func(w http.ResponseWriter, r *http.Request) {
		e.ExpireUserTokens(r.PathValue("login"))
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/users/{login}/tokens", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"live": e.LiveUserTokens(r.PathValue("login"))})
	})
	e.mux.HandleFunc("DELETE /_emu/grants/{client_id}/{login}", func(w http.ResponseWriter, r *http.Request) {
		e.RevokeGrant(r.PathValue("client_id"), r.PathValue("login"))
		w.WriteHeader(http.StatusNoContent)
	})
	e.mux.HandleFunc("GET /_emu/user-tokens/{token}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"revoked": e.UserTokenRevoked(r.PathValue("token"))})
	})
}

func appKeyRequest(w http.ResponseWriter, r *http.Request) (int64, *rsa.PublicKey, bool) {
	id, err := strconv.ParseInt(r.PathValue("app_id"), 10, 64)
	if err != nil {
		http.Error(w, "bad app id", http.StatusBadRequest)
		return 0, nil, false
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	key, err := parsePublicKey(string(raw))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, nil, false
	}
	return id, key, true
}

// installationOf is the installation the request's path names, or nil
// after answering 400 or 404; callers hold e.mu.
func (e *Emulator) installationOf(w http.ResponseWriter, r *http.Request) *Installation {
	id, err := strconv.ParseInt(r.PathValue("installation_id"), 10, 64)
	if err != nil {
		http.Error(w, "bad installation id", http.StatusBadRequest)
		return nil
	}
	i := e.installations[id]
	if i == nil {
		http.Error(w, "no such installation", http.StatusNotFound)
	}
	return i
}

// SetAutoApprove switches Options.AutoApprove on a running emulator: on,
// the App-manifest and install pages approve at once; off, they show
// GitHub.com's pages.
func (e *Emulator) SetAutoApprove(on bool) { e.autoApprove.Store(on) }
