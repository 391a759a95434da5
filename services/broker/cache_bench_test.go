package broker

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
)

// fillTokens caches n distinct shared tokens the way a miss does (policy,
// scope key, GitHub's answer kept as a grant, cache insert, tracking),
// without the network: one repository and 1 to 5 read permissions each.
// It calls lap after every tenth of n.
func fillTokens(b *Broker, n int, lap func(i int)) {
	// Connection ids are UUIDs, as the registry makes them.
	c := &connInfo{id: "2f0c1d7e-8a4b-4c55-9e3a-6b1f0d2c3a4e", connected: true, installationID: 42}
	pol := &CallerPolicy{Connections: []string{"*"}, Repositories: []string{"*"}, Permissions: map[string]string{
		"contents": "read", "issues": "read", "metadata": "read", "pull_requests": "read", "checks": "read"}}
	names := []string{"contents", "issues", "metadata", "pull_requests", "checks"}
	exp := github.Timestamp{Time: time.Now().Add(time.Hour)}
	var kb [256]byte // as the broker keeps it
	for i := range n {
		repo := "repo-" + strconv.Itoa(i)
		perms := map[string]string{}
		for _, p := range names[:1+i%5] {
			perms[p] = "read"
		}
		sc, err := pol.authorize("search-svc", c.id, []string{repo}, nil, perms, false, nil)
		if err != nil {
			panic(err)
		}
		key := string(sc.appendKey(kb[:0], c.id, c.installationID))
		tok := &github.InstallationToken{
			Token: github.String(fmt.Sprintf("ghs_%036d", i)), ExpiresAt: &exp,
			Repositories: []*github.Repository{{ID: github.Int64(int64(1000 + i)), FullName: github.String("octo-org/" + repo)}},
		}
		b.track(b.cache.put(grantOf(tok, c, sc, key), time.Now())...)
		if lap != nil && (i+1)%(n/10) == 0 {
			lap(i + 1)
		}
	}
}

func benchBroker(_ testing.TB) *Broker {
	return &Broker{cache: newCache(DefaultCacheSize), issued: map[string]map[fingerprint]*grant{}, now: time.Now}
}

// BenchmarkCacheFillSpeed fills the cache with 100,000 distinct tokens and
// reports the speed of the last tenth relative to the first (target: at
// least 0.8; the first tenth is the baseline of the same fill). A tenth
// takes tens of milliseconds, so whether a garbage collection falls in it
// moves it by half: the figure is over ten fills, each into a new broker,
// the total time of their first tenths against that of their last tenths,
// which spreads the collections' cost over the laps that caused it.
func BenchmarkCacheFillSpeed(b *testing.B) {
	const fills = 10
	for range b.N {
		var ratios []float64
		var first, final time.Duration
		for range fills {
			br := benchBroker(b)
			var laps []time.Duration
			last := time.Now()
			fillTokens(br, 100000, func(int) {
				now := time.Now()
				laps = append(laps, now.Sub(last))
				last = now
			})
			first, final = first+laps[0], final+laps[len(laps)-1]
			ratios = append(ratios, laps[0].Seconds()/laps[len(laps)-1].Seconds())
		}
		b.ReportMetric(first.Seconds()/final.Seconds(), "last10%/first10%-speed")
		b.ReportMetric(medianOf(ratios), "median-fill-ratio")
		b.ReportMetric(slices.Min(ratios), "worst-ratio")
		b.ReportMetric(fills*10000/first.Seconds(), "first10%-tokens/s")
		b.ReportMetric(fills*10000/final.Seconds(), "last10%-tokens/s")
	}
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func rssBytes() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkCacheMemory100k reports the heap each of 100,000 distinct cached
// tokens costs (target: < 640 B), measured against the heap of the same
// process before filling, and the process's RSS.
func BenchmarkCacheMemory100k(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		rss0 := rssBytes()
		br := benchBroker(b)
		fillTokens(br, 100000, nil)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		rss := rssBytes()
		debug.FreeOSMemory()
		rssFreed := rssBytes()
		if br.cache.len() != 100000 {
			b.Fatalf("cache holds %d", br.cache.len())
		}
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/100000, "heap-B/token")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/100000, "objects/token")
		b.ReportMetric(rss/1e6, "RSS-MB")
		b.ReportMetric(rssFreed/1e6, "RSS-freed-MB")
		b.ReportMetric(rss0/1e6, "RSS-before-MB")
		b.ReportMetric((rss-rss0)/1e6, "RSS-growth-MB")
		runtime.KeepAlive(br)
	}
}
