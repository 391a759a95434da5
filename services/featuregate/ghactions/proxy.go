package ghactions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/google/go-github/v60/github"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Options configure a Proxy; zero values take the defaults.
type Options struct {
	// CacheDir keeps the tarballs; "" makes a temporary directory that
	// Close removes.
	CacheDir string
	// CacheBytes bounds the cache; default 2 GiB.
	CacheBytes int64
	// MaxBytes is the largest tarball downloaded; default 1 GiB.
	MaxBytes int64
	// RepoTTL is how long what GitHub.com said of a repository (there,
	// public, its owner verified) is believed; default 1 min. A full SHA
	// found in the cache is served without a call within it; a branch or
	// tag is resolved on every request, since it moves.
	RepoTTL time.Duration
	// DownloadTimeout bounds one download from GitHub.com; default 10 min.
	DownloadTimeout time.Duration
	// Registerer takes the proxy's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Proxy serves actions' tarballs to runners: policy, repository checks,
// ref resolution and the cache.
type Proxy struct {
	store   *Store
	cache   *Cache
	opts    Options
	tempDir string
	plain   *http.Client
	repos   *expirable.LRU[string, repoInfo]
	flight  singleflight.Group

	requests   *prometheus.CounterVec
	downloaded prometheus.Counter
}

// NewProxy opens the cache and readies the proxy.
func NewProxy(store *Store, opts Options) (*Proxy, error) {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 2 << 30
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.RepoTTL <= 0 {
		opts.RepoTTL = time.Minute
	}
	if opts.DownloadTimeout <= 0 {
		opts.DownloadTimeout = 10 * time.Minute
	}
	p := &Proxy{store: store, opts: opts, plain: &http.Client{Transport: tracing.Transport(nil)},
		repos: expirable.NewLRU[string, repoInfo](10000, nil, opts.RepoTTL),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_featuregate_actions_requests_total",
			Help: "Runners' requests for GitHub.com actions, by result: cached (served from the cache), downloaded (fetched from GitHub.com), refused (policy, private, missing repository or ref, too large), failed (GitHub.com or the disk failed)."}, []string{"result"}),
		downloaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "ghconnect_featuregate_actions_downloaded_bytes_total",
			Help: "Bytes of action tarballs downloaded from GitHub.com."}),
	}
	dir := opts.CacheDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ghconnect-actions-"); err != nil {
			return nil, fmt.Errorf("ghactions: no cache directory for GitHub.com actions: none is set (-actions-cache-dir) and the temporary directory cannot be used: %w", err)
		}
		p.tempDir = dir
	}
	var err error
	if p.cache, err = OpenCache(dir, opts.CacheBytes); err != nil {
		_ = p.Close() // the cache's error is the one to report
		return nil, err
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(p.requests, p.downloaded,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ghconnect_featuregate_actions_cache_bytes",
				Help: "Bytes of action tarballs in this replica's cache."}, func() float64 { return float64(p.cache.Stats().Bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ghconnect_featuregate_actions_cache_limit_bytes",
				Help: "The most bytes this replica's action cache keeps."}, func() float64 { return float64(p.opts.CacheBytes) }))
	}
	for _, r := range []string{"cached", "downloaded", "refused", "failed"} {
		p.requests.WithLabelValues(r)
	}
	return p, nil
}

// Close removes the cache's directory if the proxy made it.
func (p *Proxy) Close() error {
	if p.tempDir == "" {
		return nil
	}
	return os.RemoveAll(p.tempDir)
}

// Store is the proxy's store.
func (p *Proxy) Store() *Store { return p.store }

// CacheStats says what this replica's cache holds.
func (p *Proxy) CacheStats() CacheStats { return p.cache.Stats() }

// Archive describes the tarball Open found.
type Archive struct {
	Owner, Repo, Ref string
	// SHA is the commit the ref named when asked.
	SHA  string
	Size int64
	// FromCache: no download from GitHub.com was needed.
	FromCache bool
}

// RefusedError is a request refused for the action itself: Kind is
// ErrBlocked, ErrRepoNotFound, ErrPrivate, ErrRefNotFound or ErrTooLarge;
// Message says it for the runner's log.
type RefusedError struct {
	Kind    error
	Message string
}

func (e *RefusedError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrBlocked) and the like work.
func (e *RefusedError) Is(target error) bool { return target == e.Kind }

// Open finds owner/repo@ref for a runner and opens its tarball, calling
// GitHub.com through gh (a token of the connection's App) as needed. The
// caller reads and closes the file.
func (p *Proxy) Open(ctx context.Context, gh *github.Client, owner, repo, ref string) (Archive, *os.File, error) {
	a := Archive{Owner: owner, Repo: repo, Ref: ref}
	f, err := p.open(ctx, gh, &a)
	if err == nil {
		result := "downloaded"
		if a.FromCache {
			result = "cached"
		}
		p.requests.WithLabelValues(result).Inc()
		return a, f, nil
	}
	what := owner + "/" + repo + "@" + ref
	// The status row is written after the runner's own deadline, too.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		p.requests.WithLabelValues("refused").Inc()
		if rerr := p.store.recordRefusal(rctx, refused.Message, time.Now()); rerr != nil {
			logging.FromContext(ctx).Warn("could not record a refused action", zap.Error(rerr))
		}
	case ctx.Err() != nil:
		// The runner gave up: nothing to say of GitHub.com.
		return a, nil, ctx.Err()
	default:
		p.requests.WithLabelValues("failed").Inc()
		if rerr := p.store.recordError(rctx, what+": "+err.Error(), time.Now()); rerr != nil {
			logging.FromContext(ctx).Warn("could not record a failed action download", zap.Error(rerr))
		}
	}
	return a, nil, err
}

