package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// User authorization: a server user proves a GitHub.com account by
// authorizing the connection's GitHub App on GitHub.com, in the browser
// (GitHub's web application flow with PKCE S256). The broker keeps each
// person's grant in its database: the account GET /user answered with the
// person's own token, and the tokens as Vault transit ciphertext of the
// key ghconnect-user-tokens. Access tokens (8 hours) are refreshed shortly
// before they expire; a refresh token works once, so one replica claims
// each refresh in the database and the others wait for its result. A
// refresh GitHub.com refuses (the person revoked the App there, or the
// refresh token expired) leaves the grant "reconnect needed".

const (
	// authorizationTTL is how long an authorization under way may take.
	authorizationTTL = 10 * time.Minute
	// userTokenMargin: an access token this close to its expiry is
	// refreshed first.
	userTokenMargin = 5 * time.Minute
	// refreshClaim is how long a replica's claim on a refresh holds; a
	// replica that dies mid-refresh frees it after this.
	refreshClaim = 30 * time.Second
	// refreshWaitPoll is how often a replica waiting for another's refresh
	// looks again.
	refreshWaitPoll = 25 * time.Millisecond
)

// Errors of user authorization, mapped to gRPC codes by the server.
var (
	ErrNoUserGrant       = errors.New("the user has not connected a GitHub.com account")
	ErrReconnectNeeded   = errors.New("GitHub.com no longer accepts the user's authorization: the user must connect their GitHub.com account again")
	ErrAuthorizationGone = errors.New("the authorization is unknown, already used, expired, or another person's: start again")
	ErrAccountTaken      = errors.New("that GitHub.com account is already connected to another user of this server")
	ErrNoUserAuth        = errors.New("the connection's GitHub App has no client secret: user authorization is not available (connect the App with its client secret)")
)

// oauthError is GitHub.com's refusal at /login/oauth/access_token (an HTTP
// 200 with an error field).
type oauthError struct{ Code, Description string }

func (e *oauthError) Error() string {
	return "GitHub.com refused: " + e.Code + ": " + e.Description
}

// users is the broker's user authorization.
type users struct {
	store  *userStore
	conns  *connections
	vault  *vaultauth.Session
	http   *http.Client
	api    *url.URL
	web    *url.URL
	now    func() time.Time
	flight singleflight.Group

	// mu guards cache; hits only read it.
	mu    sync.RWMutex
	cache map[userCacheKey]*userToken
}

// userToken is a person's access token held in memory.
type userToken struct {
	token      string
	expires    time.Time
	login      string
	id         int64
	generation int64
}

// userKey names a person's refresh among the singleflight's (misses only).
func userKey(conn, user string) string { return conn + "\x00" + user }

// userCacheKey is a person's entry in the cache: a pair of strings, so a
// lookup builds no key.
type userCacheKey struct{ conn, user string }

func (u *users) transit(c *connInfo) *vaulttransit.Client {
	mount := c.mount
	if mount == "" {
		mount = "transit"
	}
	return vaulttransit.New(u.vault, mount)
}

