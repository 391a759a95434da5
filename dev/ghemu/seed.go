package ghemu

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"
)

// AddAccount creates a user, organization or enterprise ("User",
// "Organization", "Enterprise"); an existing login is returned as is.
func (e *Emulator) AddAccount(login, typ string) Account {
	e.mu.Lock()
	defer e.mu.Unlock()
	return *e.addAccount(login, typ)
}

func (e *Emulator) addAccount(login, typ string) *Account {
	if a := e.account(login); a != nil {
		return a
	}
	a := &Account{ID: e.nextID(), Login: login, Type: typ}
	e.accounts[strings.ToLower(login)] = a
	e.accountsByID[a.ID] = a
	return a
}

// AddOrgToEnterprise makes an organization part of an enterprise, so an
// enterprise installation reaches its repositories.
func (e *Emulator) AddOrgToEnterprise(org, enterprise string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addAccount(org, "Organization")
	e.addAccount(enterprise, "Enterprise")
	e.orgEnterprise[org] = enterprise
}

// RepoSpec describes a repository to create.
type RepoSpec struct {
	Owner   string            `json:"owner"`
	Name    string            `json:"name"`
	Private bool              `json:"private"`
	Files   map[string]string `json:"files"`
	Issues  []IssueSpec       `json:"issues"`
}

// IssueSpec describes an issue.
type IssueSpec struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// AddRepo creates a repository (and its owner, as an organization, if
// unknown) and returns its id; an existing one is left as it is. Its
// default branch, main, has one commit, "Initial commit", of its files.
func (e *Emulator) AddRepo(spec RepoSpec) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	owner := e.addAccount(spec.Owner, "Organization")
	if r := e.repo(spec.Owner, spec.Name); r != nil {
		return r.ID
	}
	r := &Repo{ID: e.nextID(), Owner: owner, Name: spec.Name, Private: spec.Private, Files: spec.Files, Created: e.nowLocked()}
	e.initRepo(r)
	for n, is := range spec.Issues {
		r.Issues = append(r.Issues, Issue{Number: n + 1, Title: is.Title, Body: is.Body, State: "open"})
	}
	e.indexRepo(r)
	return r.ID
}

// AppSpec describes an App to create.
type AppSpec struct {
	ID          int64             `json:"id"`
	Slug        string            `json:"slug"`
	Name        string            `json:"name"`
	Owner       string            `json:"owner"`
	Permissions map[string]string `json:"permissions"`
	Events      []string          `json:"events"`
	SetupURL    string            `json:"setup_url"`
	// ClientSecret is the OAuth client secret; empty: a generated one.
	ClientSecret string `json:"client_secret"`
	// CallbackURLs are the user-authorization callback URLs.
	CallbackURLs []string `json:"callback_urls"`
	// Public makes the App visible to anyone, not only its account.
	Public bool `json:"public"`
	// PublicKeys are PEM public keys (PKIX or PKCS#1) the App's JWTs may be
	// signed with.
	PublicKeys []string `json:"public_keys"`
}

// AddApp creates an App and returns its id.
func (e *Emulator) AddApp(spec AppSpec, keys ...*rsa.PublicKey) (int64, error) {
	for _, p := range spec.PublicKeys {
		k, err := parsePublicKey(p)
		if err != nil {
			return 0, err
		}
		keys = append(keys, k)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	app := e.newApp(spec, e.addAccount(spec.Owner, "Organization"))
	for _, k := range keys {
		app.keys[keyID(k)] = k
	}
	return app.ID, nil
}

func (e *Emulator) newApp(spec AppSpec, owner *Account) *App {
	id := spec.ID
	if id == 0 {
		id = e.nextID()
	}
	name := spec.Name
	if name == "" {
		name = spec.Slug
	}
	slug := spec.Slug
	if slug == "" {
		slug = slugify(name)
	}
	app := &App{
		ID: id, Slug: slug, Name: name, Owner: owner, Permissions: spec.Permissions, Events: spec.Events,
		SetupURL: spec.SetupURL, CallbackURLs: spec.CallbackURLs, Public: spec.Public, Created: e.nowLocked(), keys: map[string]*rsa.PublicKey{},
		ClientID: "Iv1." + randomHex(8), ClientSecret: spec.ClientSecret, WebhookSecret: randomHex(20),
	}
	if app.ClientSecret == "" {
		app.ClientSecret = randomHex(20)
	}
	if app.Permissions == nil {
		app.Permissions = map[string]string{"metadata": "read"}
	}
	e.apps[id] = app
	return app
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func parsePublicKey(p string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("ghemu: public key is not PEM")
	}
	if k, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ghemu: public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("ghemu: public key is not RSA")
	}
	return rk, nil
}

// AddAppKey registers another public key for an App (key rotation) and
// returns its id.
func (e *Emulator) AddAppKey(appID int64, pub *rsa.PublicKey) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	app := e.apps[appID]
	if app == nil {
		return "", fmt.Errorf("ghemu: no App %d", appID)
	}
	app.keys[keyID(pub)] = pub
	return keyID(pub), nil
}

// RemoveAppKey removes a public key; JWTs it signed stop verifying.
func (e *Emulator) RemoveAppKey(appID int64, pub *rsa.PublicKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if app := e.apps[appID]; app != nil {
		delete(app.keys, keyID(pub))
	}
}

// AppExists reports whether the App exists.
func (e *Emulator) AppExists(appID int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apps[appID] != nil
}

// App returns a copy of an App, or false.
func (e *Emulator) App(appID int64) (App, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[appID]
	if a == nil {
		return App{}, false
	}
	return *a, true
}

