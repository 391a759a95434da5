// Package ghactions lets runners on the server use actions published on
// GitHub.com (GitHub Connect's "GitHub.com actions"): a runner asks for
// owner/repo@ref, the ref is resolved to a commit through GitHub.com and
// the repository's tarball at that commit is streamed back, kept in a
// bounded disk cache by commit so a pinned SHA is served without asking
// GitHub.com again. Only public repositories are served, and only what
// the enterprise's policy allows.
//
// The package holds the policy (policy.go), the cache (cache.go), the
// calls to GitHub.com (github.go), what the gate's database keeps of both
// (store.go) and the Proxy that ties them together (proxy.go). The gate
// serves it through DownloadAction; the gateway streams it to runners.
package ghactions

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Allowed is which actions the policy lets runners use.
type Allowed int32

const (
	// AllowAll lets runners use every public action on GitHub.com, less the blocked
	// patterns. GHES's default.
	AllowAll Allowed = iota + 1
	// AllowSelected lets them use only actions GitHub made (GitHubOwned), actions by
	// verified creators (VerifiedCreators) and those the patterns allow,
	// less the blocked patterns.
	AllowSelected
)

// MaxPatterns bounds a policy's pattern list.
const MaxPatterns = 1000

// Policy is the enterprise's choice of the GitHub.com actions its
// runners may use, as GHES words it: all actions, or selected ones.
type Policy struct {
	Allowed Allowed
	// GitHubOwned allows actions of GitHub's own accounts (actions,
	// github) with AllowSelected.
	GitHubOwned bool
	// VerifiedCreators allows actions of organizations GitHub.com
	// marks verified, with AllowSelected.
	VerifiedCreators bool
	// Patterns allow (with AllowSelected) or, prefixed with "!", block
	// (always, even with AllowAll) actions: "owner/*", "owner/repo",
	// "owner/repo@*", "owner/repo@v2", with "*" matching within a
	// name or a ref. A block wins over every allow.
	Patterns []string
}

// DefaultPolicy is GHES's: every action allowed.
func DefaultPolicy() Policy { return Policy{Allowed: AllowAll} }

// githubOwners are the accounts whose actions GitHub made.
var githubOwners = []string{"actions", "github"}

// owner and repository names as GitHub.com allows them, with "*" for
// patterns.
var (
	ownerPattern = regexp.MustCompile(`^[A-Za-z0-9*](?:[A-Za-z0-9*-]{0,38})$`)
	repoPattern  = regexp.MustCompile(`^[A-Za-z0-9._*-]{1,100}$`)
)

// Validate says what is wrong with p, field by field (nil: nothing).
func (p Policy) Validate() error {
	var errs []error
	if p.Allowed != AllowAll && p.Allowed != AllowSelected {
		errs = append(errs, errors.New("allowed: must be ALL or SELECTED"))
	}
	if len(p.Patterns) > MaxPatterns {
		errs = append(errs, fmt.Errorf("patterns: at most %d", MaxPatterns))
	}
	for i, pat := range p.Patterns {
		if err := validPattern(pat); err != nil {
			errs = append(errs, fmt.Errorf("patterns[%d] %q: %w", i, pat, err))
		}
	}
	if p.Allowed == AllowAll && (p.GitHubOwned || p.VerifiedCreators) {
		errs = append(errs, errors.New("github_owned and verified_creators: only with SELECTED (ALL allows them already)"))
	}
	return errors.Join(errs...)
}

func validPattern(pat string) error {
	body := strings.TrimPrefix(pat, "!")
	repo, ref, hasRef := strings.Cut(body, "@")
	owner, name, ok := strings.Cut(repo, "/")
	switch {
	case !ok || strings.Contains(name, "/"):
		return errors.New(`want "owner/repo", "owner/*" or either with "@ref", optionally prefixed with "!" to block`)
	case !ownerPattern.MatchString(owner):
		return errors.New("the owner is not a GitHub.com account name")
	case !repoPattern.MatchString(name):
		return errors.New("the repository is not a GitHub.com repository name")
	case hasRef && (ref == "" || len(ref) > 255 || strings.ContainsAny(ref, " \t\n~^:?[\\")):
		return errors.New("the ref is empty or not a Git ref")
	}
	// Every "*" above is path.Match's; no other of its specials is let
	// through, so the pattern compiles.
	if _, err := path.Match(body, ""); err != nil {
		return err
	}
	return nil
}

// Decision is the policy's answer for one action.
type Decision struct {
	Allowed bool
	// Reason says why, in words for the runner's log and the admin.
	Reason string
}

// NeedsVerification says whether Decide must be told if owner is a
// verified creator: only a SELECTED policy that allows them, for an
// action no pattern has decided already.
func (p Policy) NeedsVerification(owner, repo, ref string) bool {
	if p.Allowed != AllowSelected || !p.VerifiedCreators {
		return false
	}
	if _, blocked := p.match(owner, repo, ref, true); blocked {
		return false
	}
	if p.GitHubOwned && slices.Contains(githubOwners, strings.ToLower(owner)) {
		return false
	}
	_, allowed := p.match(owner, repo, ref, false)
	return !allowed
}

// Decide says whether runners may use owner/repo@ref; verified says
// whether GitHub.com marks the owner a verified creator (asked only when
// NeedsVerification).
func (p Policy) Decide(owner, repo, ref string, verified bool) Decision {
	action := owner + "/" + repo + "@" + ref
	if pat, blocked := p.match(owner, repo, ref, true); blocked {
		return Decision{Reason: fmt.Sprintf("%s is blocked by the enterprise's actions policy (%q)", action, pat)}
	}
	if p.Allowed == AllowAll {
		return Decision{Allowed: true, Reason: "the enterprise allows all actions"}
	}
	if pat, ok := p.match(owner, repo, ref, false); ok {
		return Decision{Allowed: true, Reason: fmt.Sprintf("allowed by the pattern %q", pat)}
	}
	if p.GitHubOwned && slices.Contains(githubOwners, strings.ToLower(owner)) {
		return Decision{Allowed: true, Reason: "an action GitHub made"}
	}
	if p.VerifiedCreators && verified {
		return Decision{Allowed: true, Reason: owner + " is a verified creator"}
	}
	return Decision{Reason: fmt.Sprintf("%s is not among the actions the enterprise allows", action)}
}

// match finds the first allowing (block false) or blocking pattern that
// matches. Owner and repository names match without regard to case, as
// on GitHub.com; refs match exactly.
func (p Policy) match(owner, repo, ref string, block bool) (string, bool) {
	name := strings.ToLower(owner + "/" + repo)
	for _, pat := range p.Patterns {
		body, isBlock := strings.CutPrefix(pat, "!")
		if isBlock != block {
			continue
		}
		patRepo, patRef, hasRef := strings.Cut(body, "@")
		if ok, _ := path.Match(strings.ToLower(patRepo), name); !ok {
			continue
		}
		if hasRef {
			// A ref may hold "/" (releases/v1): "*" matches across it.
			if ok, _ := path.Match(strings.ReplaceAll(patRef, "/", "\x00"), strings.ReplaceAll(ref, "/", "\x00")); !ok {
				continue
			}
		}
		return pat, true
	}
	return "", false
}
