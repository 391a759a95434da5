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
// token, the repositories, the connection and the cache key share one
// string; large repository sets and the permission sets are interned (one
// copy however many tokens share them); the expiry is an integer; the
// audit fields are rendered when an event is written rather than kept; and
// a cached grant is its own cache entry, linked by slot numbers rather
// than pointers. Two objects and four pointers a token keep the garbage
// collector's marking of a full cache short.
type grant struct {
	// text is the token, then the repositories unless interned, then the
	// cache key, which begins with the connection id and goes on past it
	// (an uncached grant has only the connection id there).
	text                        string
	tokenEnd, reposEnd, connEnd uint32
	sha256                      fingerprint
	// expires and lastUsed are Unix nanoseconds; lastUsed is the cache's.
	expires, lastUsed int64
	// reposH holds an interned (long) repository set; the zero handle
	// means the set is in text.
	reposH   unique.Handle[string]
	perms    *permSet
	selected bool
	// exclusive grants belong to owner and are never cached.
	exclusive bool
	owner     string
	// from is the broker of the fleet that exchanged the token and keeps
	// it for revocation: this is a copy ("": this broker exchanged it).
	from string
	// The cache's slot for the grant (noSlot when not cached) and its
	// lists by slot: least recently used order, and the connection's
	// grants.
	slot, prev, next, cprev, cnext int32
}

// newGrant keeps token, the encoded repository set (see repoSet), the
// connection id and the cache key (which begins with it; "" for a grant
// that is not cached) in one string.
func newGrant(token, repos string, reposH unique.Handle[string], conn, key string) *grant {
	g := &grant{reposH: reposH, slot: noSlot, prev: noSlot, next: noSlot, cprev: noSlot, cnext: noSlot}
	if reposH != (unique.Handle[string]{}) {
		repos = ""
	}
	tail := conn
	if key != "" {
		if len(key) <= len(conn) || !strings.HasPrefix(key, conn) {
			panic("broker: a cache key that does not begin with its connection")
		}
		tail = key
	}
	g.text = token + repos + tail
	// A token, one request's repositories and two ids: far below 4 GiB
	// (gRPC refuses requests over 4 MiB; nothing here raises that).
	g.tokenEnd, g.reposEnd = uint32(len(token)), uint32(len(token)+len(repos)) //nolint:gosec // G115: see above
	g.connEnd = g.reposEnd + uint32(len(conn))                                 //nolint:gosec // G115: see above
	return g
}

func (g *grant) token() string { return g.text[:g.tokenEnd] }

// repos is the granted repositories, sorted by full name, encoded as
// "name,name|id,id"; "" when GitHub listed none.
func (g *grant) repos() string {
	if g.reposH != (unique.Handle[string]{}) {
		return g.reposH.Value()
	}
	return g.text[g.tokenEnd:g.reposEnd]
}

func (g *grant) conn() string { return g.text[g.reposEnd:g.connEnd] }

// key is the scope key the grant is cached under, "" if it is not.
func (g *grant) key() string {
	if int(g.connEnd) == len(g.text) {
		return ""
	}
	return g.text[g.reposEnd:]
}

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

// repoSet encodes GitHub's list of repositories, sorted by full name; a
// long encoding is interned and returned as a handle too.
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
	s := g.repos()
	if i := strings.IndexByte(s, '|'); i >= 0 {
		return s[:i]
	}
	return s
}

// repositories is the response's list. A grant of one repository fills
// in one and returns it in list (of capacity 1); larger ones allocate.
func (g *grant) repositories(one *brokerv1.Repository, list []*brokerv1.Repository) []*brokerv1.Repository {
	s := g.repos()
	i := strings.IndexByte(s, '|')
	if i < 0 {
		return nil
	}
	names, ids := s[:i], s[i+1:]
	if n := strings.Count(names, ",") + 1; n > cap(list) {
		list, one = make([]*brokerv1.Repository, 0, n), nil
	}
	for names != "" {
		var name, id string
		name, names, _ = strings.Cut(names, ",")
		id, ids, _ = strings.Cut(ids, ",")
		n, _ := strconv.ParseInt(id, 10, 64)
		r := one
		if r == nil {
			r = new(brokerv1.Repository)
		}
		one = nil
		r.Id, r.FullName = n, name
		list = append(list, r)
	}
	return list
}

