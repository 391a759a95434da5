package ghemu

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Unified contributions: GitHub.com's side of GitHub Connect's private
// interface, through which a server sends its users' contribution counts
// to their GitHub.com profiles. GitHub does not publish it, so these
// routes are an emulation of ours, kept out of the OpenAPI-checked API
// (e.private, not e.api): the contract never sees them and does not
// report them. They share the API's counters, faults, rate limits and
// installation-token authentication.

// MaxContributionsPerRequest bounds a POST /connect/contributions batch.
const MaxContributionsPerRequest = 1000

// contribKey is one App's counts for one person on one day.
type contribKey struct {
	app, user int64
	date      string
}

// private registers a route of GitHub Connect's private interface: like
// api (counted, rate limited, fault-injected, authenticated) but never
// checked against GitHub's OpenAPI description, which does not have it.
func (e *Emulator) private(pattern string, kind int, h handler) {
	e.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		e.handleAPI(w, r, pattern, kind, h)
	})
}

func (e *Emulator) contributionRoutes() {
	e.private("POST /connect/contributions", authToken, e.postContributions)
	e.private("DELETE /connect/contributions/{user_id}", authToken, e.deleteContributions)
	e.mux.HandleFunc("GET /_emu/users/{login}/contributions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Contributions(r.PathValue("login")))
	})
}

type contribution struct {
	UserID int64  `json:"user_id"`
	Date   string `json:"date"`
	Count  int64  `json:"count"`
}

// postContributions sets counts: each entry replaces the App's count of
// that person and day (0 removes it), so a batch sent twice changes
// nothing. Entries for ids that are not people on GitHub.com are left out
// and listed in unknown_user_ids; the rest are applied.
func (e *Emulator) postContributions(w http.ResponseWriter, r *http.Request, id identity) {
	var body struct {
		Contributions []contribution `json:"contributions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", "")
		return
	}
	if n := len(body.Contributions); n == 0 || n > MaxContributionsPerRequest {
		writeError(w, http.StatusUnprocessableEntity, "contributions must hold 1 to "+strconv.Itoa(MaxContributionsPerRequest)+" entries", "")
		return
	}
	for _, c := range body.Contributions {
		if _, err := time.Parse(time.DateOnly, c.Date); err != nil || c.Count < 0 {
			writeError(w, http.StatusUnprocessableEntity, "each contribution needs a date (YYYY-MM-DD) and a count of at least 0", "")
			return
		}
	}
	app := id.installation.App
	e.mu.Lock()
	unknown := []int64{}
	applied := 0
	for _, c := range body.Contributions {
		if a := e.accountByID(c.UserID); a == nil || a.Type != "User" {
			unknown = append(unknown, c.UserID)
			continue
		}
		k := contribKey{app: app.ID, user: c.UserID, date: c.Date}
		if c.Count == 0 {
			delete(e.contributions, k)
		} else {
			e.contributions[k] = c.Count
		}
		applied++
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"applied": applied, "unknown_user_ids": unknown})
}

// deleteContributions removes every count the App sent for a person.
func (e *Emulator) deleteContributions(w http.ResponseWriter, r *http.Request, id identity) {
	user, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	app := id.installation.App
	e.mu.Lock()
	for k := range e.contributions {
		if k.app == app.ID && k.user == user {
			delete(e.contributions, k)
		}
	}
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Contributions is a person's profile as GitHub.com shows it: the counts
// every server sent, by day (YYYY-MM-DD), summed.
func (e *Emulator) Contributions(login string) map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int64{}
	a := e.account(login)
	if a == nil {
		return out
	}
	for k, n := range e.contributions {
		if k.user == a.ID {
			out[k.date] += n
		}
	}
	return out
}

// ContributionDays lists the days of a person's profile with a count,
// sorted: for messages.
func (e *Emulator) ContributionDays(login string) []string {
	var out []string
	for d, n := range e.Contributions(login) {
		out = append(out, d+"="+strconv.FormatInt(n, 10))
	}
	sort.Strings(out)
	return out
}

// accountByID finds an account by id; callers hold e.mu.
func (e *Emulator) accountByID(id int64) *Account {
	// An account a state file replaced (same login, another id) is gone.
	if a := e.accountsByID[id]; a != nil && e.accounts[strings.ToLower(a.Login)] == a {
		return a
	}
	return nil
}
