package featuregate

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// searchPermissions is what unified search asks the broker for: read-only.
var searchPermissions = map[string]string{"contents": "read", "issues": "read", "metadata": "read"}

// Searcher runs unified searches on GitHub.com with tokens from the broker.
type Searcher struct {
	broker brokerv1.TokenBrokerServiceClient
	base   *url.URL
	// http carries searches made with a person's token.
	http *http.Client
	// app makes public searches as the App.
	app *appClients
}

// NewSearcher searches the GitHub API at githubURL with tokens the broker
// issues (the broker's connection carries the gate's credentials).
func NewSearcher(broker brokerv1.TokenBrokerServiceClient, githubURL string) (*Searcher, error) {
	base, err := githubBase(githubURL)
	if err != nil {
		return nil, err
	}
	return &Searcher{broker: broker, base: base, http: &http.Client{Transport: tracing.Transport(nil), Timeout: 10 * time.Second}, app: newAppClients(broker, base, searchPermissions, 0)}, nil
}

// Search implements the RPC: GitHub.com results for a server user, public
// ones, and private ones of the connected account when the enterprise
// allows it and the user linked a GitHub.com account.
func (s *Server) Search(ctx context.Context, req *featuregatev1.SearchRequest) (*featuregatev1.SearchResponse, error) {
	size, _ := validate.PageSize(req.GetPageSize()) // never negative: the rules refuse it
	if err := forSelf(ctx, req.GetUser()); err != nil {
		return nil, err
	}
	if s.searcher == nil {
		return nil, status.Error(codes.Unavailable, "unified search has no broker configured")
	}
	snap := s.view.get(req.GetConnectionId())
	var setting *featuregatev1.FeatureSetting
	for _, f := range snap.GetSettings().GetFeatures() {
		if f.Feature == featuregatev1.Feature_FEATURE_UNIFIED_SEARCH {
			setting = f
		}
	}
	switch st, missing := featureState(snap, featuregatev1.Feature_FEATURE_UNIFIED_SEARCH); st {
	case featuregatev1.Reason_REASON_NOT_CONNECTED:
		return nil, apierr.Precondition("REASON_NOT_CONNECTED", "unified_search", "unified search is not available: the connection is not CONNECTED")
	case featuregatev1.Reason_REASON_DISABLED:
		return nil, apierr.Precondition("REASON_DISABLED", "unified_search", "unified search is disabled for this connection")
	case featuregatev1.Reason_REASON_MISSING_PERMISSIONS:
		return nil, apierr.Precondition("REASON_MISSING_PERMISSIONS", "unified_search", "unified search is on but does not work: the connection's GitHub App lacks "+permissions.String(missing)+" on GitHub.com")
	}
	owner, err := s.store.AccountLogin(ctx, req.GetConnectionId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &featuregatev1.SearchResponse{}
	// Private results come from a search made with the person's own
	// GitHub.com token, so they are what that person may see there, and
	// are further kept to repositories the connected account owns.
	if setting.GetIncludePrivate() {
		facts, err := s.store.userFactsOf(ctx, req.GetConnectionId(), []string{req.GetUser()})
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		switch link := facts.links[req.GetUser()]; {
		case link == nil:
			resp.PrivateNotice = "connect your GitHub.com account to see private results"
		case link.Status == featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED:
			resp.PrivateNotice = errReconnect.Error()
		default:
			private, err := s.searchAsPerson(ctx, req, size, owner)
			if errors.Is(err, errReconnect) {
				resp.PrivateNotice = err.Error()
				break
			}
			if err != nil {
				return nil, err
			}
			resp.Results = private
		}
	}
	// Public results come from the installation token.
	public, err := search(ctx, s.searcher.app.client(req.GetConnectionId()), req.GetKind(), req.GetQuery()+" is:public", size, func(repoPrivate bool, _ string) bool { return !repoPrivate })
	if err != nil {
		return nil, searchFailed(ctx, err)
	}
	resp.Results = append(resp.Results, public...)
	if len(resp.Results) > size {
		resp.Results = resp.Results[:size]
	}
	resp.TotalCount = int32(len(resp.Results)) //nolint:gosec // G115: at most size, itself at most validate.MaxPageSize
	return resp, nil
}

// searchAsPerson searches with the person's own GitHub.com token and
// keeps private hits of repositories owner owns. A token GitHub.com
// refuses (401) is refreshed once.
func (s *Server) searchAsPerson(ctx context.Context, req *featuregatev1.SearchRequest, size int, owner string) ([]*featuregatev1.SearchResult, error) {
	keep := func(repoPrivate bool, fullName string) bool {
		return repoPrivate && strings.EqualFold(strings.SplitN(fullName, "/", 2)[0], owner)
	}
	refused := ""
	for attempt := 0; ; attempt++ {
		token, err := s.userToken(ctx, req.GetConnectionId(), req.GetUser(), refused)
		if err != nil {
			return nil, err
		}
		gh := github.NewClient(s.searcher.http).WithAuthToken(token)
		gh.BaseURL = s.searcher.base
		out, err := search(ctx, gh, req.GetKind(), req.GetQuery(), size, keep)
		var er *github.ErrorResponse
		if attempt == 0 && errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusUnauthorized {
			refused = token
			continue
		}
		if err != nil {
			return nil, searchFailed(ctx, err)
		}
		return out, nil
	}
}

// search runs one search with gh and keeps the hits keep allows.
func search(ctx context.Context, gh *github.Client, kind featuregatev1.SearchKind, q string, size int, keep func(repoPrivate bool, fullName string) bool) ([]*featuregatev1.SearchResult, error) {
	opts := &github.SearchOptions{ListOptions: github.ListOptions{PerPage: size}}
	var out []*featuregatev1.SearchResult
	if kind == featuregatev1.SearchKind_SEARCH_KIND_CODE {
		res, _, err := gh.Search.Code(ctx, q, opts)
		if err != nil {
			return nil, err
		}
		for _, r := range res.CodeResults {
			repo := r.GetRepository()
			if keep(repo.GetPrivate(), repo.GetFullName()) {
				out = append(out, &featuregatev1.SearchResult{Source: "github.com", Repository: repo.GetFullName(), Title: r.GetPath(), Url: r.GetHTMLURL(), Private: repo.GetPrivate()})
			}
		}
		return out, nil
	}
	res, _, err := gh.Search.Issues(ctx, q, opts)
	if err != nil {
		return nil, err
	}
	for _, is := range res.Issues {
		repo := is.GetRepository()
		name := repo.GetFullName()
		if name == "" {
			name = strings.TrimPrefix(is.GetRepositoryURL(), "https://api.github.com/repos/")
		}
		if keep(repo.GetPrivate(), name) {
			out = append(out, &featuregatev1.SearchResult{Source: "github.com", Repository: name, Title: is.GetTitle(), Url: is.GetHTMLURL(), Private: repo.GetPrivate()})
		}
	}
	return out, nil
}

// searchFailed passes on the broker's refusal, or reports GitHub.com as
// unavailable (with when to retry, when GitHub.com said); the cause goes to
// the log.
func searchFailed(ctx context.Context, err error) error {
	err = brokerclient.Classify(err)
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return st.Err()
	}
	var ge *brokerclient.GitHubError
	if errors.As(err, &ge) && ge.Kind == brokerclient.ErrRateLimited {
		logging.FromContext(ctx).Warn("GitHub.com search failed", zap.Error(err))
		return apierr.Retry(codes.Unavailable, "GitHub.com search failed", time.Until(ge.RetryAt))
	}
	return apierr.Unavailable(ctx, err, "GitHub.com search failed")
}
