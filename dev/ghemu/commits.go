package ghemu

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"sort"
	"strings"
	"time"
)

// Repositories' Git data: commits and refs, enough to resolve a ref the way
// GitHub does and to serve a tarball of the commit it names. A commit holds
// its whole tree (Files, plus the generated payload.bin), not a diff.

// DefaultBranch is every repository's default branch.
const DefaultBranch = "main"

// PayloadFile is the generated file a commit with PayloadBytes has, at the
// top of its tree.
const PayloadFile = "payload.bin"

// errNotFound marks errors for something that does not exist (a repository,
// an organization), as opposed to a request that is invalid.
var errNotFound = errors.New("not found")

// Commit is a commit of a repository. Commits never change once made.
type Commit struct {
	SHA     string `json:"sha"`
	Message string `json:"message"`
	// Parents are the parents' SHAs (none for a repository's first commit).
	Parents []string  `json:"parents,omitempty"`
	Time    time.Time `json:"time"`
	// Files is the commit's whole tree, path → content.
	Files map[string]string `json:"files"`
	// PayloadBytes is the size of PayloadFile, deterministic pseudo-random
	// bytes derived from SHA, generated while a tarball is written; 0: no
	// such file.
	PayloadBytes int64 `json:"payload_bytes,omitempty"`
}

// CommitSpec describes a commit to push.
type CommitSpec struct {
	// Ref is the branch to push to ("name", "heads/name" or
	// "refs/heads/name"); empty: the default branch. A missing branch is
	// created, its new commit's parent the default branch's head.
	Ref     string `json:"ref"`
	Message string `json:"message"`
	// Files is the commit's whole tree (not changes to the parent's).
	Files map[string]string `json:"files"`
	// PayloadBytes adds a generated PayloadFile of this size.
	PayloadBytes int64 `json:"payload_bytes"`
}

// initRepo gives a new repository its default branch with a first commit
// of its files. Callers hold e.mu.
func (e *Emulator) initRepo(r *Repo) {
	r.DefaultBranch = DefaultBranch
	r.Branches, r.Tags, r.Commits = map[string]string{}, map[string]string{}, map[string]*Commit{}
	c := e.newCommit(r, "", CommitSpec{Message: "Initial commit", Files: r.Files}, r.Created)
	r.Branches[DefaultBranch] = c.SHA
	r.pushed = c.Time
}

// newCommit makes a commit of r on parent (its SHA, or empty) and stores
// it. Callers hold e.mu.
func (e *Emulator) newCommit(r *Repo, parent string, spec CommitSpec, at time.Time) *Commit {
	e.commitSeq++
	c := &Commit{Message: spec.Message, Time: at.UTC().Truncate(time.Second), Files: maps.Clone(spec.Files), PayloadBytes: spec.PayloadBytes}
	if c.Files == nil {
		c.Files = map[string]string{}
	}
	if parent != "" {
		c.Parents = []string{parent}
	}
	h := sha256.New()
	fmt.Fprintf(h, "ghemu commit\x00%d\x00%s\x00%d\x00%s\x00%d\x00%d\x00", r.ID, parent, e.commitSeq, c.Message, c.Time.Unix(), c.PayloadBytes)
	h.Write([]byte(treeSHA(c)))
	c.SHA = hex.EncodeToString(h.Sum(nil)[:20])
	r.Commits[c.SHA] = c
	return c
}

// treeSHA stands for the Git tree id of a commit's files: the same for
// the same tree.
func treeSHA(c *Commit) string {
	paths := make([]string, 0, len(c.Files))
	for p := range c.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%d:%s\x00%d:%s\x00", len(p), p, len(c.Files[p]), c.Files[p])
	}
	fmt.Fprintf(h, "payload:%d", c.PayloadBytes)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// PushCommit adds a commit to a branch of a repository (see CommitSpec) and
