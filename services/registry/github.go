package registry

import (
	"context"
	"net/http"
	"strings"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/githubapp"
	"github.com/google/go-github/v60/github"
)

// The connector's calls to GitHub.com, as the App (a JWT signed by Vault
// transit) or anonymously.

func (c *Connector) github(auth string) *github.Client {
	gh := github.NewClient(c.HTTP)
	if auth != "" {
		gh = gh.WithAuthToken(auth)
	}
	gh.BaseURL = c.GitHubAPI
	return gh
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
// handling and headers) and decodes the answer into out.
func (c *Connector) call(ctx context.Context, auth, method, path string, out any) error {
	gh := c.github(auth)
	var body any
	if method == http.MethodPost {
		body = map[string]any{}
	}
	req, err := gh.NewRequest(method, path, body)
	if err != nil {
		return err
	}
	_, err = gh.Do(ctx, req, out)
	return err
}

// The few fields of GitHub's objects the connector reads.
type (
	ghAccount struct {
		Login string `json:"login"`
		Slug  string `json:"slug"`
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
		Permissions map[string]string `json:"permissions"`
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