// app returns the connection's App client id and secret.
func (u *users) app(ctx context.Context, c *connInfo) (id, secret string, err error) {
	if c.clientID == "" || c.clientSecret == "" {
		return "", "", ErrNoUserAuth
	}
	pt, err := u.transit(c).Decrypt(ctx, vaulttransit.SecretsKey, c.clientSecret)
	if err != nil {
		return "", "", &vaultError{err}
	}
	return c.clientID, string(pt), nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// start begins person user's authorization on connection c.
func (u *users) start(ctx context.Context, c *connInfo, user, redirectURI string) (*brokerv1.StartUserAuthorizationResponse, time.Time, error) {
	if _, _, err := u.app(ctx, c); err != nil {
		return nil, time.Time{}, err
	}
	state, verifier := randomToken(32), randomToken(48)
	sealed, err := u.transit(c).Encrypt(ctx, vaulttransit.UserTokensKey, []byte(verifier))
	if err != nil {
		return nil, time.Time{}, &vaultError{err}
	}
	expires := u.now().Add(authorizationTTL)
	if err := u.store.putAuthorization(ctx, hashState(state), c.id, user, redirectURI, sealed, expires); err != nil {
		return nil, time.Time{}, err
	}
	challenge := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id":             {c.clientID},
		"redirect_uri":          {redirectURI},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	return &brokerv1.StartUserAuthorizationResponse{AuthorizeUrl: u.web.JoinPath("login/oauth/authorize").String() + "?" + q.Encode(), State: state}, expires, nil
}

// complete exchanges code for person user, as the state says, and
// records the grant.
func (u *users) complete(ctx context.Context, user, state, code string) (*userGrant, error) {
	auth, err := u.store.takeAuthorization(ctx, hashState(state), user, u.now())
	if err != nil {
		return nil, err
	}
	c := u.conns.get(auth.connectionID)
	if c == nil || !c.connected {
		return nil, errNotConnected
	}
	clientID, secret, err := u.app(ctx, c)
	if err != nil {
		return nil, err
	}
	verifier, err := u.transit(c).Decrypt(ctx, vaulttransit.UserTokensKey, auth.verifier)
	if err != nil {
		return nil, &vaultError{err}
	}
	ans, err := u.oauth(ctx, url.Values{
		"client_id": {clientID}, "client_secret": {secret}, "code": {code},
		"redirect_uri": {auth.redirectURI}, "code_verifier": {string(verifier)},
	})
	if err != nil {
		return nil, err
	}
	login, id, err := u.whoami(ctx, ans.AccessToken)
	if err != nil {
		return nil, err
	}
	now := u.now()
	g := &userGrant{connectionID: c.id, user: user, githubLogin: login, githubID: id, status: brokerv1.UserGrantStatus_USER_GRANT_STATUS_ACTIVE, granted: now}
	if err := u.seal(ctx, c, g, ans, now); err != nil {
		return nil, err
	}
	if err := u.store.putGrant(ctx, g); err != nil {
		if errors.Is(err, ErrAccountTaken) {
			// Leave nothing behind for the refused link; the grant itself
			// may be the other user's (GitHub keeps one per App and
			// account), so only this token goes.
			if rerr := u.revokeToken(context.WithoutCancel(ctx), clientID, secret, "token", ans.AccessToken); rerr != nil {
				logging.FromContext(ctx).Warn("revoking the token of a refused link; it expires on its own", zap.String("connection_id", c.id), zap.String("user", user), zap.Error(rerr))
			}
		}
		return nil, err
	}
	u.remember(g, ans.AccessToken)
	return g, nil
}

// seal encrypts the answer's tokens into g.
func (u *users) seal(ctx context.Context, c *connInfo, g *userGrant, ans *oauthAnswer, now time.Time) error {
	t := u.transit(c)
	access, err := t.Encrypt(ctx, vaulttransit.UserTokensKey, []byte(ans.AccessToken))
	if err != nil {
		return &vaultError{err}
	}
	refresh, err := t.Encrypt(ctx, vaulttransit.UserTokensKey, []byte(ans.RefreshToken))
	if err != nil {
		return &vaultError{err}
	}
	g.access, g.refresh = access, refresh
	g.accessExpires = now.Add(time.Duration(ans.ExpiresIn) * time.Second)
	g.refreshExpires = now.Add(time.Duration(ans.RefreshTokenExpiresIn) * time.Second)
	return nil
}

func (u *users) remember(g *userGrant, token string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cache[userCacheKey{g.connectionID, g.user}] = &userToken{token: token, expires: g.accessExpires, login: g.githubLogin, id: g.githubID, generation: g.generation}
}

func (u *users) forget(conn, user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.cache, userCacheKey{conn, user})
}

// cached is the person's access token in memory while it lives long
// enough.
func (u *users) cached(conn, user string) *userToken {
	u.mu.RLock()
	t := u.cache[userCacheKey{conn, user}]
	u.mu.RUnlock()
	if t != nil && u.now().Add(userTokenMargin).Before(t.expires) {
		return t
	}
	return nil
}

// token returns person user's access token on connection c: from memory,
// from the database (another replica refreshed it), or refreshed here.
// refused is the fingerprint (hex) of a token GitHub.com refused: the
// grant is refreshed while it still holds that token.
func (u *users) token(ctx context.Context, c *connInfo, user, refused string) (*userToken, error) {
	if t := u.cached(c.id, user); t != nil && !t.is(refused) {
		return t, nil
	}
	v, err, _ := u.flight.Do(userKey(c.id, user), func() (any, error) {
		if t := u.cached(c.id, user); t != nil && !t.is(refused) {
			return t, nil
		}
		return u.fresh(context.WithoutCancel(ctx), c, user, refused)
	})
	if err != nil {
		return nil, err
	}
	return v.(*userToken), nil
}

// is reports whether t is the token of fingerprint fp (hex).
func (t *userToken) is(fp string) bool {
	return fp != "" && fingerprintOf(t.token).String() == fp
}

