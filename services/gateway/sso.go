package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// SSO configures single sign-on for the admin page and the REST API:
// OpenID Connect (authorization code with PKCE) against the enterprise's
// identity provider, roles from a group claim, and server-side sessions.
type SSO struct {
	Issuer           string
	ClientID         string
	ClientSecretFile string
	// PublicURL is the gateway's address as browsers reach it; the
	// provider sends them back to PublicURL/auth/callback.
	PublicURL   string
	GroupsClaim string
	// LoginClaim holds the person's server login (their own page, their
	// GitHub.com link, their searches).
	LoginClaim    string
	AdminGroups   string
	AuditorGroups string
	SessionTTL    time.Duration
	// CAFile, if set, is the CA the provider's HTTPS certificate is
	// checked against (otherwise the system's).
	CAFile string
	// Database keeps the sessions and the sign-ins under way, shared by
	// the gateway's replicas: "sqlite:PATH" or "postgres://…".
	Database string
}

// RegisterFlags binds s to -oidc-*, -public-url, -session-ttl and
// -database.
func (s *SSO) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Issuer, "oidc-issuer", "", "OpenID Connect issuer URL of the identity provider (empty: the admin page signs in with a bearer token)")
	fs.StringVar(&s.ClientID, "oidc-client-id", "", "OAuth client id of the gateway at the identity provider")
	fs.StringVar(&s.ClientSecretFile, "oidc-client-secret-file", "", "file holding the OAuth client secret")
	fs.StringVar(&s.PublicURL, "public-url", "", "the gateway's URL as browsers reach it, e.g. https://ghconnect.example.com (the sign-in redirect and the origin state-changing requests must come from)")
	fs.StringVar(&s.GroupsClaim, "oidc-groups-claim", "groups", "ID token claim listing the user's groups")
	fs.StringVar(&s.LoginClaim, "oidc-login-claim", "preferred_username", "ID token claim holding the person's server login (their own page and GitHub.com link)")
	fs.StringVar(&s.AdminGroups, "oidc-admin-groups", "ghconnect-admins", "comma-separated groups whose members are admins (may change things)")
	fs.StringVar(&s.AuditorGroups, "oidc-auditor-groups", "ghconnect-auditors", "comma-separated groups whose members are auditors (read everything, change nothing)")
	fs.DurationVar(&s.SessionTTL, "session-ttl", 8*time.Hour, "how long a sign-in lasts")
	fs.StringVar(&s.CAFile, "oidc-ca-file", "", "CA certificates (PEM) of the identity provider's HTTPS, if not the system's")
	fs.StringVar(&s.Database, "database", "sqlite:.data/gateway.db", `with -oidc-issuer: where sign-in sessions are kept, "sqlite:PATH" or "postgres://…" (PostgreSQL for several replicas)`)
}

// Enabled reports whether single sign-on is configured.
func (s *SSO) Enabled() bool { return s.Issuer != "" }

// Validate reports missing or malformed settings.
func (s *SSO) Validate() error {
	if !s.Enabled() {
		return nil
	}
	var errs []error
	if s.ClientID == "" {
		errs = append(errs, errors.New("-oidc-client-id is required with -oidc-issuer"))
	}
	if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		errs = append(errs, errors.New("-public-url must be the gateway's origin, e.g. https://ghconnect.example.com, with -oidc-issuer"))
	}
	if s.SessionTTL < time.Minute {
		errs = append(errs, errors.New("-session-ttl must be at least 1m"))
	}
	if len(groups(s.AdminGroups)) == 0 && len(groups(s.AuditorGroups)) == 0 {
		errs = append(errs, errors.New("-oidc-admin-groups or -oidc-auditor-groups must name a group"))
	}
	if err := validDatabase(s.Database); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validDatabase refuses a -database that is not a SQLite file or a
// PostgreSQL URL before anything is opened: sqldb would take any other
// string for a SQLite path.
func validDatabase(dsn string) error {
	switch path, sqlite := strings.CutPrefix(dsn, "sqlite:"); {
	case dsn == "":
		return errors.New("-database is required with -oidc-issuer (where sign-in sessions are kept)")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return errors.New(`-database: not a valid postgres:// URL`)
		}
		return nil
	case !sqlite || path == "" || strings.Contains(path, ":memory:"):
		return errors.New(`-database must be "sqlite:PATH" (a file) or "postgres://…"`)
	}
	return nil
}

