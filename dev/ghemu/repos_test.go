package ghemu_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v60/github"
)

const (
	commitRoute   = "GET /repos/{owner}/{repo}/commits/{ref}"
	tarballRoute  = "GET /repos/{owner}/{repo}/tarball/{ref}"
	codeloadRoute = "GET /_codeload/{owner}/{repo}/legacy.tar.gz/{sha}"
)

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func push(t *testing.T, e *ghemu.TestServer, owner, repo string, c ghemu.CommitSpec) string {
	t.Helper()
	sha, err := e.PushCommit(owner, repo, c)
	if err != nil {
		t.Fatalf("push to %s/%s: %v", owner, repo, err)
	}
	if !shaRE.MatchString(sha) {
		t.Fatalf("push: SHA %q", sha)
	}
	return sha
}

// notFound checks an error is GitHub's 404 for a repository it does not
// show.
func notFound(t *testing.T, what string, err error) {
	t.Helper()
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusNotFound || er.Message != "Not Found" || er.DocumentationURL == "" {
		t.Errorf("%s: %v, want 404 Not Found with a documentation_url", what, err)
	}
}

// GET /repos/{owner}/{repo}: public repositories to anyone, private ones
// only to tokens that reach them; 404 for the rest, as for a repository
// that does not exist.
func TestGetRepository(t *testing.T) {
	w, _ := peopleWorld(t, ghemu.Options{})
	ctx := context.Background()
	w.emu.AddRepo(ghemu.RepoSpec{Owner: "elsewhere", Name: "open"})
	whole := w.client("token " + w.token(t, nil).GetToken())
	narrow := w.client("token " + w.token(t, &github.InstallationTokenOptions{Repositories: []string{"public-repo"}}).GetToken())
	anon := w.client("")
	mona := w.client("Bearer " + str(w.userToken(t, "mona")["access_token"]))
	hubot := w.client("token " + str(w.userToken(t, "hubot")["access_token"]))

	for name, c := range map[string]*github.Client{"anonymous": anon, "installation token": whole, "narrow token": narrow, "user token": mona} {
		r, _, err := c.Repositories.Get(ctx, "octo-org", "public-repo")
		if err != nil || r.GetFullName() != "octo-org/public-repo" || r.GetPrivate() || r.GetDefaultBranch() != "main" || r.GetOrganization().GetLogin() != "octo-org" {
			t.Errorf("public repository, %s: %v %v", name, r, err)
		}
		if r, _, err := c.Repositories.Get(ctx, "elsewhere", "open"); err != nil || r.GetName() != "open" {
			t.Errorf("public repository of another account, %s: %v %v", name, r, err)
		}
	}
	if r, _, err := whole.Repositories.Get(ctx, "Octo-Org", "Private-Repo"); err != nil || !r.GetPrivate() || r.GetVisibility() != "private" || r.GetName() != "private-repo" {
		t.Errorf("private repository, a token that covers it: %v %v", r, err)
	}
	_, _, err := anon.Repositories.Get(ctx, "octo-org", "private-repo")
	notFound(t, "private repository, anonymous", err)
	_, _, err = narrow.Repositories.Get(ctx, "octo-org", "private-repo")
	notFound(t, "private repository, a token for other repositories", err)
	_, _, err = whole.Repositories.Get(ctx, "elsewhere", "hidden")
	notFound(t, "private repository of an account without the App", err)
	_, _, err = whole.Repositories.Get(ctx, "octo-org", "no-such-repo")
	notFound(t, "unknown repository", err)
	// People: mona is a member of octo-org, hubot only a collaborator on
	// private-repo; neither reaches elsewhere/hidden through the App.
	if _, _, err := mona.Repositories.Get(ctx, "octo-org", "other-private"); err != nil {
		t.Errorf("a member's user token: %v", err)
	}
	if _, _, err := hubot.Repositories.Get(ctx, "octo-org", "private-repo"); err != nil {
		t.Errorf("a collaborator's user token: %v", err)
	}
	_, _, err = hubot.Repositories.Get(ctx, "octo-org", "other-private")
	notFound(t, "a private repository the person cannot read", err)
	_, _, err = mona.Repositories.Get(ctx, "elsewhere", "hidden")
	notFound(t, "a private repository no installation of the App covers", err)
	if _, _, err := w.client("token ghs_nonsense").Repositories.Get(ctx, "octo-org", "public-repo"); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("a bad token: %v, want 401", err)
	}

	// Visibility changes apply at once.
	if err := w.emu.SetPrivate("octo-org", "public-repo", true); err != nil {
		t.Fatal(err)
	}
	_, _, err = anon.Repositories.Get(ctx, "octo-org", "public-repo")
	notFound(t, "a repository made private, anonymous", err)
	if _, _, err := narrow.Repositories.Get(ctx, "octo-org", "public-repo"); err != nil {
		t.Errorf("a repository made private, a token for it: %v", err)
	}
	if err := w.emu.SetPrivate("octo-org", "other-private", false); err != nil {
		t.Fatal(err)
	}
	if r, _, err := anon.Repositories.Get(ctx, "octo-org", "other-private"); err != nil || r.GetPrivate() {
		t.Errorf("a repository made public: %v %v", r, err)
	}
	if err := w.emu.SetPrivate("octo-org", "nope", true); err == nil {
		t.Error("SetPrivate of an unknown repository: no error")
	}
	if got := w.emu.Count("GET /repos/{owner}/{repo}"); got < 10 {
		t.Errorf("counted %d GET /repos/{owner}/{repo}", got)
	}
}

