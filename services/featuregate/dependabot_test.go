package featuregate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
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
		testenv.EventuallyErr(t, contribWait, "the sync is off", func() error {
			if st := e.syncStatus(t); !st.NextRun.IsZero() {
				return fmt.Errorf("next run %v", st.NextRun)
			}
			return nil
		})
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
		testenv.EventuallyErr(t, contribWait, "the sync is off", func() error {
			if st := e.syncStatus(t); !st.NextRun.IsZero() {
				return fmt.Errorf("next run %v", st.NextRun)
			}
			return nil
		})
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

		// A disconnect stops it too.
		if _, err := e.b.Reg.Client.Disconnect(e.b.Reg.Ctx(t, "alice"), &registryv1.DisconnectRequest{Id: e.b.ConnID}); err != nil {
			t.Fatal(err)
		}
		testenv.EventuallyErr(t, contribWait, "the sync is off after the disconnect", func() error {
			if st := e.syncStatus(t); !st.NextRun.IsZero() {
				return errors.New("still scheduled")
			}
			return nil
		})
		e.quiet(t, "disconnected")
	})
}
