package gateway

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// callbacks are the pages GitHub.com sends the administrator's browser
// back to while enabling GitHub Connect.
type callbacks struct {
	registry registryv1.ConnectionRegistryServiceClient
	token    string
	sso      *ssoHandler // nil: the state alone is the credential
}

// signedIn, with single sign-on, makes the callback the signed-in admin's
// (the registry refuses a state started by somebody else); a browser
// without a session signs in first and comes back.
func (c *callbacks) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.sso == nil {
			h(w, r)
			return
		}
		s, err := c.sso.current(r)
		switch {
		case errors.Is(err, errSignedOut):
			http.Redirect(w, r, "/auth/login?"+url.Values{"return": {r.URL.RequestURI()}}.Encode(), http.StatusFound)
			return
		case err != nil:
			ssoPage(w, http.StatusServiceUnavailable, unavailable)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	}
}

func (c *callbacks) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	md := personMetadata(c.token)(ctx, r)
	if md == nil && c.token != "" {
		md = metadata.Pairs("authorization", "Bearer "+c.token)
	}
	// Without a token, the gateway's client certificate speaks for it.
	return metadata.NewOutgoingContext(ctx, md), cancel
}

// manifest receives ?code&state after GitHub.com created the App and sends
// the browser on to install it.
func (c *callbacks) manifest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if cancelled(w, r, q, "create") {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	resp, err := c.registry.CompleteAppManifest(ctx, &registryv1.CompleteAppManifestRequest{Code: q.Get("code"), State: q.Get("state")})
	if err != nil {
		failed(w, r, err)
		return
	}
	http.Redirect(w, r, resp.InstallUrl, http.StatusFound)
}

// setup receives ?installation_id&state after the App was installed and
// returns the browser to the admin page.
func (c *callbacks) setup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if cancelled(w, r, q, "install") {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	id, _ := strconv.ParseInt(q.Get("installation_id"), 10, 64)
	resp, err := c.registry.CompleteInstallation(ctx, &registryv1.CompleteInstallationRequest{InstallationId: id, State: q.Get("state")})
	if err != nil {
		failed(w, r, err)
		return
	}
	http.Redirect(w, r, "/?"+url.Values{"connected": {resp.Connection.Id}}.Encode(), http.StatusFound)
}

// cancelled sends the browser back to the admin page when the
// administrator cancelled on GitHub.com (error=access_denied, the step
// that was cancelled: create or install). Nothing changed on either side:
// the connection stays PENDING, and the page says so and offers to
// continue or cancel it.
func cancelled(w http.ResponseWriter, r *http.Request, q url.Values, step string) bool {
	if q.Get("error") == "" {
		return false
	}
	http.Redirect(w, r, "/?"+url.Values{"callback": {"cancelled"}, "step": {step}}.Encode(), http.StatusSeeOther)
	return true
}

// staleAnswers are the registry's refusals of a redirect that was already
// handled: its single-use state is used up or expired, or the connection
// has moved past the step (a reload, Back, a second tab). Nothing went
// wrong then; the page says so and shows the current state.
var staleAnswers = []string{
	"the state is unknown, already used or expired; start again",
	"the connection is no longer waiting for its App",
	"the connection is not waiting for its installation",
}

// stale reports whether err refuses a replayed or outdated redirect.
func stale(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.FailedPrecondition && slices.Contains(staleAnswers, st.Message())
}

// failed sends a replayed redirect to the admin page, which shows the
// current state with a plain message, and reports anything else.
func failed(w http.ResponseWriter, r *http.Request, err error) {
	if stale(err) {
		http.Redirect(w, r, "/?callback=stale", http.StatusSeeOther)
		return
	}
	failPage(w, err)
}

func failPage(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	w.Write([]byte(`<!doctype html><html lang="en"><title>GitHub Connect</title><link rel="icon" href="/favicon.svg"><p>GitHub Connect could not be enabled: ` +
		html.EscapeString(status.Convert(err).Message()) + `</p><p><a href="/">Back to GitHub Connect</a></p>`))
}