func groups(list string) []string {
	var out []string
	for _, g := range strings.Split(list, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

const (
	sessionCookie = "ghconnect_session"
	loginCookie   = "ghconnect_login"
	csrfHeader    = "X-Csrf-Token"
	loginTTL      = 10 * time.Minute
)

// session is one signed-in person. Only the SHA-256 of its id is kept, so
// the table itself holds no usable cookie.
type session struct {
	User string
	// Login is the person's server login (the login claim): who they are
	// on their own page, their GitHub.com link and their searches.
	Login   string
	Roles   []string
	CSRF    string
	Expires time.Time
}

// login is a sign-in under way: what the callback must match.
type login struct {
	verifier, nonce, returnTo string
	expires                   time.Time
}

// ssoHandler serves /auth/* and checks sessions.
type ssoHandler struct {
	cfg    SSO
	secret string
	secure bool // cookies only over HTTPS
	client *http.Client
	now    func() time.Time
	// store holds the sessions and sign-ins, in the database the
	// replicas share.
	store *sessionStore
	log   *zap.Logger
	// signedIn is told of each person who signs in (their server login).
	signedIn func(ctx context.Context, login string)

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use, so a provider outage does not stop the gateway
}

// newSSO reads the client secret and the provider's CA, then opens the
// sessions database; close releases it.
func newSSO(ctx context.Context, cfg SSO, log *zap.Logger, signedIn func(ctx context.Context, login string)) (*ssoHandler, error) {
	if signedIn == nil {
		signedIn = func(context.Context, string) {}
	}
	h := &ssoHandler{cfg: cfg, now: time.Now, log: log, client: &http.Client{Transport: tracing.Transport(nil), Timeout: 15 * time.Second}, signedIn: signedIn}
	if h.cfg.LoginClaim == "" {
		h.cfg.LoginClaim = "preferred_username"
	}
	h.secure = strings.HasPrefix(cfg.PublicURL, "https:")
	if cfg.ClientSecretFile != "" {
		var err error
		if h.secret, err = config.ReadSecret(cfg.ClientSecretFile); err != nil {
			return nil, err
		}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sso: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sso: %s holds no certificate", cfg.CAFile)
		}
		h.client.Transport = tracing.Transport(&http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}})
	}
	var err error
	if h.store, err = openSessions(ctx, cfg.Database); err != nil {
		return nil, fmt.Errorf("sso: %w", err)
	}
	return h, nil
}

func (h *ssoHandler) close() error { return h.store.close() }

// failed logs a sessions-database error. Queries carry only hashes of
// session ids and states, so the error names no secret.
func (h *ssoHandler) failed(r *http.Request, what string, err error) {
	h.log.Error("sessions database: "+what, zap.String("path", r.URL.Path), zap.Error(err))
}

// What a person is told when the sessions database fails: on a page,
// and in an API answer.
const (
	unavailable  = "Signing in is unavailable for a moment. Try again shortly."
	sessionsDown = "sessions are unavailable; try again shortly"
)

func (h *ssoHandler) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, h.client)
}

func (h *ssoHandler) oidc(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	h.mu.Lock()
	p := h.provider
	h.mu.Unlock()
	if p == nil {
		var err error
		if p, err = oidc.NewProvider(h.ctx(ctx), h.cfg.Issuer); err != nil {
			return nil, nil, err
		}
		h.mu.Lock()
		h.provider = p
		h.mu.Unlock()
	}
	return p, &oauth2.Config{
		ClientID: h.cfg.ClientID, ClientSecret: h.secret, Endpoint: p.Endpoint(),
		RedirectURL: strings.TrimSuffix(h.cfg.PublicURL, "/") + "/auth/callback",
		Scopes:      []string{oidc.ScopeOpenID, "profile", "email", "groups"},
	}, nil
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *ssoHandler) cookie(name, value, path string, maxAge time.Duration) *http.Cookie {
	// Secure follows the gateway's scheme: false only when it serves plain
	// HTTP (a public URL that is not https:, local development), where a
	// Secure cookie would never be sent.
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds())} //nolint:gosec // G124: see above
	if maxAge < 0 {
		c.MaxAge = -1
	}
	return c
}

// register adds the /auth endpoints to mux.
func (h *ssoHandler) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/login", h.login)
	mux.HandleFunc("GET /auth/callback", h.callback)
	mux.HandleFunc("GET /auth/session", h.sessionInfo)
	mux.HandleFunc("POST /auth/logout", h.logout)
}

// safeReturn keeps only a plain path on this site, as a browser would
// read it: browsers drop tabs and newlines from a URL and take a
// backslash for a slash, so "/<tab>/evil.example" is "//evil.example" to
// them. A path with a control character, a space or a backslash, or one
// not in its clean form (no "//", "." or ".."), becomes the site's root.
func safeReturn(p string) string {
	if !strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' || unicode.IsSpace(r) }) {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || path.Clean(u.Path) != u.Path {
		return "/"
	}
	return p
}

