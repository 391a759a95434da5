package featuregate

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-github/v60/github"
)

// appClients make go-github clients that act as a connection's App with
// installation tokens from the broker, of the permissions one feature
// needs. One transport per connection keeps its token between calls.
type appClients struct {
	broker      brokerv1.TokenBrokerServiceClient
	base        *url.URL
	permissions map[string]string
	// timeout bounds each call (0: none).
	timeout time.Duration

	mu         sync.Mutex
	transports map[string]*brokerclient.Transport // by connection
}

// githubBase is the GitHub API's base URL as go-github wants it.
func githubBase(githubURL string) (*url.URL, error) {
	return url.Parse(strings.TrimSuffix(githubURL, "/") + "/")
}

func newAppClients(broker brokerv1.TokenBrokerServiceClient, base *url.URL, permissions map[string]string, timeout time.Duration) *appClients {
	return &appClients{broker: broker, base: base, permissions: permissions, timeout: timeout, transports: map[string]*brokerclient.Transport{}}
}

// client is a go-github client acting as conn's App.
func (a *appClients) client(conn string) *github.Client {
	a.mu.Lock()
	t := a.transports[conn]
	if t == nil {
		// The broker's call and GitHub.com's are siblings under the caller's span.
		t = &brokerclient.Transport{Broker: a.broker, Request: &brokerv1.IssueTokenRequest{ConnectionId: conn, Permissions: a.permissions}, Base: tracing.Transport(nil)}
		a.transports[conn] = t
	}
	a.mu.Unlock()
	c := github.NewClient(&http.Client{Transport: t, Timeout: a.timeout})
	c.BaseURL = a.base
	return c
}
