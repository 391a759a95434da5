// Package ghemu is a stateful GitHub.com emulator for ghconnect's tests,
// benchmarks and local runs: the GitHub App endpoints, installation tokens,
// the App-manifest flow, people (organization members, collaborators),
// GitHub App user authorization (the OAuth web flow with PKCE, user access
// and refresh tokens), the global security advisories, repositories' commits,
// refs and tarballs (with an emulated codeload host), rate limits, search,
// and fault controls. In contract mode every request it receives and every
// response it sends is checked against GitHub's official OpenAPI
// description, so tests never drift into testing against an imagined
// GitHub. go-github clients work against it by base URL alone: API paths
// are served at the root, as api.github.com does.
package ghemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures an Emulator.
type Options struct {
	// Contract validates every API request and response against the
	// OpenAPI description; each violation goes to OnViolation and Violations.
	Contract *Contract
	// OnViolation is called for each contract violation (tests: t.Errorf).
	OnViolation func(error)
	// RateLimit is the primary limit per App and per installation per hour;
	// 0 means 5000, as GitHub gives installations.
	RateLimit int
	// UserTokenTTL is how long user access tokens (ghu_…) live; 0 means
	// 8 hours, as GitHub's.
	UserTokenTTL time.Duration
	// AutoApprove makes the App-manifest page (POST …/settings/apps/new)
	// and the install page (/apps/{slug}/installations/new) act at once,
	// as if the admin had pressed "Create GitHub App" or "Install": a 302
	// with the code or the installation. false (the default): they show
	// their HTML pages, which post to …/confirm or …/cancel (pages.go).
	AutoApprove bool
}

// Faults are failures the emulator injects, for tests.
type Faults struct {
	// Latency is added to every API response.
	Latency time.Duration
	// ServerErrors answers the next N API requests with 502.
	ServerErrors int
	// SecondaryLimit answers the next N API requests with a secondary rate
	// limit (403, Retry-After).
	SecondaryLimit int
	// RetryAfter is the Retry-After of secondary limits; 0 means 60 s.
	RetryAfter time.Duration
	// ClockOffset shifts the emulator's clock (JWT checks, Date header,
	// token expiry) from the machine's.
	ClockOffset time.Duration
	// ReplicationLag refuses a token for this long after it was minted,
	// as GitHub does while a new token has not reached every replica.
	ReplicationLag time.Duration
}

// Emulator is the GitHub.com emulator; it is an http.Handler.
type Emulator struct {
	opts Options
	mux  *http.ServeMux
	// apiRoutes are the patterns api registered, "METHOD /path".
	apiRoutes []string

	mu       sync.Mutex
	lastID   int64
	accounts map[string]*Account // by lower-case login
	// accountsByID indexes accounts: an upload of 1,000 contributions
	// looks up 1,000 ids, which a scan of every account made quadratic.
	accountsByID  map[int64]*Account
	orgEnterprise map[string]string // organization login → enterprise slug
	repos         []*Repo
	reposByID     map[int64]*Repo
	reposByName   map[string]*Repo     // lower-case "owner/name"
	reposByOwner  map[*Account][]*Repo // in id order
	apps          map[int64]*App
	installations map[int64]*Installation
	tokens        map[string]*token
	codes         map[string]*manifestCode
	members       map[*Account]map[*Account]bool // organization → people
	collaborators map[int64]map[*Account]bool    // repository id → people
	grants        map[grantKey]time.Time         // people's authorizations of Apps
	userTokens    map[string]*userToken
	refreshTokens map[string]*refreshToken
	oauthCodes    map[string]*oauthCode
	faults        Faults
	counts        map[string]int
	usage         map[string]*rateWindow // by "app:ID" or "installation:ID"
	contributions map[contribKey]int64   // unified contributions' counts
	advisories    advisoryStore          // the global security advisories
	commitSeq     int64                  // commits made, for unique SHAs
	// codeloadTokens are the tokens of private tarball downloads.
	codeloadTokens map[string]codeloadToken
	// autoApprove is Options.AutoApprove, switched by SetAutoApprove.
	autoApprove atomic.Bool
	// serverStats are the Server Statistics uploads (serverstats.go).
	serverStats serverStatsStore
	// licenses are enterprises' license syncs (licenses.go).
	licenses licenseStore

	violMu     sync.Mutex
	violations []error
}

type rateWindow struct {
	reset time.Time
	used  int
}