func (h *ssoHandler) login(w http.ResponseWriter, r *http.Request) {
	_, oc, err := h.oidc(r.Context())
	if err != nil {
		ssoPage(w, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a moment.")
		return
	}
	now := h.now()
	state, l := randomString(), &login{verifier: oauth2.GenerateVerifier(), nonce: randomString(), returnTo: safeReturn(r.URL.Query().Get("return")), expires: now.Add(loginTTL)}
	if err := h.store.sweep(r.Context(), now); err != nil {
		h.failed(r, "sweep", err) // the sign-in goes on: the next sweep catches up
	}
	if err := h.store.putSignIn(r.Context(), state, l); err != nil {
		h.failed(r, "start a sign-in", err)
		ssoPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	// The state also goes into a cookie: a callback is accepted only in
	// the browser that started the sign-in.
	http.SetCookie(w, h.cookie(loginCookie, state, "/auth/", loginTTL))
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)), http.StatusFound)
}

func (h *ssoHandler) callback(w http.ResponseWriter, r *http.Request) {
	const stale = "This sign-in link is no longer valid. Start again."
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(loginCookie)
	http.SetCookie(w, h.cookie(loginCookie, "", "/auth/", -1))
	// Only the browser that started the sign-in may finish it, and the
	// sign-in is claimed only then: a callback forged elsewhere does not
	// use up the person's.
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		ssoPage(w, http.StatusBadRequest, stale)
		return
	}
	l, err := h.store.takeSignIn(r.Context(), state, h.now())
	switch {
	case errors.Is(err, errNoSignIn):
		ssoPage(w, http.StatusBadRequest, stale)
		return
	case err != nil:
		h.failed(r, "take a sign-in", err)
		ssoPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	if e := q.Get("error"); e != "" {
		ssoPage(w, http.StatusForbidden, "The identity provider refused the sign-in ("+e+").")
		return
	}
	p, oc, err := h.oidc(r.Context())
	if err != nil {
		ssoPage(w, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a moment.")
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx(r.Context()), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	var refused *oauth2.RetrieveError
	switch {
	case errors.As(err, &refused) && refused.Response != nil && refused.Response.StatusCode >= 400 && refused.Response.StatusCode < 500:
		// The provider refused the code the browser brought back.
		ssoPage(w, http.StatusBadRequest, "The identity provider did not accept this sign-in (the code is wrong, used or expired). Start again.")
		return
	case err != nil:
		ssoPage(w, http.StatusBadGateway, "The identity provider did not complete the sign-in. Start again.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: h.cfg.ClientID}).Verify(ctx, raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.nonce)) != 1 {
		ssoPage(w, http.StatusBadGateway, "The identity provider's answer could not be verified. Start again.")
		return
	}
	user, login, roles, err := h.identity(idt)
	if err != nil {
		ssoPage(w, http.StatusForbidden, err.Error())
		return
	}
	id := randomString()
	if err := h.store.putSession(r.Context(), id, &session{User: user, Login: login, Roles: roles, CSRF: randomString(), Expires: h.now().Add(h.cfg.SessionTTL)}); err != nil {
		h.failed(r, "keep a session", err)
		ssoPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	http.SetCookie(w, h.cookie(sessionCookie, id, "/", h.cfg.SessionTTL))
	h.signedIn(r.Context(), login)
	// A server user who administers nothing has their own page.
	to := l.returnTo
	if len(roles) == 0 && to == "/" {
		to = "/me"
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// identity is the person, their server login and their roles from the ID
// token's claims. Everyone signed in is a server user; the groups make
// some of them admins or auditors.
func (h *ssoHandler) identity(idt *oidc.IDToken) (string, string, []string, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", "", nil, errors.New("the identity provider's answer could not be read")
	}
	login, _ := claims[h.cfg.LoginClaim].(string)
	if validate.ServerLogin(login) != nil {
		return "", "", nil, fmt.Errorf("the identity provider gave no server login (claim %q) for this sign-in: ask your administrator", h.cfg.LoginClaim)
	}
	user := idt.Subject
	for _, k := range []string{"email", "preferred_username"} {
		if v, ok := claims[k].(string); ok && v != "" {
			user = v
			break
		}
	}
	var member []string
	switch v := claims[h.cfg.GroupsClaim].(type) {
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok {
				member = append(member, s)
			}
		}
	case string:
		member = groups(v)
	}
	var roles []string
	for role, list := range map[string]string{"admin": h.cfg.AdminGroups, "auditor": h.cfg.AuditorGroups} {
		for _, g := range groups(list) {
			if slices.Contains(member, g) {
				roles = append(roles, role)
				break
			}
		}
	}
	slices.Sort(roles)
	return user, login, roles, nil
}

// current is the request's session: errSignedOut when its cookie names
// no live one, another error (logged) when the database cannot tell.
func (h *ssoHandler) current(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, errSignedOut
	}
	s, err := h.store.session(r.Context(), c.Value, h.now())
	if err != nil && !errors.Is(err, errSignedOut) {
		h.failed(r, "read a session", err)
	}
	return s, err
}

type sessionView struct {
	SSO       bool     `json:"sso"`
	User      string   `json:"user,omitempty"`
	Login     string   `json:"login,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	CSRFToken string   `json:"csrf_token,omitempty"`
	ExpiresAt string   `json:"expires_at,omitempty"`
}

func (h *ssoHandler) sessionInfo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	s, err := h.current(r)
	if err != nil {
		code := http.StatusUnauthorized
		if !errors.Is(err, errSignedOut) {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		// A sessionView always encodes: Encode fails only writing to a
		// client that has gone.
		_ = json.NewEncoder(w).Encode(sessionView{SSO: true})
		return
	}
	_ = json.NewEncoder(w).Encode(sessionView{SSO: true, User: s.User, Login: s.Login, Roles: s.Roles, CSRFToken: s.CSRF, ExpiresAt: s.Expires.UTC().Format(time.RFC3339)})
}

// logout deletes the session's row: every replica reads it there, so
// the person is signed out everywhere at once.
func (h *ssoHandler) logout(w http.ResponseWriter, r *http.Request) {
	s, err := h.current(r)
	switch {
	case err != nil && !errors.Is(err, errSignedOut):
		http.Error(w, sessionsDown, http.StatusServiceUnavailable)
		return
	case err == nil && !h.sameOrigin(r, s):
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if err := h.store.deleteSession(r.Context(), c.Value); err != nil {
			h.failed(r, "delete a session", err)
			http.Error(w, sessionsDown, http.StatusServiceUnavailable)
			return
		}
	}
	http.SetCookie(w, h.cookie(sessionCookie, "", "/", -1))
	w.WriteHeader(http.StatusNoContent)
}

// sameOrigin is the CSRF check of a state-changing request: it carries the
// session's token in a header (which another site cannot set), and an
// Origin, when the browser sends one, of this gateway.
func (h *ssoHandler) sameOrigin(r *http.Request, s *session) bool {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(s.CSRF)) != 1 {
		return false
	}
	o := r.Header.Get("Origin")
	return o == "" || strings.EqualFold(o, strings.TrimSuffix(h.cfg.PublicURL, "/"))
}

type sessionKey struct{}

// refuser answers an API call the gateway refuses itself.
type refuser func(w http.ResponseWriter, r *http.Request, code codes.Code, msg string)

// withSession lets API calls through on a session: safe methods as they
// are, state-changing ones only with the CSRF token. Calls with a bearer
// token (automation) pass unchanged.
func (h *ssoHandler) withSession(refuse refuser, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasBearer(r) {
			next.ServeHTTP(w, r)
			return
		}
		s, err := h.current(r)
		switch {
		case errors.Is(err, errSignedOut):
			refuse(w, r, codes.Unauthenticated, "sign in first: no session and no bearer token")
			return
		case err != nil:
			refuse(w, r, codes.Unavailable, sessionsDown)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !h.sameOrigin(r, s) {
			refuse(w, r, codes.PermissionDenied, "cross-site request refused: the CSRF token is missing or wrong")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// personMetadata names the signed-in person to the services (which believe
// it from the gateway only) and, without a client certificate, adds the
// gateway's own token.
func personMetadata(serviceToken string) func(context.Context, *http.Request) metadata.MD {
	return func(_ context.Context, r *http.Request) metadata.MD {
		s, ok := r.Context().Value(sessionKey{}).(*session)
		if !ok {
			return nil
		}
		md := metadata.Pairs(auth.UserHeader, s.User, auth.RolesHeader, strings.Join(s.Roles, ","))
		if serviceToken != "" {
			md.Set("authorization", "Bearer "+serviceToken)
		}
		return md
	}
}

func hasBearer(r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "bearer") && strings.TrimSpace(token) != ""
}

func ssoPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, `<!doctype html><html lang="en"><title>GitHub Connect: sign-in</title><main><h1>Sign-in did not complete</h1><p role="alert">%s</p><p><a href="/auth/login">Sign in again</a> · <a href="/">Back to GitHub Connect</a></p></main></html>`, html.EscapeString(msg))
}
