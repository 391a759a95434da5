package brokerclient_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-github/v60/github"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func clientAt(t *testing.T, base string, hc *http.Client) *github.Client {
	t.Helper()
	c := github.NewClient(hc).WithAuthToken("ghs_not-a-token")
	u, err := url.Parse(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestClassify classifies what the GitHub emulator (and its absence)
// answers.
func TestClassify(t *testing.T) {
	emu := ghemu.StartForTest(t, ghemu.Options{})
	ctx := context.Background()
	// A new client each time: go-github remembers rate limits.
	call := func() error {
		_, _, err := clientAt(t, emu.URL, nil).Apps.ListRepos(ctx, nil)
		return brokerclient.Classify(err)
	}
	kind := func(t *testing.T, err, want error) *brokerclient.GitHubError {
		t.Helper()
		var ge *brokerclient.GitHubError
		if !errors.As(err, &ge) || !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		return ge
	}

	t.Run("unauthorized", func(t *testing.T) {
		ge := kind(t, call(), brokerclient.ErrUnauthorized)
		if ge.StatusCode != http.StatusUnauthorized || ge.Date.IsZero() || ge.ClockSkew || !ge.Refused() {
			t.Errorf("status %d, date %v, clock skew %v, refused %v", ge.StatusCode, ge.Date, ge.ClockSkew, ge.Refused())
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		emu.SetFaults(ghemu.Faults{ServerErrors: 1})
		if kind(t, call(), brokerclient.ErrUnavailable).Refused() {
			t.Error("GitHub.com failing counted as a refusal of the call")
		}
	})
	t.Run("secondary rate limit", func(t *testing.T) {
		emu.SetFaults(ghemu.Faults{SecondaryLimit: 1, RetryAfter: 42 * time.Second})
		ge := kind(t, call(), brokerclient.ErrRateLimited)
		if wait := time.Until(ge.RetryAt); !ge.Secondary || wait < 41*time.Second || wait > 42*time.Second {
			t.Errorf("secondary %v, retry in %v; want GitHub's 42s", ge.Secondary, wait)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		_, _, err := clientAt(t, "http://"+closedAddr(t), nil).Apps.ListRepos(ctx, nil)
		if ge := kind(t, brokerclient.Classify(err), brokerclient.ErrUnreachable); ge.StatusCode != 0 {
			t.Errorf("status %d without an answer", ge.StatusCode)
		}
	})
	t.Run("caller gone", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := clientAt(t, emu.URL, nil).Apps.ListRepos(cctx, nil)
		if err = brokerclient.Classify(err); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want the context's error", err)
		}
	})
	t.Run("broker refused", func(t *testing.T) {
		conn, err := grpc.NewClient(closedAddr(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tr := &brokerclient.Transport{Broker: brokerv1.NewTokenBrokerServiceClient(conn), Request: &brokerv1.IssueTokenRequest{ConnectionId: "c"}}
		_, _, err = clientAt(t, emu.URL, &http.Client{Transport: tr}).Apps.ListRepos(ctx, nil)
		err = brokerclient.Classify(err)
		// The broker's own status, not one wrapped in the URL's error.
		if st, ok := status.FromError(err); !ok || st.Code() != codes.Unavailable || strings.Contains(st.Message(), emu.URL) {
			t.Errorf("got %v, want the broker's status", err)
		}
		var ge *brokerclient.GitHubError
		if errors.As(err, &ge) {
			t.Errorf("the broker's refusal classified as GitHub's: %v", ge)
		}
	})
}
