package broker_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestWhoMayCallWhat: every caller of the harness against every broker
// method, each asked something its rules take, and whether the broker
// refused it as not the caller's to ask (PermissionDenied), wherever that
// was decided. The table is the broker's authorization as a whole: the
// roles, the policy's grants and its per-request rules.
func TestWhoMayCallWhat(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	// A state to complete: the search service starts a person's
	// authorization, anybody then brings it back (with a code GitHub.com
	// will not take).
	state := func() string {
		res, err := e.Client.StartUserAuthorization(e.Ctx(t, "search-svc"), &brokerv1.StartUserAuthorizationRequest{ConnectionId: e.ConnID, User: "mona", RedirectUri: brokertest.UserCallback})
		if err != nil {
			t.Fatal(err)
		}
		return res.State
	}
	calls := map[string]func(ctx context.Context) error{
		"IssueToken": func(ctx context.Context) error {
			_, err := e.Client.IssueToken(ctx, &brokerv1.IssueTokenRequest{ConnectionId: e.ConnID})
			return err
		},
		"RevokeToken": func(ctx context.Context) error {
			_, err := e.Client.RevokeToken(ctx, &brokerv1.RevokeTokenRequest{Token: "ghs_unknown"})
			return err
		},
		"RevokeConnectionTokens": func(ctx context.Context) error {
			_, err := e.Client.RevokeConnectionTokens(ctx, &brokerv1.RevokeConnectionTokensRequest{ConnectionId: e.ConnID})
			return err
		},
		"GetSigningStatus": func(ctx context.Context) error {
			_, err := e.Client.GetSigningStatus(ctx, &brokerv1.GetSigningStatusRequest{ConnectionId: e.ConnID})
			return err
		},
		"GetHealth": func(ctx context.Context) error {
			_, err := e.Client.GetHealth(ctx, &brokerv1.GetHealthRequest{ConnectionId: e.ConnID})
			return err
		},
		"StartUserAuthorization": func(ctx context.Context) error {
			_, err := e.Client.StartUserAuthorization(ctx, &brokerv1.StartUserAuthorizationRequest{ConnectionId: e.ConnID, User: "mona", RedirectUri: brokertest.UserCallback})
			return err
		},
		"CompleteUserAuthorization": func(ctx context.Context) error {
			_, err := e.Client.CompleteUserAuthorization(ctx, &brokerv1.CompleteUserAuthorizationRequest{User: "mona", State: state(), Code: "not-a-code"})
			return err
		},
		"IssueUserToken": func(ctx context.Context) error {
			_, err := e.Client.IssueUserToken(ctx, &brokerv1.IssueUserTokenRequest{ConnectionId: e.ConnID, User: "mona"})
			return err
		},
		"GetUserGrant": func(ctx context.Context) error {
			_, err := e.Client.GetUserGrant(ctx, &brokerv1.GetUserGrantRequest{ConnectionId: e.ConnID, User: "mona"})
			return err
		},
		"RevokeUserGrant": func(ctx context.Context) error {
			_, err := e.Client.RevokeUserGrant(ctx, &brokerv1.RevokeUserGrantRequest{ConnectionId: e.ConnID, User: "mona"})
			return err
		},
	}
	// Who gets past authorization, per caller (the others are refused).
	want := map[string]string{
		"search-svc": "CompleteUserAuthorization GetUserGrant IssueToken IssueUserToken RevokeToken RevokeUserGrant StartUserAuthorization",
		"deploy-svc": "IssueToken RevokeToken",
		"ops":        "GetHealth GetSigningStatus IssueToken RevokeConnectionTokens RevokeToken",
		"elsewhere":  "RevokeToken",
		"stranger":   "RevokeToken",
		"registry":   "RevokeToken",
	}
	for who, methods := range want {
		var got []string
		for method, call := range calls {
			switch err := call(e.Ctx(t, who)); status.Code(err) {
			case codes.PermissionDenied:
			case codes.InvalidArgument, codes.Unauthenticated, codes.Internal, codes.Unknown:
				t.Errorf("%s %s: %v: the request itself failed", who, method, err)
			default:
				got = append(got, method)
			}
		}
		slices.Sort(got)
		if g := strings.Join(got, " "); g != methods {
			t.Errorf("%s gets past authorization in %s, want %s", who, g, methods)
		}
	}
}
