// Package broker is the token-broker service: internal services ask it for
// GitHub.com installation tokens limited to the repositories and permissions
// they need and their policy allows. The GitHub App's private key stays in
// Vault transit, which signs the App JWTs; tokens live only in memory, are
// shared by callers asking for the same scope (one GitHub exchange for any
// number of concurrent requests), renewed before they expire, and revoked
// when their connection is disconnected.
package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Options configure a Broker.
type Options struct {
	// Vault is the broker's Vault login (its AppRole, kept fresh).
	Vault *vaultauth.Session
	// GitHubURL is the API base: https://api.github.com/, a GHE.com or
	// GHES API URL, or the emulator.
	GitHubURL string
	Policy    *Policy
	// CacheSize bounds the shared tokens kept; 0 means DefaultCacheSize.
	CacheSize int
	// RefreshAhead renews a shared token this long before it expires, if
	// it was used within the last two RefreshAhead; 0 means 10 minutes.
	RefreshAhead time.Duration
	// RefreshEvery is how often renewal runs; 0 means 30 s.
	RefreshEvery time.Duration
	// HTTPClient talks to GitHub; nil means one that honours the
	// environment's proxy settings, with a 10 s deadline per call.
	HTTPClient *http.Client
	Registerer prometheus.Registerer
	// Audit receives one event per issuance or refusal, naming the call
	// (request id, method) as the context's logger would; nil uses the
	// context's logger.
	Audit *zap.Logger
	// Database keeps server users' GitHub.com grants (OpenDatabase); nil
	// turns user authorization off.
	Database *sqldb.DB
	// GitHubWebURL is where browsers and the OAuth token endpoint are:
	// https://github.com, or the emulator; empty means the API URL.
	GitHubWebURL string
	// Fleet lists the other brokers (see fleet); its Peers empty, this
	// broker exchanges every scope itself.
	Fleet FleetOptions
	// Dialer reaches the other brokers (needed with Fleet.Peers).
	Dialer *dial.Dialer
}

// DefaultCacheSize is the default bound on shared tokens: a large
// enterprise's scopes, about 55 MB of heap at the measured 370 B per token
// (README, Performance), which with the garbage collector's headroom fits
// the broker's 256 MiB memory limit (deploy/k8s).
const DefaultCacheSize = 150000

// MaxCacheSize is one more than the largest cache: its slots are
// numbered by int32, and one more than its size may be taken while the
// least recently used grant is evicted.
const MaxCacheSize = math.MaxInt32 - 1

// Broker issues and revokes tokens.
type Broker struct {
	opts   Options
	conns  *connections
	cache  *cache
	up     *upstream
	flight singleflight.Group
	m      *metrics
	now    func() time.Time
	audits *auditWriter
	users  *users
	fleet  *fleet // nil: alone
	// offersOff stops offers (the benchmark of the fetch path).
	offersOff atomic.Bool

	// issued holds the live grants the cache does not: exclusive ones, and
	// shared ones the cache replaced or evicted, for revocation.
	mu     sync.Mutex
	issued map[string]map[fingerprint]*grant // connection → token sha256 → grant
}

