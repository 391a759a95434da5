// Package oidcdev is a real OpenID Connect provider for development and
// tests (github.com/oauth2-proxy/mockoidc: discovery, JWKS, authorization
// code with PKCE, signed ID tokens) with a sign-in page of its own: the
// person types who they are and their groups, as an enterprise's identity
// provider would establish them. It is never for production.
package oidcdev

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/oauth2-proxy/mockoidc"
)

// Options configure the provider.
type Options struct {
	ClientID, ClientSecret string
	// User and Groups prefill the sign-in page.
	User   string
	Groups []string
}

// Provider is a running identity provider.
type Provider struct {
	m  *mockoidc.MockOIDC
	mu sync.Mutex // one sign-in at a time: the chosen user is queued, then popped
}

// Start serves the provider on ln until Close.
func Start(ln net.Listener, o Options) (*Provider, error) {
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		return nil, err
	}
	m.ClientID, m.ClientSecret = o.ClientID, o.ClientSecret
	p := &Provider{m: m}
	if err := m.AddMiddleware(p.signInPage(o)); err != nil {
		return nil, err
	}
	if err := m.Start(ln, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.m.Issuer() }

// Close stops the provider.
func (p *Provider) Close() error { return p.m.Shutdown() }

// signInPage answers an authorization request with a form asking who signs
// in; the form's answer (login and groups) becomes the ID token's subject,
// email and groups claims.
func (p *Provider) signInPage(o Options) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.AuthorizationEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			login := strings.TrimSpace(r.Form.Get("dev_login"))
			if r.Method != http.MethodPost || login == "" {
				writeForm(w, r.Form, o)
				return
			}
			var groups []string
			for _, g := range strings.Split(r.Form.Get("dev_groups"), ",") {
				if g = strings.TrimSpace(g); g != "" {
					groups = append(groups, g)
				}
			}
			name, _, _ := strings.Cut(login, "@")
			p.mu.Lock()
			defer p.mu.Unlock()
			p.m.QueueUser(&mockoidc.MockUser{Subject: "dev-" + login, Email: login, EmailVerified: true, PreferredUsername: name, Groups: groups})
			next.ServeHTTP(w, r)
		})
	}
}

func writeForm(w http.ResponseWriter, q url.Values, o Options) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var hidden strings.Builder
	for k, vs := range q {
		if strings.HasPrefix(k, "dev_") {
			continue
		}
		for _, v := range vs {
			fmt.Fprintf(&hidden, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
		}
	}
	fmt.Fprintf(w, `<!doctype html><html lang="en"><title>Development identity provider</title>
<main><h1>Development identity provider</h1>
<p>Not for production: whoever you type here is signed in.</p>
<form method="post">%s
<p><label for="dev_login">Email</label> <input id="dev_login" name="dev_login" value="%s" required></p>
<p><label for="dev_groups">Groups (comma-separated)</label> <input id="dev_groups" name="dev_groups" value="%s"></p>
<p><button type="submit">Sign in</button></p>
</form></main></html>`, hidden.String(), html.EscapeString(o.User), html.EscapeString(strings.Join(o.Groups, ",")))
}
