package advisories_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

// ids lists the advisories' GHSA ids and revisions, in order.
func ids(advs []advisories.Advisory) []string {
	var out []string
	for _, a := range advs {
		out = append(out, a.GHSAID)
	}
	return out
}

func changes(t *testing.T, s *advisories.Store, after int64) []advisories.Advisory {
	t.Helper()
	got, err := s.Changes(context.Background(), after, 100)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func upsert(t *testing.T, s *advisories.Store, want int, advs ...*github.GlobalSecurityAdvisory) {
	t.Helper()
	n, err := s.Upsert(context.Background(), advs)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("Upsert changed %d, want %d", n, want)
	}
}

func affecting(t *testing.T, s *advisories.Store, ecosystem, name, version string) []string {
	t.Helper()
	got, err := s.Affecting(context.Background(), ecosystem, name, version)
	if err != nil {
		t.Fatal(err)
	}
	return ids(got)
}

// TestStoredForm: what Upsert stores of GitHub's advisory is what Changes
// and Affecting give back.
func TestStoredForm(t *testing.T) {
	ctx := context.Background()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		a := advisory("GHSA-aaaa-bbbb-cccc", t0,
			vuln{"npm", "lodash", ">= 4.0.0, < 4.17.21", "4.17.21"},
			vuln{"npm", "lodash-es", "< 4.17.21", ""},
			vuln{"npm", "lodash", ">= 4.0.0, < 4.17.21", "4.17.21"}, // listed twice: one row
			vuln{"", "", "< 1.0", ""},                               // no package: nothing to match
		)
		a.CVEID = github.String("CVE-2021-23337")
		a.CVSS = &github.AdvisoryCVSS{Score: new(7.2), VectorString: github.String("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H")}
		a.CWEs = []*github.AdvisoryCWEs{{CWEID: github.String("CWE-94"), Name: github.String("Improper Control of Generation of Code")}}
		upsert(t, s, 1, a)
		got := changes(t, s, 0)
		if len(got) != 1 {
			t.Fatalf("Changes = %v", ids(got))
		}
		score := 7.2
		want := advisories.Advisory{
			GHSAID: "GHSA-aaaa-bbbb-cccc", CVEID: "CVE-2021-23337", Summary: "summary of GHSA-aaaa-bbbb-cccc", Severity: "high",
			CVSSScore: &score, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H",
			CWEs:        []advisories.CWE{{ID: "CWE-94", Name: "Improper Control of Generation of Code"}},
			HTMLURL:     "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
			PublishedAt: t0.Add(-time.Hour), UpdatedAt: t0,
			Packages: []advisories.Package{
				{Ecosystem: "npm", Name: "lodash", VulnerableRange: ">= 4.0.0, < 4.17.21", FirstPatched: "4.17.21"},
				{Ecosystem: "npm", Name: "lodash-es", VulnerableRange: "< 4.17.21"},
			},
			Revision: got[0].Revision,
		}
		if d := cmp.Diff(want, got[0]); d != "" {
			t.Errorf("Changes (-want +got):\n%s", d)
		}
		hits, err := s.Affecting(ctx, "npm", "lodash", "4.17.20")
		if err != nil {
			t.Fatal(err)
		}
		want.Packages = want.Packages[:1]
		if len(hits) != 1 {
			t.Fatalf("Affecting = %v", ids(hits))
		}
		if d := cmp.Diff(want, hits[0]); d != "" {
			t.Errorf("Affecting (-want +got):\n%s", d)
		}
		// No score and no CWEs stay that way.
		b := advisory("GHSA-noscore", t0, vuln{"go", "example.com/m", "< 1.0.0", ""})
		upsert(t, s, 1, b)
		got = changes(t, s, got[0].Revision)
		if len(got) != 1 || got[0].CVSSScore != nil || len(got[0].CWEs) != 0 || got[0].CVEID != "" || got[0].Withdrawn() {
			t.Errorf("advisory without score, CWEs or CVE: %+v", got)
		}
	})
}