// New builds a broker.
func New(opts Options) (*Broker, error) {
	if opts.Policy == nil {
		return nil, errors.New("broker: a policy is required (deny by default)")
	}
	if opts.Vault == nil {
		return nil, errors.New("broker: a Vault login is required")
	}
	base, err := url.Parse(strings.TrimSuffix(opts.GitHubURL, "/") + "/")
	if err != nil || base.Host == "" {
		return nil, errors.New("broker: the GitHub API URL is not a URL")
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.CacheSize < 0 || opts.CacheSize >= MaxCacheSize {
		return nil, fmt.Errorf("broker: the cache size must be between 1 and %d", MaxCacheSize-1)
	}
	if opts.RefreshAhead == 0 {
		opts.RefreshAhead = 10 * time.Minute
	}
	if opts.RefreshEvery == 0 {
		opts.RefreshEvery = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Transport: tracing.Transport(&http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}),
			Timeout:   10 * time.Second,
		}
	}
	m := newMetrics(opts.Registerer)
	b := &Broker{
		opts:   opts,
		conns:  newConnections(),
		cache:  newCache(opts.CacheSize),
		up:     newUpstream(opts.Vault, base, opts.HTTPClient, m),
		m:      m,
		now:    time.Now,
		audits: newAuditWriter(m),
		issued: map[string]map[fingerprint]*grant{},
	}
	if opts.Fleet.Peers != "" {
		if opts.Dialer == nil {
			return nil, errors.New("broker: a fleet needs a dialer")
		}
		if b.fleet, err = newFleet(opts.Fleet, opts.Dialer); err != nil {
			return nil, err
		}
		b.fleet.offered = func(ok bool) {
			if ok {
				m.offersOut.WithLabelValues("ok").Inc()
			} else {
				m.offersOut.WithLabelValues("failed").Inc()
			}
		}
		b.fleet.dropped = func() { m.offersOut.WithLabelValues("dropped").Inc() }
	}
	if opts.Database != nil {
		web := base
		if opts.GitHubWebURL != "" {
			if web, err = url.Parse(strings.TrimSuffix(opts.GitHubWebURL, "/") + "/"); err != nil || web.Host == "" {
				return nil, errors.New("broker: the GitHub web URL is not a URL")
			}
		}
		b.users = &users{store: &userStore{db: opts.Database}, conns: b.conns, vault: opts.Vault, http: opts.HTTPClient,
			api: base, web: web, now: time.Now, cache: map[userCacheKey]*userToken{}}
	}
	return b, nil
}

// ApplyRegistryEvent is the registry follower's sink: a connection that
// stops being CONNECTED has its tokens revoked.
func (b *Broker) ApplyRegistryEvent(ctx context.Context, ev *registryv1.ConnectionEvent) error {
	disconnected, newKey := b.conns.apply(ev)
	if newKey {
		// A newer key version is recorded (GitHub.com accepts it): the
		// next JWT is signed with it.
		b.up.forgetOlderJWT(ev.GetConnectionId(), b.conns.get(ev.GetConnectionId()).newest())
	}
	if disconnected {
		revoked, failed := b.revokeConnection(ctx, ev.GetConnectionId())
		logging.FromContext(ctx).Info("connection disconnected; tokens revoked", zap.String("connection_id", ev.GetConnectionId()), zap.Int("revoked", revoked), zap.Int("failed", failed))
		if b.users != nil {
			go b.users.revokeConnection(context.WithoutCancel(ctx), b.conns.get(ev.GetConnectionId()))
		}
	}
	return nil
}

// RegistryRevision is the last registry revision applied.
func (b *Broker) RegistryRevision(ctx context.Context) (int64, error) { return b.conns.after(ctx) }

// auditTo is where ctx's queued audit events go: a logger and the fields
// naming the call, which the audit writer puts first in each line. Events
// carry them, and auditField, rather than a logger made with Logger.With,
// which would copy the logger on the hot path (logging.Call).
func (b *Broker) auditTo(ctx context.Context) (*zap.Logger, []zap.Field) {
	base, call := logging.Call(ctx)
	if b.opts.Audit != nil {
		base = b.opts.Audit
	}
	return base, call
}

// audit is a logger for audit lines written at once, off the hot path.
func (b *Broker) audit(ctx context.Context) *zap.Logger {
	if b.opts.Audit != nil {
		_, call := logging.Call(ctx)
		return b.opts.Audit.With(call...)
	}
	return logging.FromContext(ctx)
}

var auditField = zap.Bool("audit", true)

// issue returns a grant for scope sc: from the cache when it lives long
// enough, else from one exchange shared by every concurrent asker.
func (b *Broker) issue(ctx context.Context, c *connInfo, sc scope, minLife time.Duration, exclusive bool, caller string) (*grant, string, error) {
	if exclusive {
		b.m.exclusives.Inc()
		g, err := b.exclusive(ctx, c, sc.owned(), caller)
		if err != nil {
			return nil, "exclusive", err
		}
		return g, "exclusive", nil
	}
	var buf [256]byte
	kb := sc.appendKey(buf[:0], c.id, c.installationID)
	if g := b.cache.get(kb, minLife, b.now()); g != nil {
		b.m.hits.Inc()
		return g, "hit", nil
	}
	b.m.misses.Inc()
	key := string(kb)
	own := sc.owned()
	g, err := b.shared(ctx, key, minLife, func(ctx context.Context) (*grant, error) { return b.fill(ctx, c, own, key, minLife) })
	if err != nil {
		return nil, "miss", err
	}
	if g.lifeLeft(b.now()) < minLife {
		return nil, "miss", errors.New("GitHub.com issued a token shorter-lived than asked")
	}
	return g, "miss", nil
}

