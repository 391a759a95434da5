package ghemu

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"time"
)

// Account is a user, organization or enterprise.
type Account struct {
	ID    int64
	Login string // the slug, for enterprises
	// Type is "User", "Organization" or "Enterprise".
	Type string
	Name string
	// Verified: an organization that verified its domain (GET /orgs/{org}'s
	// is_verified).
	Verified bool
	// Emails are a person's verified email addresses, the first the
	// primary (SetEmails); license sync matches servers' users by them.
	Emails []string `json:",omitempty"`
	// Seats are the licenses an enterprise purchased (SetSeats); nil:
	// DefaultSeats.
	Seats *int `json:",omitempty"`
}

// Repo is a repository with a few files and issues, enough to search, and
// its commits and refs. Every repository has a default branch with at
// least one commit.
type Repo struct {
	ID      int64
	Owner   *Account
	Name    string
	Private bool
	// Files are the default branch's files, which search sees.
	Files   map[string]string
	Issues  []Issue
	Created time.Time
	// DefaultBranch is "main".
	DefaultBranch string
	// Branches and Tags are name → commit SHA.
	Branches map[string]string
	Tags     map[string]string
	// Commits are by SHA.
	Commits map[string]*Commit
	// pushed is when a ref last moved.
	pushed time.Time
}

// FullName is "owner/name".
func (r *Repo) FullName() string { return r.Owner.Login + "/" + r.Name }

// Issue is an issue of a repository.
type Issue struct {
	Number int
	Title  string
	Body   string
	State  string
}

// App is a GitHub App.
type App struct {
	ID            int64
	Slug          string
	Name          string
	ClientID      string
	ClientSecret  string
	WebhookSecret string
	Owner         *Account
	Permissions   map[string]string
	Events        []string
	SetupURL      string
	// CallbackURLs are where user authorization may send the browser back
	// to; the first is the default.
	CallbackURLs []string
	// Public: anyone may see the App (GET /apps/{app_slug}); a private
	// one only its own account does.
	Public  bool
	Created time.Time
	// keys are the App's registered public keys by key id; a JWT must
	// verify with one of them.
	keys map[string]*rsa.PublicKey
}

// Installation is an App installed on an account.
type Installation struct {
	ID          int64
	App         *App
	Account     *Account
	Selection   string // "all" or "selected"
	RepoIDs     []int64
	Permissions map[string]string
	Created     time.Time
	// repoSet is RepoIDs as a set, for selected installations.
	repoSet map[int64]bool
}

// token is an installation access token.
type token struct {
	value        string
	installation *Installation
	permissions  map[string]string
	repoIDs      []int64 // nil: every repository of the installation
	selection    string
	created      time.Time
	expires      time.Time
	revoked      bool
}

// manifestCode is a pending App-manifest conversion.
type manifestCode struct {
	owner    *Account
	manifest appManifest
	expires  time.Time
	used     bool
}

type appManifest struct {
	Name               string            `json:"name"`
	URL                string            `json:"url"`
	Description        string            `json:"description"`
	RedirectURL        string            `json:"redirect_url"`
	SetupURL           string            `json:"setup_url"`
	CallbackURLs       []string          `json:"callback_urls"`
	Public             bool              `json:"public"`
	DefaultPermissions map[string]string `json:"default_permissions"`
	DefaultEvents      []string          `json:"default_events"`
	HookAttributes     struct {
		URL    string `json:"url"`
		Active bool   `json:"active"`
	} `json:"hook_attributes"`
}

// keyID names a public key by the SHA-256 of its modulus.
func keyID(pub *rsa.PublicKey) string {
	sum := sha256.Sum256(pub.N.Bytes())
	return hex.EncodeToString(sum[:8])
}

func slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// accessible lists the repositories an installation reaches, by id order:
// the work is the size of the answer, not of every repository.
func (e *Emulator) accessible(inst *Installation) []*Repo {
	var out []*Repo
	switch {
	case inst.Selection != "all":
		for _, id := range inst.RepoIDs {
			if r := e.reposByID[id]; r != nil {
				out = append(out, r)
			}
		}
	case inst.Account.Type == "Enterprise":
		for org, ent := range e.orgEnterprise {
			if a := e.account(org); a != nil && ent == inst.Account.Login {
				out = append(out, e.reposByOwner[a]...)
			}
		}
	default:
		return append(out, e.reposByOwner[inst.Account]...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// covers reports whether an installation reaches a repository, in O(1).
// Callers hold e.mu.
func (e *Emulator) covers(inst *Installation, r *Repo) bool {
	if r == nil {
		return false
	}
	if inst.Selection != "all" {
		return inst.repoSet[r.ID]
	}
	return r.Owner == inst.Account || (inst.Account.Type == "Enterprise" && e.inEnterprise(r.Owner, inst.Account))
}

// indexRepo adds a repository to the list and its indexes. Callers hold
// e.mu.
func (e *Emulator) indexRepo(r *Repo) {
	e.repos = append(e.repos, r)
	e.reposByID[r.ID] = r
	e.reposByName[strings.ToLower(r.FullName())] = r
	e.reposByOwner[r.Owner] = append(e.reposByOwner[r.Owner], r)
}

// unindexRepo takes a repository out of the list and its indexes. Callers
// hold e.mu.
func (e *Emulator) unindexRepo(r *Repo) {
	e.repos = slices.DeleteFunc(e.repos, func(x *Repo) bool { return x == r })
	delete(e.reposByID, r.ID)
	delete(e.reposByName, strings.ToLower(r.FullName()))
	e.reposByOwner[r.Owner] = slices.DeleteFunc(e.reposByOwner[r.Owner], func(x *Repo) bool { return x == r })
}

func idSet(ids []int64) map[int64]bool {
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// inEnterprise: organizations belong to the enterprise named in their
// seed, if any.
func (e *Emulator) inEnterprise(org, ent *Account) bool {
	return e.orgEnterprise[org.Login] == ent.Login
}

func (e *Emulator) account(login string) *Account {
	return e.accounts[strings.ToLower(login)]
}

func (e *Emulator) repo(owner, name string) *Repo {
	return e.reposByName[strings.ToLower(owner+"/"+name)]
}

func (e *Emulator) nextID() int64 {
	e.lastID++
	return e.lastID
}
