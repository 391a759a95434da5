package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ghconnect/ghconnect/pkg/githubapp"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

const (
	// A JWT is reused until this long before it expires.
	jwtMargin = time.Minute
	// upstreamPause makes new scopes fail fast after GitHub failed, rather
	// than pile onto it.
	upstreamPause = 2 * time.Second
	// signWait bounds a caller's wait for a Vault sign (Vault transit's
	// own timeout).
	signWait = 1500 * time.Millisecond
)

type jwtEntry struct {
	token   string
	version int
	expires time.Time // local clock
	// used is when the JWT last served an exchange (local clock): only a
	// JWT in use is renewed ahead of expiry.
	used time.Time
}

// jwtRenewAhead: a JWT in use is signed anew in the background this long
// before it would stop being reused, so no exchange waits for Vault.
const jwtRenewAhead = 2 * time.Minute

// signStatus is what GetSigningStatus reports of a connection.
type signStatus struct {
	// version signed the JWT GitHub accepted last.
	version   int
	lastSign  time.Time
	lastError string
}

// upstream signs App JWTs with Vault transit and exchanges them at GitHub.
type upstream struct {
	vault  *vaultauth.Session
	github *url.URL
	http   *http.Client
	now    func() time.Time
	m      *metrics

	mu      sync.Mutex
	transit map[string]*vaulttransit.Client // by mount
	jwts    map[string]*jwtEntry            // by connection
	status  map[string]*signStatus          // by connection
	// newer is a key version found in Vault after GitHub.com refused the
	// recorded ones, and accepted by it: it signs until the registry's
	// record catches up.
	newer map[string]int      // by connection
	skew  time.Duration       // GitHub's clock minus ours
	pause map[int64]time.Time // installation → no new exchange before
	// rates are the rate limits GitHub.com's last answers carried, by
	// installation (GetHealth).
	rates map[int64]rateSeen

	// signs merges concurrent signs of one connection and key version:
	// any number of exchanges waiting for a JWT cost one Vault call.
	signs singleflight.Group
}

func newUpstream(vault *vaultauth.Session, githubURL *url.URL, httpClient *http.Client, m *metrics) *upstream {
	return &upstream{
		vault: vault, github: githubURL, http: httpClient, now: time.Now, m: m,
		transit: map[string]*vaulttransit.Client{}, jwts: map[string]*jwtEntry{}, status: map[string]*signStatus{}, newer: map[string]int{}, pause: map[int64]time.Time{},
		rates: map[int64]rateSeen{},
	}
}

func (u *upstream) transitFor(mount string) (*vaulttransit.Client, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if c := u.transit[mount]; c != nil {
		return c, nil
	}
	c := vaulttransit.New(u.vault, mount)
	// A sign takes milliseconds; one that hangs (Vault sealing, or away
	// behind a silent network) fails in time for the caller to hear
	// Unavailable within two seconds.
	c.Timeout = signWait
	u.transit[mount] = c
	return c, nil
}

// vaultError marks a failure to sign.
type vaultError struct{ err error }

func (v *vaultError) Error() string { return v.err.Error() }

// jwt returns an App JWT: the cached one while it is fresh and of the
// version wanted (0: any), else a new one signed with version (0: newest).
// Concurrent callers wanting a new JWT of one connection and version share
// one Vault sign; fresh (after GitHub refused the cached JWT) skips the
// cache but still shares a sign with other fresh callers.
func (u *upstream) jwt(ctx context.Context, c *connInfo, fresh bool, version int) (string, int, error) {
	if !fresh {
		if tok, used, ok := u.cachedJWT(c.id, version); ok {
			return tok, used, nil
		}
	}
	want := u.versionFor(c, version)
	key := c.id + "\x00" + strconv.Itoa(want) + "\x00" + strconv.FormatBool(fresh)
	ch := u.signs.DoChan(key, func() (any, error) {
		if !fresh {
			// Another flight may have signed while this one waited.
			if tok, used, ok := u.cachedJWT(c.id, version); ok {
				return &jwtEntry{token: tok, version: used}, nil
			}
		}
		// The sign outlives any one caller's cancellation: others wait on
		// it too (Vault's own timeout bounds it).
		return u.sign(context.WithoutCancel(ctx), c, want, time.Time{})
	})
	// A caller waits for a shared sign no longer than for one of its own:
	// one that joined a sign stuck in a Vault outage still fails fast.
	t := time.NewTimer(signWait)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", 0, r.Err
		}
		e := r.Val.(*jwtEntry)
		return e.token, e.version, nil
	case <-t.C:
		return "", 0, &vaultError{errors.New("Vault transit did not sign in time")} //nolint:staticcheck // ST1005: Vault is a name
	case <-ctx.Done():
		return "", 0, &vaultError{ctx.Err()}
	}
}