// shared returns key's grant from one call of get shared by every
// concurrent asker, cached and offered to the fleet; or from the cache,
// when another flight filled it while this one waited. get outlives any
// one caller's cancellation: others wait on it too.
func (b *Broker) shared(ctx context.Context, key string, minLife time.Duration, get func(context.Context) (*grant, error)) (*grant, error) {
	v, err, _ := b.flight.Do(key, func() (any, error) {
		if g := b.cache.get([]byte(key), minLife, b.now()); g != nil {
			return g, nil
		}
		g, err := get(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		b.track(b.cache.put(g, b.now())...)
		b.offer(g)
		return g, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*grant), nil
}

// track keeps grants the cache does not hold, for revocation; O(1) each.
func (b *Broker) track(gs ...*grant) {
	if len(gs) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, g := range gs {
		m := b.issued[g.conn()]
		if m == nil {
			m = map[fingerprint]*grant{}
			// The map keeps a copy of its own, not a grant's text.
			b.issued[strings.Clone(g.conn())] = m
		}
		m[g.sha256] = g
	}
}

// forgetExpired drops tracked grants that have expired: they need no
// revocation.
func (b *Broker) forgetExpired() {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for conn, m := range b.issued {
		for sha, g := range m {
			if g.lifeLeft(now) <= 0 {
				delete(m, sha)
			}
		}
		if len(m) == 0 {
			delete(b.issued, conn)
		}
	}
}

// revokeConnection revokes at GitHub every live token issued for a
// connection and forgets them.
func (b *Broker) revokeConnection(ctx context.Context, conn string) (revoked, failed int) {
	grants := b.cache.dropConnection(conn)
	b.mu.Lock()
	for _, g := range b.issued[conn] {
		grants = append(grants, g)
	}
	delete(b.issued, conn)
	b.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	for _, g := range grants {
		if g.lifeLeft(b.now()) <= 0 {
			continue
		}
		if g.from != "" && b.fleet.alive(g.from) {
			// A copy: the broker that exchanged it revokes it.
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := b.up.revoke(ctx, g.token())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				logging.FromContext(ctx).Warn("revoking a token failed; it expires within the hour", zap.Stringer("token_sha256", g.sha256), zap.Error(err))
				return
			}
			revoked++
		}()
	}
	wg.Wait()
	return revoked, failed
}

// revokeRefusal is why the broker will not revoke a token; reason is what
// the audit says.
type revokeRefusal struct{ msg, reason string }

func (r *revokeRefusal) Error() string { return r.msg }

// A token is revocable only by the caller it was issued to, and only when
// it is exclusive: a shared token serves other callers too.
var (
	errUnknownToken = &revokeRefusal{"no live token issued by this broker matches", "unknown token"}
	errSharedToken  = &revokeRefusal{"shared tokens cannot be revoked by one caller; ask for an exclusive token", "shared token"}
	errNotOwner     = &revokeRefusal{"the token was issued to another caller", "not the owner"}
)

// revokeToken revokes an exclusive token at GitHub for the caller it was
// issued to and forgets it; a refusal is a *revokeRefusal. Either outcome
// is audited.
func (b *Broker) revokeToken(ctx context.Context, caller, token string) error {
	sha := fingerprintOf(token)
	g := b.tracked(sha)
	if g == nil {
		// A shared token is in the cache only.
		g = b.cache.findToken(sha)
	}
	audit := b.audit(ctx).With(auditField, zap.String("caller", caller), zap.Stringer("token_sha256", sha))
	var refused *revokeRefusal
	switch {
	case g == nil:
		refused = errUnknownToken
	case !g.exclusive:
		refused = errSharedToken
	case g.owner != caller:
		refused = errNotOwner
	}
	if refused != nil {
		audit.Warn("token revocation refused", zap.String("reason", refused.reason))
		return refused
	}
	if err := b.up.revoke(ctx, g.token()); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.issued[g.conn()], sha)
	b.mu.Unlock()
	audit.Info("token revoked", zap.String("connection_id", g.conn()))
	return nil
}

