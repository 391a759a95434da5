package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// A server user's own page (/me): every signed-in person connects and
// disconnects their GitHub.com account there, sees which Connect
// features apply to them, and searches. The gateway acts for the person
// with the role account-holder, which reaches only their own link and
// searches; the services check that too.

const (
	// AccountHolder is the role of a signed-in person acting for
	// themselves.
	AccountHolder = "account-holder"
	linkCookie    = "ghconnect_link"
	linkTTL       = 10 * time.Minute
	// userCallback is where GitHub.com sends the person back.
	userCallback = "/connect/user/callback"
)

type me struct {
	sso      *ssoHandler
	registry registryv1.ConnectionRegistryServiceClient
	gate     featuregatev1.FeatureGateServiceClient
	token    string
	refuse   refuser
}

func (m *me) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /me/api", m.signedIn(m.view))
	mux.HandleFunc("POST /me/api/link", m.signedIn(m.link))
	mux.HandleFunc("POST /me/api/unlink", m.signedIn(m.unlink))
	mux.HandleFunc("GET /me/api/contributions", m.signedIn(m.contributionsStatus))
	mux.HandleFunc("POST /me/api/contributions", m.signedIn(m.contributions))
	mux.HandleFunc("POST /me/api/search", m.signedIn(m.search))
	mux.HandleFunc("GET "+userCallback, m.callback)
}

// signedIn passes the person's API calls on: a session, and for a POST
// the CSRF token.
func (m *me) signedIn(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s, err := m.sso.current(r)
		switch {
		case errors.Is(err, errSignedOut):
			m.refuse(w, r, codes.Unauthenticated, "sign in first")
			return
		case err != nil:
			m.refuse(w, r, codes.Unavailable, sessionsDown)
			return
		}
		if r.Method == http.MethodPost && !m.sso.sameOrigin(r, s) {
			m.refuse(w, r, codes.PermissionDenied, "cross-site request refused: the CSRF token is missing or wrong")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		h(w, r, s)
	}
}

// as is a context in which the gateway acts for the person.
func (m *me) as(r *http.Request, s *session) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	return asPerson(ctx, m.token, s.Login), cancel
}

// asPerson is ctx in which the gateway acts for the person of login.
func asPerson(ctx context.Context, token, login string) context.Context {
	md := metadata.Pairs(auth.UserHeader, login, auth.RolesHeader, AccountHolder)
	if token != "" {
		md.Set("authorization", "Bearer "+token)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// registerPerson tells the feature gate that the person of login has an
// account on this server (unified contributions takes counts only of
// such people). It runs at each sign-in and each visit of the person's
// page, so a gate that was down at the sign-in learns of them later; a
// failure is logged and changes nothing else.
func registerPerson(gate featuregatev1.FeatureGateServiceClient, token string, log *zap.Logger) func(ctx context.Context, login string) {
	return func(ctx context.Context, login string) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := gate.RegisterUsers(asPerson(ctx, token, login), &featuregatev1.RegisterUsersRequest{Users: []string{login}}); err != nil {
			log.Warn("the feature gate did not register a person who signed in", zap.String("login", login), zap.Error(err))
		}
	}
}

// itself is a context in which the gateway calls as itself.
func (m *me) itself(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	if m.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+m.token)
	}
	return ctx, cancel
}

// connection is the server's live connection, if it is CONNECTED.
func (m *me) connection(r *http.Request) (*registryv1.Connection, error) {
	ctx, cancel := m.itself(r)
	defer cancel()
	resp, err := m.registry.ListConnections(ctx, &registryv1.ListConnectionsRequest{PageSize: 1, States: []registryv1.ConnectionState{registryv1.ConnectionState_CONNECTION_STATE_CONNECTED}})
	if err != nil {
		return nil, err
	}
	if len(resp.GetConnections()) == 0 {
		return nil, nil
	}
	return resp.GetConnections()[0], nil
}