// versionFor is the key version to sign with when version (0: newest) is
// asked: the newest recorded, or a newer one found in Vault.
func (u *upstream) versionFor(c *connInfo, version int) int {
	if version != 0 || len(c.versions) == 0 {
		return version
	}
	u.mu.Lock()
	newer := u.newer[c.id]
	u.mu.Unlock()
	return max(c.versions[len(c.versions)-1], newer)
}

// renewJWT signs a new JWT for a connection ahead of expiry with the
// newest version; the JWT keeps the time its predecessor was last used, so
// an idle connection's JWT is not renewed for ever.
func (u *upstream) renewJWT(ctx context.Context, c *connInfo, used time.Time) error {
	_, err := u.sign(ctx, c, u.versionFor(c, 0), used)
	return err
}

// cachedJWT returns the connection's JWT while it is fresh and of version
// (0: any).
func (u *upstream) cachedJWT(conn string, version int) (string, int, bool) {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if e := u.jwts[conn]; e != nil && now.Before(e.expires.Add(-jwtMargin)) && (version == 0 || e.version == version) {
		e.used = now
		return e.token, e.version, true
	}
	return "", 0, false
}

// sign has Vault sign a new JWT with version (0: newest) and keeps it, as
// last used at used (zero: now).
func (u *upstream) sign(ctx context.Context, c *connInfo, version int, used time.Time) (*jwtEntry, error) {
	now := u.now()
	u.mu.Lock()
	skew := u.skew
	u.mu.Unlock()
	t, err := u.transitFor(c.mount)
	if err != nil {
		return nil, &vaultError{err}
	}
	start := time.Now()
	token, signed, err := githubapp.JWT(ctx, t, c.key, version, c.appID, now.Add(skew))
	u.m.signSeconds.Observe(time.Since(start).Seconds())
	u.m.signCount.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.status[c.id]
	if st == nil {
		st = &signStatus{}
		u.status[c.id] = st
	}
	if err != nil {
		u.m.signs.WithLabelValues("error").Inc()
		st.lastError = "Vault transit sign failed"
		return nil, &vaultError{err}
	}
	u.m.signs.WithLabelValues("ok").Inc()
	if used.IsZero() {
		used = now
	}
	e := &jwtEntry{token: token, version: signed, expires: now.Add(githubapp.Lifetime), used: used}
	if old := u.jwts[c.id]; old != nil && old.used.After(e.used) {
		e.used = old.used
	}
	u.jwts[c.id] = e
	st.lastSign = now
	return e, nil
}

// dueJWTs lists the connections whose JWT, used within its lifetime, stops
// being reused within jwtRenewAhead, with when it was last used.
func (u *upstream) dueJWTs() map[string]time.Time {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]time.Time{}
	for conn, e := range u.jwts {
		if e.expires.Add(-jwtMargin-jwtRenewAhead).Before(now) && now.Sub(e.used) < githubapp.Lifetime {
			out[conn] = e.used
		}
	}
	return out
}

// latestInVault returns the key's newest version in Vault when it is newer
// than every version the broker signs with, else 0.
func (u *upstream) latestInVault(ctx context.Context, c *connInfo) int {
	t, err := u.transitFor(c.mount)
	if err != nil {
		return 0
	}
	info, err := t.Key(ctx, c.key)
	if err != nil {
		return 0
	}
	u.mu.Lock()
	known := u.newer[c.id]
	u.mu.Unlock()
	if len(c.versions) > 0 {
		known = max(known, c.versions[len(c.versions)-1])
	}
	if info.Latest > known {
		return info.Latest
	}
	return 0
}

// forgetOlderJWT drops a connection's cached JWT signed by a version below
// v.
func (u *upstream) forgetOlderJWT(conn string, v int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e := u.jwts[conn]; e != nil && e.version < v {
		delete(u.jwts, conn)
	}
}

