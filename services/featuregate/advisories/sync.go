package advisories

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/google/go-github/v60/github"
)

// Syncer copies GitHub.com's reviewed global advisories into the store.
// It asks for them oldest change first (sort=updated, direction=asc),
// from the stored cursor on, and stores each page with the cursor it
// completes: a run cut short by an outage or a crash resumes at the last
// page stored, and an advisory seen twice (a page boundary between equal
// timestamps, a replay after a crash) changes nothing the second time.
// The first run, with no cursor, is the full sync. Nothing about the
// server leaves: the request names only the advisory type and the time.
type Syncer struct {
	Store *Store
	// GitHub is GitHub.com's REST API, authenticated by its transport.
	GitHub *github.Client
	// PerPage is the page size; 0 means 100, GitHub's most.
	PerPage int
}

// FetchError is a run's failure to get a page from GitHub.com (as
// opposed to the store's failure to keep it).
type FetchError struct{ Err error }

func (e *FetchError) Error() string { return "listing advisories: " + e.Err.Error() }
func (e *FetchError) Unwrap() error { return e.Err }

// Result is what one run did.
type Result struct {
	// From is the cursor the run started at (zero: a full sync).
	From time.Time
	// Pages and Fetched count what GitHub.com sent; Changed what the
	// store took as new or newer.
	Pages, Fetched, Changed int
	// Cursor is the stored cursor when the run ended.
	Cursor time.Time
}

// Run syncs once, until GitHub.com has nothing newer. An error ends the
// run; what was stored before it stays, and the next run resumes there.
func (s *Syncer) Run(ctx context.Context) (Result, error) {
	from, err := s.Store.Cursor(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: from, Cursor: from}
	perPage := s.PerPage
	if perPage <= 0 {
		perPage = 100
	}
	q := url.Values{"type": {"reviewed"}, "sort": {"updated"}, "direction": {"asc"}, "per_page": {fmt.Sprint(perPage)}}
	if !from.IsZero() {
		// At the cursor too, not after it: advisories updated in the
		// same second as the last stored one may not all have been on
		// that page.
		q.Set("updated", ">="+from.UTC().Format(time.RFC3339))
	}
	for {
		req, err := s.GitHub.NewRequest("GET", "advisories?"+q.Encode(), nil)
		if err != nil {
			return res, err
		}
		var page []*github.GlobalSecurityAdvisory
		resp, err := s.GitHub.Do(ctx, req, &page)
		if err != nil {
			return res, &FetchError{Err: err}
		}
		res.Pages++
		res.Fetched += len(page)
		cursor := res.Cursor
		for _, a := range page {
			if t := a.GetUpdatedAt().Time; t.After(cursor) {
				cursor = t
			}
		}
		changed, err := s.Store.UpsertPage(ctx, page, cursor)
		if err != nil {
			return res, err
		}
		res.Changed += changed
		res.Cursor = cursor
		if resp.After == "" || len(page) == 0 {
			return res, nil
		}
		q.Set("after", resp.After)
	}
}
