package broker

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ghconnect/ghconnect/pkg/githubapp"

	"github.com/google/go-github/v60/github"
)

func TestScopeKeyRoundTrip(t *testing.T) {
	p := &CallerPolicy{Connections: []string{"*"}, Repositories: []string{"*"}, Permissions: map[string]string{"contents": "write", "issues": "read"}}
	sc, err := p.authorize("x", "c1", []string{"Beta", "alpha", "beta"}, []int64{7, 3, 7}, map[string]string{"issues": "read", "contents": "read"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := string(sc.appendKey(nil, "c1", 42))
	if want := "c1|42|alpha,beta|3,7,|contents=read,issues=read,"; key != want {
		t.Fatalf("key %q, want %q", key, want)
	}
	back, ok := scopeOfKey(key)
	if !ok || string(back.appendKey(nil, "c1", 42)) != key {
		t.Errorf("scopeOfKey(%q) = %+v, %v", key, back, ok)
	}
}

// A scope authorized into the caller's buffer uses it, and its owned copy
// shares nothing with it.
func TestScopeInBufferAndOwned(t *testing.T) {
	p := &CallerPolicy{Connections: []string{"*"}, Repositories: []string{"*"}, Permissions: map[string]string{"contents": "read"}}
	var buf [4]string
	asked := map[string]string{"contents": "read"}
	sc, err := p.authorize("x", "c1", []string{"beta", "Alpha"}, []int64{9}, asked, false, buf[:0])
	if err != nil {
		t.Fatal(err)
	}
	if &sc.repos[0] != &buf[0] || buf[0] != "alpha" || buf[1] != "beta" {
		t.Fatalf("repositories %v not in the buffer %v", sc.repos, buf)
	}
	own := sc.owned()
	buf[0], asked["issues"] = "changed", "read"
	if own.repos[0] != "alpha" || len(own.permissions) != 1 || own.repoIDs[0] != 9 || &own.repoIDs[0] == &sc.repoIDs[0] {
		t.Errorf("owned copy shares with the scope: %+v", own)
	}
	if key := string(own.appendKey(nil, "c1", 1)); key != "c1|1|alpha,beta|9,|contents=read," {
		t.Errorf("owned key %q", key)
	}
}

// Grants of the same (long) repository set and permission set share one
// copy of each.
func TestGrantSetsInterned(t *testing.T) {
	c := &connInfo{id: "c1", installationID: 1}
	var repos []*github.Repository
	for i := range 6 {
		repos = append(repos, &github.Repository{ID: github.Int64(int64(10 + i)), FullName: github.String(fmt.Sprintf("octo-org/repository-%d", 5-i))})
	}
	sc := scope{permissions: map[string]string{"contents": "read"}}
	a := grantOf(&github.InstallationToken{Token: github.String("a"), Repositories: repos}, c, sc, "")
	b := grantOf(&github.InstallationToken{Token: github.String("b"), Repositories: repos}, c, scope{permissions: map[string]string{"contents": "read"}}, "")
	// The same bytes, not equal ones: only the pointers tell.
	if unsafe.StringData(a.repos()) != unsafe.StringData(b.repos()) || a.perms != b.perms { //nolint:gosec // G103: compares pointers, reads nothing
		t.Error("equal sets are not shared")
	}
	if got := a.repoNames(); !strings.HasPrefix(got, "octo-org/repository-0,octo-org/repository-1,") {
		t.Errorf("audit repositories %q, want sorted full names", got)
	}
	if rs := a.repositories(nil, nil); len(rs) != 6 || rs[0].FullName != "octo-org/repository-0" || rs[0].Id != 15 {
		t.Errorf("repositories %v", rs)
	}
}

// A JWT in use is due for renewal ahead of expiry; an idle one is not.
func TestDueJWTs(t *testing.T) {
	now := time.Now()
	u := newUpstream(nil, nil, nil, newMetrics(nil))
	u.now = func() time.Time { return now }
	u.jwts = map[string]*jwtEntry{
		"fresh":   {expires: now.Add(githubapp.Lifetime), used: now},
		"due":     {expires: now.Add(jwtMargin + jwtRenewAhead - time.Second), used: now.Add(-time.Minute)},
		"idle":    {expires: now.Add(jwtMargin + jwtRenewAhead - time.Second), used: now.Add(-githubapp.Lifetime - time.Second)},
		"expired": {expires: now.Add(-time.Second), used: now.Add(-2 * time.Minute)},
	}
	got := u.dueJWTs()
	if len(got) != 2 || !got["due"].Equal(now.Add(-time.Minute)) || got["expired"].IsZero() {
		t.Errorf("due: %v, want due and expired with their last use", got)
	}
}
