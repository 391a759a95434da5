package featuregate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	actionsFeature = featuregatev1.Feature_FEATURE_ACTIONS_ACCESS
	// actionsRepoTTL is how long the tests' proxies believe what
	// GitHub.com said of a repository.
	actionsRepoTTL = 300 * time.Millisecond

	getRepoRoute   = "GET /repos/{owner}/{repo}"
	getCommitRoute = "GET /repos/{owner}/{repo}/commits/{ref}"
	tarballRoute   = "GET /repos/{owner}/{repo}/tarball/{ref}"
	codeloadRoute  = "GET /_codeload/{owner}/{repo}/legacy.tar.gz/{sha}"
	getOrgRoute    = "GET /orgs/{org}"
)

// actionCalls are the emulator's counts of the routes an action uses.
type actionCalls struct{ repo, commit, tarball, codeload, org int }

func (e *contribEnv) actionCalls() actionCalls {
	c := e.b.Emu
	return actionCalls{c.Count(getRepoRoute), c.Count(getCommitRoute), c.Count(tarballRoute), c.Count(codeloadRoute), c.Count(getOrgRoute)}
}

func (a actionCalls) minus(b actionCalls) actionCalls {
	return actionCalls{a.repo - b.repo, a.commit - b.commit, a.tarball - b.tarball, a.codeload - b.codeload, a.org - b.org}
}

// download is one DownloadAction: the archive's description and its
// bytes, or the error.
func download(gate featuregatev1.FeatureGateServiceClient, action string) (*featuregatev1.ActionArchive, []byte, error) {
	repo, ref, _ := strings.Cut(action, "@")
	stream, err := gate.DownloadAction(context.Background(), &featuregatev1.DownloadActionRequest{Repository: repo, Ref: ref})
	if err != nil {
		return nil, nil, err
	}
	var a *featuregatev1.ActionArchive
	var body bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return a, body.Bytes(), nil
		}
		if err != nil {
			return a, nil, err
		}
		if a == nil {
			if a = m.GetArchive(); a == nil {
				return nil, nil, errors.New("the first message is not the archive's description")
			}
			continue
		}
		body.Write(m.GetChunk())
	}
}

func (e *contribEnv) mustDownload(t *testing.T, action string) (*featuregatev1.ActionArchive, []byte) {
	t.Helper()
	a, body, err := download(e.gate, action)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	if int64(len(body)) != a.GetSizeBytes() {
		t.Fatalf("%s: %d bytes for a tarball of %d", action, len(body), a.GetSizeBytes())
	}
	return a, body
}

// refused checks that action is refused with code, its message holding
// words.
func (e *contribEnv) refused(t *testing.T, action string, code codes.Code, words string) *status.Status {
	t.Helper()
	_, _, err := download(e.gate, action)
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), words) {
		t.Fatalf("%s: %v, want %v with %q", action, err, code, words)
	}
	return st
}

// emuTarball is the tarball GitHub.com's download host serves.
func emuTarball(t *testing.T, emu *ghemu.TestServer, repo, sha string) []byte {
	t.Helper()
	resp, err := http.Get(emu.URL + "/_codeload/" + repo + "/legacy.tar.gz/" + sha)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("codeload %s@%s: %d %v", repo, sha, resp.StatusCode, err)
	}
	return b
}