// forgetJWT drops a connection's cached JWT (GitHub refused it).
func (u *upstream) forgetJWT(conn string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.jwts, conn)
}

func (u *upstream) client(auth string) *github.Client {
	c := github.NewClient(u.http).WithAuthToken(auth)
	c.BaseURL = u.github
	return c
}

// noteResponse records rate-limit headers and sets a pause when GitHub
// says to wait, or failed; err is classified. A refusal of the request
// itself (a bad JWT or scope) sets none.
func (u *upstream) noteResponse(installation int64, resp *github.Response, err error) {
	if resp != nil && resp.Header.Get("X-RateLimit-Remaining") != "" {
		u.m.rateRemaining(installation, resp.Rate.Remaining, resp.Rate.Limit)
		u.mu.Lock()
		u.rates[installation] = rateSeen{remaining: resp.Rate.Remaining, limit: resp.Rate.Limit, at: u.now()}
		u.mu.Unlock()
	}
	u.m.responses.WithLabelValues(responseClass(resp)).Inc()
	var ge *brokerclient.GitHubError
	var until time.Time
	switch {
	case err == nil:
		return
	case errors.As(err, &ge) && ge.Kind == brokerclient.ErrRateLimited:
		until = ge.RetryAt
	case errors.As(err, &ge) && ge.Refused():
		return
	default:
		until = u.now().Add(upstreamPause)
	}
	u.mu.Lock()
	if until.After(u.pause[installation]) {
		u.pause[installation] = until
	}
	u.mu.Unlock()
}

// pausedFor says how long new exchanges for an installation must wait.
func (u *upstream) pausedFor(installation int64) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pause[installation].Sub(u.now())
}

// errPaused: GitHub asked us to wait (or just failed); no call was made.
type errPaused struct{ wait time.Duration }

func (e *errPaused) Error() string {
	return fmt.Sprintf("GitHub.com is unavailable or rate limited; retry in %s", e.wait.Round(time.Second))
}

func is401(err error) bool { return errors.Is(err, brokerclient.ErrUnauthorized) }

// exchange asks GitHub for a token of scope sc on the connection's
// installation. It signs with the newest key version; if GitHub refuses
// the JWT it corrects for clock skew, falls back to the previous key version
// (a new key GitHub does not know yet), and finally retries briefly (a key
// that has not reached every GitHub replica). The grant is to be cached
// under key ("" for an exclusive one).
func (u *upstream) exchange(ctx context.Context, c *connInfo, sc scope, key string) (*grant, error) {
	if wait := u.pausedFor(c.installationID); wait > 0 {
		return nil, &errPaused{wait}
	}
	body := map[string]any{"permissions": sc.permissions}
	if len(sc.repos) > 0 {
		body["repositories"] = sc.repos
	}
	if len(sc.repoIDs) > 0 {
		body["repository_ids"] = sc.repoIDs
	}
	path := "app/installations/" + strconv.FormatInt(c.installationID, 10) + "/access_tokens"
	attempt := func(fresh bool, version int) (*github.InstallationToken, error) {
		jwt, used, err := u.jwt(ctx, c, fresh, version)
		if err != nil {
			return nil, err
		}
		gh := u.client(jwt)
		req, err := gh.NewRequest(http.MethodPost, path, body)
		if err != nil {
			return nil, err
		}
		var tok github.InstallationToken
		resp, err := gh.Do(ctx, req, &tok)
		err = brokerclient.Classify(err)
		u.m.exchangeCount.Add(1)
		u.noteResponse(c.installationID, resp, err)
		if err != nil {
			u.m.exchanges.WithLabelValues("error").Inc()
			return nil, err
		}
		u.m.exchanges.WithLabelValues("ok").Inc()
		u.mu.Lock()
		if st := u.status[c.id]; st != nil {
			st.version = used
		}
		u.mu.Unlock()
		return &tok, nil
	}
	log := logging.FromContext(ctx)
	tok, err := attempt(false, 0)
	if is401(err) {
		u.forgetJWT(c.id)
		// GitHub.com's clock, when it refused the JWT's times, dates the
		// next one.
		var ge *brokerclient.GitHubError
		if errors.As(err, &ge) && ge.ClockSkew && !ge.Date.IsZero() {
			skew := ge.Date.Sub(u.now())
			u.mu.Lock()
			u.skew = skew
			u.mu.Unlock()
			log.Warn("GitHub.com's clock differs from ours; signing JWTs on its time", zap.Duration("skew", skew))
		}
		tok, err = attempt(true, 0)
	}
	if is401(err) {
		// The operator may have rotated the key in Vault and removed the
		// old one from GitHub.com before the registry noticed.
		if latest := u.latestInVault(ctx, c); latest > 0 {
			if tok, err = attempt(true, latest); err == nil {
				u.mu.Lock()
				u.newer[c.id] = latest
				u.mu.Unlock()
				log.Warn("GitHub.com refused the recorded key versions; signing with the newer version found in Vault",
					zap.String("connection_id", c.id), zap.Int("key_version", latest))
			}
		}
	}
	if is401(err) && len(c.versions) > 1 {
		newest, prev := c.versions[len(c.versions)-1], c.versions[len(c.versions)-2]
		if tok, err = attempt(true, prev); err == nil {
			msg := fmt.Sprintf("GitHub.com rejected key version %d; signed with version %d", newest, prev)
			log.Warn(msg, zap.String("connection_id", c.id))
			u.mu.Lock()
			u.status[c.id].lastError = msg
			u.mu.Unlock()
		}
	}
	for i := 1; is401(err) && i <= 2; i++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(i) * 250 * time.Millisecond):
		}
		tok, err = attempt(true, 0)
	}
	if err != nil {
		return nil, err
	}
	return grantOf(tok, c, sc, key), nil
}

