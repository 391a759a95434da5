package ghemu

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// snapshot is the emulator's durable state: what GitHub.com would still
// know after a restart. Access tokens are left out; they are short-lived
// anyway.
type snapshot struct {
	LastID        int64             `json:"last_id"`
	Accounts      []Account         `json:"accounts"`
	OrgEnterprise map[string]string `json:"org_enterprise"`
	Repos         []snapRepo        `json:"repos"`
	Apps          []snapApp         `json:"apps"`
	Installations []snapInstall     `json:"installations"`
	// Members are organizations' members and Collaborators repositories'
	// ("owner/repo") collaborators, by login.
	Members       map[string][]string `json:"members"`
	Collaborators map[string][]string `json:"collaborators"`
	// Grants are people's authorizations of Apps; RefreshTokens the live
	// refresh tokens, which last months (access tokens are left out).
	Grants        []snapGrant   `json:"grants"`
	RefreshTokens []snapRefresh `json:"refresh_tokens"`
	// Advisories are the global security advisories, as changed since
	// they were seeded.
	Advisories []Advisory `json:"advisories,omitempty"`
	// CommitSeq numbers commits, so SHAs stay unique after a restart.
	CommitSeq int64 `json:"commit_seq,omitempty"`
}

type snapGrant struct {
	AppID   int64     `json:"app_id"`
	Login   string    `json:"login"`
	Created time.Time `json:"created"`
}

type snapRefresh struct {
	Value   string    `json:"value"`
	AppID   int64     `json:"app_id"`
	Login   string    `json:"login"`
	Expires time.Time `json:"expires"`
}

