package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Reported: an operator imports version 2 straight into Vault, adds its
// public key to the App on GitHub.com and deletes the old one there. The
// registry's record still says version 1 (it has not looked yet); new
// scopes must keep working, signed with the version found in Vault.
func TestRotationInVaultBeforeTheRecordFollows(t *testing.T) {
	e := brokertest.Start(t, brokertest.Options{})
	ctx := context.Background()
	if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}}); err != nil {
		t.Fatal(err)
	}
	operator := vaulttransit.New(e.Creds.Login(t, "operator"), "transit")
	if v, _, err := operator.ImportKeyVersion(ctx, e.KeyName, brokertest.PEM(brokertest.AppKey(1))); err != nil || v != 2 {
		t.Fatalf("import_version: %d %v", v, err)
	}
	if _, err := e.Emu.AddAppKey(e.AppID, &brokertest.AppKey(1).PublicKey); err != nil {
		t.Fatal(err)
	}
	e.Emu.RemoveAppKey(e.AppID, &brokertest.AppKey(0).PublicKey)
	// A new scope, and a cached JWT signed by version 1 that GitHub.com now
	// refuses.
	for i, repo := range []string{"beta", "gamma"} {
		if i == 1 {
			e.Broker.ForgetJWT(e.ConnID)
		}
		if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{repo}}); err != nil {
			t.Fatalf("new scope %s after the old key left GitHub.com: %v", repo, err)
		}
	}
	ss, err := e.Client.GetSigningStatus(e.Ctx(t, "ops"), &brokerv1.GetSigningStatusRequest{ConnectionId: e.ConnID})
	if err != nil || ss.CurrentVersion != 2 {
		t.Errorf("signing status: %v %v", ss, err)
	}
}

// Vault sealed for a while under 20 callers: cached scopes are all served,
// new scopes fail fast with Unavailable and a retry hint, and work again
// within a second of unsealing; nothing leaks.
func TestVaultSealedAndUnsealed(t *testing.T) {
	sealedFor := 60 * time.Second
	if testing.Short() {
		sealedFor = 10 * time.Second
	}
	e := brokertest.Start(t, brokertest.Options{})
	repos := []string{"alpha", "beta", "gamma"}
	for _, r := range repos {
		if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{r}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	var sealed atomic.Bool
	var cachedOK, cachedFailed, freshFailedFast, freshSlow, freshOther, freshOK atomic.Int64
	var firstOther atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if w < 10 {
					_, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{repos[(w+i)%3]}})
					if err != nil {
						cachedFailed.Add(1)
					} else {
						cachedOK.Add(1)
					}
					continue
				}
				// A new scope needs a new JWT: a Vault signature.
				e.Broker.ForgetJWT(e.ConnID)
				start := time.Now()
				_, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Exclusive: true})
				took := time.Since(start)
				switch {
				case err == nil:
					freshOK.Add(1)
				case !sealed.Load():
					freshOther.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("unsealed: %v", err))
				case status.Code(err) == codes.Unavailable && retryDelay(err) > 0 && took < 2*time.Second:
					freshFailedFast.Add(1)
				case took >= 2*time.Second:
					freshSlow.Add(1)
				default:
					freshOther.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("sealed: %v", err))
				}
			}
		}()
	}
	time.Sleep(time.Second)
	sealed.Store(true)
	e.Vault.Seal(t)
	time.Sleep(sealedFor)
	e.Vault.Unseal(t)
	unsealed := time.Now()
	// Within a second of unsealing, a new scope works again.
	var back time.Duration
	for {
		e.Broker.ForgetJWT(e.ConnID)
		if _, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Exclusive: true}); err == nil {
			back = time.Since(unsealed)
			break
		}
		if time.Since(unsealed) > 5*time.Second {
			t.Fatal("new scopes still fail 5 s after unsealing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sealed.Store(false)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	if back > time.Second {
		t.Errorf("new scopes worked again %v after unsealing, want within 1 s", back)
	}
	if cachedFailed.Load() != 0 || cachedOK.Load() == 0 {
		t.Errorf("cached scopes while sealed: %d ok, %d failed", cachedOK.Load(), cachedFailed.Load())
	}
	if freshSlow.Load() != 0 || freshOther.Load() != 0 || freshFailedFast.Load() == 0 {
		t.Errorf("new scopes: %d failed fast with a retry hint, %d took 2 s or more, %d other failures (first: %v)",
			freshFailedFast.Load(), freshSlow.Load(), freshOther.Load(), firstOther.Load())
	}
	// No goroutine (and so no connection) left behind.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline+5 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+5 {
		t.Errorf("%d goroutines after the outage, %d before", n, baseline)
	}
	t.Logf("sealed %s: cached %d ok / %d failed; new scopes %d failed fast, %d ok; back %v after unseal; goroutines %d → %d",
		sealedFor, cachedOK.Load(), cachedFailed.Load(), freshFailedFast.Load(), freshOK.Load(), back, baseline, runtime.NumGoroutine())
}