// TestUpsertByUpdatedAt: replays and older copies change nothing; a newer
// copy replaces the advisory and its ranges and gets a new revision; a
// withdrawn one stops matching but stays, and the feed says so.
func TestUpsertByUpdatedAt(t *testing.T) {
	ctx := context.Background()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		a := advisory("GHSA-a", t0, vuln{"pip", "django", "< 4.2.1", "4.2.1"})
		b := advisory("GHSA-b", t0, vuln{"pip", "django", ">= 4.0, < 4.1.9", "4.1.9"})
		woken := s.Changed()
		upsert(t, s, 2, b, a)
		select {
		case <-woken:
		default:
			t.Error("a change did not wake the Changes readers")
		}
		first := changes(t, s, 0)
		if d := cmp.Diff([]string{"GHSA-a", "GHSA-b"}, ids(first)); d != "" {
			t.Fatalf("Changes (-want +got):\n%s", d)
		}
		if first[0].Revision >= first[1].Revision {
			t.Fatalf("revisions not in order: %d, %d", first[0].Revision, first[1].Revision)
		}

		// A replay, and an older copy with another summary and range,
		// change nothing and wake no one.
		woken = s.Changed()
		upsert(t, s, 0, a, b)
		older := advisory("GHSA-a", t0.Add(-time.Minute), vuln{"pip", "django", "< 9.0", ""})
		older.Summary = github.String("older")
		upsert(t, s, 0, older)
		select {
		case <-woken:
			t.Error("an upsert that changed nothing woke the Changes readers")
		default:
		}
		if d := cmp.Diff(first, changes(t, s, 0)); d != "" {
			t.Errorf("replays changed the advisories (-before +after):\n%s", d)
		}
		if got := affecting(t, s, "pip", "django", "5.0"); len(got) != 0 {
			t.Errorf("the older copy's range matches: %v", got)
		}

		// The gate's writers draw from the same revision sequence.
		db, err := sqldb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var gateRev int64
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			gateRev, err = sqldb.NextRevision(ctx, tx)
			return err
		}); err != nil {
			t.Fatal(err)
		}

		// A newer copy, in a page that holds an older one of it after it.
		newer := advisory("GHSA-a", t0.Add(time.Hour), vuln{"pip", "Django", ">= 4.2, < 4.2.2", "4.2.2"})
		newer.Summary = github.String("newer")
		upsert(t, s, 1, newer, a)
		got := changes(t, s, 0)
		if d := cmp.Diff([]string{"GHSA-b", "GHSA-a"}, ids(got)); d != "" {
			t.Fatalf("Changes after the newer copy (-want +got):\n%s", d)
		}
		if got[1].Revision <= gateRev || got[1].Summary != "newer" || !got[1].UpdatedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("newer copy stored as %+v (the gate's last revision %d)", got[1], gateRev)
		}
		if d := cmp.Diff([]string{"GHSA-a"}, ids(changes(t, s, first[1].Revision))); d != "" {
			t.Errorf("Changes after b's revision (-want +got):\n%s", d)
		}
		// Its ranges are the newer copy's only.
		if got := affecting(t, s, "pip", "django", "4.1.0"); !cmp.Equal(got, []string{"GHSA-b"}) {
			t.Errorf("django 4.1.0: %v, want only GHSA-b (a's old range is gone)", got)
		}
		if got := affecting(t, s, "pip", "django", "4.2.1"); !cmp.Equal(got, []string{"GHSA-a"}) {
			t.Errorf("django 4.2.1: %v, want GHSA-a", got)
		}

		// Withdrawn: kept, in the feed, no longer matching.
		if got := affecting(t, s, "pip", "django", "4.0.5"); !cmp.Equal(got, []string{"GHSA-b"}) {
			t.Fatalf("django 4.0.5 before the withdrawal: %v", got)
		}
		withdrawn := advisory("GHSA-b", t0.Add(2*time.Hour), vuln{"pip", "django", ">= 4.0, < 4.1.9", "4.1.9"})
		withdrawn.WithdrawnAt = &github.Timestamp{Time: t0.Add(2 * time.Hour)}
		upsert(t, s, 1, withdrawn)
		if got := affecting(t, s, "pip", "django", "4.0.5"); len(got) != 0 {
			t.Errorf("a withdrawn advisory matches: %v", got)
		}
		got = changes(t, s, 0)
		if d := cmp.Diff([]string{"GHSA-a", "GHSA-b"}, ids(got)); d != "" {
			t.Fatalf("Changes after the withdrawal (-want +got):\n%s", d)
		}
		if !got[1].Withdrawn() || !got[1].WithdrawnAt.Equal(t0.Add(2*time.Hour)) || len(got[1].Packages) != 1 {
			t.Errorf("withdrawn advisory in the feed: %+v", got[1])
		}
		// GitHub.com's updated_at has whole seconds: a second change in
		// the same second as the stored one is a copy as new with other
		// content. It replaces the stored one (GitHub.com serves only
		// the current copy, so the one fetched later is the newer);
		// the same content again changes nothing.
		before := changes(t, s, 0)
		sameSecond := advisory("GHSA-b", t0.Add(2*time.Hour), vuln{"pip", "django", ">= 4.0, < 4.1.10", "4.1.10"})
		sameSecond.WithdrawnAt = withdrawn.WithdrawnAt
		sameSecond.Summary = github.String("corrected in the same second")
		upsert(t, s, 1, sameSecond)
		upsert(t, s, 0, sameSecond)
		got = changes(t, s, 0)
		if len(got) != 2 || got[1].Summary != "corrected in the same second" || got[1].Packages[0].VulnerableRange != ">= 4.0, < 4.1.10" || got[1].Revision <= before[1].Revision {
			t.Errorf("a change in the same second as the stored copy: %+v", got)
		}
		// Changes pages by limit.
		page, err := s.Changes(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"GHSA-a"}, ids(page)); d != "" || len(page[0].Packages) != 1 {
			t.Errorf("Changes limit 1 (-want +got):\n%s %+v", d, page)
		}
	})
}