// tracked returns the tracked grant with the token's fingerprint, or nil.
func (b *Broker) tracked(sha fingerprint) *grant {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.issued {
		if g := m[sha]; g != nil {
			return g
		}
	}
	return nil
}

// every runs fn each period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}

// refresh renews shared grants that expire soon, so callers never wait for
// an exchange at the hour mark. Run calls it every Options.RefreshEvery.
func (b *Broker) refresh(ctx context.Context) {
	b.forgetExpired()
	for _, old := range b.cache.due(b.now(), b.opts.RefreshAhead, 2*b.opts.RefreshAhead) {
		c := b.conns.get(old.conn())
		if c == nil || !c.connected {
			continue
		}
		key := old.key()
		sc, ok := scopeOfKey(key)
		if !ok {
			continue
		}
		_, err, _ := b.flight.Do(key, func() (any, error) {
			// A copy is renewed by its connection's owner, whose own
			// token is as old: asking for RefreshAhead makes it exchange
			// (once, for every broker holding a copy).
			g, err := b.fill(ctx, c, sc, key, b.opts.RefreshAhead)
			if err != nil {
				return nil, err
			}
			b.track(b.cache.put(g, b.now())...)
			b.offer(g)
			return g, nil
		})
		if err != nil {
			// The old token is still served until it expires.
			logging.FromContext(ctx).Warn("renewing a token ahead of expiry failed", zap.String("connection_id", c.id), zap.Error(err))
		}
	}
}

// jwtRenewEvery is how often App JWTs in use are checked for renewal.
const jwtRenewEvery = 15 * time.Second

// renewJWTs signs a new App JWT for every connection whose JWT is in use
// and about to stop being reused, so exchanges never wait for Vault at the
// JWT's expiry. It signs with the newest version, as an expired JWT would
// be; GitHub refusing it falls back as an exchange does. Run calls it
// every jwtRenewEvery.
func (b *Broker) renewJWTs(ctx context.Context) {
	for conn, used := range b.up.dueJWTs() {
		c := b.conns.get(conn)
		if c == nil || !c.connected {
			continue
		}
		if err := b.up.renewJWT(ctx, c, used); err != nil {
			logging.FromContext(ctx).Warn("renewing the App JWT ahead of expiry failed", zap.String("connection_id", conn), zap.Error(err))
		}
	}
}

// Run keeps the broker's background work going until ctx ends.
func (b *Broker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); every(ctx, jwtRenewEvery, b.renewJWTs) }()
	if b.fleet != nil {
		wg.Add(1)
		go func() { defer wg.Done(); b.fleet.run(ctx) }()
	}
	every(ctx, b.opts.RefreshEvery, b.refresh)
	wg.Wait()
	b.audits.flush()
}

// FlushAudit returns once every audit event of a call that has returned is
// written.
func (b *Broker) FlushAudit() { b.audits.flush() }

// Stats are plain counts for tests and benchmarks.
type Stats struct {
	Exchanges, Signs int64
	// Fetches are the tokens fetched from the connection's owner.
	Fetches int64
	Cached  int
}

// Stats returns the broker's counts.
func (b *Broker) Stats() Stats {
	return Stats{Exchanges: b.m.exchangeCount.Load(), Signs: b.m.signCount.Load(), Fetches: b.m.fetchCount.Load(), Cached: b.cache.len()}
}

// Owns reports whether this broker owns conn: it alone exchanges the
// connection's scopes and signs its JWTs (always, without a fleet).
func (b *Broker) Owns(conn string) bool { return b.fleet == nil || b.fleet.owner(conn) == nil }

// Connected reports whether the broker knows the connection as CONNECTED.
func (b *Broker) Connected(conn string) bool {
	c := b.conns.get(conn)
	return c != nil && c.connected
}
