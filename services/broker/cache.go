package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unique"
	"weak"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
)

// grant is a token GitHub issued and what it covers, kept compact: the
// repository and permission sets are interned (one copy however many
// tokens share them), the expiry is an integer, and the audit fields are
// rendered when an event is written rather than kept.
type grant struct {
	token  string
	sha256 fingerprint
	// expires is Unix nanoseconds.
	expires int64
	// repos is the granted repositories, sorted by full name, encoded as
	// "name,name|id,id" (see repoSet); "" when GitHub listed none.
	repos string
	// reposH keeps an interned repos (a long one) in the intern table.
	reposH     unique.Handle[string]
	perms      *permSet
	connection unique.Handle[string]
	selected   bool
	// exclusive grants belong to owner and are never cached.
	exclusive bool
	owner     string
}

func (g *grant) conn() string { return g.connection.Value() }

func (g *grant) expiresAt() time.Time { return time.Unix(0, g.expires) }

// lifeLeft is how long the token stays valid after now.
func (g *grant) lifeLeft(now time.Time) time.Duration {
	return time.Duration(g.expires - now.UnixNano())
}

func (g *grant) selection() string {
	if g.selected {
		return "selected"
	}
	return "all"
}

// fingerprint is a token's SHA-256, what logs and the audit name it by.
type fingerprint [sha256.Size]byte

func fingerprintOf(token string) fingerprint { return sha256.Sum256([]byte(token)) }

func (f fingerprint) String() string { return hex.EncodeToString(f[:]) }

// internAbove: repository sets encoded longer than this are interned (one
// copy for every grant holding them); shorter ones cost less kept as they
// are than an entry in the intern table.
const internAbove = 64

// repoSet encodes GitHub's list of repositories, sorted by full name.
func repoSet(repos []*github.Repository) (string, unique.Handle[string]) {
	if len(repos) == 0 {
		return "", unique.Handle[string]{}
	}
	type ref struct {
		id   int64
		name string
	}
	refs := make([]ref, 0, len(repos))
	for _, r := range repos {
		refs = append(refs, ref{r.GetID(), r.GetFullName()})
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].name < refs[j].name })
	var b strings.Builder
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.name)
	}
	b.WriteByte('|')
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r.id, 10))
	}
	if b.Len() > internAbove {
		h := unique.Make(b.String())
		return h.Value(), h
	}
	return b.String(), unique.Handle[string]{}
}

// repoNames is what the audit says of the repositories: full names,
// sorted, comma-separated. It allocates nothing.
func (g *grant) repoNames() string {
	s := g.repos
	if i := strings.IndexByte(s, '|'); i >= 0 {
		return s[:i]
	}
	return s
}

// repositories is the response's list.
func (g *grant) repositories() []*brokerv1.Repository {
	s := g.repos
	i := strings.IndexByte(s, '|')
	if i < 0 {
		return nil
	}
	names, ids := s[:i], s[i+1:]
	out := make([]*brokerv1.Repository, 0, strings.Count(names, ",")+1)
	for names != "" {
		var name, id string
		name, names, _ = strings.Cut(names, ",")
		id, ids, _ = strings.Cut(ids, ",")
		n, _ := strconv.ParseInt(id, 10, 64)
		out = append(out, &brokerv1.Repository{Id: n, FullName: name})
	}
	return out
}

// auditFields appends what the audit says of a grant that expires at
// expires (Unix nanoseconds, read when the event was made).
func (g *grant) auditFields(f []zap.Field, expires int64) []zap.Field {
	return append(f,
		zap.String("token_sha256", g.sha256.String()), zap.String("expires_at", time.Unix(0, expires).UTC().Format(time.RFC3339)),
		zap.String("repositories", g.repoNames()), zap.String("repository_selection", g.selection()),
		zap.String("permissions", g.perms.s), zap.Bool("exclusive", g.exclusive),
	)
}

// permSet is an interned set of permissions: the map the responses share
// (read only) and its rendering.
type permSet struct {
	m map[string]string
	s string
}

// permSets interns permission sets; a set no grant holds any more is
// collected and forgotten.
var permSets = struct {
	sync.Mutex
	m map[string]weak.Pointer[permSet]
}{m: map[string]weak.Pointer[permSet]{}}