// grantOf is what the broker keeps of a token GitHub issued, to be cached
// under key ("" for one that is not cached).
func grantOf(tok *github.InstallationToken, c *connInfo, sc scope, key string) *grant {
	repos, reposH := repoSet(tok.Repositories)
	g := newGrant(tok.GetToken(), repos, reposH, c.id, key)
	g.sha256, g.expires = fingerprintOf(tok.GetToken()), tok.GetExpiresAt().UnixNano()
	g.perms = internPerms(permissionsOf(tok.Permissions, sc.permissions))
	g.selected = len(sc.repos) > 0 || len(sc.repoIDs) > 0 || len(tok.Repositories) > 0
	return g
}

// permissionsOf reads the granted permissions from GitHub's answer,
// falling back to what was asked.
func permissionsOf(p *github.InstallationPermissions, asked map[string]string) map[string]string {
	if p == nil {
		return asked
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return asked
	}
	out := map[string]string{}
	if json.Unmarshal(raw, &out) != nil || len(out) == 0 {
		return asked
	}
	return out
}

// revoke revokes a token at GitHub; one GitHub no longer accepts counts
// as revoked.
func (u *upstream) revoke(ctx context.Context, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := u.client(token).Apps.RevokeInstallationToken(ctx)
	if err = brokerclient.Classify(err); is401(err) {
		return nil
	}
	return err
}

// signing reports a connection's signing state.
func (u *upstream) signing(conn string) signStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	if st := u.status[conn]; st != nil {
		return *st
	}
	return signStatus{}
}

// responseClass is GitHub.com's answer as a metric label: "2xx", "4xx",
// "5xx" (other classes as such), or "none" when it did not answer.
func responseClass(resp *github.Response) string {
	if resp == nil || resp.Response == nil {
		return "none"
	}
	return strconv.Itoa(resp.StatusCode/100) + "xx"
}

// rateSeen is a rate limit as one of GitHub.com's answers carried it.
type rateSeen struct {
	remaining, limit int
	at               time.Time
}

// rateFor is the rate limit GitHub.com's last answer for installation
// carried (false: none seen).
func (u *upstream) rateFor(installation int64) (rateSeen, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, ok := u.rates[installation]
	return r, ok
}

// probeGitHub asks GitHub.com for GET /meta, which needs no credentials
// and costs no installation's rate limit, and returns its HTTP status (0:
// no answer) and, when it failed, why in words.
func (u *upstream) probeGitHub(ctx context.Context) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.github.JoinPath("meta").String(), nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := u.http.Do(req)
	if err != nil {
		return 0, "GitHub.com did not answer: " + brokerclient.Classify(err).Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 500 {
		return resp.StatusCode, "GitHub.com answered " + resp.Status
	}
	return resp.StatusCode, ""
}
