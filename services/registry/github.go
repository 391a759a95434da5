package registry

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/githubapp"
	"github.com/google/go-github/v60/github"
)

// The connector's calls to GitHub.com, as the App (a JWT signed by Vault
// transit) or anonymously. Here, and only here, GitHub.com's answers are
// told apart by status: a failed call returns an error that is
// ErrGitHubNotFound or ErrGitHubRefused when GitHub.com refused it, which
// the rest of the registry tests with errors.Is.

var (
	// ErrGitHubNotFound is GitHub.com's 404 (no such code, App or
	// installation, or none the caller may see).
	ErrGitHubNotFound = errors.New("not found on GitHub.com")
	// ErrGitHubRefused is GitHub.com refusing the request with a 4xx answer
	// (ErrGitHubNotFound is one); sent again unchanged it fails again. A
	// rate limit, a 5xx or no answer at all is not a refusal.
	ErrGitHubRefused = errors.New("refused by GitHub.com")
)

// gitHubError is a call GitHub.com refused or failed: go-github's error,
// for the log, and the status that classifies it.
type gitHubError struct {
	status int
	err    error
}

func (e *gitHubError) Error() string { return e.err.Error() }
func (e *gitHubError) Unwrap() error { return e.err }

func (e *gitHubError) Is(target error) bool {
	switch target {
	case ErrGitHubNotFound:
		return e.status == http.StatusNotFound
	case ErrGitHubRefused:
		return e.status >= 400 && e.status < 500
	}
	return false
}

// classify gives a failed call's error its classes. go-github reports rate
// limits as their own types, not as an ErrorResponse, so they stay
// unclassified.
func classify(err error) error {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return &gitHubError{status: er.Response.StatusCode, err: err}
	}
	return err
}

// GitHub is GitHub.com's API as the server reaches it without an App:
// looking up the organization a connection is for.
type GitHub struct {
	API  *url.URL
	HTTP *http.Client
}

func (g GitHub) client(auth string) *github.Client {
	gh := github.NewClient(g.HTTP)
	if auth != "" {
		gh = gh.WithAuthToken(auth)
	}
	gh.BaseURL = g.API
	return gh
}

// organization looks up an organization's public profile, anonymously:
// ErrGitHubNotFound when GitHub.com has no organization of that login.
func (g GitHub) organization(ctx context.Context, login string) (ghAccount, error) {
	var org ghAccount
	err := call(ctx, g.client(""), http.MethodGet, "orgs/"+url.PathEscape(login), &org)
	if err == nil && org.Type != "Organization" {
		err = &gitHubError{status: http.StatusNotFound, err: errors.New(login + " is a " + org.Type)}
	}
	return org, err
}

func (c *Connector) github(auth string) *github.Client {
	return GitHub{API: c.GitHubAPI, HTTP: c.HTTP}.client(auth)
}

// appJWT signs an App JWT for the connection's App with the newest key
// version, or version when positive.
func (c *Connector) appJWT(ctx context.Context, appID int64, key string, version int) (string, error) {
	tok, _, err := githubapp.JWT(ctx, c.Transit, key, version, appID, c.now())
	return tok, err
}

// signingVersion is the newest key version the record holds (0: the
// newest in Vault): a newer one imported in Vault signs only once GitHub.com
// accepts it.
func signingVersion(conn *registryv1.Connection) int {
	if v := conn.GetTransitKey().GetVersions(); len(v) > 0 {
		return int(v[len(v)-1])
	}
	return 0
}

// call makes one GitHub API call through go-github (its errors, rate-limit
// handling and headers) and decodes the answer into out; a failure is
// classified.
func (c *Connector) call(ctx context.Context, auth, method, path string, out any) error {
	return call(ctx, c.github(auth), method, path, out)
}

func call(ctx context.Context, gh *github.Client, method, path string, out any) error {
	var body any
	if method == http.MethodPost {
		body = map[string]any{}
	}
	req, err := gh.NewRequest(method, path, body)
	if err != nil {
		return err
	}
	_, err = gh.Do(ctx, req, out)
	return classify(err)
}

// deleteInstallation removes installation id of the App that jwt signs
// for.
func (c *Connector) deleteInstallation(ctx context.Context, jwt string, id int64) error {
	_, err := c.github(jwt).Apps.DeleteInstallation(ctx, id)
	return classify(err)
}

// The few fields of GitHub's objects the connector reads.
type (
	ghAccount struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Slug  string `json:"slug"`
		// Type is "Organization" or "User"; an enterprise has none.
		Type string `json:"type"`
	}
	appConversion struct {
		ID            int64             `json:"id"`
		Slug          string            `json:"slug"`
		ClientID      string            `json:"client_id"`
		ClientSecret  string            `json:"client_secret"`
		WebhookSecret string            `json:"webhook_secret"`
		PEM           string            `json:"pem"`
		Owner         ghAccount         `json:"owner"`
		Permissions   map[string]string `json:"permissions"`
	}
	ghApp struct {
		ID       int64  `json:"id"`
		Slug     string `json:"slug"`
		ClientID string `json:"client_id"`
	}
	ghInstallation struct {
		ID          int64             `json:"id"`
		Account     ghAccount         `json:"account"`
		TargetType  string            `json:"target_type"`
		Permissions map[string]string `json:"permissions"`
		// RepositorySelection is "all" or "selected".
		RepositorySelection string `json:"repository_selection"`
	}
)

func (a ghAccount) is(login string) bool {
	return strings.EqualFold(a.Login, login) || (a.Slug != "" && strings.EqualFold(a.Slug, login))
}

func (a ghAccount) name() string {
	if a.Login != "" {
		return a.Login
	}
	return a.Slug
}

// accountKinds are the installation target types of the account kinds.
var accountKinds = map[string]registryv1.AccountKind{
	"Organization": registryv1.AccountKind_ACCOUNT_KIND_ORGANIZATION,
	"Enterprise":   registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE,
}

// describe names an account for a message: login, kind and id if known.
func describe(kind registryv1.AccountKind, login string, id int64) string {
	k := strings.ToLower(strings.TrimPrefix(kind.String(), "ACCOUNT_KIND_"))
	if kind == registryv1.AccountKind_ACCOUNT_KIND_UNSPECIFIED {
		k = "another kind"
	}
	if id == 0 {
		return login + " (" + k + ")"
	}
	return login + " (" + k + ", id " + strconv.FormatInt(id, 10) + ")"
}
