package featuregate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const listAdvisories = "GET /advisories"

// advisoryEnv is a gate whose connection's App may serve Dependabot
// alerts, with GitHub.com holding n reviewed advisories.
func advisoryEnv(t *testing.T, dsn string, n int) *contribEnv {
	t.Helper()
	e := startGates(t, dsn, 1, brokertest.Options{AppPermissions: map[string]string{"metadata": "read", "vulnerability_alerts": "read"}})
	if _, err := e.b.Emu.GenerateAdvisories(n, 7); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *contribEnv) syncStatus(t *testing.T) advisories.SyncStatus {
	t.Helper()
	st, err := e.stores[0].Advisories().SyncStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// synced waits for a run that ended after since and succeeded.
func (e *contribEnv) synced(t *testing.T, since time.Time) advisories.SyncStatus {
	t.Helper()
	var st advisories.SyncStatus
	testenv.EventuallyErr(t, contribWait, "an advisory sync succeeds", func() error {
		st = e.syncStatus(t)
		if !st.LastSuccess.After(since) {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	return st
}

// syncOff waits until the sync has nothing due.
func (e *contribEnv) syncOff(t *testing.T) {
	t.Helper()
	testenv.EventuallyErr(t, contribWait, "the sync is off", func() error {
		if st := e.syncStatus(t); !st.NextRun.IsZero() {
			return fmt.Errorf("next run %v", st.NextRun)
		}
		return nil
	})
}

func (e *contribEnv) stored(t *testing.T) int {
	t.Helper()
	ch, err := e.stores[0].Advisories().Changes(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return len(ch)
}

// quiet checks that GitHub.com gets no advisory request for a while:
// several of the sync's polls, long enough for one to have started.
func (e *contribEnv) quiet(t *testing.T, what string) {
	t.Helper()
	before := e.b.Emu.Count(listAdvisories)
	time.Sleep(500 * time.Millisecond) // ten polls of the sync's 50 ms
	if n := e.b.Emu.Count(listAdvisories) - before; n != 0 {
		t.Errorf("%s: %d advisory requests reached GitHub.com", what, n)
	}
}

// Dependabot's advisory sync runs only while the feature works: nothing
// reaches GitHub.com while it is off; turned on, a full sync runs at once
// and the next is an hour later; turned off, the sync stops (a run in
// progress too) and says so; on again, it runs at once and takes only
// what changed. A run that fails is retried with backoff and says why.
func TestAdvisorySyncFollowsTheFeature(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := advisoryEnv(t, dsn, 120)
		e.quiet(t, "Dependabot alerts off")
		if st := e.syncStatus(t); !st.LastStart.IsZero() || !st.NextRun.IsZero() {
			t.Errorf("status while off: %+v", st)
		}

		t0 := time.Now()
		e.switchFeature(t, dependabot, true)
		st := e.synced(t, t0)
		if st.Fetched != 120 || st.Changed != 120 || st.LastError != "" || st.Failures != 0 || st.ConnectionID != e.b.ConnID {
			t.Errorf("after the full sync: %+v", st)
		}
		if d := st.NextRun.Sub(st.LastEnd); d != time.Hour {
			t.Errorf("next run %v after the last; want an hour", d)
		}
		if n := e.stored(t); n != 120 {
			t.Errorf("%d advisories stored; want 120", n)
		}
		if n := e.b.Emu.Count(listAdvisories); n != 3 {
			t.Errorf("%d pages asked for; want 3 (120 by 50)", n)
		}
		e.quiet(t, "synced, next run in an hour")

		// Off: nothing is due any more.
		e.switchFeature(t, dependabot, false)
		e.syncOff(t)
		e.quiet(t, "Dependabot alerts turned off")

		// GitHub.com changes one advisory; on again, a run starts at
		// once and stores just that one.
		all, err := e.stores[0].Advisories().Changes(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Emu.UpdateAdvisory(all[0].GHSAID, func(a *ghemu.Advisory) { a.Summary = "changed on GitHub.com" }); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		e.switchFeature(t, dependabot, true)
		st = e.synced(t, t1)
		if st.Changed != 1 || st.Fetched >= 120 {
			t.Errorf("incremental run: %+v; want 1 changed of a few fetched", st)
		}

		// A run stopped half way: GitHub.com slow, the feature turned off
		// after its first page.
		// GitHub.com publishes 300 advisories now.
		for _, a := range ghemu.GeneratedAdvisories(300, 8) {
			a.PublishedAt, a.UpdatedAt, a.GitHubReviewedAt = time.Time{}, time.Time{}, time.Time{}
			if _, err := e.b.Emu.AddAdvisory(a); err != nil {
				t.Fatal(err)
			}
		}
		e.switchFeature(t, dependabot, false)
		e.syncOff(t)
		e.b.Emu.SetFaults(ghemu.Faults{Latency: 300 * time.Millisecond})
		before := e.b.Emu.Count(listAdvisories)
		e.switchFeature(t, dependabot, true)
		testenv.Eventually(t, contribWait, "the run has a page", func() bool { return e.b.Emu.Count(listAdvisories) > before })
		e.switchFeature(t, dependabot, false)
		testenv.EventuallyErr(t, contribWait, "the run stops", func() error {
			if st := e.syncStatus(t); st.Running() || !strings.HasPrefix(st.LastError, "stopped") {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		e.quiet(t, "stopped half way")
		if n := e.b.Emu.Count(listAdvisories) - before; n >= 6 {
			t.Errorf("%d pages asked for by a run stopped after its first; want fewer than the 6 of the whole", n)
		}
		e.b.Emu.SetFaults(ghemu.Faults{})

		// GitHub.com failing: the run fails, says why, and is retried
		// after the backoff; the retry resumes and completes the data.
		e.b.Emu.SetFaults(ghemu.Faults{ServerErrors: 1000})
		t2 := time.Now()
		e.switchFeature(t, dependabot, true)
		testenv.EventuallyErr(t, contribWait, "two failed runs", func() error {
			st := e.syncStatus(t)
			if st.Failures < 2 || !strings.Contains(st.LastError, "HTTP 502") || !strings.Contains(st.LastError, "retrying at") {
				return fmt.Errorf("status %+v", st)
			}
			if wait := st.NextRun.Sub(st.LastEnd); wait < 200*time.Millisecond || wait > 400*time.Millisecond {
				return fmt.Errorf("retry %v after failure %d; want the doubled backoff within 400ms", wait, st.Failures)
			}
			return nil
		})
		e.b.Emu.SetFaults(ghemu.Faults{})
		st = e.synced(t, t2)
		if st.Failures != 0 || st.LastError != "" {
			t.Errorf("after the retries: %+v", st)
		}
		if n := e.stored(t); n != 420 {
			t.Errorf("%d advisories stored; want 420", n)
		}
		if got := e.b.Emu.Counts(); got["GET /advisories"] == 0 {
			t.Errorf("counts %v", got)
		}

		// A rate limit: the next try waits as long as GitHub.com says,
		// not the short backoff.
		e.switchFeature(t, dependabot, false)
		e.syncOff(t)
		e.b.Emu.SetFaults(ghemu.Faults{SecondaryLimit: 1000, RetryAfter: 30 * time.Second})
		e.switchFeature(t, dependabot, true)
		testenv.EventuallyErr(t, contribWait, "a run meets the rate limit", func() error {
			st := e.syncStatus(t)
			if st.Failures == 0 || !strings.Contains(st.LastError, "rate limit") {
				return fmt.Errorf("status %+v", st)
			}
			if wait := st.NextRun.Sub(st.LastEnd); wait < 29*time.Second {
				return fmt.Errorf("retry %v after the rate limit; want GitHub.com's 30 s", wait)
			}
			return nil
		})
		e.b.Emu.SetFaults(ghemu.Faults{})

		// A disconnect stops it too.
		if _, err := e.b.Reg.Client.Disconnect(e.b.Reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: e.b.ConnID}); err != nil {
			t.Fatal(err)
		}
		e.syncOff(t)
		e.quiet(t, "disconnected")
	})
}

// The server's services ask the synced copy: ListAdvisories answers the
// advisories whose range holds the version, by the ecosystem's rules
// (pip's 1.10 is after 1.9), never a withdrawn one, and refuses while
// nobody keeps the copy; WatchAdvisories streams what is held, then each
// change; GetAdvisorySyncStatus says where the sync stands.
func TestAdvisoriesForTheServersServices(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		e := advisoryEnv(t, dsn, 30)
		list := func(eco, pkg, version string) ([]string, error) {
			resp, err := e.gate.ListAdvisories(ctx, &featuregatev1.ListAdvisoriesRequest{Ecosystem: eco, Package: pkg, Version: version})
			var ids []string
			for _, a := range resp.GetAdvisories() {
				ids = append(ids, a.GhsaId)
			}
			return ids, err
		}
		if _, err := list("pip", "django", "1.0"); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("while Dependabot alerts are off: %v; want FailedPrecondition", err)
		}
		st, err := e.gate.GetAdvisorySyncStatus(ctx, &featuregatev1.GetAdvisorySyncStatusRequest{})
		if err != nil || st.Status.State != featuregatev1.AdvisorySyncState_ADVISORY_SYNC_STATE_OFF || st.Status.NextRunTime != nil {
			t.Errorf("status while off: %v, %v", st, err)
		}

		vuln := func(pkg, rng, patched string) []ghemu.Vulnerability {
			return []ghemu.Vulnerability{{Package: ghemu.AdvisoryPackage{Ecosystem: "pip", Name: pkg}, VulnerableVersionRange: rng, FirstPatchedVersion: patched}}
		}
		old, err := e.b.Emu.AddAdvisory(ghemu.Advisory{Summary: "old range", Vulnerabilities: vuln("Web_Kit", "< 1.9", "1.9")})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := e.b.Emu.AddAdvisory(ghemu.Advisory{Summary: "current range", Vulnerabilities: vuln("web-kit", ">= 1.9, < 1.10.2", "1.10.2")})
		if err != nil {
			t.Fatal(err)
		}
		gone, err := e.b.Emu.AddAdvisory(ghemu.Advisory{Summary: "withdrawn", Vulnerabilities: vuln("web.kit", "<= 2.0", "")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Emu.WithdrawAdvisory(gone.GHSAID); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		e.switchFeature(t, dependabot, true)
		e.synced(t, t0)
		for _, c := range []struct {
			version string
			want    []string
		}{
			{"1.8", []string{old.GHSAID}},
			{"1.10", []string{cur.GHSAID}}, // 1.10 > 1.9 for pip, not < it
			{"1.10.2", nil},
			{"2.0", nil}, // only the withdrawn advisory holds it
		} {
			got, err := list("pip", "WEB_kit", c.version) // PEP 503: one package
			if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("web-kit %s: %v, %v; want %v", c.version, got, err, c.want)
			}
		}
		if _, err := list("pip", "web-kit", "not a version!"); status.Code(err) != codes.InvalidArgument {
			t.Errorf("an unreadable version: %v; want InvalidArgument", err)
		}
		if _, err := list("cobol", "web-kit", "1.0"); status.Code(err) != codes.InvalidArgument {
			t.Errorf("an unknown ecosystem: %v; want InvalidArgument", err)
		}
		st, err = e.gate.GetAdvisorySyncStatus(ctx, &featuregatev1.GetAdvisorySyncStatusRequest{})
		if err != nil || st.Status.State != featuregatev1.AdvisorySyncState_ADVISORY_SYNC_STATE_SCHEDULED || st.Status.Advisories != 33 ||
			st.Status.Fetched != 33 || st.Status.LastSuccessTime == nil || st.Status.NextRunTime == nil {
			t.Errorf("status after the sync: %v, %v", st, err)
		}

		// Watch from the start: all 33 held (the withdrawn one too), then a
		// change GitHub.com makes, once the next run takes it.
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := e.gate.WatchAdvisories(wctx, &featuregatev1.WatchAdvisoriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]*featuregatev1.Advisory{}
		var last int64
		for len(seen) < 33 {
			r, err := w.Recv()
			if err != nil {
				t.Fatal(err)
			}
			a := r.Advisory
			if a.Revision <= last {
				t.Fatalf("revision %d after %d", a.Revision, last)
			}
			last, seen[a.GhsaId] = a.Revision, a
		}
		if seen[gone.GHSAID].GetWithdrawTime() == nil || len(seen[cur.GHSAID].GetPackages()) != 1 {
			t.Errorf("streamed: withdrawn %v, current %v", seen[gone.GHSAID], seen[cur.GHSAID])
		}
		if _, err := e.b.Emu.UpdateAdvisory(cur.GHSAID, func(a *ghemu.Advisory) { a.Summary = "current range, corrected" }); err != nil {
			t.Fatal(err)
		}
		// Off and on again: a run at once takes the change.
		e.switchFeature(t, dependabot, false)
		e.syncOff(t)
		t1 := time.Now()
		e.switchFeature(t, dependabot, true)
		if st := e.synced(t, t1); st.Changed != 1 {
			t.Errorf("the run after the change: %+v; want 1 changed", st)
		}
		r, err := w.Recv()
		a := r.GetAdvisory()
		if err != nil || a.GhsaId != cur.GHSAID || a.Summary != "current range, corrected" || a.Revision <= last {
			t.Errorf("next on the stream: %v, %v; want the corrected %s", a, err, cur.GHSAID)
		}
	})
}