func TestOrganizationVerified(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	org, _, err := w.client("").Organizations.Get(ctx, "octo-org")
	if err != nil || org.IsVerified == nil || *org.IsVerified {
		t.Fatalf("a new organization: %v %v, want is_verified false", org, err)
	}
	if err := w.emu.SetVerified("octo-org", true); err != nil {
		t.Fatal(err)
	}
	if org, _, err := w.client("token "+w.token(t, nil).GetToken()).Organizations.Get(ctx, "octo-org"); err != nil || !org.GetIsVerified() {
		t.Errorf("a verified organization: %v %v", org, err)
	}
	for _, login := range []string{"mona", "octo-corp", "no-such-org"} {
		if err := w.emu.SetVerified(login, true); err == nil {
			t.Errorf("SetVerified(%q): no error", login)
		}
	}
}

// GET /repos/{owner}/{repo}/commits/{ref}: branches, tags, SHAs and SHA
// prefixes resolve; moving a ref moves what it resolves to.
func TestCommitsAndRefs(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	e := w.emu
	c := w.client("")
	head := func(ref string) string {
		t.Helper()
		got, _, err := c.Repositories.GetCommit(ctx, "octo-org", "public-repo", ref, nil)
		if err != nil {
			t.Fatalf("commit %q: %v", ref, err)
		}
		return got.GetSHA()
	}
	initial := head("main")
	if !shaRE.MatchString(initial) {
		t.Fatalf("the first commit's SHA: %q", initial)
	}
	first, _, err := c.Repositories.GetCommit(ctx, "octo-org", "public-repo", initial, nil)
	if err != nil || first.GetCommit().GetMessage() != "Initial commit" || len(first.Parents) != 0 {
		t.Fatalf("the first commit: %v %v", first, err)
	}

	v1 := push(t, e, "octo-org", "public-repo", ghemu.CommitSpec{Message: "v1", Files: map[string]string{"action.yml": "name: one"}})
	if err := e.SetRef("octo-org", "public-repo", "refs/tags/v1", v1); err != nil {
		t.Fatal(err)
	}
	got, _, err := c.Repositories.GetCommit(ctx, "octo-org", "public-repo", "v1", nil)
	if err != nil || got.GetSHA() != v1 || got.GetCommit().GetMessage() != "v1" || len(got.Parents) != 1 || got.Parents[0].GetSHA() != initial ||
		got.GetHTMLURL() != "https://github.com/octo-org/public-repo/commit/"+v1 || got.GetCommit().GetTree().GetSHA() == "" || got.GetCommit().GetAuthor().GetDate().IsZero() {
		t.Fatalf("tag v1: %v %v", got, err)
	}
	for _, ref := range []string{"main", "heads/main", "refs/heads/main", "tags/v1", "refs/tags/v1", v1, v1[:7], v1[:12], strings.ToUpper(v1[:10])} {
		if got := head(ref); got != v1 {
			t.Errorf("%q resolves to %s, want %s", ref, got, v1)
		}
	}

	// A push to a new branch starts from the default branch.
	feature := push(t, e, "octo-org", "public-repo", ghemu.CommitSpec{Ref: "feature/x", Message: "wip", Files: map[string]string{"action.yml": "name: wip"}})
	if got, _, err := c.Repositories.GetCommit(ctx, "octo-org", "public-repo", "feature/x", nil); err != nil || got.GetSHA() != feature || got.Parents[0].GetSHA() != v1 {
		t.Errorf("branch feature/x: %v %v", got, err)
	}
	if got := head("heads/feature/x"); got != feature {
		t.Errorf("heads/feature/x: %s", got)
	}
	// An escaped slash is one segment, as the description has it.
	req, _ := c.NewRequest("GET", "repos/octo-org/public-repo/commits/feature%2Fx", nil)
	var rc github.RepositoryCommit
	if _, err := c.Do(ctx, req, &rc); err != nil || rc.GetSHA() != feature {
		t.Errorf("feature%%2Fx: %v %v", rc.SHA, err)
	}

	// Moving the tag moves what it resolves to; main is unchanged.
	v2 := push(t, e, "octo-org", "public-repo", ghemu.CommitSpec{Message: "v2", Files: map[string]string{"action.yml": "name: two"}})
	if head("v1") != v1 {
		t.Error("a push moved the tag")
	}
	if err := e.SetRef("octo-org", "public-repo", "v1", v2); err != nil { // a bare name: the existing tag
		t.Fatal(err)
	}
	if got := head("v1"); got != v2 {
		t.Errorf("v1 after the move: %s, want %s", got, v2)
	}
	if got := head("tags/v1"); got != v2 {
		t.Errorf("tags/v1 after the move: %s, want %s", got, v2)
	}
	if err := e.SetRef("octo-org", "public-repo", "heads/main", initial); err != nil {
		t.Fatal(err)
	}
	if got := head("main"); got != initial {
		t.Errorf("main moved back: %s, want %s", got, initial)
	}
	if got := head(v2); got != v2 {
		t.Errorf("a commit no branch holds: %s", got)
	}
	if r, _, err := c.Repositories.Get(ctx, "octo-org", "public-repo"); err != nil || r.GetPushedAt().IsZero() {
		t.Errorf("repository after pushes: %v %v", r, err)
	}

	// A tag and a branch of one name: the tag wins, as in Git.
	if err := e.SetRef("octo-org", "public-repo", "refs/heads/v1", feature); err != nil {
		t.Fatal(err)
	}
	if got := head("v1"); got != v2 {
		t.Errorf("v1, a tag and a branch: %s, want the tag's %s", got, v2)
	}

	// go-github's GetCommitSHA1: the SHA alone, 304 when it has not changed.
	sha, _, err := c.Repositories.GetCommitSHA1(ctx, "octo-org", "public-repo", "tags/v1", "")
	if err != nil || sha != v2 {
		t.Errorf("GetCommitSHA1: %q %v", sha, err)
	}
	if _, _, err := c.Repositories.GetCommitSHA1(ctx, "octo-org", "public-repo", "v1", v2); statusOf(err) != http.StatusNotModified {
		t.Errorf("GetCommitSHA1 with the current SHA: %v, want 304", err)
	}

	// 422 for a ref that names no commit, 404 for a repository it cannot see.
	for _, ref := range []string{"no-such-branch", "0000000", v1[:6], "tags/main"} {
		_, _, err := c.Repositories.GetCommit(ctx, "octo-org", "public-repo", ref, nil)
		var er *github.ErrorResponse
		if !errors.As(err, &er) || er.Response.StatusCode != http.StatusUnprocessableEntity || er.Message != "No commit found for SHA: "+ref {
			t.Errorf("ref %q: %v, want 422 No commit found for SHA: %s", ref, err, ref)
		}
	}
	_, _, err = c.Repositories.GetCommit(ctx, "octo-org", "private-repo", "main", nil)
	notFound(t, "a private repository's commit, anonymous", err)
	_, _, err = c.Repositories.GetCommit(ctx, "octo-org", "nope", "main", nil)
	notFound(t, "an unknown repository's commit", err)
	if got, _, err := w.client("token "+w.token(t, nil).GetToken()).Repositories.GetCommit(ctx, "octo-org", "private-repo", "main", nil); err != nil || !shaRE.MatchString(got.GetSHA()) {
		t.Errorf("a private repository's commit with a token: %v %v", got, err)
	}

	// The Go API's refusals.
	for name, err := range map[string]error{
		"unknown repository":       e.SetRef("octo-org", "nope", "main", v1),
		"SHA of no commit":         e.SetRef("octo-org", "public-repo", "main", strings.Repeat("a", 40)),
		"another repository's SHA": e.SetRef("octo-org", "other-private", "main", v1),
		"bad ref name":             e.SetRef("octo-org", "public-repo", "tags/bad..name", v1),
	} {
		if err == nil {
			t.Errorf("SetRef, %s: no error", name)
		}
	}
	for name, spec := range map[string]ghemu.CommitSpec{
		"to a tag":                 {Ref: "refs/tags/v1"},
		"payload.bin with payload": {Files: map[string]string{"payload.bin": "x"}, PayloadBytes: 1},
		"negative payload":         {PayloadBytes: -1},
		"a path with ..":           {Files: map[string]string{"../x": "x"}},
		"a file and a directory":   {Files: map[string]string{"a": "x", "a/b": "y"}},
	} {
		if _, err := e.PushCommit("octo-org", "public-repo", spec); err == nil {
			t.Errorf("PushCommit %s: no error", name)
		}
	}
	if _, err := e.PushCommit("octo-org", "nope", ghemu.CommitSpec{}); err == nil {
		t.Error("PushCommit to an unknown repository: no error")
	}
	if got := e.Count(commitRoute); got < 20 {
		t.Errorf("counted %d commit requests", got)
	}
}