// New builds an emulator with no data; seed it with the Add methods or
// Seed.
func New(opts Options) *Emulator {
	if opts.RateLimit == 0 {
		opts.RateLimit = 5000
	}
	if opts.UserTokenTTL == 0 {
		opts.UserTokenTTL = defaultUserTokenTTL
	}
	e := &Emulator{
		opts:           opts,
		lastID:         1000,
		accounts:       map[string]*Account{},
		accountsByID:   map[int64]*Account{},
		orgEnterprise:  map[string]string{},
		reposByID:      map[int64]*Repo{},
		reposByName:    map[string]*Repo{},
		reposByOwner:   map[*Account][]*Repo{},
		apps:           map[int64]*App{},
		installations:  map[int64]*Installation{},
		tokens:         map[string]*token{},
		codes:          map[string]*manifestCode{},
		members:        map[*Account]map[*Account]bool{},
		collaborators:  map[int64]map[*Account]bool{},
		grants:         map[grantKey]time.Time{},
		userTokens:     map[string]*userToken{},
		refreshTokens:  map[string]*refreshToken{},
		oauthCodes:     map[string]*oauthCode{},
		counts:         map[string]int{},
		usage:          map[string]*rateWindow{},
		contributions:  map[contribKey]int64{},
		advisories:     newAdvisoryStore(),
		codeloadTokens: map[string]codeloadToken{},
	}
	e.autoApprove.Store(opts.AutoApprove)
	e.routes()
	return e
}

func (e *Emulator) nowLocked() time.Time { return time.Now().Add(e.faults.ClockOffset) }

// SetFaults replaces the injected faults.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = f
}

// Count is how many requests the route got, e.g.
// "POST /app/installations/{installation_id}/access_tokens".
func (e *Emulator) Count(route string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[route]
}

// Counts returns a copy of every route's count.
func (e *Emulator) Counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

// ResetCounts zeroes the counters.
func (e *Emulator) ResetCounts() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts = map[string]int{}
}

// Violations returns the contract violations seen so far.
func (e *Emulator) Violations() []error {
	e.violMu.Lock()
	defer e.violMu.Unlock()
	return append([]error(nil), e.violations...)
}

func (e *Emulator) violation(err error) {
	e.violMu.Lock()
	e.violations = append(e.violations, err)
	e.violMu.Unlock()
	if e.opts.OnViolation != nil {
		e.opts.OnViolation(err)
	}
}

// identity is who made a request.
type identity struct {
	app          *App          // JWT-authenticated
	token        *token        // installation token
	installation *Installation // the token's
	user         *userToken    // a user access token
}

type handler func(w http.ResponseWriter, r *http.Request, id identity)

// auth kinds a route accepts.
const (
	authNone = iota
	authJWT
	authToken
	authOptionalToken
	authUser // a user access token
)

// api registers an API route: counted, rate limited, fault-injected,
// authenticated and (in contract mode) validated.
func (e *Emulator) api(pattern string, kind int, h handler) {
	e.apiRoutes = append(e.apiRoutes, pattern)
	e.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		e.serveAPI(w, r, pattern, kind, h)
	})
}

// apiMultiSegment registers an API route whose last path parameter, param,
// may span segments (the description's x-multi-segment: a ref such as
// heads/feature/x): the one-segment form through api, and the
// many-segment form too, counted and checked as the same route (the
// contract sees the parameter's slashes escaped, the one segment the
// description's path has).
func (e *Emulator) apiMultiSegment(pattern, param string, kind int, h handler) {
	e.api(pattern, kind, h)
	wild := "{" + param + "}"
	if !strings.HasSuffix(pattern, "/"+wild) {
		panic("ghemu: " + pattern + " does not end in " + wild)
	}
	before := strings.Count(strings.TrimSuffix(pattern, wild), "/") // segments before param, with the empty first one
	e.mux.HandleFunc(strings.TrimSuffix(pattern, wild)+"{"+param+"...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue(param) == "" {
			e.unknownRoute(w, r)
			return
		}
		parts := strings.Split(r.URL.EscapedPath(), "/")
		u := *r.URL
		u.RawPath = strings.Join(parts[:before], "/") + "/" + strings.Join(parts[before:], "%2F")
		r = r.Clone(r.Context())
		r.URL = &u
		e.serveAPI(w, r, pattern, kind, h)
	})
}