// Install installs an App on an account with permissions (nil: the App's),
// on the named repositories (nil: all of them).
func (e *Emulator) Install(appID int64, account string, perms map[string]string, repos []string) (Installation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	app := e.apps[appID]
	if app == nil {
		return Installation{}, fmt.Errorf("ghemu: no App %d", appID)
	}
	acct := e.account(account)
	if acct == nil {
		return Installation{}, fmt.Errorf("ghemu: no account %q", account)
	}
	for _, i := range e.installations {
		if i.App == app && i.Account == acct {
			return Installation{}, fmt.Errorf("ghemu: App %d is already installed on %s", appID, account)
		}
	}
	if perms == nil {
		perms = app.Permissions
	}
	inst := &Installation{ID: e.nextID(), App: app, Account: acct, Selection: "all", Permissions: perms, Created: e.nowLocked()}
	if repos != nil {
		inst.Selection = "selected"
		for _, name := range repos {
			r := e.repo(account, name)
			if r == nil {
				return Installation{}, fmt.Errorf("ghemu: no repository %s/%s", account, name)
			}
			inst.RepoIDs = append(inst.RepoIDs, r.ID)
		}
		inst.repoSet = idSet(inst.RepoIDs)
	}
	e.installations[inst.ID] = inst
	return *inst, nil
}

// SetInstallationPermissions is the App's owner changing its permissions
// and the account accepting them on installation id: both grant perms now.
func (e *Emulator) SetInstallationPermissions(id int64, perms map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.installations[id]
	if i == nil {
		return fmt.Errorf("no installation %d", id)
	}
	e.setPermissions(i, perms)
	return nil
}

// setPermissions sets an installation's and its App's permissions; callers
// hold e.mu.
func (e *Emulator) setPermissions(i *Installation, perms map[string]string) {
	i.Permissions, i.App.Permissions = maps.Clone(perms), maps.Clone(perms)
}

// Installation returns a copy of an installation, or false once deleted.
func (e *Emulator) Installation(id int64) (Installation, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.installations[id]
	if i == nil {
		return Installation{}, false
	}
	return *i, true
}

// SeedData is the seed file's shape.
type SeedData struct {
	Organizations []struct {
		Login      string `json:"login"`
		Enterprise string `json:"enterprise"`
		// Verified sets is_verified (SetVerified).
		Verified bool `json:"verified"`
	} `json:"organizations"`
	Enterprises []string `json:"enterprises"`
	// Users are people (accounts of type "User").
	Users []string `json:"users"`
	// Members are organizations' members by organization login.
	Members map[string][]string `json:"members"`
	// Collaborators are repositories' collaborators by "owner/repo".
	Collaborators map[string][]string `json:"collaborators"`
	Repositories  []RepoSpec          `json:"repositories"`
	Apps          []AppSpec           `json:"apps"`
	Installations []struct {
		App          int64             `json:"app"`
		Account      string            `json:"account"`
		Permissions  map[string]string `json:"permissions"`
		Repositories []string          `json:"repositories"`
	} `json:"installations"`
	// Advisories are global security advisories in GitHub's JSON
	// (global-advisory); what GitHub derives (url, html_url, identifiers,
	// cvss_severities) may be left out and is ignored.
	Advisories []Advisory `json:"advisories"`
	// GenerateAdvisories adds GeneratedAdvisories(count, seed) too.
	GenerateAdvisories *struct {
		Count int   `json:"count"`
		Seed  int64 `json:"seed"`
	} `json:"generate_advisories"`
	// Emails are people's verified email addresses by login, the first
	// the primary (SetEmails; unknown people are created).
	Emails map[string][]string `json:"emails"`
	// Seats are enterprises' purchased licenses by slug (SetSeats;
	// unknown enterprises are created).
	Seats map[string]int `json:"seats"`
}

// Seed loads accounts, repositories, people's memberships and
// collaborations, Apps, installations and advisories.
func (e *Emulator) Seed(s SeedData) error {
	for _, ent := range s.Enterprises {
		e.AddAccount(ent, "Enterprise")
	}
	for _, o := range s.Organizations {
		e.AddAccount(o.Login, "Organization")
		if o.Enterprise != "" {
			e.AddOrgToEnterprise(o.Login, o.Enterprise)
		}
		if o.Verified {
			if err := e.SetVerified(o.Login, true); err != nil {
				return err
			}
		}
	}
	for _, u := range s.Users {
		e.AddAccount(u, "User")
	}
	for _, r := range s.Repositories {
		e.AddRepo(r)
	}
	if err := e.seedPeople(s.Members, s.Collaborators); err != nil {
		return err
	}
	if err := e.seedLicenses(s.Emails, s.Seats); err != nil {
		return err
	}
	for _, a := range s.Apps {
		if _, err := e.AddApp(a); err != nil {
			return err
		}
	}
	for _, i := range s.Installations {
		if _, err := e.Install(i.App, i.Account, i.Permissions, i.Repositories); err != nil {
			return err
		}
	}
	if _, err := e.addAdvisories(s.Advisories); err != nil {
		return err
	}
	if g := s.GenerateAdvisories; g != nil {
		if _, err := e.GenerateAdvisories(g.Count, g.Seed); err != nil {
			return err
		}
	}
	return nil
}

// SeedFile loads a JSON seed file.
func (e *Emulator) SeedFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s SeedData
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("ghemu: seed %s: %w", path, err)
	}
	return e.Seed(s)
}

// sortedRepos is every repository in id order. Callers hold e.mu.
func (e *Emulator) sortedRepos() []*Repo {
	out := append([]*Repo(nil), e.repos...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