// Code search reads the default branch's files.
func TestSearchFollowsDefaultBranch(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	repoNames := func(c *github.Client, q string) []string { return codeHits(t, c, q) }
	push(t, w.emu, "octo-org", "public-repo", ghemu.CommitSpec{Ref: "side", Files: map[string]string{"side.txt": "connect sidebranch"}})
	if got := repoNames(w.client(""), "sidebranch"); len(got) != 0 {
		t.Errorf("a branch other than the default is searched: %v", got)
	}
	push(t, w.emu, "octo-org", "public-repo", ghemu.CommitSpec{Files: map[string]string{"new.txt": "connect mainline"}})
	if diff := cmp.Diff([]string{"public-repo:new.txt"}, repoNames(w.client(""), "connect org:octo-org is:public")); diff != "" {
		t.Errorf("search after a push to main (-want +got):\n%s", diff)
	}
}

type tarEntry struct {
	Name    string
	Type    byte
	Mode    int64
	Size    int64
	ModTime time.Time
	Content string // up to 1 KB; the rest is hashed
	SHA256  string
}

// readTarball reads a whole gzipped tar from r: its entries, and the
// SHA-256 of every byte r gave.
func readTarball(t *testing.T, r io.Reader) ([]tarEntry, string) {
	t.Helper()
	all := sha256.New()
	r = io.TeeReader(r, all)
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("gzip header: name %q time %v, want neither", gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		en := tarEntry{Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, Size: hdr.Size, ModTime: hdr.ModTime}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			en.Content = "comment=" + hdr.PAXRecords["comment"]
		}
		var head bytes.Buffer
		h := sha256.New()
		n, err := io.CopyN(io.MultiWriter(h, &limitWriter{&head, 1024}), tr, hdr.Size)
		if err != nil || n != hdr.Size {
			t.Fatalf("%s: read %d of %d bytes: %v", hdr.Name, n, hdr.Size, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			en.Content, en.SHA256 = head.String(), hex.EncodeToString(h.Sum(nil))
		}
		out = append(out, en)
	}
	// What is left is the tar's padding and gzip's trailer.
	if _, err := io.Copy(io.Discard, io.LimitReader(gz, 1<<20)); err != nil {
		t.Fatalf("gzip trailer: %v", err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	return out, hex.EncodeToString(all.Sum(nil))
}

type limitWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func sumOf(r io.Reader) string {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The tarball route redirects to the emulated codeload host, which serves
// GitHub's layout; private repositories' URLs carry a short-lived token.
func TestTarball(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	e := w.emu
	files := map[string]string{"action.yml": "name: hello\nruns:\n  using: node20\n  main: dist/index.js\n", "dist/index.js": "console.log('hi')\n", "dist/lib/util.js": "//\n"}
	sha := push(t, e, "octo-org", "public-repo", ghemu.CommitSpec{Message: "release", Files: files, PayloadBytes: 3000})
	if err := e.SetRef("octo-org", "public-repo", "tags/v1", sha); err != nil {
		t.Fatal(err)
	}
	anon := w.client("")
	loc, resp, err := anon.Repositories.GetArchiveLink(ctx, "octo-org", "public-repo", github.Tarball, &github.RepositoryContentGetOptions{Ref: "v1"}, 0)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("tarball link: %v %v", loc, err)
	}
	base, _ := url.Parse(w.emu.URL)
	if want := "http://" + base.Host + "/_codeload/octo-org/public-repo/legacy.tar.gz/" + sha; loc.String() != want {
		t.Errorf("Location %s, want %s", loc, want)
	}

	get := func(u string) (*http.Response, []tarEntry, string) {
		t.Helper()
		resp, err := http.DefaultClient.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return resp, nil, string(b)
		}
		entries, sum := readTarball(t, resp.Body)
		return resp, entries, sum
	}
	resp2, entries, sum := get(loc.String())
	top := "octo-org-public-repo-" + sha[:7] + "/"
	if ct, cd := resp2.Header.Get("Content-Type"), resp2.Header.Get("Content-Disposition"); ct != "application/x-gzip" || cd != "attachment; filename=octo-org-public-repo-"+sha[:7]+".tar.gz" {
		t.Errorf("headers: Content-Type %q, Content-Disposition %q", ct, cd)
	}
	commit, _, err := anon.Repositories.GetCommit(ctx, "octo-org", "public-repo", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	when := commit.GetCommit().GetCommitter().GetDate().Time
	var got []string
	for _, en := range entries {
		if en.Type != tar.TypeXGlobalHeader && !en.ModTime.Equal(when) {
			t.Errorf("%s: mtime %v, want the commit's %v", en.Name, en.ModTime, when)
		}
		s := string(en.Type) + " " + en.Name + " " + strconv.FormatInt(en.Size, 10) + " " + strconv.FormatInt(en.Mode, 8)
		if en.Type == tar.TypeReg && en.Name != top+"payload.bin" {
			if en.Content != files[strings.TrimPrefix(en.Name, top)] {
				t.Errorf("%s: content %q", en.Name, en.Content)
			}
		}
		if en.Type == tar.TypeXGlobalHeader {
			s += " " + en.Content
		}
		got = append(got, s)
	}
	want := []string{
		"g pax_global_header 0 0 comment=" + sha,
		"5 " + top + " 0 775",
		"0 " + top + "action.yml " + strconv.Itoa(len(files["action.yml"])) + " 664",
		"5 " + top + "dist/ 0 775",
		"0 " + top + "dist/index.js 18 664",
		"5 " + top + "dist/lib/ 0 775",
		"0 " + top + "dist/lib/util.js 3 664",
		"0 " + top + "payload.bin 3000 664",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if en := entries[len(entries)-1]; en.SHA256 != sumOf(ghemu.Payload(sha, 3000)) {
		t.Error("payload.bin is not ghemu.Payload")
	}
	if _, _, again := get(loc.String()); again != sum {
		t.Errorf("the same commit's tarball differs: %s, then %s", sum, again)
	}
	// Another commit, another payload.
	other := push(t, e, "octo-org", "public-repo", ghemu.CommitSpec{PayloadBytes: 3000})
	if sumOf(ghemu.Payload(other, 3000)) == sumOf(ghemu.Payload(sha, 3000)) {
		t.Error("two commits have the same payload")
	}

	// A Go client follows the redirect, with a token or without.
	for name, c := range map[string]*http.Client{"anonymous": http.DefaultClient, "token": {Transport: bearer{"token " + w.token(t, nil).GetToken()}}} {
		resp, err := c.Get(w.emu.URL + "/repos/octo-org/public-repo/tarball/" + sha[:7])
		if err != nil {
			t.Fatal(err)
		}
		entries, again := readTarball(t, resp.Body)
		resp.Body.Close()
		if again != sum || len(entries) != len(want) {
			t.Errorf("%s, through the redirect: %d entries, sum %s, want %s", name, len(entries), again, sum)
		}
	}

	// 404: an unknown ref or repository, an unknown commit on codeload.
	noRedirect := noRedirect()
	for _, path := range []string{"/repos/octo-org/public-repo/tarball/no-such-ref", "/repos/octo-org/nope/tarball/main", "/repos/octo-org/private-repo/tarball/main"} {
		resp, err := noRedirect.Get(w.emu.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || body["message"] != "Not Found" {
			t.Errorf("%s: %d %v, want 404 Not Found", path, resp.StatusCode, body)
		}
	}
	for _, u := range []string{
		w.emu.URL + "/_codeload/octo-org/public-repo/legacy.tar.gz/" + strings.Repeat("0", 40),
		w.emu.URL + "/_codeload/octo-org/public-repo/legacy.tar.gz/" + sha[:7],
		w.emu.URL + "/_codeload/octo-org/other-private/legacy.tar.gz/" + sha,
	} {
		if resp, _, body := get(u); resp.StatusCode != http.StatusNotFound || body != "404: Not Found" {
			t.Errorf("%s: %d %q", u, resp.StatusCode, body)
		}
	}

	// Faults apply to the download as to every route.
	e.SetFaults(ghemu.Faults{ServerErrors: 1})
	if resp, _, _ := get(loc.String()); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("download with a server error injected: %d", resp.StatusCode)
	}
	if resp, _, again := get(loc.String()); resp.StatusCode != http.StatusOK || again != sum {
		t.Errorf("download after the fault: %d", resp.StatusCode)
	}
	if got := e.Count(tarballRoute); got != 6 {
		t.Errorf("counted %d tarball requests, want 6", got)
	}
	if got := e.Count(codeloadRoute); got != 9 {
		t.Errorf("counted %d downloads, want 9", got)
	}
}

// A private repository's download URL carries a token for that commit,
// good for five minutes.
func TestPrivateTarball(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	e := w.emu
	sha := push(t, e, "octo-org", "private-repo", ghemu.CommitSpec{Files: map[string]string{"a.txt": "a"}})
	c := w.client("token " + w.token(t, nil).GetToken())
	loc, _, err := c.Repositories.GetArchiveLink(ctx, "octo-org", "private-repo", github.Tarball, &github.RepositoryContentGetOptions{Ref: "main"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	token := loc.Query().Get("token")
	if token == "" || loc.Path != "/_codeload/octo-org/private-repo/legacy.tar.gz/"+sha {
		t.Fatalf("Location %s", loc)
	}
	status := func(u string) int {
		t.Helper()
		resp, err := http.DefaultClient.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(loc.String()); got != http.StatusOK {
		t.Errorf("with its token: %d", got)
	}
	if got := status(loc.String()); got != http.StatusOK {
		t.Errorf("with its token, again: %d", got)
	}
	bare := *loc
	bare.RawQuery = ""
	if got := status(bare.String()); got != http.StatusNotFound {
		t.Errorf("without the token: %d", got)
	}
	if got := status(bare.String() + "?token=" + strings.Repeat("A", len(token))); got != http.StatusNotFound {
		t.Errorf("with another token: %d", got)
	}
	// The token is for this commit only.
	first, _, err := c.Repositories.GetCommit(ctx, "octo-org", "private-repo", sha, nil)
	if err != nil || len(first.Parents) != 1 {
		t.Fatal(err)
	}
	initial := first.Parents[0].GetSHA()
	if got := status(strings.Replace(loc.String(), sha, initial, 1)); got != http.StatusNotFound {
		t.Errorf("the token for another commit: %d", got)
	}
	// A token that covers other repositories only gets no link.
	narrow := w.client("token " + w.token(t, &github.InstallationTokenOptions{Repositories: []string{"public-repo"}}).GetToken())
	if _, resp, err := narrow.Repositories.GetArchiveLink(ctx, "octo-org", "private-repo", github.Tarball, &github.RepositoryContentGetOptions{Ref: "main"}, 0); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("a token for other repositories: %v", err)
	}
	// Five minutes later the token has expired.
	e.SetFaults(ghemu.Faults{ClockOffset: 5*time.Minute + time.Second})
	if got := status(loc.String()); got != http.StatusNotFound {
		t.Errorf("an expired token: %d", got)
	}
	e.SetFaults(ghemu.Faults{})
	if got := status(loc.String()); got != http.StatusOK {
		t.Errorf("the token before it expires: %d", got)
	}
	// A deleted repository's URL no longer works.
	if !e.DeleteRepo("octo-org", "private-repo") {
		t.Fatal("DeleteRepo: not found")
	}
	if got := status(loc.String()); got != http.StatusNotFound {
		t.Errorf("a deleted repository's download: %d", got)
	}
}

// DeleteRepo: the repository is gone from every route, and from the
// installations that selected it.
func TestDeleteRepo(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	e := w.emu
	e.AddRepo(ghemu.RepoSpec{Owner: "mona", Name: "dots", Private: true})
	e.AddRepo(ghemu.RepoSpec{Owner: "mona", Name: "keep"})
	inst, err := e.Install(w.appID, "mona", nil, []string{"dots", "keep"})
	if err != nil {
		t.Fatal(err)
	}
	c := w.client("")
	sha, _, err := c.Repositories.GetCommitSHA1(ctx, "octo-org", "public-repo", "main", "")
	if err != nil {
		t.Fatal(err)
	}
	if !e.DeleteRepo("Octo-Org", "Public-Repo") {
		t.Fatal("DeleteRepo: not found")
	}
	if e.DeleteRepo("octo-org", "public-repo") {
		t.Error("DeleteRepo twice: found")
	}
	_, _, err = c.Repositories.Get(ctx, "octo-org", "public-repo")
	notFound(t, "a deleted repository", err)
	_, _, err = c.Repositories.GetCommit(ctx, "octo-org", "public-repo", sha, nil)
	notFound(t, "a deleted repository's commit", err)
	if _, resp, _ := c.Repositories.GetArchiveLink(ctx, "octo-org", "public-repo", github.Tarball, &github.RepositoryContentGetOptions{Ref: sha}, 0); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Error("a deleted repository's tarball")
	}
	res, _, err := c.Search.Code(ctx, "connect repo:octo-org/public-repo", nil)
	if err != nil || res.GetTotal() != 0 {
		t.Errorf("search finds a deleted repository: %v %v", res.GetTotal(), err)
	}
	// A new repository of the same name is another one.
	e.AddRepo(ghemu.RepoSpec{Owner: "octo-org", Name: "public-repo"})
	if got, _, err := c.Repositories.GetCommitSHA1(ctx, "octo-org", "public-repo", "main", ""); err != nil || got == sha {
		t.Errorf("the new repository's main: %q %v (the old one's was %s)", got, err, sha)
	}
	// The installation loses the deleted repository.
	e.DeleteRepo("mona", "dots")
	got, _ := e.Installation(inst.ID)
	if len(got.RepoIDs) != 1 {
		t.Errorf("installation repositories after a delete: %v", got.RepoIDs)
	}
}

// A 100 MB tarball streams: valid, deterministic, and the emulator's heap
// stays small while it serves it.
func TestTarball100MBStreams(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	const size = 100 << 20
	files := map[string]string{"action.yml": "name: big\n", "dist/index.js": "console.log(1)\n"}
	sha := push(t, w.emu, "octo-org", "private-repo", ghemu.CommitSpec{Ref: "release", Message: "big", Files: files, PayloadBytes: size})
	client := &http.Client{Transport: bearer{"token " + w.token(t, nil).GetToken()}}
	wantPayload := sumOf(ghemu.Payload(sha, size))
	top := "octo-org-private-repo-" + sha[:7] + "/"

	download := func() string {
		t.Helper()
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base := int64(ms.HeapAlloc) //nolint:gosec // G115: heap sizes are far below 2^63
		stop, peak := make(chan struct{}), make(chan int64)
		go func() {
			var most int64
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					peak <- most
					return
				case <-tick.C:
					var ms runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&ms)
					most = max(most, int64(ms.HeapAlloc)-base) //nolint:gosec // G115: as above
				}
			}
		}()
		start := time.Now()
		resp, err := client.Get(w.emu.URL + "/repos/octo-org/private-repo/tarball/release")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("token") == "" {
			t.Fatalf("download: %d from %s", resp.StatusCode, resp.Request.URL)
		}
		entries, sum := readTarball(t, resp.Body)
		resp.Body.Close()
		close(stop)
		grown := <-peak
		t.Logf("%d MB in %v; heap grew by at most %.1f MB", size>>20, time.Since(start).Round(time.Millisecond), float64(grown)/(1<<20))
		if grown > 10<<20 {
			t.Errorf("heap grew by %.1f MB serving the tarball; want under 10", float64(grown)/(1<<20))
		}
		var got []string
		for _, en := range entries {
			got = append(got, en.Name+" "+strconv.FormatInt(en.Size, 10))
			if en.Name == top+"payload.bin" && en.SHA256 != wantPayload {
				t.Error("payload.bin is not ghemu.Payload")
			}
		}
		want := []string{"pax_global_header 0", top + " 0", top + "action.yml 10", top + "dist/ 0", top + "dist/index.js 15", top + "payload.bin " + strconv.FormatInt(size, 10)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("entries (-want +got):\n%s", diff)
		}
		return sum
	}
	first := download()
	if second := download(); second != first {
		t.Errorf("two downloads differ: %s, then %s", first, second)
	}
}

// The HTTP controls for process-level tests.
func TestRepoControls(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	ctx := context.Background()
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		var r io.Reader
		if s, ok := body.(string); ok {
			r = strings.NewReader(s)
		} else if body != nil {
			raw, _ := json.Marshal(body)
			r = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, w.emu.URL+path, r)
		return sendJSON(t, req)
	}
	anon := w.client("")

	status, body := call("POST", "/_emu/repos/acme/actions", map[string]any{"private": true})
	if status != http.StatusCreated || body["full_name"] != "acme/actions" || body["private"] != true || !shaRE.MatchString(str(body["sha"])) {
		t.Fatalf("create: %d %v", status, body)
	}
	_, _, err := anon.Repositories.Get(ctx, "acme", "actions")
	notFound(t, "a private repository created over HTTP", err)
	if status, body := call("POST", "/_emu/repos/acme/actions", map[string]any{"private": false}); status != http.StatusOK || body["private"] != false {
		t.Errorf("make public: %d %v", status, body)
	}
	if r, _, err := anon.Repositories.Get(ctx, "acme", "actions"); err != nil || r.GetOwner().GetType() != "Organization" {
		t.Errorf("the created repository: %v %v", r, err)
	}

	status, body = call("POST", "/_emu/repos/acme/actions/commits", map[string]any{"ref": "release", "message": "v1", "files": map[string]string{"action.yml": "name: x"}, "payload_bytes": 1024})
	sha := str(body["sha"])
	if status != http.StatusOK || !shaRE.MatchString(sha) {
		t.Fatalf("push: %d %v", status, body)
	}
	if status, body := call("PUT", "/_emu/repos/acme/actions/refs/tags/v1", map[string]any{"sha": sha}); status != http.StatusNoContent {
		t.Errorf("tag: %d %v", status, body)
	}
	if got, _, err := anon.Repositories.GetCommit(ctx, "acme", "actions", "v1", nil); err != nil || got.GetSHA() != sha || got.GetCommit().GetMessage() != "v1" {
		t.Errorf("v1 after the control: %v %v", got, err)
	}
	if status, _ := call("PUT", "/_emu/repos/acme/actions/refs/heads/main", map[string]any{"sha": sha}); status != http.StatusNoContent {
		t.Errorf("move main: %d", status)
	}
	if got, _, err := anon.Repositories.GetCommitSHA1(ctx, "acme", "actions", "main", ""); err != nil || got != sha {
		t.Errorf("main after the control: %q %v", got, err)
	}

	if status, _ := call("PUT", "/_emu/orgs/acme/verified", map[string]any{"verified": true}); status != http.StatusNoContent {
		t.Errorf("verify: %d", status)
	}
	if org, _, err := anon.Organizations.Get(ctx, "acme"); err != nil || !org.GetIsVerified() {
		t.Errorf("a verified organization: %v %v", org, err)
	}

	for _, c := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/_emu/repos/acme/nope/commits", map[string]any{"message": "x"}, http.StatusNotFound},
		{"POST", "/_emu/repos/acme/actions/commits", map[string]any{"files": map[string]string{"payload.bin": "x"}, "payload_bytes": 1}, http.StatusUnprocessableEntity},
		{"POST", "/_emu/repos/acme/actions/commits", "{not json", http.StatusBadRequest},
		{"PUT", "/_emu/repos/acme/actions/refs/tags/v2", map[string]any{"sha": strings.Repeat("b", 40)}, http.StatusUnprocessableEntity},
		{"PUT", "/_emu/repos/acme/nope/refs/tags/v2", map[string]any{"sha": sha}, http.StatusNotFound},
		{"PUT", "/_emu/orgs/no-such-org/verified", map[string]any{"verified": true}, http.StatusNotFound},
		{"PUT", "/_emu/orgs/mona/verified", map[string]any{"verified": true}, http.StatusNotFound},
		{"DELETE", "/_emu/repos/acme/nope", nil, http.StatusNotFound},
	} {
		status, body := call(c.method, c.path, c.body)
		if status != c.status || str(body["message"]) == "" {
			t.Errorf("%s %s: %d %v, want %d with a message", c.method, c.path, status, body, c.status)
		}
	}

	if status, _ := call("DELETE", "/_emu/repos/acme/actions", nil); status != http.StatusNoContent {
		t.Errorf("delete: %d", status)
	}
	_, _, err = anon.Repositories.Get(ctx, "acme", "actions")
	notFound(t, "a repository deleted over HTTP", err)
}

