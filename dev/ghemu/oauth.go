package ghemu

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GitHub App user authorization: the OAuth web flow with PKCE, as
// github.com serves it.

const (
	// defaultUserTokenTTL is how long GitHub's user access tokens live.
	defaultUserTokenTTL = 8 * time.Hour
	// refreshTokenLifetime is GitHub's refresh_token_expires_in.
	refreshTokenLifetime = 15897600 * time.Second
	// oauthCodeLifetime is how long an authorization code can be redeemed.
	oauthCodeLifetime = 10 * time.Minute
)

//nolint:gosec // G101: documentation URLs, not credentials
const (
	authorizeErrorsDoc = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors"
	tokenErrorsDoc     = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
)

// grantKey is a person's authorization of an App.
type grantKey struct{ app, user int64 }

// userToken is a user access token (ghu_…), possibly scoped down.
type userToken struct {
	value   string
	app     *App
	user    *Account
	created time.Time
	expires time.Time
	revoked bool
	scope   *tokenScope // nil: everything the person and the App reach
}

// tokenScope is what POST /applications/{client_id}/token/scoped limits a
// token to: one installation's account, maybe some repositories.
type tokenScope struct {
	target      *Account
	repoIDs     map[int64]bool // nil: every repository of the target
	permissions map[string]string
}

// refreshToken is a one-use refresh token (ghr_…).
type refreshToken struct {
	value   string
	app     *App
	user    *Account
	expires time.Time
	spent   bool // used or revoked
}

// oauthCode is an authorization code waiting to be redeemed.
type oauthCode struct {
	app         *App
	user        *Account
	redirectURI string
	challenge   string // S256 code challenge, if any
	expires     time.Time
	used        bool
}

// browser registers a github.com page: counted like the API routes, but
// outside the API's description.
func (e *Emulator) browser(pattern string, h http.HandlerFunc) {
	e.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.counts[pattern]++
		e.mu.Unlock()
		h(w, r)
	})
}

func (e *Emulator) oauthRoutes() {
	e.browser("GET /login/oauth/authorize", e.authorizePage)
	e.browser("POST /login/oauth/authorize", e.authorizeDecision)
	e.browser("POST /login/oauth/access_token", e.accessToken)
}

// appByClientID finds an App by its client id. Callers hold e.mu.
func (e *Emulator) appByClientID(clientID string) *App {
	if clientID == "" {
		return nil
	}
	for _, a := range e.apps {
		if a.ClientID == clientID {
			return a
		}
	}
	return nil
}

// authorizeRequest is a checked authorization request.
type authorizeRequest struct {
	clientID, appName          string
	redirectURI, state         string
	challenge, challengeMethod string
	hidden                     [][2]string
}

// checkAuthorize checks the parameters of an authorization request (the
// page's query or its form). When they are wrong it has answered, with a
// page or an error redirect as github.com does, and returns nil.
func (e *Emulator) checkAuthorize(w http.ResponseWriter, r *http.Request, q url.Values) *authorizeRequest {
	e.mu.Lock()
	app := e.appByClientID(q.Get("client_id"))
	var name string
	var callbacks []string
	if app != nil {
		name, callbacks = app.Name, slices.Clone(app.CallbackURLs)
	}
	e.mu.Unlock()
	if app == nil {
		oauthPage(w, http.StatusNotFound, "Page not found", "No GitHub App has this client_id.")
		return nil
	}
	if len(callbacks) == 0 {
		oauthPage(w, http.StatusBadRequest, "Bad request", "This GitHub App has no callback URL.")
		return nil
	}
	req := &authorizeRequest{
		clientID: q.Get("client_id"), appName: name, redirectURI: q.Get("redirect_uri"), state: q.Get("state"),
		challenge: q.Get("code_challenge"), challengeMethod: q.Get("code_challenge_method"),
	}
	if req.redirectURI == "" {
		req.redirectURI = callbacks[0]
	} else if !slices.Contains(callbacks, req.redirectURI) {
		oauthRedirect(w, r, callbacks[0], req.state, "redirect_uri_mismatch",
			"The redirect_uri MUST match the registered callback URL for this application.", authorizeErrorsDoc+"/#redirect-uri-mismatch")
		return nil
	}
	if req.challenge != "" && req.challengeMethod != "S256" {
		oauthRedirect(w, r, req.redirectURI, req.state, "invalid_request",
			"code_challenge_method must be S256.", authorizeErrorsDoc)
		return nil
	}
	for _, k := range []string{"client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"} {
		v := q.Get(k)
		if k == "redirect_uri" {
			v = req.redirectURI
		}
		if v != "" {
			req.hidden = append(req.hidden, [2]string{k, v})
		}
	}
	return req
}