// fresh reads the grant and refreshes it when its access token is about
// to expire or is the refused one, once across every replica.
func (u *users) fresh(ctx context.Context, c *connInfo, user, refused string) (*userToken, error) {
	ctx, cancel := context.WithTimeout(ctx, refreshClaim)
	defer cancel()
	for {
		g, err := u.store.grant(ctx, c.id, user)
		if err != nil {
			return nil, err
		}
		if g.status == brokerv1.UserGrantStatus_USER_GRANT_STATUS_RECONNECT_NEEDED {
			return nil, ErrReconnectNeeded
		}
		now := u.now()
		if now.Add(userTokenMargin).Before(g.accessExpires) {
			pt, err := u.transit(c).Decrypt(ctx, vaulttransit.UserTokensKey, g.access)
			if err != nil {
				return nil, &vaultError{err}
			}
			if t := (&userToken{token: string(pt), expires: g.accessExpires, login: g.githubLogin, id: g.githubID, generation: g.generation}); !t.is(refused) {
				u.remember(g, t.token)
				return t, nil
			}
		}
		claimed, err := u.store.claimRefresh(ctx, c.id, user, g.generation, now, now.Add(refreshClaim))
		if err != nil {
			return nil, err
		}
		if claimed {
			return u.refresh(ctx, c, g)
		}
		// Another replica refreshes: wait for its generation.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(refreshWaitPoll):
		}
	}
}

// refresh uses the grant's refresh token (which this replica claimed) and
// stores the next generation.
func (u *users) refresh(ctx context.Context, c *connInfo, g *userGrant) (*userToken, error) {
	release := func() {
		// Unreleased, the claim still ends when it times out: another
		// replica waits longer, nothing is lost.
		if err := u.store.releaseRefresh(context.WithoutCancel(ctx), g.connectionID, g.user, g.generation); err != nil {
			logging.FromContext(ctx).Warn("releasing a user grant's refresh claim", zap.String("connection_id", g.connectionID), zap.String("user", g.user), zap.Error(err))
		}
	}
	clientID, secret, err := u.app(ctx, c)
	if err != nil {
		release()
		return nil, err
	}
	rt, err := u.transit(c).Decrypt(ctx, vaulttransit.UserTokensKey, g.refresh)
	if err != nil {
		release()
		return nil, &vaultError{err}
	}
	now := u.now()
	var ans *oauthAnswer
	if now.Before(g.refreshExpires) {
		ans, err = u.oauth(ctx, url.Values{"client_id": {clientID}, "client_secret": {secret}, "grant_type": {"refresh_token"}, "refresh_token": {string(rt)}})
	} else {
		err = &oauthError{Code: "bad_refresh_token", Description: "the refresh token expired"}
	}
	var oe *oauthError
	if errors.As(err, &oe) {
		logging.FromContext(ctx).Info("GitHub.com refused a user grant's refresh: reconnect needed",
			zap.String("connection_id", g.connectionID), zap.String("user", g.user), zap.String("error", oe.Code))
		if err := u.store.markReconnect(ctx, g.connectionID, g.user, g.generation); err != nil {
			return nil, err
		}
		u.forget(g.connectionID, g.user)
		return nil, ErrReconnectNeeded
	}
	if err != nil {
		release()
		return nil, err
	}
	next := *g
	if err := u.seal(ctx, c, &next, ans, now); err != nil {
		// The old refresh token is spent: without storing the new one the
		// grant cannot go on.
		if merr := u.store.markReconnect(context.WithoutCancel(ctx), g.connectionID, g.user, g.generation); merr != nil {
			logging.FromContext(ctx).Warn("marking a user grant reconnect-needed", zap.String("connection_id", g.connectionID), zap.String("user", g.user), zap.Error(merr))
		}
		return nil, err
	}
	next.generation = g.generation + 1
	if err := u.store.storeRefresh(ctx, &next, g.generation); err != nil {
		return nil, err
	}
	u.remember(&next, ans.AccessToken)
	return &userToken{token: ans.AccessToken, expires: next.accessExpires, login: next.githubLogin, id: next.githubID, generation: next.generation}, nil
}

// revoke deletes person user's grant on GitHub.com and here. A grant
// whose tokens GitHub.com no longer accepts is deleted here all the same.
func (u *users) revoke(ctx context.Context, c *connInfo, user string) (bool, error) {
	g, err := u.store.grant(ctx, c.id, user)
	if errors.Is(err, ErrNoUserGrant) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if g.status == brokerv1.UserGrantStatus_USER_GRANT_STATUS_ACTIVE {
		t, err := u.token(ctx, c, user, "")
		switch {
		case err == nil:
			clientID, secret, err := u.app(ctx, c)
			if err != nil {
				return false, err
			}
			if err := u.revokeToken(ctx, clientID, secret, "grant", t.token); err != nil {
				return false, err
			}
		case errors.Is(err, ErrReconnectNeeded):
			// Nothing left to revoke on GitHub.com.
		default:
			return false, err
		}
	}
	u.forget(c.id, user)
	return true, u.store.deleteGrant(ctx, c.id, user)
}