func internPerms(m map[string]string) *permSet {
	s := permissions.String(m)
	permSets.Lock()
	defer permSets.Unlock()
	if p := permSets.m[s].Value(); p != nil {
		return p
	}
	// The set keeps a copy: responses share it, read only.
	p := &permSet{m: maps.Clone(m), s: s}
	wp := weak.Make(p)
	permSets.m[s] = wp
	runtime.AddCleanup(p, func(s string) {
		permSets.Lock()
		defer permSets.Unlock()
		if permSets.m[s] == wp {
			delete(permSets.m, s)
		}
	}, s)
	return p
}

// entry is a cached shared grant, on two intrusive lists: the cache's LRU
// order and its connection's entries.
type entry struct {
	key          string
	grant        *grant
	lastUsed     int64 // Unix nanoseconds
	prev, next   *entry
	cprev, cnext *entry
}

// cache holds shared grants by scope key, least recently used evicted
// first once it holds max entries. Every operation but due and findToken
// is O(1); dropping a connection is O(its entries).
type cache struct {
	mu         sync.Mutex
	max        int
	m          map[string]*entry
	head, tail *entry            // most and least recently used
	conns      map[string]*entry // connection → one of its entries
}

func newCache(max int) *cache {
	return &cache{max: max, m: map[string]*entry{}, conns: map[string]*entry{}}
}

func (c *cache) unlinkLRU(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *cache) pushFront(e *entry) {
	e.next = c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

// remove takes e out of the map and both lists.
func (c *cache) remove(e *entry) {
	c.unlinkLRU(e)
	conn := e.grant.conn()
	if e.cprev != nil {
		e.cprev.cnext = e.cnext
	} else if e.cnext != nil {
		c.conns[conn] = e.cnext
	} else {
		delete(c.conns, conn)
	}
	if e.cnext != nil {
		e.cnext.cprev = e.cprev
	}
	e.cprev, e.cnext = nil, nil
	delete(c.m, e.key)
}

// get returns the grant for key if it stays valid for at least minLife.
func (c *cache) get(key []byte, minLife time.Duration, now time.Time) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[string(key)]
	if e == nil || e.grant.lifeLeft(now) < minLife {
		return nil
	}
	e.lastUsed = now.UnixNano()
	if c.head != e {
		c.unlinkLRU(e)
		c.pushFront(e)
	}
	return e.grant
}

// put stores g for key, replacing an older grant; it returns the grants it
// displaced (replaced or evicted to stay within max), still live at GitHub.
func (c *cache) put(key string, g *grant, now time.Time) []*grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil {
		old := e.grant
		e.grant = g
		c.unlinkLRU(e)
		c.pushFront(e)
		if old != g {
			return []*grant{old}
		}
		return nil
	}
	e := &entry{key: key, grant: g, lastUsed: now.UnixNano()}
	c.pushFront(e)
	c.m[key] = e
	if first := c.conns[g.conn()]; first != nil {
		e.cnext = first
		first.cprev = e
	}
	c.conns[g.conn()] = e
	var displaced []*grant
	for len(c.m) > c.max {
		old := c.tail
		c.remove(old)
		displaced = append(displaced, old.grant)
	}
	return displaced
}

// dropConnection removes every grant of a connection and returns them.
func (c *cache) dropConnection(conn string) []*grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*grant
	for e := c.conns[conn]; e != nil; e = c.conns[conn] {
		out = append(out, e.grant)
		c.remove(e)
	}
	return out
}

// findToken returns the cached grant with the token's fingerprint. It
// scans the cache: only a caller revoking a shared token gets here.
func (c *cache) findToken(sha fingerprint) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m {
		if e.grant.sha256 == sha {
			return e.grant
		}
	}
	return nil
}

// dueEntry is a cached grant to renew.
type dueEntry struct {
	key   string
	grant *grant
}

// due lists entries that expire within ahead and were used recently
// enough to be worth renewing before a caller has to wait.
func (c *cache) due(now time.Time, ahead, usedWithin time.Duration) []dueEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []dueEntry
	n := now.UnixNano()
	for _, e := range c.m {
		if e.grant.lifeLeft(now) < ahead && time.Duration(n-e.lastUsed) < usedWithin {
			out = append(out, dueEntry{key: e.key, grant: e.grant})
		}
	}
	return out
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