type snapRepo struct {
	ID      int64             `json:"id"`
	Owner   string            `json:"owner"`
	Name    string            `json:"name"`
	Private bool              `json:"private"`
	Files   map[string]string `json:"files"`
	Issues  []Issue           `json:"issues"`
	Created time.Time         `json:"created"`
	// Git data; a state file without it gives the repository a first
	// commit of its files, as AddRepo does.
	DefaultBranch string            `json:"default_branch,omitempty"`
	Branches      map[string]string `json:"branches,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	Commits       []*Commit         `json:"commits,omitempty"`
	Pushed        time.Time         `json:"pushed"`
}

type snapApp struct {
	App
	OwnerLogin string   `json:"owner_login"`
	Keys       []string `json:"keys"` // PKIX PEM
}

type snapInstall struct {
	ID          int64             `json:"id"`
	AppID       int64             `json:"app_id"`
	Account     string            `json:"account"`
	Selection   string            `json:"selection"`
	RepoIDs     []int64           `json:"repo_ids"`
	Permissions map[string]string `json:"permissions"`
	Created     time.Time         `json:"created"`
}

// SaveState writes the durable state to path (atomically).
func (e *Emulator) SaveState(path string) error {
	e.mu.Lock()
	s := snapshot{LastID: e.lastID, OrgEnterprise: e.orgEnterprise, CommitSeq: e.commitSeq}
	for _, a := range e.accounts {
		s.Accounts = append(s.Accounts, *a)
	}
	for _, r := range e.repos {
		sr := snapRepo{ID: r.ID, Owner: r.Owner.Login, Name: r.Name, Private: r.Private, Files: r.Files, Issues: r.Issues, Created: r.Created,
			DefaultBranch: r.DefaultBranch, Branches: maps.Clone(r.Branches), Tags: maps.Clone(r.Tags), Pushed: r.pushed}
		for _, c := range r.Commits {
			sr.Commits = append(sr.Commits, c)
		}
		sort.Slice(sr.Commits, func(i, j int) bool { return sr.Commits[i].SHA < sr.Commits[j].SHA })
		s.Repos = append(s.Repos, sr)
	}
	for _, a := range e.apps {
		sa := snapApp{App: *a, OwnerLogin: a.Owner.Login}
		sa.Owner = nil
		for _, k := range a.keys {
			der, _ := x509.MarshalPKIXPublicKey(k)
			sa.Keys = append(sa.Keys, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
		}
		s.Apps = append(s.Apps, sa)
	}
	for _, i := range e.installations {
		s.Installations = append(s.Installations, snapInstall{ID: i.ID, AppID: i.App.ID, Account: i.Account.Login, Selection: i.Selection, RepoIDs: i.RepoIDs, Permissions: i.Permissions, Created: i.Created})
	}
	e.snapshotPeople(&s)
	s.Advisories = e.allAdvisories()
	e.mu.Unlock()
	raw, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ghemu-state-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(raw); err != nil {
		_ = tmp.Close() // the failed write is the error to report
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadState restores what SaveState wrote; a missing file is no error.
func (e *Emulator) LoadState(path string) error {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var s snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("ghemu: state %s: %w", path, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastID = s.LastID
	e.commitSeq = max(e.commitSeq, s.CommitSeq)
	for _, a := range s.Accounts {
		a := a
		e.accounts[strings.ToLower(a.Login)] = &a
		e.accountsByID[a.ID] = &a
	}
	for k, v := range s.OrgEnterprise {
		e.orgEnterprise[k] = v
	}
	for _, r := range s.Repos {
		repo := &Repo{ID: r.ID, Owner: e.account(r.Owner), Name: r.Name, Private: r.Private, Files: r.Files, Issues: r.Issues, Created: r.Created}
		if r.DefaultBranch == "" || r.Branches[r.DefaultBranch] == "" {
			e.initRepo(repo)
		} else {
			repo.DefaultBranch, repo.Branches, repo.Tags, repo.pushed = r.DefaultBranch, r.Branches, r.Tags, r.Pushed
			if repo.Tags == nil {
				repo.Tags = map[string]string{}
			}
			repo.Commits = make(map[string]*Commit, len(r.Commits))
			for _, c := range r.Commits {
				repo.Commits[c.SHA] = c
			}
		}
		e.indexRepo(repo)
	}
	for _, sa := range s.Apps {
		app := sa.App
		app.Owner = e.account(sa.OwnerLogin)
		app.keys = map[string]*rsa.PublicKey{}
		for _, p := range sa.Keys {
			k, err := parsePublicKey(p)
			if err != nil {
				return err
			}
			app.keys[keyID(k)] = k
		}
		e.apps[app.ID] = &app
	}
	for _, si := range s.Installations {
		e.installations[si.ID] = &Installation{ID: si.ID, App: e.apps[si.AppID], Account: e.account(si.Account), Selection: si.Selection, RepoIDs: si.RepoIDs, Permissions: si.Permissions, Created: si.Created, repoSet: idSet(si.RepoIDs)}
	}
	e.restorePeople(&s)
	_, err = e.addAdvisoriesLocked(s.Advisories)
	return err
}

// snapshotPeople adds memberships, collaborations, grants and live refresh
// tokens to s. Callers hold e.mu.
func (e *Emulator) snapshotPeople(s *snapshot) {
	s.Members = membershipLogins(e.members, func(a *Account) string { return a.Login })
	s.Collaborators = membershipLogins(e.collaborators, func(id int64) string { return e.reposByID[id].FullName() })
	users := map[int64]*Account{}
	for _, a := range e.accounts {
		users[a.ID] = a
	}
	for k, created := range e.grants {
		s.Grants = append(s.Grants, snapGrant{AppID: k.app, Login: users[k.user].Login, Created: created})
	}
	now := e.nowLocked()
	for _, rt := range e.refreshTokens {
		if !rt.spent && now.Before(rt.expires) {
			s.RefreshTokens = append(s.RefreshTokens, snapRefresh{Value: rt.value, AppID: rt.app.ID, Login: rt.user.Login, Expires: rt.expires})
		}
	}
}

// restorePeople is snapshotPeople's inverse. Callers hold e.mu.
func (e *Emulator) restorePeople(s *snapshot) {
	for org, logins := range s.Members {
		for _, l := range logins {
			if o, u := e.account(org), e.account(l); o != nil && u != nil {
				e.addMember(o, u)
			}
		}
	}
	for full, logins := range s.Collaborators {
		r := e.reposByName[strings.ToLower(full)]
		for _, l := range logins {
			if u := e.account(l); r != nil && u != nil {
				e.addCollaborator(r, u)
			}
		}
	}
	for _, g := range s.Grants {
		if u := e.account(g.Login); u != nil && e.apps[g.AppID] != nil {
			e.grants[grantKey{g.AppID, u.ID}] = g.Created
		}
	}
	for _, rt := range s.RefreshTokens {
		if u, app := e.account(rt.Login), e.apps[rt.AppID]; u != nil && app != nil {
			e.refreshTokens[rt.Value] = &refreshToken{value: rt.Value, app: app, user: u, expires: rt.Expires}
		}
	}
}
