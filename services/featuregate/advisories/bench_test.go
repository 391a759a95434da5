package advisories_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/google/go-github/v60/github"
)

const (
	benchAdvisories = 20000
	benchBatch      = 100
	// benchPackages per ecosystem: 8 × 1,500 names for about 40,000
	// ranges, drawn with a skew so that popular packages have dozens of
	// advisories and most have a few, as GitHub's data does.
	benchPackages = 1500
)

var benchEcosystems = []string{"npm", "pip", "maven", "rubygems", "go", "nuget", "composer", "rust"}

// benchName is package i of an ecosystem, spelled as that ecosystem's
// packages are (the pip and rust ones need folding to be found).
func benchName(ecosystem string, i int) string {
	switch ecosystem {
	case "pip":
		return fmt.Sprintf("Py_Pkg.%d", i)
	case "maven":
		return fmt.Sprintf("org.example%d:artifact-%d", i%97, i)
	case "rubygems":
		return fmt.Sprintf("gem%d", i)
	case "go":
		return fmt.Sprintf("github.com/org%d/mod%d", i%97, i)
	case "nuget":
		return fmt.Sprintf("Vendor.Pkg%d", i)
	case "composer":
		return fmt.Sprintf("vendor%d/pkg-%d", i%97, i)
	case "rust":
		return fmt.Sprintf("crate_%d", i)
	}
	return fmt.Sprintf("pkg-%d", i)
}

// pick draws a package index, popular ones (low indexes) far more often.
func pick(r *rand.Rand) int {
	f := r.Float64()
	return int(f * f * f * benchPackages)
}

// benchAdvisoryList is the benchmarks' advisories: the same on every
// run, updated a minute apart as a sync by updated_at receives them, each
// with one to three packages and ranges of the shapes GitHub's have.
func benchAdvisoryList() []*github.GlobalSecurityAdvisory {
	r := rand.New(rand.NewPCG(2026, 26))
	out := make([]*github.GlobalSecurityAdvisory, benchAdvisories)
	for i := range out {
		var vulns []vuln
		for range 1 + r.IntN(3) {
			eco := benchEcosystems[r.IntN(len(benchEcosystems))]
			major, minor, patch := r.IntN(5), r.IntN(20), 1+r.IntN(20)
			fixed := fmt.Sprintf("%d.%d.%d", major, minor, patch)
			var rng string
			switch r.IntN(3) {
			case 0:
				rng = "< " + fixed
			case 1:
				rng = fmt.Sprintf(">= %d.%d.0, < %s", major, minor, fixed)
			default:
				rng = fmt.Sprintf("= %d.%d.%d", major, minor, patch-1)
				fixed = ""
			}
			vulns = append(vulns, vuln{eco, benchName(eco, pick(r)), rng, fixed})
		}
		a := advisory(fmt.Sprintf("GHSA-%04x-%04x-bench", i/65536, i%65536), t0.Add(time.Duration(i)*time.Minute), vulns...)
		a.CVEID = github.String(fmt.Sprintf("CVE-2026-%05d", i))
		a.CVSS = &github.AdvisoryCVSS{Score: new(float64(r.IntN(100)) / 10), VectorString: github.String("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")}
		a.CWEs = []*github.AdvisoryCWEs{{CWEID: github.String(fmt.Sprintf("CWE-%d", 20+r.IntN(900))), Name: github.String("weakness")}}
		out[i] = a
	}
	return out
}

// syncAll upserts advs a page at a time, moving the cursor with each, as
// the sync loop will.
func syncAll(b *testing.B, s *advisories.Store, advs []*github.GlobalSecurityAdvisory) int {
	ctx := context.Background()
	changed := 0
	for i := 0; i < len(advs); i += benchBatch {
		page := advs[i:min(i+benchBatch, len(advs))]
		n, err := s.UpsertPage(ctx, page, page[len(page)-1].UpdatedAt.Time)
		if err != nil {
			b.Fatal(err)
		}
		changed += n
	}
	return changed
}

// benchStores runs fn per backend with a maker of fresh databases.
func benchStores(b *testing.B, fn func(b *testing.B, fresh func() string)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, func() string { return testenv.SQLite(b) }) })
	b.Run("postgres", func(b *testing.B) { fn(b, func() string { return advisories.Schema.Postgres(b) }) })
}

// BenchmarkUpsert: a first sync of 20,000 advisories in pages of 100 into
// an empty store (time, allocations), then the same pages again, which
// change nothing (a replay after a crash): its time as a share of the
// first's.
func BenchmarkUpsert(b *testing.B) {
	advs := benchAdvisoryList()
	benchStores(b, func(b *testing.B, fresh func() string) {
		b.ReportAllocs()
		for range b.N {
			// Each iteration a first sync, into an empty database.
			b.StopTimer()
			s := open(b, fresh())
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.StartTimer()
			start := time.Now()
			if n := syncAll(b, s, advs); n != benchAdvisories {
				b.Fatalf("first sync changed %d", n)
			}
			first := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&after)
			start = time.Now()
			if n := syncAll(b, s, advs); n != 0 {
				b.Fatalf("replay changed %d", n)
			}
			replay := time.Since(start)
			b.ReportMetric(first.Seconds(), "sync-s")
			b.ReportMetric(benchAdvisories/first.Seconds(), "advisories/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/benchAdvisories, "allocs/advisory")
			b.ReportMetric(replay.Seconds(), "replay-s")
			b.ReportMetric(replay.Seconds()/first.Seconds(), "replay/sync")
			b.StartTimer()
		}
	})
}