func push(t *testing.T, emu *ghemu.TestServer, repo, ref string, files map[string]string) string {
	t.Helper()
	owner, name, _ := strings.Cut(repo, "/")
	sha, err := emu.PushCommit(owner, name, ghemu.CommitSpec{Ref: ref, Message: "release", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return sha
}

func setRef(t *testing.T, emu *ghemu.TestServer, repo, ref, sha string) {
	t.Helper()
	owner, name, _ := strings.Cut(repo, "/")
	if err := emu.SetRef(owner, name, ref, sha); err != nil {
		t.Fatal(err)
	}
}

func preconditionType(st *status.Status) string {
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok && len(pf.GetViolations()) > 0 {
			return pf.GetViolations()[0].GetType()
		}
	}
	return ""
}

// Runners get GitHub.com actions while the feature works, and nothing
// reaches GitHub.com while it does not: a tag resolves to its commit
// through GitHub.com every time (it moves), the tarball of a commit is
// downloaded once and then served from the cache, a pinned SHA in the
// cache costs GitHub.com nothing, and the emulator's counters prove each.
// Private, missing and deleted repositories, unknown refs and GitHub.com
// failing get clear errors, recorded for the admin page.
func TestActionsForRunners(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startGates(t, dsn, 1, brokertest.Options{})
		emu := e.b.Emu
		emu.AddRepo(ghemu.RepoSpec{Owner: "octo-actions", Name: "setup"})
		emu.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "internal-action", Private: true})
		v1 := push(t, emu, "octo-actions/setup", "main", map[string]string{"action.yml": "name: setup\nruns:\n  using: node20\n", "index.js": "console.log(1)\n"})
		setRef(t, emu, "octo-actions/setup", "tags/v1", v1)

		// Off: refused, and GitHub.com is not asked.
		before := e.actionCalls()
		st := e.refused(t, "octo-actions/setup@v1", codes.FailedPrecondition, "GitHub.com actions work on no connection")
		if got := preconditionType(st); got != "ACTIONS_OFF" {
			t.Errorf("precondition %q, want ACTIONS_OFF", got)
		}
		if d := e.actionCalls().minus(before); d != (actionCalls{}) {
			t.Errorf("GitHub.com asked while the feature was off: %+v", d)
		}

		e.switchFeature(t, actionsFeature, true)
		before = e.actionCalls()
		a, body := e.mustDownload(t, "octo-actions/setup@v1")
		if a.GetSha() != v1 || a.GetFromCache() || a.GetRef() != "v1" {
			t.Errorf("first download: %+v, want %s not from the cache", a, v1)
		}
		if d := e.actionCalls().minus(before); d != (actionCalls{repo: 1, commit: 1, tarball: 1, codeload: 1}) {
			t.Errorf("first download asked GitHub.com %+v; want the repository, the commit and the tarball once", d)
		}
		if want := emuTarball(t, emu, "octo-actions/setup", v1); !bytes.Equal(body, want) {
			t.Errorf("the tarball differs from GitHub.com's (%d bytes, want %d)", len(body), len(want))
		}

		// The SHA, pinned: from the cache, GitHub.com not asked at all.
		before = e.actionCalls()
		a, again := e.mustDownload(t, "octo-actions/setup@"+v1)
		if !a.GetFromCache() || !bytes.Equal(again, body) {
			t.Errorf("by SHA: from cache %v, same bytes %v", a.GetFromCache(), bytes.Equal(again, body))
		}
		if d := e.actionCalls().minus(before); d != (actionCalls{}) {
			t.Errorf("a cached SHA asked GitHub.com %+v", d)
		}
		// The tag again: resolved (it may have moved), not downloaded.
		before = e.actionCalls()
		if a, _ := e.mustDownload(t, "octo-actions/setup@v1"); !a.GetFromCache() || a.GetSha() != v1 {
			t.Errorf("the tag again: %+v", a)
		}
		if d := e.actionCalls().minus(before); d.commit != 1 || d.tarball != 0 || d.codeload != 0 {
			t.Errorf("the tag again asked GitHub.com %+v; want one resolution and no download", d)
		}

		// The tag moves: the new commit is downloaded.
		v2 := push(t, emu, "octo-actions/setup", "main", map[string]string{"action.yml": "name: setup v2\n"})
		setRef(t, emu, "octo-actions/setup", "tags/v1", v2)
		a, body2 := e.mustDownload(t, "octo-actions/setup@v1")
		if a.GetSha() != v2 || a.GetFromCache() || bytes.Equal(body2, body) {
			t.Errorf("after the tag moved: %+v", a)
		}

		// What is refused, each with its reason; none is downloaded.
		before = e.actionCalls()
		st = e.refused(t, "octo-org/internal-action@main", codes.FailedPrecondition, "octo-org/internal-action is a private repository")
		if got := preconditionType(st); got != "PRIVATE_REPOSITORY" {
			t.Errorf("precondition %q, want PRIVATE_REPOSITORY", got)
		}
		e.refused(t, "octo-actions/nothing@v1", codes.NotFound, "octo-actions/nothing: no such public repository on GitHub.com")
		e.refused(t, "octo-actions/setup@v9", codes.NotFound, `octo-actions/setup has no branch, tag or commit "v9"`)
		e.refused(t, "octo-actions/setup@"+strings.Repeat("ab", 20), codes.NotFound, "has no branch, tag or commit")
		e.refused(t, "not a repo@v1", codes.InvalidArgument, "repository")
		e.refused(t, "octo-actions/setup@bad ref", codes.InvalidArgument, "ref")
		if d := e.actionCalls().minus(before); d.codeload != 0 {
			t.Errorf("refused requests downloaded %d tarballs", d.codeload)
		}

		// GitHub.com failing: a clear error, recorded; then it works.
		emu.SetFaults(ghemu.Faults{ServerErrors: 2})
		e.refused(t, "octo-actions/setup@main", codes.Unavailable, "GitHub.com could not serve the action")
		emu.SetFaults(ghemu.Faults{})
		if a, _ := e.mustDownload(t, "octo-actions/setup@main"); a.GetSha() != v2 {
			t.Errorf("after the outage: %+v", a)
		}

		// The repository is deleted: a branch fails at once; the cached
		// SHA once the repository's answer is no longer believed.
		emu.DeleteRepo("octo-actions", "setup")
		e.refused(t, "octo-actions/setup@main", codes.NotFound, "octo-actions/setup: no such public repository on GitHub.com")
		time.Sleep(actionsRepoTTL + 50*time.Millisecond)
		e.refused(t, "octo-actions/setup@"+v1, codes.NotFound, "no such public repository")

		sresp, err := e.gate.GetActionsStatus(context.Background(), &featuregatev1.GetActionsStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		s := sresp.GetStatus()
		if s.GetState() != featuregatev1.ActionsState_ACTIONS_STATE_SERVING || s.GetConnectionId() != e.b.ConnID || s.GetDownloads() != 2 ||
			!strings.Contains(s.GetLastDownload(), "octo-actions/setup@v1 ("+v2+")") ||
			!strings.Contains(s.GetLastRefusal(), "no such public repository") || !strings.Contains(s.GetLastError(), "HTTP 502") ||
			s.GetCachedArchives() != 2 || s.GetCacheHits() != 3 {
			t.Errorf("status: %+v", s)
		}

		// Off again: refused, nothing reaches GitHub.com.
		e.switchFeature(t, actionsFeature, false)
		before = e.actionCalls()
		e.refused(t, "octo-actions/setup@"+v2, codes.FailedPrecondition, "work on no connection")
		if d := e.actionCalls().minus(before); d != (actionCalls{}) {
			t.Errorf("GitHub.com asked after the feature was turned off: %+v", d)
		}
		sresp, _ = e.gate.GetActionsStatus(context.Background(), &featuregatev1.GetActionsStatusRequest{})
		if sresp.GetStatus().GetState() != featuregatev1.ActionsState_ACTIONS_STATE_OFF {
			t.Errorf("status after off: %+v", sresp.GetStatus())
		}
	})
}