// unknownRoute answers a path the emulator does not serve: 404, and a
// contract violation in contract mode.
func (e *Emulator) unknownRoute(w http.ResponseWriter, r *http.Request) {
	if e.opts.Contract != nil {
		e.violation(fmt.Errorf("contract: no emulator route for %s %s", r.Method, r.URL.Path))
	}
	writeError(w, http.StatusNotFound, "Not Found", docsURL)
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request, pattern string, kind int, h handler) {
	var body []byte
	if r.Body != nil {
		body, _ = readAll(r)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	e.handleAPI(rec, r, pattern, kind, h)
	if e.opts.Contract != nil {
		if err := e.opts.Contract.Check(r, body, rec.status, rec.header, rec.body.Bytes()); err != nil {
			e.violation(err)
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

func (e *Emulator) handleAPI(w http.ResponseWriter, r *http.Request, pattern string, kind int, h handler) {
	e.mu.Lock()
	e.counts[pattern]++
	f := e.faults
	now := e.nowLocked()
	var fault int
	switch {
	case e.faults.ServerErrors > 0:
		e.faults.ServerErrors--
		fault = http.StatusBadGateway
	case e.faults.SecondaryLimit > 0:
		e.faults.SecondaryLimit--
		fault = http.StatusForbidden
	}
	e.mu.Unlock()

	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	w.Header().Set("X-GitHub-Request-Id", strconv.FormatInt(now.UnixNano(), 16))
	if f.Latency > 0 {
		time.Sleep(f.Latency) // the fault injected: a slow GitHub.com
	}
	switch fault {
	case http.StatusBadGateway:
		writeJSON(w, http.StatusBadGateway, map[string]any{"message": "Server Error"})
		return
	case http.StatusForbidden:
		ra := f.RetryAfter
		if ra == 0 {
			ra = time.Minute
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(ra.Round(time.Second)/time.Second)))
		writeError(w, http.StatusForbidden, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits")
		return
	}

	var id identity
	switch kind {
	case authJWT:
		app, status, msg := e.verifyJWT(r)
		if app == nil {
			writeAuthError(w, status, msg)
			return
		}
		id.app = app
	case authToken, authOptionalToken, authUser:
		tok, ut, ok, present := e.verifyToken(r)
		switch {
		case !present && kind == authUser:
			writeAuthError(w, http.StatusUnauthorized, "Requires authentication")
			return
		case !ok && (present || kind != authOptionalToken):
			writeAuthError(w, http.StatusUnauthorized, "Bad credentials")
			return
		case (kind == authToken && ut != nil) || (kind == authUser && tok != nil):
			writeError(w, http.StatusForbidden, "Resource not accessible by integration", docsURL)
			return
		}
		if tok != nil {
			id.token, id.installation = tok, tok.installation
		}
		id.user = ut
	}
	if !e.rateLimit(w, id) {
		return
	}
	h(w, r, id)
}

// rateLimit sets the X-RateLimit headers and refuses a request past the
// primary limit of its App or installation.
func (e *Emulator) rateLimit(w http.ResponseWriter, id identity) bool {
	key, who := rateKey(id)
	if key == "" {
		return true
	}
	e.mu.Lock()
	now := e.nowLocked()
	win := e.usage[key]
	if win == nil || !now.Before(win.reset) {
		win = &rateWindow{reset: now.Add(time.Hour)}
		e.usage[key] = win
	}
	over := win.used >= e.opts.RateLimit
	if !over {
		win.used++
	}
	used, reset := win.used, win.reset
	e.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(e.opts.RateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(e.opts.RateLimit-used, 0)))
	h.Set("X-RateLimit-Used", strconv.Itoa(used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	if over {
		writeError(w, http.StatusForbidden, "API rate limit exceeded for "+who+".", "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
		return false
	}
	return true
}

// rateKey is whose limit a request counts against ("user:ID",
// "installation:ID" or "app:ID", and how GitHub names it); empty for
// anonymous requests.
func rateKey(id identity) (key, who string) {
	var kind string
	var n int64
	switch {
	case id.user != nil:
		kind, n = "user", id.user.user.ID
	case id.installation != nil:
		kind, n = "installation", id.installation.ID
	case id.app != nil:
		kind, n = "app", id.app.ID
	default:
		return "", ""
	}
	s := strconv.FormatInt(n, 10)
	return kind + ":" + s, kind + " ID " + s
}

// SetRateLimitUsed sets how much of the current window an App ("app:ID"),
// installation ("installation:ID") or person ("user:ID") has used, to test
// the limit.
func (e *Emulator) SetRateLimitUsed(key string, used int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.usage[key] = &rateWindow{reset: e.nowLocked().Add(time.Hour), used: used}
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

const docsURL = "https://docs.github.com/rest"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	// v is always encodable: Encode fails only writing to a client that
	// has gone.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg, doc string) {
	if doc == "" {
		doc = docsURL
	}
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": doc, "status": strconv.Itoa(status)})
}

func writeAuthError(w http.ResponseWriter, status int, msg string) {
	writeError(w, status, msg, docsURL)
}

// recorder keeps a response so contract mode can check it before it goes
// out.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status = code
		r.wrote = true
	}
}

func readAll(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, 1<<20))
	r.Body.Close()
	r.Body = nopCloser{bytes.NewReader(buf.Bytes())}
	return buf.Bytes(), err
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func splitTrim(s string) []string {
	return append([]string(nil), strings.Fields(s)...)
}
