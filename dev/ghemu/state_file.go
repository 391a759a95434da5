package ghemu

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// snapshot is the emulator's durable state: what GitHub.com would still
// know after a restart. Tokens are left out; they are short-lived anyway.
type snapshot struct {
	LastID        int64             `json:"last_id"`
	Accounts      []Account         `json:"accounts"`
	OrgEnterprise map[string]string `json:"org_enterprise"`
	Repos         []snapRepo        `json:"repos"`
	Apps          []snapApp         `json:"apps"`
	Installations []snapInstall     `json:"installations"`
}

type snapRepo struct {
	ID      int64             `json:"id"`
	Owner   string            `json:"owner"`
	Name    string            `json:"name"`
	Private bool              `json:"private"`
	Files   map[string]string `json:"files"`
	Issues  []Issue           `json:"issues"`
	Created time.Time         `json:"created"`
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
	s := snapshot{LastID: e.lastID, OrgEnterprise: e.orgEnterprise}
	for _, a := range e.accounts {
		s.Accounts = append(s.Accounts, *a)
	}
	for _, r := range e.repos {
		s.Repos = append(s.Repos, snapRepo{ID: r.ID, Owner: r.Owner.Login, Name: r.Name, Private: r.Private, Files: r.Files, Issues: r.Issues, Created: r.Created})
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
		tmp.Close()
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
	for _, a := range s.Accounts {
		a := a
		e.accounts[strings.ToLower(a.Login)] = &a
	}
	for k, v := range s.OrgEnterprise {
		e.orgEnterprise[k] = v
	}
	for _, r := range s.Repos {
		repo := &Repo{ID: r.ID, Owner: e.account(r.Owner), Name: r.Name, Private: r.Private, Files: r.Files, Issues: r.Issues, Created: r.Created}
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
	return nil
}
