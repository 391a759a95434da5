package broker_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/broker"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Reported: an operator imports version 2 straight into Vault, adds its
// public key to the App on GitHub.com and deletes the old one there. The
// registry's record still says version 1 (it has not looked yet); new
// scopes must keep working, signed with the version found in Vault.
func TestRotationInVaultBeforeTheRecordFollows(t *testing.T) {
	t.Parallel()
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
	// Not parallel: it counts the process's goroutines.
	// 20 s is 50 rounds of the callers and over 13 times the longest a
	// sign waits: long enough for a leak per failed call to show.
	sealedFor := 20 * time.Second
	if testing.Short() {
		sealedFor = 10 * time.Second
	}
	// A sign waits at most signWait (1.5 s) for a sealed Vault, so a
	// caller hears Unavailable within about 2 s; on two shared cores under
	// the race detector a few of 20,000 answers took a little over 2 s
	// (scheduling, not waiting). A hang, which this catches, is the Vault
	// client's own 60 s.
	const slowAnswer = 5 * time.Second
	e := brokertest.Start(t, brokertest.Options{OwnVault: true})
	repos := []string{"alpha", "beta", "gamma"}
	for _, r := range repos {
		if _, err := e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{r}}); err != nil {
			t.Fatal(err)
		}
	}

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
				// A call that began while Vault was sealed may end after
				// the probe below saw it back: it counts as a sealed one.
				began := sealed.Load()
				_, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Exclusive: true})
				took := time.Since(start)
				switch {
				case err == nil:
					freshOK.Add(1)
				case !began && !sealed.Load():
					freshOther.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("unsealed: %v", err))
				case status.Code(err) == codes.Unavailable && retryDelay(err) > 0 && took < slowAnswer:
					freshFailedFast.Add(1)
				case took >= slowAnswer:
					freshSlow.Add(1)
				default:
					freshOther.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("sealed: %v", err))
				}
			}
		}()
	}
	// Goroutines and open files (connections) under this load, before the
	// outage.
	time.Sleep(2 * time.Second) // traffic settles before the baseline is taken
	baseline, baseFDs := leastInUse()
	sealed.Store(true)
	e.Vault.Seal(t)
	time.Sleep(sealedFor) // Vault stays sealed this long: the outage under test
	e.Vault.Unseal(t)
	unsealed := time.Now()
	// Within a second of unsealing, a new scope works again.
	testenv.EventuallyErr(t, 5*time.Second, "new scopes work after unsealing", func() error {
		e.Broker.ForgetJWT(e.ConnID)
		_, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Exclusive: true})
		return err
	})
	back := time.Since(unsealed)
	sealed.Store(false)
	time.Sleep(2 * time.Second) // traffic goes on after the outage, so a leak would build up
	after, afterFDs := leastInUse()
	close(stop)
	wg.Wait()

	if back > time.Second {
		t.Errorf("new scopes worked again %v after unsealing, want within 1 s", back)
	}
	if cachedFailed.Load() != 0 || cachedOK.Load() == 0 {
		t.Errorf("cached scopes while sealed: %d ok, %d failed", cachedOK.Load(), cachedFailed.Load())
	}
	if freshSlow.Load() != 0 || freshOther.Load() != 0 || freshFailedFast.Load() == 0 {
		t.Errorf("new scopes: %d failed fast with a retry hint, %d took %v or more, %d other failures (first: %v)",
			freshFailedFast.Load(), freshSlow.Load(), slowAnswer, freshOther.Load(), firstOther.Load())
	}
	// Under the same load after the outage as before it: no goroutine and
	// no connection left behind by the failed calls (thousands of them; the
	// slack is for connection pools and streams in flight).
	if after > baseline+30 || afterFDs > baseFDs+15 {
		t.Errorf("after the outage %d goroutines and %d open files, before it %d and %d", after, afterFDs, baseline, baseFDs)
	}
	t.Logf("sealed %s: cached %d ok / %d failed; new scopes %d failed fast, %d ok; back %v after unseal; goroutines %d → %d, open files %d → %d",
		sealedFor, cachedOK.Load(), cachedFailed.Load(), freshFailedFast.Load(), freshOK.Load(), back, baseline, after, baseFDs, afterFDs)
}

// The broker's Vault login lives 10 s and at most 30 s: 65 seconds of
// token requests that each need a Vault signature (the login renewed
// several times and replaced twice), and not one fails.
func TestShortVaultLoginsUnderTokenTraffic(t *testing.T) {
	t.Parallel()
	length := 65 * time.Second
	if testing.Short() {
		length = 35 * time.Second
	}
	e := brokertest.Start(t, brokertest.Options{VaultTokenTTL: 10 * time.Second, VaultMaxTTL: 30 * time.Second})
	first := e.BrokerVault.Client().Token()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond): // within GitHub.com's 5,000 an hour
				}
				e.Broker.ForgetJWT(e.ConnID) // every request signs anew
				_, err := e.Issue(t, "deploy-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"alpha"}, Exclusive: true})
				if w%2 == 1 {
					_, err = e.Issue(t, "search-svc", &brokerv1.IssueTokenRequest{Repositories: []string{"beta"}})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(length) // the traffic runs this long: the behaviour under test
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d token requests failed; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if want := int64(length/(30*time.Second)) + 1; e.BrokerVault.Logins() < want || e.BrokerVault.Client().Token() == first {
		t.Errorf("%d Vault logins in %s, want at least %d", e.BrokerVault.Logins(), length, want)
	}
	t.Logf("%d token requests, 0 failed, %d Vault logins in %s", ok.Load(), e.BrokerVault.Logins(), length)
}

// A broker whose Vault credentials are wrong does not start, and says
// which setting to fix.
func TestWrongVaultCredentialsStopTheBroker(t *testing.T) {
	t.Parallel()
	e := brokertest.Start(t, brokertest.Options{})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var cfg broker.Config
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "", "-tokens-file", write("tokens", "search-svc sha256:"+strings.Repeat("0", 64)+"\n"), "-policy", write("policy.json", `{"callers": {}}`),
		"-vault-addr", e.Vault.Addr, "-vault-role-id-file", filepath.Join(e.Creds.Dir, "broker-role-id"),
		"-vault-secret-id-file", write("secret-id", "11111111-2222-3333-4444-555555555555"),
		"-github-url", e.Emu.URL, "-registry-addr", "127.0.0.1:1", "-registry-token-file", write("registry-token", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = broker.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "AppRole at auth/approle login") || !strings.Contains(err.Error(), "-vault-secret-id-file") {
		t.Errorf("broker with a wrong secret_id: %v", err)
	}
}

// leastInUse is the fewest goroutines and open files seen in 40 looks over
// two seconds. Under load a single look also counts the calls in flight
// (an exchange holds three goroutines and a connection), tens either way;
// what a leak leaves behind is there at every look.
func leastInUse() (goroutines, files int) {
	goroutines, files = runtime.NumGoroutine(), openFiles()
	for range 39 {
		time.Sleep(50 * time.Millisecond) // looks spread over time, see above
		goroutines, files = min(goroutines, runtime.NumGoroutine()), min(files, openFiles())
	}
	return goroutines, files
}

// openFiles counts this process's open file descriptors (its connections
// among them).
func openFiles() int {
	fds, _ := os.ReadDir("/proc/self/fd")
	return len(fds)
}