// revokeConnection unlinks everyone of a connection that stopped being
// CONNECTED: each grant is revoked on GitHub.com (while the App's secret
// is still known) and deleted here.
func (u *users) revokeConnection(ctx context.Context, c *connInfo) {
	if c == nil {
		return
	}
	log := logging.FromContext(ctx)
	people, err := u.store.usersOf(ctx, c.id)
	if err != nil {
		log.Warn("listing a disconnected connection's user grants", zap.String("connection_id", c.id), zap.Error(err))
		return
	}
	active := *c
	active.connected = true
	for _, p := range people {
		if _, err := u.revoke(ctx, &active, p); err != nil {
			log.Warn("revoking a user grant on disconnect; deleting it here", zap.String("connection_id", c.id), zap.String("user", p), zap.Error(err))
			u.forget(c.id, p)
			if err := u.store.deleteGrant(ctx, c.id, p); err != nil {
				log.Warn("deleting a user grant on disconnect", zap.String("connection_id", c.id), zap.String("user", p), zap.Error(err))
			}
		}
	}
	if len(people) > 0 {
		log.Info("connection disconnected; user grants revoked", zap.String("connection_id", c.id), zap.Int("users", len(people)))
	}
}

// scoped has GitHub.com make a token of t's limited to repos (names in
// the connected account) and perms; it lives as long as t.
func (u *users) scoped(ctx context.Context, c *connInfo, t *userToken, repos []string, perms map[string]string) (*userToken, error) {
	clientID, secret, err := u.app(ctx, c)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"access_token": t.token, "target": c.account}
	if len(repos) > 0 {
		body["repositories"] = repos
	}
	if len(perms) > 0 {
		body["permissions"] = perms
	}
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.api.JoinPath("applications", clientID, "token", "scoped").String(), strings.NewReader(string(raw)))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(clientID, secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := u.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST /applications/{client_id}/token/scoped: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Token   string `json:"token"`
		Message string `json:"message"`
	}
	// A body that is not this JSON leaves out empty: refused below by its
	// status or the token's prefix.
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	switch {
	case resp.StatusCode == http.StatusUnprocessableEntity:
		return nil, &scopeRefused{out.Message}
	case resp.StatusCode != http.StatusOK || !strings.HasPrefix(out.Token, "ghu_"):
		return nil, fmt.Errorf("POST /applications/{client_id}/token/scoped answered %d", resp.StatusCode)
	}
	return &userToken{token: out.Token, expires: t.expires, login: t.login, id: t.id, generation: t.generation}, nil
}

// scopeRefused is GitHub.com's refusal of a scope (beyond the person's
// token or the installation).
type scopeRefused struct{ msg string }

func (e *scopeRefused) Error() string { return "GitHub.com refused the scope: " + e.msg }

// oauthAnswer is GitHub.com's answer at /login/oauth/access_token.
type oauthAnswer struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	Error                 string `json:"error"`
	ErrorDescription      string `json:"error_description"`
}

// oauth posts form to GitHub.com's token endpoint.
func (u *users) oauth(ctx context.Context, form url.Values) (*oauthAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.web.JoinPath("login/oauth/access_token").String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := u.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GitHub.com token endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GitHub.com token endpoint answered %d", resp.StatusCode)
	}
	var ans oauthAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&ans); err != nil {
		return nil, fmt.Errorf("GitHub.com token endpoint: %w", err)
	}
	if ans.Error != "" {
		return nil, &oauthError{Code: ans.Error, Description: ans.ErrorDescription}
	}
	if !strings.HasPrefix(ans.AccessToken, "ghu_") || ans.RefreshToken == "" || ans.ExpiresIn <= 0 {
		return nil, errors.New("GitHub.com's token endpoint answered no expiring user token (is token expiration on for the App?)")
	}
	return &ans, nil
}

// whoami reads the GitHub.com account of a user token.
func (u *users) whoami(ctx context.Context, token string) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.api.JoinPath("user").String(), nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := u.http.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("GET /user: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET /user answered %d", resp.StatusCode)
	}
	var me struct {
		Login string `json:"login"`
		ID    int64  `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&me); err != nil || me.Login == "" || me.ID <= 0 {
		return "", 0, fmt.Errorf("GET /user: no account in the answer (%v)", err)
	}
	return me.Login, me.ID, nil
}

// revokeToken deletes a user token ("token") or the whole grant ("grant")
// on GitHub.com; one GitHub.com no longer knows counts as deleted.
func (u *users) revokeToken(ctx context.Context, clientID, secret, what, token string) error {
	body, _ := json.Marshal(map[string]string{"access_token": token})
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.api.JoinPath("applications", clientID, what).String(), strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.SetBasicAuth(clientID, secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := u.http.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE /applications/{client_id}/%s: %w", what, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusNotFound, http.StatusUnprocessableEntity:
		return nil
	}
	return fmt.Errorf("DELETE /applications/{client_id}/%s answered %d", what, resp.StatusCode)
}