// connected is the CONNECTED connection, or answers why there is none.
func (m *me) connected(w http.ResponseWriter, r *http.Request) (*registryv1.Connection, bool) {
	conn, err := m.connection(r)
	switch {
	case err != nil:
		m.fail(w, r, err)
	case conn == nil:
		m.refuse(w, r, codes.FailedPrecondition, "GitHub Connect is not enabled on this server")
	}
	return conn, err == nil && conn != nil
}

func writeJSONBody(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func protoJSON(v proto.Message) json.RawMessage {
	b, _ := protojson.MarshalOptions{EmitUnpopulated: false}.Marshal(v)
	return b
}

// view is what the page shows: the person, the connection, their link,
// and the features that apply to them.
func (m *me) view(w http.ResponseWriter, r *http.Request, s *session) {
	out := map[string]any{"user": s.User, "login": s.Login}
	m.sso.signedIn(r.Context(), s.Login)
	conn, err := m.connection(r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	if conn == nil {
		writeJSONBody(w, out)
		return
	}
	out["connection"] = map[string]any{"id": conn.Id, "account": conn.GetAccount().GetLogin(), "serverHostname": conn.ServerHostname}
	ctx, cancel := m.as(r, s)
	defer cancel()
	link, err := m.gate.GetAccountLink(ctx, &featuregatev1.GetAccountLinkRequest{ConnectionId: conn.Id, User: s.Login})
	switch {
	case err == nil:
		out["link"] = protoJSON(link.GetLink())
	case status.Code(err) != codes.NotFound:
		m.fail(w, r, err)
		return
	}
	check, err := m.gate.Check(ctx, &featuregatev1.CheckRequest{ConnectionId: conn.Id, Users: []string{s.Login},
		Features: []featuregatev1.Feature{featuregatev1.Feature_FEATURE_UNIFIED_SEARCH, featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS}})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	out["features"] = protoJSON(check)
	if out["contributions"], err = m.myContributions(ctx, conn.Id, s.Login); err != nil {
		m.fail(w, r, err)
		return
	}
	writeJSONBody(w, out)
}

// myContributions is the person's unified-contributions status.
func (m *me) myContributions(ctx context.Context, conn, login string) (json.RawMessage, error) {
	resp, err := m.gate.GetContributionsStatus(ctx, &featuregatev1.GetContributionsStatusRequest{ConnectionId: conn, User: login})
	return protoJSON(resp.GetUser()), err
}

// forPerson makes call for the person on the CONNECTED connection, and
// answers a refusal (false) as the REST API does.
func (m *me) forPerson(w http.ResponseWriter, r *http.Request, s *session, call func(ctx context.Context, conn string) error) bool {
	conn, ok := m.connected(w, r)
	if !ok {
		return false
	}
	ctx, cancel := m.as(r, s)
	defer cancel()
	if err := call(ctx, conn.Id); err != nil {
		m.fail(w, r, err)
		return false
	}
	return true
}

// contributionsStatus is the person's unified-contributions status alone,
// which the page reads again while it shows it (counts leave in the
// background).
func (m *me) contributionsStatus(w http.ResponseWriter, r *http.Request, s *session) {
	var out json.RawMessage
	if m.forPerson(w, r, s, func(ctx context.Context, conn string) (err error) {
		out, err = m.myContributions(ctx, conn, s.Login)
		return err
	}) {
		writeJSONBody(w, out)
	}
}

// contributions opts the person in to unified contributions, or out
// (which removes what was sent from their GitHub.com profile).
func (m *me) contributions(w http.ResponseWriter, r *http.Request, s *session) {
	var in struct {
		OptedIn *bool `json:"optedIn"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.OptedIn == nil {
		m.refuse(w, r, codes.InvalidArgument, "the body must be JSON with optedIn true or false")
		return
	}
	if m.forPerson(w, r, s, func(ctx context.Context, conn string) error {
		_, err := m.gate.SetUserConsent(ctx, &featuregatev1.SetUserConsentRequest{ConnectionId: conn, User: s.Login,
			Feature: featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS, OptedIn: *in.OptedIn})
		return err
	}) {
		w.WriteHeader(http.StatusNoContent)
	}
}

// link starts connecting the person's GitHub.com account: the state is
// bound to this browser by a cookie, and to the person by the broker.
func (m *me) link(w http.ResponseWriter, r *http.Request, s *session) {
	conn, ok := m.connected(w, r)
	if !ok {
		return
	}
	ctx, cancel := m.as(r, s)
	defer cancel()
	resp, err := m.gate.StartAccountLink(ctx, &featuregatev1.StartAccountLinkRequest{ConnectionId: conn.Id, User: s.Login,
		RedirectUri: strings.TrimSuffix(m.sso.cfg.PublicURL, "/") + userCallback})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	http.SetCookie(w, m.sso.cookie(linkCookie, resp.GetState(), userCallback, linkTTL))
	writeJSONBody(w, map[string]string{"authorizeUrl": resp.GetAuthorizeUrl()})
}

// callback is where GitHub.com sends the person back: taken only in the
// browser that started, for the person signed in there, once.
func (m *me) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back := func(key, value string) {
		http.Redirect(w, r, "/me?"+url.Values{key: {value}}.Encode(), http.StatusFound)
	}
	s, err := m.sso.current(r)
	switch {
	case errors.Is(err, errSignedOut):
		http.Redirect(w, r, "/auth/login?"+url.Values{"return": {"/me"}}.Encode(), http.StatusFound)
		return
	case err != nil:
		ssoPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	c, err := r.Cookie(linkCookie)
	http.SetCookie(w, m.sso.cookie(linkCookie, "", userCallback, -1))
	if err != nil || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(q.Get("state"))) != 1 {
		back("error", "stale")
		return
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			back("error", "denied")
		} else {
			back("error", "github")
		}
		return
	}
	ctx, cancel := m.as(r, s)
	defer cancel()
	if _, err := m.gate.CompleteAccountLink(ctx, &featuregatev1.CompleteAccountLinkRequest{User: s.Login, State: q.Get("state"), Code: q.Get("code")}); err != nil {
		switch status.Code(err) {
		case codes.AlreadyExists:
			back("error", "taken")
		case codes.FailedPrecondition, codes.InvalidArgument:
			back("error", "stale")
		default:
			back("error", "unavailable")
		}
		return
	}
	back("linked", "1")
}

func (m *me) unlink(w http.ResponseWriter, r *http.Request, s *session) {
	if m.forPerson(w, r, s, func(ctx context.Context, conn string) error {
		_, err := m.gate.UnlinkAccount(ctx, &featuregatev1.UnlinkAccountRequest{ConnectionId: conn, User: s.Login})
		return err
	}) {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (m *me) search(w http.ResponseWriter, r *http.Request, s *session) {
	var in struct {
		Query string `json:"query"`
		Kind  string `json:"kind"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		m.refuse(w, r, codes.InvalidArgument, "the body must be JSON with query and kind")
		return
	}
	kind := featuregatev1.SearchKind_SEARCH_KIND_CODE
	if in.Kind == "issues" {
		kind = featuregatev1.SearchKind_SEARCH_KIND_ISSUES
	}
	conn, ok := m.connected(w, r)
	if !ok {
		return
	}
	ctx, cancel := m.as(r, s)
	defer cancel()
	resp, err := m.gate.Search(ctx, &featuregatev1.SearchRequest{ConnectionId: conn.Id, User: s.Login, Query: in.Query, Kind: kind})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(protoJSON(resp))
}

// fail answers a service's refusal as the REST API does.
func (m *me) fail(w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	m.refuse(w, r, st.Code(), st.Message())
}
