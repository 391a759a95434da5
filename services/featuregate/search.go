package featuregate

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/logging"
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

	mu         sync.Mutex
	transports map[string]*brokerclient.Transport // by connection
}

// NewSearcher searches the GitHub API at githubURL with tokens the broker
// issues (the broker's connection carries the gate's credentials).
func NewSearcher(broker brokerv1.TokenBrokerServiceClient, githubURL string) (*Searcher, error) {
	base, err := url.Parse(strings.TrimSuffix(githubURL, "/") + "/")
	if err != nil {
		return nil, err
	}
	return &Searcher{broker: broker, base: base, transports: map[string]*brokerclient.Transport{}}, nil
}

// client is a go-github client whose token comes from the broker; one
// transport per connection keeps its token between searches.
func (s *Searcher) client(conn string) *github.Client {
	s.mu.Lock()
	t := s.transports[conn]
	if t == nil {
		t = &brokerclient.Transport{Broker: s.broker, Request: &brokerv1.IssueTokenRequest{ConnectionId: conn, Permissions: searchPermissions}}
		s.transports[conn] = t
	}
	s.mu.Unlock()
	c := github.NewClient(&http.Client{Transport: t})
	c.BaseURL = s.base
	return c
}

// SetSearcher enables the Search RPC.
func (s *Server) SetSearcher(x *Searcher) { s.searcher = x }

// Search implements the RPC: GitHub.com results for a server user, public
// ones, and private ones of the connected account when the enterprise
// allows it and the user linked a GitHub.com account.
func (s *Server) Search(ctx context.Context, req *featuregatev1.SearchRequest) (*featuregatev1.SearchResponse, error) {
	var v apierr.Violations
	checkConnectionID(&v, req.GetConnectionId())
	checkUser(&v, "user", req.GetUser())
	if q := strings.TrimSpace(req.GetQuery()); q == "" || len(q) > 256 {
		v.Add("query", "must be 1 to 256 characters")
	}
	if req.GetKind() != featuregatev1.SearchKind_SEARCH_KIND_CODE && req.GetKind() != featuregatev1.SearchKind_SEARCH_KIND_ISSUES {
		v.Add("kind", "must be SEARCH_KIND_CODE or SEARCH_KIND_ISSUES")
	}
	size, err := validate.PageSize(req.GetPageSize())
	v.Check("page_size", err)
	if err := v.Err(); err != nil {
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
	switch {
	case !snap.GetConnected():
		return nil, preconditionFailed("REASON_NOT_CONNECTED", "unified_search", "unified search is not available: the connection is not CONNECTED")
	case !setting.GetEnabled():
		return nil, preconditionFailed("REASON_DISABLED", "unified_search", "unified search is disabled for this connection")
	}
	private := false
	if setting.GetIncludePrivate() {
		facts, err := s.store.UserFacts(ctx, req.GetConnectionId(), []string{req.GetUser()})
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		private = facts.links[req.GetUser()] != nil
	}
	owner, err := s.store.AccountLogin(ctx, req.GetConnectionId())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	q := req.GetQuery()
	if !private {
		q += " is:public"
	}
	gh := s.searcher.client(req.GetConnectionId())
	opts := &github.SearchOptions{ListOptions: github.ListOptions{PerPage: size}}
	// A private result is shown only when the user may see private
	// results and the connected account owns its repository.
	keep := func(repoPrivate bool, fullName string) bool {
		return !repoPrivate || (private && strings.EqualFold(strings.SplitN(fullName, "/", 2)[0], owner))
	}
	resp := &featuregatev1.SearchResponse{}
	if req.GetKind() == featuregatev1.SearchKind_SEARCH_KIND_CODE {
		res, _, err := gh.Search.Code(ctx, q, opts)
		if err != nil {
			return nil, searchFailed(ctx, err)
		}
		for _, r := range res.CodeResults {
			repo := r.GetRepository()
			if keep(repo.GetPrivate(), repo.GetFullName()) {
				resp.Results = append(resp.Results, &featuregatev1.SearchResult{Source: "github.com", Repository: repo.GetFullName(), Title: r.GetPath(), Url: r.GetHTMLURL(), Private: repo.GetPrivate()})
			}
		}
	} else {
		res, _, err := gh.Search.Issues(ctx, q, opts)
		if err != nil {
			return nil, searchFailed(ctx, err)
		}
		for _, is := range res.Issues {
			repo := is.GetRepository()
			name := repo.GetFullName()
			if name == "" {
				name = strings.TrimPrefix(is.GetRepositoryURL(), "https://api.github.com/repos/")
			}
			if keep(repo.GetPrivate(), name) {
				resp.Results = append(resp.Results, &featuregatev1.SearchResult{Source: "github.com", Repository: name, Title: is.GetTitle(), Url: is.GetHTMLURL(), Private: repo.GetPrivate()})
			}
		}
	}
	resp.TotalCount = int32(len(resp.Results))
	return resp, nil
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
