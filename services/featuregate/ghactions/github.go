package ghactions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-github/v60/github"
)

// What a request for an action can meet besides GitHub.com failing
// (those are *brokerclient.GitHubError).
var (
	// ErrBlocked: the enterprise's policy does not allow the action.
	ErrBlocked = errors.New("not allowed by the actions policy")
	// ErrRepoNotFound: GitHub.com has no such public repository (deleted,
	// renamed away, or never public: a private one looks the same to
	// anyone who may not read it).
	ErrRepoNotFound = errors.New("no such repository on GitHub.com")
	// ErrPrivate: the repository is private; only public actions are
	// served.
	ErrPrivate = errors.New("private repository")
	// ErrRefNotFound: the repository has no such branch, tag or commit.
	ErrRefNotFound = errors.New("no such ref")
	// ErrTooLarge: the tarball is over the largest the gate downloads.
	ErrTooLarge = errors.New("tarball too large")
)

// sha is a full commit SHA: served from the cache without resolving.
var sha = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// IsSHA says whether ref names a commit by its full SHA.
func IsSHA(ref string) bool { return sha.MatchString(ref) }

// repoInfo is what the proxy keeps of a repository between calls.
type repoInfo struct {
	private bool
	// verified is the owner's mark (organizations only), if looked up.
	verified, verifiedKnown bool
}

// getRepo reads whether the repository exists and is private.
func getRepo(ctx context.Context, gh *github.Client, owner, repo string) (repoInfo, error) {
	r, _, err := gh.Repositories.Get(ctx, owner, repo)
	if err != nil {
		if err = brokerclient.Classify(err); errors.Is(err, brokerclient.ErrNotFound) {
			return repoInfo{}, ErrRepoNotFound
		}
		return repoInfo{}, err
	}
	return repoInfo{private: r.GetPrivate() || r.GetVisibility() == "private" || r.GetVisibility() == "internal"}, nil
}

// isVerified says whether GitHub.com marks the owner a verified
// organization; a user account never is.
func isVerified(ctx context.Context, gh *github.Client, owner string) (bool, error) {
	org, _, err := gh.Organizations.Get(ctx, owner)
	if err != nil {
		if err = brokerclient.Classify(err); errors.Is(err, brokerclient.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return org.GetIsVerified(), nil
}

// resolve turns a branch, tag or SHA into the commit's full SHA.
func resolve(ctx context.Context, gh *github.Client, owner, repo, ref string) (string, error) {
	c, _, err := gh.Repositories.GetCommit(ctx, owner, repo, ref, &github.ListOptions{PerPage: 1})
	if err != nil {
		switch err = brokerclient.Classify(err); {
		case errors.Is(err, brokerclient.ErrRejected):
			return "", ErrRefNotFound // 422: "No commit found for SHA"
		case errors.Is(err, brokerclient.ErrNotFound):
			return "", ErrRepoNotFound
		}
		return "", err
	}
	if !IsSHA(c.GetSHA()) {
		return "", fmt.Errorf("GitHub.com answered a commit without a SHA for %s/%s@%s", owner, repo, ref)
	}
	return strings.ToLower(c.GetSHA()), nil
}

// download writes the tarball of the commit to f and returns its size.
// GitHub.com answers the API's tarball route with a redirect to its
// download host, which takes no token: the file is fetched from there
// with plain, whose requests carry no credential.
func download(ctx context.Context, gh *github.Client, plain *http.Client, owner, repo, commit string, limit int64, f *os.File) (int64, error) {
	loc, resp, err := gh.Repositories.GetArchiveLink(ctx, owner, repo, github.Tarball, &github.RepositoryContentGetOptions{Ref: commit}, 0)
	if err != nil {
		if resp == nil {
			return 0, brokerclient.Classify(err)
		}
		if resp.StatusCode == http.StatusNotFound {
			return 0, ErrRefNotFound
		}
		if cerr := github.CheckResponse(resp.Response); cerr != nil {
			return 0, brokerclient.Classify(cerr)
		}
		return 0, brokerclient.Classify(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return 0, err
	}
	r, err := plain.Do(req)
	if err != nil {
		return 0, brokerclient.Classify(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		// The download host answers without the API's JSON errors.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4096))
		switch {
		case r.StatusCode == http.StatusNotFound:
			return 0, ErrRefNotFound
		case r.StatusCode >= 500:
			return 0, &brokerclient.GitHubError{Kind: brokerclient.ErrUnavailable, StatusCode: r.StatusCode, Message: "the download failed", Err: errors.New(r.Status)}
		}
		return 0, &brokerclient.GitHubError{Kind: brokerclient.ErrUnexpected, StatusCode: r.StatusCode, Message: "the download failed", Err: errors.New(r.Status)}
	}
	n, err := io.Copy(f, io.LimitReader(r.Body, limit+1))
	if err != nil {
		return n, &brokerclient.GitHubError{Kind: brokerclient.ErrUnreachable, Err: fmt.Errorf("the download broke off after %d bytes: %w", n, err)}
	}
	if n > limit {
		return n, ErrTooLarge
	}
	return n, nil
}