// The enterprise's policy decides before GitHub.com is asked: a blocked
// action costs GitHub.com nothing; selected actions allow GitHub's own,
// verified creators' (GitHub.com's mark on the organization) and the
// patterns'. A bad policy is refused and changes nothing; a stale etag
// is refused.
func TestActionsPolicy(t *testing.T) {
	t.Parallel()
	e := startGates(t, testenv.SQLite(t), 1, brokertest.Options{})
	emu := e.b.Emu
	for _, r := range []string{"actions/checkout", "acme/deploy", "someone/thing", "octo-actions/setup", "octo-actions/lint"} {
		owner, name, _ := strings.Cut(r, "/")
		emu.AddRepo(ghemu.RepoSpec{Owner: owner, Name: name, Files: map[string]string{"action.yml": "name: " + name + "\n"}})
	}
	if err := emu.SetVerified("acme", true); err != nil {
		t.Fatal(err)
	}
	e.switchFeature(t, actionsFeature, true)
	ctx := context.Background()
	got, err := e.gate.GetActionsPolicy(ctx, &featuregatev1.GetActionsPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.GetPolicy(); p.GetAllowed() != featuregatev1.ActionsAllowed_ACTIONS_ALLOWED_ALL || len(p.GetPatterns()) != 0 || p.GetUpdateTime() != nil {
		t.Errorf("the default policy: %+v", p)
	}
	e.mustDownload(t, "someone/thing@main")

	// Bad policies: refused, nothing changes.
	for _, bad := range []*featuregatev1.ActionsPolicy{
		{Allowed: featuregatev1.ActionsAllowed_ACTIONS_ALLOWED_SELECTED, Patterns: []string{"no-slash"}},
		{Allowed: featuregatev1.ActionsAllowed_ACTIONS_ALLOWED_ALL, GithubOwned: true},
		{},
	} {
		if _, err := e.gate.UpdateActionsPolicy(ctx, &featuregatev1.UpdateActionsPolicyRequest{Policy: bad}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("policy %+v: %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	if p, _ := e.gate.GetActionsPolicy(ctx, &featuregatev1.GetActionsPolicyRequest{}); p.GetPolicy().GetEtag() != got.GetPolicy().GetEtag() {
		t.Errorf("a refused policy changed the etag: %s → %s", got.GetPolicy().GetEtag(), p.GetPolicy().GetEtag())
	}

	upd, err := e.gate.UpdateActionsPolicy(ctx, &featuregatev1.UpdateActionsPolicyRequest{Etag: got.GetPolicy().GetEtag(), Policy: &featuregatev1.ActionsPolicy{
		Allowed: featuregatev1.ActionsAllowed_ACTIONS_ALLOWED_SELECTED, GithubOwned: true, VerifiedCreators: true,
		Patterns: []string{"octo-actions/*", "!octo-actions/lint"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := upd.GetPolicy(); p.GetUpdateTime() == nil || p.GetEtag() == got.GetPolicy().GetEtag() {
		t.Errorf("saved policy: %+v", p)
	}
	if _, err := e.gate.UpdateActionsPolicy(ctx, &featuregatev1.UpdateActionsPolicyRequest{Etag: got.GetPolicy().GetEtag(),
		Policy: &featuregatev1.ActionsPolicy{Allowed: featuregatev1.ActionsAllowed_ACTIONS_ALLOWED_ALL}}); status.Code(err) != codes.Aborted {
		t.Errorf("a stale etag: %v, want ABORTED", err)
	}

	before := e.actionCalls()
	e.refused(t, "octo-actions/lint@main", codes.PermissionDenied, `blocked by the enterprise's actions policy ("!octo-actions/lint")`)
	if d := e.actionCalls().minus(before); d != (actionCalls{}) {
		t.Errorf("a blocked action asked GitHub.com %+v", d)
	}
	e.mustDownload(t, "octo-actions/setup@main")
	e.mustDownload(t, "actions/checkout@main")
	before = e.actionCalls()
	e.mustDownload(t, "acme/deploy@main")
	if d := e.actionCalls().minus(before); d.org != 1 {
		t.Errorf("a verified creator's action asked for the organization %d times, want 1", d.org)
	}
	e.refused(t, "someone/thing@main", codes.PermissionDenied, "someone/thing@main is not among the actions the enterprise allows")
}

// Many runners asking for the same new commit at once cause one download.
func TestActionsDownloadOncePerCommit(t *testing.T) {
	t.Parallel()
	e := startGates(t, testenv.SQLite(t), 1, brokertest.Options{})
	emu := e.b.Emu
	emu.AddRepo(ghemu.RepoSpec{Owner: "octo-actions", Name: "big"})
	owner, name := "octo-actions", "big"
	sha, err := emu.PushCommit(owner, name, ghemu.CommitSpec{Message: "big", PayloadBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.switchFeature(t, actionsFeature, true)
	want := sha256.Sum256(emuTarball(t, emu, owner+"/"+name, sha))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, body, err := download(e.gate, owner+"/"+name+"@"+sha)
			if err == nil && sha256.Sum256(body) != want {
				err = errors.New("a different tarball")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One from the test itself (emuTarball), one from the gate.
	if n := emu.Count(codeloadRoute); n != 2 {
		t.Errorf("%d downloads from GitHub.com for 8 runners at once; want 1 (and the test's own)", n)
	}
}

// A 100 MB tarball streams through the gate in little memory. Every 8 MB
// the reader stops for a moment, so everything upstream fills whatever it
// buffers and blocks, and the live heap is measured after a collection:
// what the stream holds (the emulator serving it, the gate downloading it
// to the cache and streaming it, this client, as the gateway, reading it)
// must stay under 10 MB above where it started. A reader that never
// stops would measure the collector instead: what is allocated while it
// marks counts as live until the next cycle.
func TestActionStreamsInLittleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB through the gate")
	}
	e := startGates(t, testenv.SQLite(t), 1, brokertest.Options{})
	emu := e.b.Emu
	emu.AddRepo(ghemu.RepoSpec{Owner: "octo-actions", Name: "huge"})
	sha, err := emu.PushCommit("octo-actions", "huge", ghemu.CommitSpec{Message: "huge", PayloadBytes: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.switchFeature(t, actionsFeature, true)
	// Read as the gateway reads it: a connection of pkg/dial's.
	dialer, err := dial.New(dial.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	defer dialer.Close()
	conn, err := dialer.Dial(e.addrs[0], "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gate := featuregatev1.NewFeatureGateServiceClient(conn)

	for _, round := range []string{"downloaded", "from the cache"} {
		size, grew := streamStalling(t, gate, "octo-actions/huge", sha)
		t.Logf("%s: %d MB streamed; the live heap grew by at most %.1f MB", round, size>>20, grew)
		if grew >= 10 {
			t.Errorf("%s: the live heap grew by %.1f MB streaming %d MB; want under 10", round, grew, size>>20)
		}
	}
	if n := emu.Count(codeloadRoute); n != 1 {
		t.Errorf("%d downloads from GitHub.com; want 1", n)
	}
}

// streamStalling reads DownloadAction to its end, stopping for a moment
// every 8 MB so that everything upstream fills what it buffers and
// blocks, and measures the live heap then. It returns the bytes read and
// how far, in MB, the live heap grew above where it started.
func streamStalling(tb testing.TB, gate featuregatev1.FeatureGateServiceClient, repo, ref string) (int64, float64) {
	tb.Helper()
	base := liveHeap()
	peak := base
	stream, err := gate.DownloadAction(context.Background(), &featuregatev1.DownloadActionRequest{Repository: repo, Ref: ref})
	if err != nil {
		tb.Fatal(err)
	}
	var size, next int64
	var first *featuregatev1.ActionArchive
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		if first == nil {
			first = m.GetArchive()
			continue
		}
		size += int64(len(m.GetChunk()))
		if size >= next {
			next += 8 << 20
			time.Sleep(20 * time.Millisecond) // a runner stalls
			peak = max(peak, liveHeap())
		}
	}
	if size != first.GetSizeBytes() {
		tb.Fatalf("%d bytes of %d", size, first.GetSizeBytes())
	}
	return size, float64(peak-base) / (1 << 20)
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// streamAction reads DownloadAction to its end without keeping the bytes;
// it returns their count and whether they came from the cache.
func streamAction(tb testing.TB, gate featuregatev1.FeatureGateServiceClient, repo, ref string) (int64, bool) {
	tb.Helper()
	stream, err := gate.DownloadAction(context.Background(), &featuregatev1.DownloadActionRequest{Repository: repo, Ref: ref})
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	var a *featuregatev1.ActionArchive
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, a.GetFromCache()
		}
		if err != nil {
			tb.Fatal(err)
		}
		if a == nil {
			a = m.GetArchive()
		}
		n += int64(len(m.GetChunk()))
	}
}

// BenchmarkActionTarball: a 100 MB action through the gate, against
// GitHub.com's own download of it (the emulator's download host, read
// straight) in the same run: a new commit (resolved, downloaded to the
// cache and streamed), then the same commit by its SHA (from the cache).
// Goals: a new commit within 3× the straight download (it is read twice:
// into the cache, then to the runner), a cached one no slower than it;
// and the live heap, measured as a stalling runner reads it again, grows
// by under 10 MB.
func BenchmarkActionTarball(b *testing.B) {
	const size = 100 << 20
	e := startGates(b, testenv.SQLite(b), 1, brokertest.Options{})
	emu := e.b.Emu
	emu.AddRepo(ghemu.RepoSpec{Owner: "octo-actions", Name: "bench"})
	e.switchFeature(b, actionsFeature, true)
	straight := func(sha string) time.Duration {
		start := time.Now()
		resp, err := http.Get(emu.URL + "/_codeload/octo-actions/bench/legacy.tar.gz/" + sha)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n < size {
			b.Fatalf("straight download: %d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for i := range b.N {
		sha, err := emu.PushCommit("octo-actions", "bench", ghemu.CommitSpec{Message: fmt.Sprintf("v%d", i), PayloadBytes: size})
		if err != nil {
			b.Fatal(err)
		}
		direct := straight(sha)
		start := time.Now()
		n, cached := streamAction(b, e.gate, "octo-actions/bench", "main")
		fresh := time.Since(start)
		start = time.Now()
		_, hit := streamAction(b, e.gate, "octo-actions/bench", sha)
		fromCache := time.Since(start)
		if cached || !hit || n < size {
			b.Fatalf("new commit from the cache %v, by SHA from the cache %v, %d bytes", cached, hit, n)
		}
		mb := float64(n) / 1e6
		b.ReportMetric(mb/direct.Seconds(), "straight-MB/s")
		b.ReportMetric(mb/fresh.Seconds(), "new-MB/s")
		b.ReportMetric(mb/fromCache.Seconds(), "cached-MB/s")
		b.ReportMetric(fresh.Seconds()/direct.Seconds(), "new/straight")
		b.ReportMetric(fromCache.Seconds()/direct.Seconds(), "cached/straight")
		_, grew := streamStalling(b, e.gate, "octo-actions/bench", sha)
		b.ReportMetric(grew, "live-heap-growth-MB")
	}
}
