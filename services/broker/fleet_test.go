package broker_test

import (
	"context"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ownerFirst orders a fleet's brokers: the connection's owner, then the
// others.
func ownerFirst(t testing.TB, fleet []*brokertest.Env) (*brokertest.Env, []*brokertest.Env) {
	t.Helper()
	var owner *brokertest.Env
	var others []*brokertest.Env
	for _, e := range fleet {
		if e.Broker.Owns(e.ConnID) {
			if owner != nil {
				t.Fatal("two brokers own the connection")
			}
			owner = e
		} else {
			others = append(others, e)
		}
	}
	if owner == nil {
		t.Fatal("no broker owns the connection")
	}
	return owner, others
}

// Three brokers of one fleet: a scope asked of each, and an exclusive
// token asked of a broker that does not own the connection, are exchanged
// by the owner alone, with one JWT; the others answer the owner's token.
// Only brokers may ask a broker for a token, and only for a scope of the
// connection's installation.
func TestFleetExchangesOnTheOwner(t *testing.T) {
	fleet := brokertest.StartFleet(t, 3, brokertest.Options{})
	owner, others := ownerFirst(t, fleet)
	req := &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Permissions: map[string]string{"contents": "read"}}
	var tokens []string
	for _, e := range append(others, owner) {
		for range 3 {
			resp, err := e.Issue(t, "search-svc", req)
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, resp.GetToken())
		}
	}
	for _, tok := range tokens[1:] {
		if tok != tokens[0] {
			t.Fatal("the brokers answered different tokens for one scope")
		}
	}
	ex, err := others[0].Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Permissions: map[string]string{"contents": "write"}, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.GetExclusive() || ex.GetToken() == tokens[0] {
		t.Errorf("the exclusive token: %v", ex)
	}
	if n := owner.Emu.Count(brokertest.AccessTokens); n != 2 {
		t.Errorf("%d exchanges at GitHub.com, want 2 (the scope, the exclusive token)", n)
	}
	if st := owner.Broker.Stats(); st.Exchanges != 2 || st.Signs != 1 {
		t.Errorf("the owner: %+v, want 2 exchanges and 1 signature", st)
	}
	for _, e := range others {
		if st := e.Broker.Stats(); st.Exchanges != 0 || st.Signs != 0 {
			t.Errorf("a broker that does not own the connection: %+v", st)
		}
	}
	// The exclusive token is revoked through the broker it was asked of;
	// the owner, which issued it, revokes it at GitHub.com.
	if _, err := others[1].Client.RevokeToken(others[1].Ctx(t, "deploy-svc"), &brokerv1.RevokeTokenRequest{Token: ex.GetToken()}); err != nil {
		t.Fatalf("revoking through another broker: %v", err)
	}
	if _, err := owner.Client.RevokeToken(owner.Ctx(t, "deploy-svc"), &brokerv1.RevokeTokenRequest{Token: ex.GetToken()}); status.Code(err) != codes.NotFound {
		t.Errorf("revoking it again: %v, want NotFound", err)
	}

	// A scope asked of the owner first is offered to the others: their
	// first request for it is a hit, no fetch.
	req2 := &brokerv1.IssueTokenRequest{Repositories: []string{"beta"}, Permissions: map[string]string{"metadata": "read"}}
	first, err := owner.Issue(t, "search-svc", req2)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range others {
		testenv.Eventually(t, 10*time.Second, "the owner's offer reaches "+e.Addr, func() bool { return e.Broker.Holds(first.GetToken()) })
		fetches := e.Broker.Stats().Fetches
		resp, err := e.Issue(t, "search-svc", req2)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetToken() != first.GetToken() || e.Broker.Stats().Fetches != fetches {
			t.Errorf("a broker holding the owner's offer: the same token %v, fetched %d", resp.GetToken() == first.GetToken(), e.Broker.Stats().Fetches-fetches)
		}
	}

	exchanged := owner.Emu.Count(brokertest.AccessTokens)
	peer := brokerv1.NewBrokerPeerServiceClient(owner.Conn)
	as := func(who string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+owner.Tokens[who])
	}
	fetch := &brokerv1.FetchTokenRequest{ConnectionId: owner.ConnID, ScopeKey: owner.ConnID + "|nonsense", MinLifetime: durationpb.New(0)}
	if _, err := peer.FetchToken(as("search-svc"), fetch); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a caller that is not a broker: %v, want PermissionDenied", err)
	}
	if _, err := peer.FetchToken(as("broker"), fetch); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a scope key that is no scope: %v, want InvalidArgument", err)
	}
	offer := &brokerv1.OfferTokenRequest{ConnectionId: owner.ConnID, ScopeKey: owner.ConnID + "|nonsense", Token: first, From: others[0].Addr}
	if _, err := peer.OfferToken(as("search-svc"), offer); status.Code(err) != codes.PermissionDenied {
		t.Errorf("an offer from a caller that is not a broker: %v, want PermissionDenied", err)
	}
	if _, err := peer.OfferToken(as("broker"), offer); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an offer of a scope key that is no scope: %v, want InvalidArgument", err)
	}
	if n := owner.Emu.Count(brokertest.AccessTokens) - exchanged; n != 0 {
		t.Errorf("refused calls reached GitHub.com: %d exchanges", n)
	}
}