func (p *Proxy) open(ctx context.Context, gh *github.Client, a *Archive) (*os.File, error) {
	pol, err := p.store.Policy(ctx)
	if err != nil {
		return nil, err
	}
	// The policy first: a blocked action costs GitHub.com nothing.
	d := pol.Decide(a.Owner, a.Repo, a.Ref, false)
	needVerified := !d.Allowed && pol.NeedsVerification(a.Owner, a.Repo, a.Ref)
	if !d.Allowed && !needVerified {
		return nil, &RefusedError{ErrBlocked, d.Reason}
	}
	info, err := p.repo(ctx, gh, a.Owner, a.Repo, needVerified)
	if err != nil {
		return nil, err
	}
	if needVerified {
		if d = pol.Decide(a.Owner, a.Repo, a.Ref, info.verified); !d.Allowed {
			return nil, &RefusedError{ErrBlocked, d.Reason}
		}
	}
	if IsSHA(a.Ref) {
		a.SHA = strings.ToLower(a.Ref)
	} else if a.SHA, err = resolve(ctx, gh, a.Owner, a.Repo, a.Ref); err != nil {
		return nil, p.refused(err, a)
	}
	key := Key(a.Owner, a.Repo, a.SHA)
	if f, size, ok := p.cache.Get(key); ok {
		a.Size, a.FromCache = size, true
		return f, nil
	}
	// One download per commit, however many runners ask at once.
	// The download goes on if this runner gives up: others may wait on it,
	// and the cache keeps it for the next.
	res, err, shared := p.flight.Do(key, func() (any, error) { return p.fetch(context.WithoutCancel(ctx), gh, a, key) })
	if err != nil {
		return nil, p.refused(err, a)
	}
	fetched := res.(fetched)
	if !shared {
		a.Size = fetched.size
		return fetched.file, nil
	}
	if fetched.file != nil {
		// A tarball too large to keep: the leader's file is its own.
		_ = fetched.file.Close()
	}
	if f, size, ok := p.cache.Get(key); ok {
		a.Size, a.FromCache = size, true
		return f, nil
	}
	r, err := p.fetch(ctx, gh, a, key)
	if err != nil {
		return nil, p.refused(err, a)
	}
	a.Size = r.size
	return r.file, nil
}

type fetched struct {
	file *os.File
	size int64
}

// fetch downloads the tarball into the cache.
func (p *Proxy) fetch(ctx context.Context, gh *github.Client, a *Archive, key string) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DownloadTimeout)
	defer cancel()
	tmp, err := p.cache.Create()
	if err != nil {
		return fetched{}, fmt.Errorf("ghactions: the cache: %w", err)
	}
	n, err := download(ctx, gh, p.plain, a.Owner, a.Repo, a.SHA, p.opts.MaxBytes, tmp)
	if err != nil {
		p.cache.Discard(tmp)
		if cerr := ctx.Err(); cerr != nil {
			return fetched{}, cerr
		}
		return fetched{}, err
	}
	f, err := p.cache.Put(key, tmp, n)
	if err != nil {
		return fetched{}, err
	}
	p.downloaded.Add(float64(n))
	what := fmt.Sprintf("%s/%s@%s (%s), %d bytes", a.Owner, a.Repo, a.Ref, a.SHA, n)
	if a.Ref == a.SHA {
		what = fmt.Sprintf("%s/%s@%s, %d bytes", a.Owner, a.Repo, a.SHA, n)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if err := p.store.recordDownload(rctx, what, n, time.Now()); err != nil {
		logging.FromContext(ctx).Warn("could not record an action download", zap.Error(err))
	}
	return fetched{file: f, size: n}, nil
}

// repo is what GitHub.com says of the repository, believed for RepoTTL.
func (p *Proxy) repo(ctx context.Context, gh *github.Client, owner, repo string, verified bool) (repoInfo, error) {
	key := strings.ToLower(owner + "/" + repo)
	info, ok := p.repos.Get(key)
	if !ok {
		var err error
		if info, err = getRepo(ctx, gh, owner, repo); err != nil {
			return repoInfo{}, p.refused(err, &Archive{Owner: owner, Repo: repo})
		}
		p.repos.Add(key, info)
	}
	if info.private {
		return repoInfo{}, &RefusedError{ErrPrivate, fmt.Sprintf("%s/%s is a private repository: runners may use only public actions from GitHub.com", owner, repo)}
	}
	if verified && !info.verifiedKnown {
		v, err := isVerified(ctx, gh, owner)
		if err != nil {
			return repoInfo{}, err
		}
		info.verified, info.verifiedKnown = v, true
		p.repos.Add(key, info)
	}
	return info, nil
}

// refused words the action's own failures as RefusedErrors and forgets
// what the proxy believed of a repository GitHub.com no longer has.
func (p *Proxy) refused(err error, a *Archive) error {
	name := a.Owner + "/" + a.Repo
	switch {
	case errors.Is(err, ErrRepoNotFound):
		p.repos.Remove(strings.ToLower(name))
		return &RefusedError{ErrRepoNotFound, fmt.Sprintf("%s: no such public repository on GitHub.com (deleted, renamed, or private)", name)}
	case errors.Is(err, ErrRefNotFound):
		return &RefusedError{ErrRefNotFound, fmt.Sprintf("%s has no branch, tag or commit %q", name, a.Ref)}
	case errors.Is(err, ErrTooLarge):
		return &RefusedError{ErrTooLarge, fmt.Sprintf("%s@%s: the tarball is over %d bytes, the most the server downloads", name, a.Ref, p.opts.MaxBytes)}
	}
	return err
}