// returns its SHA: 40 lower-case hex digits, unique to this commit.
func (e *Emulator) PushCommit(owner, repo string, c CommitSpec) (string, error) {
	if c.PayloadBytes < 0 {
		return "", errors.New("ghemu: payload_bytes must not be negative")
	}
	if _, ok := c.Files[PayloadFile]; ok && c.PayloadBytes > 0 {
		return "", fmt.Errorf("ghemu: %s is the generated payload; leave it out of files", PayloadFile)
	}
	for p := range c.Files {
		if !validPath(p) {
			return "", fmt.Errorf("ghemu: bad file path %q", p)
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := c.Files[d]; ok || (d == PayloadFile && c.PayloadBytes > 0) {
				return "", fmt.Errorf("ghemu: %q is a file and a directory", d)
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repo(owner, repo)
	if r == nil {
		return "", noRepo(owner, repo)
	}
	branch := c.Ref
	if branch == "" {
		branch = r.DefaultBranch
	}
	if strings.HasPrefix(branch, "refs/tags/") || strings.HasPrefix(branch, "tags/") {
		return "", fmt.Errorf("ghemu: commits go to branches, not to tag %q", c.Ref)
	}
	branch = strings.TrimPrefix(strings.TrimPrefix(branch, "refs/"), "heads/")
	if !validRefName(branch) {
		return "", fmt.Errorf("ghemu: bad branch name %q", c.Ref)
	}
	parent, ok := r.Branches[branch]
	if !ok {
		parent = r.Branches[r.DefaultBranch]
	}
	commit := e.newCommit(r, parent, c, e.nowLocked())
	e.moveRef(r, false, branch, commit.SHA, commit.Time)
	return commit.SHA, nil
}

// SetRef creates or moves a branch or tag of a repository to one of its
// commits. ref is "heads/name" or "refs/heads/name" for a branch,
// "tags/name" or "refs/tags/name" for a tag; a bare name moves the branch
// of that name, else the tag, else creates a branch.
func (e *Emulator) SetRef(owner, repo, ref, sha string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repo(owner, repo)
	if r == nil {
		return noRepo(owner, repo)
	}
	c := r.Commits[strings.ToLower(sha)]
	if c == nil {
		return fmt.Errorf("ghemu: %q is not a commit of %s", sha, r.FullName())
	}
	tag, name := false, strings.TrimPrefix(ref, "refs/")
	switch {
	case strings.HasPrefix(name, "heads/"):
		name = strings.TrimPrefix(name, "heads/")
	case strings.HasPrefix(name, "tags/"):
		tag, name = true, strings.TrimPrefix(name, "tags/")
	default:
		_, isBranch := r.Branches[name]
		_, isTag := r.Tags[name]
		tag = isTag && !isBranch
	}
	if !validRefName(name) {
		return fmt.Errorf("ghemu: bad ref name %q", ref)
	}
	e.moveRef(r, tag, name, c.SHA, e.nowLocked())
	return nil
}

// moveRef points a branch (or a tag) at a commit; a move of the default
// branch changes the files search sees. Callers hold e.mu.
func (e *Emulator) moveRef(r *Repo, tag bool, name, sha string, at time.Time) {
	r.pushed = at
	if tag {
		r.Tags[name] = sha
		return
	}
	r.Branches[name] = sha
	if name == r.DefaultBranch {
		r.Files = r.Commits[sha].Files
	}
}

// DeleteRepo deletes a repository, as its owner does in its settings; it
// reports whether there was one. Installations that selected it lose it.
func (e *Emulator) DeleteRepo(owner, repo string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repo(owner, repo)
	if r == nil {
		return false
	}
	e.unindexRepo(r)
	delete(e.collaborators, r.ID)
	for _, i := range e.installations {
		if i.repoSet[r.ID] {
			delete(i.repoSet, r.ID)
			ids := make([]int64, 0, len(i.RepoIDs))
			for _, id := range i.RepoIDs {
				if id != r.ID {
					ids = append(ids, id)
				}
			}
			i.RepoIDs = ids
		}
	}
	for k, t := range e.codeloadTokens {
		if t.repoID == r.ID {
			delete(e.codeloadTokens, k)
		}
	}
	return true
}

// SetPrivate makes a repository private or public.
func (e *Emulator) SetPrivate(owner, repo string, private bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repo(owner, repo)
	if r == nil {
		return noRepo(owner, repo)
	}
	r.Private = private
	return nil
}

// SetVerified sets whether an organization is verified (its domain, as
// GitHub shows with a badge): GET /orgs/{org}'s is_verified.
func (e *Emulator) SetVerified(org string, verified bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.account(org)
	if a == nil || a.Type != "Organization" {
		return fmt.Errorf("ghemu: no organization %q: %w", org, errNotFound)
	}
	a.Verified = verified
	return nil
}

func noRepo(owner, repo string) error {
	return fmt.Errorf("ghemu: no repository %s/%s: %w", owner, repo, errNotFound)
}

// resolve finds the commit a ref names, as GitHub does: a full SHA, then
// "heads/…" or "tags/…" (also after "refs/"), then a tag, then a branch,
// then a unique SHA prefix of at least 7 hex digits. Callers hold e.mu.
func resolve(r *Repo, ref string) *Commit {
	if c := r.Commits[ref]; c != nil {
		return c
	}
	name := strings.TrimPrefix(ref, "refs/")
	if b, ok := strings.CutPrefix(name, "heads/"); ok {
		if sha, ok := r.Branches[b]; ok {
			return r.Commits[sha]
		}
	}
	if t, ok := strings.CutPrefix(name, "tags/"); ok {
		if sha, ok := r.Tags[t]; ok {
			return r.Commits[sha]
		}
	}
	if sha, ok := r.Tags[ref]; ok {
		return r.Commits[sha]
	}
	if sha, ok := r.Branches[ref]; ok {
		return r.Commits[sha]
	}
	if len(ref) < 7 || len(ref) > 40 || !isHex(ref) {
		return nil
	}
	prefix := strings.ToLower(ref)
	var found *Commit
	for sha, c := range r.Commits {
		if strings.HasPrefix(sha, prefix) {
			if found != nil {
				return nil // ambiguous
			}
			found = c
		}
	}
	return found
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// validRefName is a loose form of Git's ref-name rules.
func validRefName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".lock") ||
		strings.Contains(name, "..") || strings.Contains(name, "//") || strings.Contains(name, "@{") {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || strings.ContainsRune("~^:?*[\\", c) {
			return false
		}
	}
	return true
}

// validPath accepts a relative file path with no empty, "." or ".."
// element, as a Git tree holds.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return !strings.ContainsRune(p, 0)
}