// auditFields appends what the audit says of a grant, given its rendered
// fingerprint and expiry (see auditWriter.render).
func (g *grant) auditFields(f []zap.Field, sha, expires string) []zap.Field {
	return append(f,
		zap.String("token_sha256", sha), zap.String("expires_at", expires),
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

// noSlot is "no grant": the end of a list, an uncached grant's slot.
const noSlot = -1

// cache holds shared grants by scope key, least recently used evicted
// first once it holds max of them. Grants sit in numbered slots, on two
// lists linked by slot: the LRU order and their connection's grants.
// Every operation but due and findToken is O(1); dropping a connection is
// O(its grants).
type cache struct {
	mu         sync.Mutex
	max        int
	m          map[string]int32 // scope key → slot
	slots      []*grant         // nil when free
	free       []int32
	head, tail int32            // most and least recently used
	conns      map[string]int32 // connection → the slot of one of its grants
}

func newCache(size int) *cache {
	return &cache{max: size, m: map[string]int32{}, conns: map[string]int32{}, head: noSlot, tail: noSlot}
}

func (c *cache) unlinkLRU(e *grant) {
	if e.prev != noSlot {
		c.slots[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next != noSlot {
		c.slots[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = noSlot, noSlot
}

func (c *cache) pushFront(e *grant) {
	e.prev, e.next = noSlot, c.head
	if c.head != noSlot {
		c.slots[c.head].prev = e.slot
	}
	c.head = e.slot
	if c.tail == noSlot {
		c.tail = e.slot
	}
}

// remove takes e out of the map, both lists and its slot.
func (c *cache) remove(e *grant) {
	c.unlinkLRU(e)
	conn := e.conn()
	if e.cprev != noSlot {
		c.slots[e.cprev].cnext = e.cnext
	} else if e.cnext != noSlot {
		c.conns[conn] = e.cnext
	} else {
		delete(c.conns, conn)
	}
	if e.cnext != noSlot {
		c.slots[e.cnext].cprev = e.cprev
	}
	delete(c.m, e.key())
	c.slots[e.slot] = nil
	c.free = append(c.free, e.slot)
	e.slot, e.cprev, e.cnext = noSlot, noSlot, noSlot
}

// get returns the grant for key if it stays valid for at least minLife.
func (c *cache) get(key []byte, minLife time.Duration, now time.Time) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.m[string(key)]
	if !ok {
		return nil
	}
	e := c.slots[i]
	if e.lifeLeft(now) < minLife {
		return nil
	}
	e.lastUsed = now.UnixNano()
	if c.head != i {
		c.unlinkLRU(e)
		c.pushFront(e)
	}
	return e
}

// put stores g under its key, replacing an older grant; it returns the
// grants it displaced (replaced or evicted to stay within max), still live
// at GitHub.
func (c *cache) put(g *grant, now time.Time) []*grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.putLocked(g, now)
}

// putNewer is put, unless the cache holds a grant for g's key that lives
// as long or longer (kept false): another broker's offer.
func (c *cache) putNewer(g *grant, now time.Time) (displaced []*grant, kept bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.m[g.key()]; ok && c.slots[i].expires >= g.expires {
		return nil, false
	}
	return c.putLocked(g, now), true
}

// putLocked is put; callers hold c.mu.
func (c *cache) putLocked(g *grant, now time.Time) []*grant {
	key := g.key()
	if key == "" || g.slot != noSlot {
		panic("broker: caching a grant without a key, or twice")
	}
	var displaced []*grant
	if i, ok := c.m[key]; ok {
		old := c.slots[i]
		c.remove(old)
		displaced = append(displaced, old)
	}
	if n := len(c.free); n > 0 {
		g.slot, c.free = c.free[n-1], c.free[:n-1]
		c.slots[g.slot] = g
	} else {
		// len(c.slots) <= max < MaxCacheSize: New and the flags refuse
		// larger caches.
		g.slot = int32(len(c.slots)) //nolint:gosec // G115: see above
		c.slots = append(c.slots, g)
	}
	g.lastUsed = now.UnixNano()
	c.pushFront(g)
	c.m[key] = g.slot
	conn := g.conn()
	if first, ok := c.conns[conn]; ok {
		g.cnext = first
		c.slots[first].cprev = g.slot
	} else {
		// The map keeps a copy of its own, not a grant's text.
		conn = strings.Clone(conn)
	}
	c.conns[conn] = g.slot
	for len(c.m) > c.max {
		old := c.slots[c.tail]
		c.remove(old)
		displaced = append(displaced, old)
	}
	return displaced
}

// dropConnection removes every grant of a connection and returns them.
func (c *cache) dropConnection(conn string) []*grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*grant
	for i, ok := c.conns[conn]; ok; i, ok = c.conns[conn] {
		e := c.slots[i]
		out = append(out, e)
		c.remove(e)
	}
	return out
}

// findToken returns the cached grant with the token's fingerprint. It
// scans the cache: only a caller revoking a shared token gets here.
func (c *cache) findToken(sha fingerprint) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.slots {
		if e != nil && e.sha256 == sha {
			return e
		}
	}
	return nil
}

// due lists cached grants that expire within ahead and were used recently
// enough to be worth renewing before a caller has to wait.
func (c *cache) due(now time.Time, ahead, usedWithin time.Duration) []*grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*grant
	n := now.UnixNano()
	for _, e := range c.slots {
		if e != nil && e.lifeLeft(now) < ahead && time.Duration(n-e.lastUsed) < usedWithin {
			out = append(out, e)
		}
	}
	return out
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