// BenchmarkAffecting: Affecting from many goroutines on a store holding
// the 20,000 advisories, for packages drawn as the advisories' are (so
// popular ones, with many ranges to match, come up most), against a
// baseline of the same call for packages no advisory names (the version
// parse and the index probe, no ranges), in alternating rounds.
//
// testenv.Compare runs the load, not b.RunParallel: make bench runs one
// iteration (-benchtime 1x), which b.RunParallel would spend on a single
// call; here one iteration is a full measurement.
func BenchmarkAffecting(b *testing.B) {
	advs := benchAdvisoryList()
	benchStores(b, func(b *testing.B, fresh func() string) {
		s := open(b, fresh())
		syncAll(b, s, advs)
		var seq atomic.Uint64
		var hits atomic.Int64
		query := func(known bool) func(context.Context) error {
			return func(ctx context.Context) error {
				r := rand.New(rand.NewPCG(seq.Add(1), 1))
				eco := benchEcosystems[r.IntN(len(benchEcosystems))]
				name := benchName(eco, pick(r))
				if !known {
					name += "-unknown"
				}
				version := fmt.Sprintf("%d.%d.%d", r.IntN(5), r.IntN(20), r.IntN(22))
				if eco == "go" {
					version = "v" + version
				}
				got, err := s.Affecting(ctx, eco, name, version)
				hits.Add(int64(len(got)))
				return err
			}
		}
		workers := 4 * runtime.GOMAXPROCS(0)
		b.ResetTimer()
		for range b.N {
			hits.Store(0)
			cmp, err := testenv.Compare(7, 1000, workers, query(false), query(true), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(cmp.Ratio, "affecting/unknown-pkg")
			b.ReportMetric(cmp.Cand.OpsPerSec, "queries/s")
			b.ReportMetric(float64(cmp.Cand.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(cmp.Cand.P99.Microseconds()), "p99-µs")
			b.ReportMetric(cmp.Base.OpsPerSec, "unknown-pkg-queries/s")
			// Both kinds ran 8 rounds of 1,000 (with the warm-up); only
			// the known packages hit.
			b.ReportMetric(float64(hits.Load())/(8*1000), "advisories/query")
		}
	})
}

// BenchmarkSync: the Syncer against GitHub.com (the emulator in contract
// mode, over loopback HTTP) holding 20,000 reviewed advisories: a full
// sync into an empty store, then, after GitHub.com changed 1% of them
// (200), the incremental run. The incremental run's time as a share of
// the full one's is the figure: it should fetch the changed pages only,
// not the whole list again, and spend no more on each than the full sync
// did. Goal: incremental/full ≤ its share of the pages (page-share). The
// run also fetches, again, every advisory in the cursor's own second (it
// asks from that second on): the generator stamps about 1,200 of the
// 20,000 with the same last second, so it asks 15 pages where the 200
// changes fill 2.
func BenchmarkSync(b *testing.B) {
	const changedShare = 200
	benchStores(b, func(b *testing.B, fresh func() string) {
		for range b.N {
			b.StopTimer()
			emu := ghemu.StartForTest(b, ghemu.Options{})
			all, err := emu.GenerateAdvisories(benchAdvisories, 26)
			if err != nil {
				b.Fatal(err)
			}
			gh := github.NewClient(nil)
			gh.BaseURL, _ = url.Parse(emu.URL + "/")
			s := &advisories.Syncer{Store: open(b, fresh()), GitHub: gh}
			ctx := context.Background()
			b.StartTimer()
			start := time.Now()
			full, err := s.Run(ctx)
			if err != nil {
				b.Fatal(err)
			}
			fullTime := time.Since(start)
			b.StopTimer()
			for _, a := range all[:changedShare] {
				if _, err := emu.UpdateAdvisory(a.GHSAID, func(a *ghemu.Advisory) { a.Summary += " (revised)" }); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			start = time.Now()
			inc, err := s.Run(ctx)
			if err != nil {
				b.Fatal(err)
			}
			incTime := time.Since(start)
			b.StopTimer()
			if inc.Changed != changedShare {
				b.Fatalf("incremental run: %+v; want %d changed", inc, changedShare)
			}
			b.ReportMetric(fullTime.Seconds(), "full-s")
			b.ReportMetric(float64(full.Fetched)/fullTime.Seconds(), "advisories/s")
			b.ReportMetric(float64(full.Pages), "full-pages")
			b.ReportMetric(incTime.Seconds()*1000, "incremental-ms")
			b.ReportMetric(float64(inc.Pages), "incremental-pages")
			b.ReportMetric(incTime.Seconds()/fullTime.Seconds(), "incremental/full")
			b.ReportMetric(float64(inc.Pages)/float64(full.Pages), "page-share")
			b.StartTimer()
		}
	})
}
