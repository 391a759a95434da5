// Package brokerclient lets an internal service use the token broker with
// no code of its own: Transport is an http.RoundTripper that obtains a
// GitHub.com token from the broker, renews it before it runs out, and
// authenticates every request with it, so
// github.NewClient(&http.Client{Transport: t}) just works. Classify says
// what a failed GitHub.com call means, the same for those calls as for
// the broker's own.
package brokerclient

import (
	"context"
	"net/http"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Transport adds a broker-issued token to each request.
type Transport struct {
	// Broker is the broker's client; its connection carries the caller's
	// credentials.
	Broker brokerv1.TokenBrokerServiceClient
	// Request describes the token wanted (connection, repositories,
	// permissions). MinLifetime is taken from the field below.
	Request *brokerv1.IssueTokenRequest
	// MinLifetime is how long a token must still live when a request
	// starts; 0 means 5 minutes.
	MinLifetime time.Duration
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu      sync.Mutex
	token   string
	expires time.Time
	got     time.Time
}

// freshWindow: a 401 this soon after the token was minted is GitHub's
// replication lag, worth a short wait and a retry.
const freshWindow = 5 * time.Second

func (t *Transport) current(ctx context.Context) (string, time.Time, error) {
	least := t.MinLifetime
	if least == 0 {
		least = 5 * time.Minute
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && time.Until(t.expires) > least {
		return t.token, t.got, nil
	}
	req := proto.Clone(t.Request).(*brokerv1.IssueTokenRequest)
	req.MinLifetime = durationpb.New(least)
	resp, err := t.Broker.IssueToken(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	if resp.GetToken() != t.token {
		t.got = time.Now()
	}
	t.token, t.expires = resp.GetToken(), resp.GetExpireTime().AsTime()
	return t.token, t.got, nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	for attempt := 0; ; attempt++ {
		token, got, err := t.current(r.Context())
		if err != nil {
			return nil, err
		}
		req := r.Clone(r.Context())
		req.Header.Set("Authorization", "token "+token)
		if attempt > 0 && r.GetBody != nil {
			if req.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		}
		resp, err := base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || attempt == 3 || time.Since(got) > freshWindow || (r.Body != nil && r.GetBody == nil) {
			return resp, err
		}
		resp.Body.Close()
		select {
		case <-r.Context().Done():
			return nil, r.Context().Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}