// oauthRedirect sends the browser back to the App with an OAuth error.
func oauthRedirect(w http.ResponseWriter, r *http.Request, to, state, code, desc, uri string) {
	q := url.Values{"error": {code}, "error_description": {desc}, "error_uri": {uri}}
	if state != "" {
		q.Set("state", state)
	}
	// to is the App's registered callback URL, or the request's
	// redirect_uri once checkAuthorize found it among them, as GitHub does.
	http.Redirect(w, r, withQuery(to, q), http.StatusFound) //nolint:gosec // G710: see above
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.Title}} · GitHub</title></head>
<body>
<main>
<h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{with .Form}}
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login/oauth/authorize">
{{range .Hidden}}<input type="hidden" name="{{index . 0}}" value="{{index . 1}}">
{{end}}<p>
<label for="login">Username or email address</label>
<input type="text" id="login" name="login" value="{{.Login}}" autocomplete="username" autocapitalize="off" required>
</p>
<p>
<button type="submit" name="decision" value="approve">Authorize {{.AppName}}</button>
<button type="submit" name="decision" value="deny" formnovalidate>Cancel</button>
</p>
</form>
{{end}}
</main>
</body>
</html>
`))

type authorizeForm struct {
	AppName, Login, Error string
	Hidden                [][2]string
}

func oauthPage(w http.ResponseWriter, status int, title, message string) {
	renderPage(w, status, map[string]any{"Title": title, "Message": message})
}

func renderPage(w http.ResponseWriter, status int, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	// The template and its data are ours: Execute fails only writing to a
	// client that has gone.
	_ = pageTemplate.Execute(w, data)
}

func authorizeFormPage(w http.ResponseWriter, req *authorizeRequest, login, errMsg string) {
	renderPage(w, http.StatusOK, map[string]any{
		"Title": "Authorize " + req.appName,
		"Form":  authorizeForm{AppName: req.appName, Login: login, Error: errMsg, Hidden: req.hidden},
	})
}

// authorizePage is GET /login/oauth/authorize: the page where the person
// signs in and approves the App.
func (e *Emulator) authorizePage(w http.ResponseWriter, r *http.Request) {
	if req := e.checkAuthorize(w, r, r.URL.Query()); req != nil {
		authorizeFormPage(w, req, "", "")
	}
}

// authorizeDecision is the page's form: deny sends the browser back with
// access_denied; approve records the grant and sends it back with a code.
func (e *Emulator) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	// A malformed body leaves its fields empty, which the checks below
	// refuse as missing.
	_ = r.ParseForm()
	req := e.checkAuthorize(w, r, r.PostForm)
	if req == nil {
		return
	}
	switch r.PostForm.Get("decision") {
	case "deny":
		oauthRedirect(w, r, req.redirectURI, req.state, "access_denied",
			"The user has denied your application access.", authorizeErrorsDoc+"/#access-denied")
	case "approve":
		login := r.PostForm.Get("login")
		e.mu.Lock()
		user := e.person(login)
		app := e.appByClientID(req.clientID)
		var code string
		if user != nil && app != nil {
			now := e.nowLocked()
			if _, ok := e.grants[grantKey{app.ID, user.ID}]; !ok {
				e.grants[grantKey{app.ID, user.ID}] = now
			}
			code = randomHex(10)
			e.oauthCodes[code] = &oauthCode{app: app, user: user, redirectURI: req.redirectURI, challenge: req.challenge, expires: now.Add(oauthCodeLifetime)}
		}
		e.mu.Unlock()
		if code == "" {
			authorizeFormPage(w, req, login, "Incorrect username or password.")
			return
		}
		q := url.Values{"code": {code}}
		if req.state != "" {
			q.Set("state", req.state)
		}
		// checkAuthorize accepted redirectURI: one of the App's callbacks.
		http.Redirect(w, r, withQuery(req.redirectURI, q), http.StatusFound) //nolint:gosec // G710: see above
	default:
		oauthPage(w, http.StatusBadRequest, "Bad request", "Choose Authorize or Cancel.")
	}
}

// tokenParams reads the token request: a form (body or query) or a JSON
// object.
func tokenParams(r *http.Request) url.Values {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var m map[string]any
		// A malformed body leaves the parameters empty, refused as missing.
		_ = json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16)).Decode(&m)
		q := r.URL.Query()
		for k, v := range m {
			switch v := v.(type) {
			case string:
				q.Set(k, v)
			case float64:
				q.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
		return q
	}
	// A malformed body leaves its fields empty, which the checks below
	// refuse as missing.
	_ = r.ParseForm()
	return r.Form
}

// writeOAuth answers the token endpoint: form-encoded, or JSON when the
// request accepts it; errors too are 200s, as GitHub answers them.
func writeOAuth(w http.ResponseWriter, r *http.Request, body map[string]any) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, body)
		return
	}
	q := url.Values{}
	for k, v := range body {
		switch v := v.(type) {
		case string:
			q.Set(k, v)
		case int64:
			q.Set(k, strconv.FormatInt(v, 10))
		}
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(q.Encode()))
}

func oauthError(code, desc, uri string) map[string]any {
	return map[string]any{"error": code, "error_description": desc, "error_uri": uri}
}

var (
	errClientCredentials = oauthError("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", tokenErrorsDoc+"/#incorrect-client-credentials")
	errVerificationCode  = oauthError("bad_verification_code", "The code passed is incorrect or expired.", tokenErrorsDoc+"/#bad-verification-code")
	errRedirectMismatch  = oauthError("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", tokenErrorsDoc+"/#redirect-uri-mismatch2")
	errRefreshToken      = oauthError("bad_refresh_token", "The refresh token passed is incorrect or expired.", tokenErrorsDoc+"/#bad-refresh-token")
	errGrantType         = oauthError("unsupported_grant_type", "The grant type is not supported.", tokenErrorsDoc)
)

// accessToken is POST /login/oauth/access_token: a code (with its PKCE
// verifier) or a refresh token for a user access token and a new refresh
// token.
func (e *Emulator) accessToken(w http.ResponseWriter, r *http.Request) {
	p := tokenParams(r)
	e.mu.Lock()
	body := e.redeem(p)
	e.mu.Unlock()
	writeOAuth(w, r, body)
}

// redeem answers a token request. Callers hold e.mu.
func (e *Emulator) redeem(p url.Values) map[string]any {
	app := e.appByClientID(p.Get("client_id"))
	if app == nil || subtle.ConstantTimeCompare([]byte(p.Get("client_secret")), []byte(app.ClientSecret)) != 1 {
		return errClientCredentials
	}
	now := e.nowLocked()
	switch p.Get("grant_type") {
	case "", "authorization_code":
		c := e.oauthCodes[p.Get("code")]
		if c == nil || c.used || c.app != app || !now.Before(c.expires) {
			return errVerificationCode
		}
		if ru := p.Get("redirect_uri"); ru != "" && ru != c.redirectURI {
			return errRedirectMismatch
		}
		if c.challenge != "" && s256(p.Get("code_verifier")) != c.challenge {
			return errVerificationCode
		}
		c.used = true
		if _, ok := e.grants[grantKey{app.ID, c.user.ID}]; !ok {
			return errVerificationCode
		}
		return e.mintUserTokens(app, c.user)
	case "refresh_token":
		rt := e.refreshTokens[p.Get("refresh_token")]
		if rt == nil || rt.spent || rt.app != app || !now.Before(rt.expires) {
			return errRefreshToken
		}
		rt.spent = true
		return e.mintUserTokens(app, rt.user)
	default:
		return errGrantType
	}
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// mintUserTokens makes a user access token and its refresh token. Callers
// hold e.mu.
func (e *Emulator) mintUserTokens(app *App, user *Account) map[string]any {
	now := e.nowLocked()
	at := &userToken{value: randomToken("ghu_", 36), app: app, user: user, created: now, expires: now.Add(e.opts.UserTokenTTL)}
	rt := &refreshToken{value: randomToken("ghr_", 76), app: app, user: user, expires: now.Add(refreshTokenLifetime)}
	e.userTokens[at.value] = at
	e.refreshTokens[rt.value] = rt
	return map[string]any{
		"access_token": at.value, "expires_in": int64(e.opts.UserTokenTTL / time.Second),
		"refresh_token": rt.value, "refresh_token_expires_in": int64(refreshTokenLifetime / time.Second),
		"token_type": "bearer", "scope": "",
	}
}
