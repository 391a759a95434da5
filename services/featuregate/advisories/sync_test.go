package advisories_test

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/google/go-github/v60/github"
)

// outageAfter is GitHub.com (the emulator) starting to fail after n
// requests of a run: from the (n+1)th on it answers 502 for a while.
type outageAfter struct {
	emu   *ghemu.TestServer
	n     int64
	seen  atomic.Int64
	fails int
}

func (o *outageAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	if o.seen.Add(1) == o.n+1 {
		o.emu.SetFaults(ghemu.Faults{ServerErrors: o.fails})
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A full sync takes every reviewed advisory, page by page, oldest change
// first; the next run asks only from the cursor and takes only what
// changed. GitHub.com failing in the middle of a sync loses nothing: the
// pages stored before the outage stay, the next run resumes at the last
// of them (not from the start), and nothing is stored twice.
func TestSyncFullIncrementalAndOutage(t *testing.T) {
	t.Parallel()
	testenv.Stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		emu := ghemu.StartForTest(t, ghemu.Options{})
		if _, err := emu.GenerateAdvisories(450, 11); err != nil {
			t.Fatal(err)
		}
		store := open(t, dsn)
		// Outage after the first two pages: the third page and two
		// retries answer 502.
		outage := &outageAfter{emu: emu, n: 2, fails: 3}
		gh := github.NewClient(&http.Client{Transport: outage})
		gh.BaseURL, _ = url.Parse(emu.URL + "/")
		s := &advisories.Syncer{Store: store, GitHub: gh, PerPage: 100}

		res, err := s.Run(ctx)
		if err == nil || res.Pages != 2 || res.Fetched != 200 || res.Changed != 200 {
			t.Fatalf("run into the outage: %+v, %v; want 2 pages and 200 stored, then an error", res, err)
		}
		cursorAtOutage := res.Cursor
		if c, err := store.Cursor(ctx); err != nil || !c.Equal(cursorAtOutage) || c.IsZero() {
			t.Fatalf("stored cursor %v, %v; want %v", c, err, cursorAtOutage)
		}
		// The runs during the outage fail at their first request and
		// store nothing.
		for range 2 {
			if res, err := s.Run(ctx); err == nil || res.Pages != 0 {
				t.Fatalf("run during the outage: %+v, %v", res, err)
			}
		}
		requests := emu.Count("GET /advisories")
		res, err = s.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		resumed := res
		if !res.From.Equal(cursorAtOutage) || res.Changed != 250 {
			t.Errorf("run after the outage: %+v; want it to start at %v and store the other 250", res, cursorAtOutage)
		}
		if got := emu.Count("GET /advisories") - requests; got != res.Pages || got > 4 {
			t.Errorf("the resumed run made %d requests for %d pages", got, res.Pages)
		}
		all, err := store.Changes(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, a := range all {
			ids[a.GHSAID] = true
		}
		if len(all) != 450 || len(ids) != 450 {
			t.Fatalf("after the outage the store has %d advisories (%d distinct); want 450", len(all), len(ids))
		}
		// What a run fetches again: the advisories updated in the very
		// second it starts at.
		at := func(cursor time.Time) int {
			n := 0
			for _, a := range all {
				if a.UpdatedAt.Equal(cursor) {
					n++
				}
			}
			return n
		}
		if resumed.Fetched != 250+at(cursorAtOutage) {
			t.Errorf("the resumed run fetched %d; want the other 250 and the %d at its cursor", resumed.Fetched, at(cursorAtOutage))
		}
		fullCursor := resumed.Cursor

		// Incremental: three change on GitHub.com, one is withdrawn (now,
		// after every generated advisory's time).
		for _, a := range all[:3] {
			if _, err := emu.UpdateAdvisory(a.GHSAID, func(adv *ghemu.Advisory) { adv.Summary += " (revised)" }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := emu.WithdrawAdvisory(all[3].GHSAID); err != nil {
			t.Fatal(err)
		}
		res, err = s.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Pages != 1 || res.Changed != 4 || res.Fetched != 4+at(fullCursor) {
			t.Errorf("incremental run: %+v; want one page with the 4 changed (and those at the cursor)", res)
		}
		changed, err := store.Changes(ctx, all[len(all)-1].Revision, 100)
		if err != nil {
			t.Fatal(err)
		}
		withdrawn := 0
		for _, a := range changed {
			if a.Withdrawn() {
				withdrawn++
			}
		}
		if len(changed) != 4 || withdrawn != 1 {
			t.Errorf("changes after the incremental run: %d (%d withdrawn); want 4 (1 withdrawn)", len(changed), withdrawn)
		}
		// Nothing new: one request, nothing changed.
		if res, err := s.Run(ctx); err != nil || res.Changed != 0 || res.Pages != 1 {
			t.Errorf("run with nothing new: %+v, %v", res, err)
		}
	})
}