// Commits, refs and verification survive a restart through the state file.
func TestGitStateSurvivesRestart(t *testing.T) {
	w := newWorld(t, ghemu.Options{})
	e := w.emu
	sha := push(t, e, "octo-org", "public-repo", ghemu.CommitSpec{Ref: "dev", Message: "dev", Files: map[string]string{"a": "b"}, PayloadBytes: 10})
	if err := e.SetRef("octo-org", "public-repo", "tags/v1", sha); err != nil {
		t.Fatal(err)
	}
	if err := e.SetVerified("octo-org", true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := e.SaveState(path); err != nil {
		t.Fatal(err)
	}
	again := ghemu.StartForTest(t, ghemu.Options{})
	if err := again.LoadState(path); err != nil {
		t.Fatal(err)
	}
	c := github.NewClient(nil)
	c.BaseURL, _ = url.Parse(again.URL + "/")
	ctx := context.Background()
	for _, ref := range []string{"v1", "dev", sha[:7]} {
		if got, _, err := c.Repositories.GetCommitSHA1(ctx, "octo-org", "public-repo", ref, ""); err != nil || got != sha {
			t.Errorf("%s after a restart: %q %v", ref, got, err)
		}
	}
	if org, _, err := c.Organizations.Get(ctx, "octo-org"); err != nil || !org.GetIsVerified() {
		t.Errorf("verification after a restart: %v %v", org, err)
	}
	if next := push(t, again, "octo-org", "public-repo", ghemu.CommitSpec{Ref: "dev", Message: "dev", Files: map[string]string{"a": "b"}, PayloadBytes: 10}); next == sha {
		t.Error("a commit after the restart has an old SHA")
	}
}
