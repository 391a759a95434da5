package ghemu

import (
	"fmt"
	"sort"
	"strings"
)

// People are accounts of type "User". What a person can reach on
// GitHub.com: every public repository, their own, every repository of an
// organization they are a member of (the base permission, read), and the
// repositories they are a collaborator on.

// AddUser creates a person (an account of type "User"); an existing login
// is returned as is.
func (e *Emulator) AddUser(login string) Account {
	return e.AddAccount(login, "User")
}

// AddMember makes a person a member of an organization, creating either if
// unknown.
func (e *Emulator) AddMember(org, login string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addMember(e.addAccount(org, "Organization"), e.addAccount(login, "User"))
}

func (e *Emulator) addMember(org, user *Account) {
	if e.members[org] == nil {
		e.members[org] = map[*Account]bool{}
	}
	e.members[org][user] = true
}

// RemoveMember takes a person out of an organization.
func (e *Emulator) RemoveMember(org, login string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, u := e.account(org), e.account(login); o != nil && u != nil {
		delete(e.members[o], u)
	}
}

// AddCollaborator makes a person (created if unknown) a collaborator on a
// repository.
func (e *Emulator) AddCollaborator(owner, repo, login string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repo(owner, repo)
	if r == nil {
		return fmt.Errorf("ghemu: no repository %s/%s", owner, repo)
	}
	e.addCollaborator(r, e.addAccount(login, "User"))
	return nil
}

func (e *Emulator) addCollaborator(r *Repo, user *Account) {
	if e.collaborators[r.ID] == nil {
		e.collaborators[r.ID] = map[*Account]bool{}
	}
	e.collaborators[r.ID][user] = true
}

// RemoveCollaborator takes a person off a repository's collaborators.
func (e *Emulator) RemoveCollaborator(owner, repo, login string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, u := e.repo(owner, repo), e.account(login); r != nil && u != nil {
		delete(e.collaborators[r.ID], u)
	}
}

// canAccess reports whether a person can read a repository. Callers hold
// e.mu.
func (e *Emulator) canAccess(user *Account, r *Repo) bool {
	return !r.Private || r.Owner == user || e.members[r.Owner][user] || e.collaborators[r.ID][user]
}

// person is the user account a login names, or nil. Callers hold e.mu.
func (e *Emulator) person(login string) *Account {
	if a := e.account(strings.TrimSpace(login)); a != nil && a.Type == "User" {
		return a
	}
	return nil
}

// seedPeople applies the seed's members and collaborators.
func (e *Emulator) seedPeople(members, collaborators map[string][]string) error {
	for org, logins := range members {
		for _, l := range logins {
			e.AddMember(org, l)
		}
	}
	for full, logins := range collaborators {
		owner, name, ok := strings.Cut(full, "/")
		if !ok {
			return fmt.Errorf("ghemu: collaborators: %q is not owner/repo", full)
		}
		for _, l := range logins {
			if err := e.AddCollaborator(owner, name, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// membershipLogins is the members or collaborators relation by name, for
// the state file. Callers hold e.mu.
func membershipLogins[K comparable](rel map[K]map[*Account]bool, name func(K) string) map[string][]string {
	out := map[string][]string{}
	for k, users := range rel {
		for u := range users {
			out[name(k)] = append(out[name(k)], u.Login)
		}
		sort.Strings(out[name(k)])
	}
	return out
}
