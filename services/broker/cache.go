package broker

import (
	"container/list"
	"sort"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/permissions"
	"go.uber.org/zap"
)

// grant is a token GitHub issued and what it covers.
type grant struct {
	token        string
	sha256       string
	expires      time.Time
	issued       time.Time
	repositories []*brokerv1.Repository
	permissions  map[string]string
	selection    string
	connection   string
	installation int64
	// exclusive grants belong to owner and are never cached.
	exclusive bool
	owner     string
	// audit holds the grant's audit fields, rendered once.
	audit []zap.Field
}

// auditFields renders what the audit says of a grant.
func (g *grant) auditFields() []zap.Field {
	names := make([]string, 0, len(g.repositories))
	for _, r := range g.repositories {
		names = append(names, r.FullName)
	}
	sort.Strings(names)
	return []zap.Field{
		zap.String("token_sha256", g.sha256), zap.String("expires_at", g.expires.UTC().Format(time.RFC3339)),
		zap.String("repositories", strings.Join(names, ",")), zap.String("repository_selection", g.selection),
		zap.String("permissions", permissions.String(g.permissions)), zap.Bool("exclusive", g.exclusive),
	}
}

// entry is a cached shared grant.
type entry struct {
	key      string
	grant    *grant
	lastUsed time.Time
	elem     *list.Element
	scope    scope
}

// cache holds shared grants by scope key, least recently used evicted
// first once it holds max entries.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[string]*entry
	lru *list.List
}

func newCache(max int) *cache {
	return &cache{max: max, m: map[string]*entry{}, lru: list.New()}
}

// get returns the grant for key if it stays valid for at least minLife.
func (c *cache) get(key string, minLife time.Duration, now time.Time) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	if e == nil || e.grant.expires.Sub(now) < minLife {
		return nil
	}
	e.lastUsed = now
	c.lru.MoveToFront(e.elem)
	return e.grant
}

// put stores g for key, replacing an older grant; it returns what was
// evicted to stay within max.
func (c *cache) put(key string, sc scope, g *grant, now time.Time) []*grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil {
		e.grant = g
		c.lru.MoveToFront(e.elem)
		return nil
	}
	e := &entry{key: key, grant: g, lastUsed: now, scope: sc}
	e.elem = c.lru.PushFront(e)
	c.m[key] = e
	var evicted []*grant
	for c.lru.Len() > c.max {
		old := c.lru.Back().Value.(*entry)
		c.lru.Remove(old.elem)
		delete(c.m, old.key)
		evicted = append(evicted, old.grant)
	}
	return evicted
}

// dropConnection removes every grant of a connection.
func (c *cache) dropConnection(conn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.grant.connection == conn {
			c.lru.Remove(e.elem)
			delete(c.m, k)
		}
	}
}

// dropToken removes the entry holding token, if any.
func (c *cache) dropToken(sha string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.grant.sha256 == sha {
			c.lru.Remove(e.elem)
			delete(c.m, k)
		}
	}
}

// due lists entries that expire within ahead and were used recently
// enough to be worth renewing before a caller has to wait.
func (c *cache) due(now time.Time, ahead, usedWithin time.Duration) []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*entry
	for _, e := range c.m {
		if e.grant.expires.Sub(now) < ahead && now.Sub(e.lastUsed) < usedWithin {
			out = append(out, &entry{key: e.key, grant: e.grant, scope: e.scope})
		}
	}
	return out
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