// TestUpsertRefusesBadPage: an advisory the store cannot serve fails its
// whole page, naming it, and nothing of the page is stored.
func TestUpsertRefusesBadPage(t *testing.T) {
	ctx := context.Background()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		good := advisory("GHSA-good", t0, vuln{"rubygems", "rack", "< 2.2.6.4", "2.2.6.4"})
		noTime := advisory("GHSA-notime", t0, vuln{"npm", "x", "< 1.0.0", ""})
		noTime.UpdatedAt = nil
		for _, bad := range []*github.GlobalSecurityAdvisory{
			advisory("GHSA-tilde", t0, vuln{"rubygems", "rack", "~> 2.2", ""}),
			advisory("GHSA-noop", t0, vuln{"npm", "x", "1.0.0", ""}),
			advisory("GHSA-empty", t0, vuln{"npm", "x", "", ""}),
			advisory("GHSA-word", t0, vuln{"npm", "x", ">= 1.0.0, < next", ""}),
			noTime,
		} {
			n, err := s.UpsertPage(ctx, []*github.GlobalSecurityAdvisory{good, bad}, t0)
			if err == nil || !strings.Contains(err.Error(), bad.GetGHSAID()) || n != 0 {
				t.Errorf("page with %s: changed %d, err %v; want an error naming it", bad.GetGHSAID(), n, err)
			}
		}
		if got := changes(t, s, 0); len(got) != 0 {
			t.Errorf("a refused page stored %v", ids(got))
		}
		if c, err := s.Cursor(ctx); err != nil || !c.IsZero() {
			t.Errorf("a refused page moved the cursor to %v (%v)", c, err)
		}
	})
}

// TestCursorSurvivesReopen: the cursor moves with its page, never back,
// and is there after the database is opened again.
func TestCursorSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	advisories.Schema.Stores(t, func(t *testing.T, dsn string) {
		db, err := sqldb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		s, err := advisories.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := s.Cursor(ctx); err != nil || !c.IsZero() {
			t.Fatalf("new store's cursor %v (%v), want zero", c, err)
		}
		p1 := []*github.GlobalSecurityAdvisory{advisory("GHSA-1", t0, vuln{"maven", "g:a", "< 1.0", ""})}
		if _, err := s.UpsertPage(ctx, p1, t0); err != nil {
			t.Fatal(err)
		}
		// A replayed older page leaves the cursor, as does Upsert.
		if _, err := s.UpsertPage(ctx, p1, t0.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Upsert(ctx, []*github.GlobalSecurityAdvisory{advisory("GHSA-2", t0.Add(time.Hour), vuln{"maven", "g:a", "< 2.0", ""})}); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Cursor(ctx); err != nil || !c.Equal(t0) {
			t.Fatalf("cursor %v (%v), want %v", c, err, t0)
		}
		db.Close()

		s = open(t, dsn)
		if c, err := s.Cursor(ctx); err != nil || !c.Equal(t0) {
			t.Errorf("cursor after reopening %v (%v), want %v", c, err, t0)
		}
		if got := ids(changes(t, s, 0)); !cmp.Equal(got, []string{"GHSA-1", "GHSA-2"}) {
			t.Errorf("advisories after reopening: %v", got)
		}
		next := t0.Add(3 * time.Hour)
		if _, err := s.UpsertPage(ctx, nil, next); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Cursor(ctx); err != nil || !c.Equal(next) {
			t.Errorf("cursor %v (%v), want %v", c, err, next)
		}
	})
}
