package broker

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
	"unique"
)

// cacheModel is the cache's behaviour written plainly: keys in least
// recently used order, most recent first.
type cacheModel struct {
	max   int
	order []string
	by    map[string]*grant
}

func (m *cacheModel) touch(key string) {
	m.order = slices.DeleteFunc(m.order, func(k string) bool { return k == key })
	m.order = slices.Insert(m.order, 0, key)
}

func (m *cacheModel) put(g *grant) (displaced []*grant) {
	if old := m.by[g.key()]; old != nil {
		displaced = append(displaced, old)
	}
	m.by[g.key()] = g
	m.touch(g.key())
	for len(m.order) > m.max {
		k := m.order[len(m.order)-1]
		m.order = m.order[:len(m.order)-1]
		displaced = append(displaced, m.by[k])
		delete(m.by, k)
	}
	return displaced
}

func (m *cacheModel) drop(conn string) (out []*grant) {
	for _, k := range slices.Clone(m.order) {
		if g := m.by[k]; g.conn() == conn {
			out = append(out, g)
			delete(m.by, k)
			m.order = slices.DeleteFunc(m.order, func(x string) bool { return x == k })
		}
	}
	return out
}

func sameGrants(a, b []*grant) bool {
	key := func(g *grant) string { return g.token() }
	x, y := make([]string, len(a)), make([]string, len(b))
	for i, g := range a {
		x[i] = key(g)
	}
	for i, g := range b {
		y[i] = key(g)
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// checkCache walks the cache's slot-linked lists and compares them with
// the model.
func checkCache(t *testing.T, c *cache, m *cacheModel, step int) {
	t.Helper()
	var order []string
	prev := int32(noSlot)
	for i := c.head; i != noSlot; i = c.slots[i].next {
		g := c.slots[i]
		if g.slot != i || g.prev != prev {
			t.Fatalf("step %d: slot %d holds a grant that says slot %d, prev %d (want %d)", step, i, g.slot, g.prev, prev)
		}
		order = append(order, g.key())
		prev = i
	}
	if c.tail != prev {
		t.Fatalf("step %d: tail %d, list ends at %d", step, c.tail, prev)
	}
	if !slices.Equal(order, m.order) {
		t.Fatalf("step %d: LRU order %v, want %v", step, order, m.order)
	}
	if len(c.m) != len(m.order) {
		t.Fatalf("step %d: map holds %d, want %d", step, len(c.m), len(m.order))
	}
	used := 0
	for _, g := range c.slots {
		if g != nil {
			used++
		}
	}
	if used != len(m.order) || used+len(c.free) != len(c.slots) {
		t.Fatalf("step %d: %d slots used, %d free of %d; cache holds %d", step, used, len(c.free), len(c.slots), len(m.order))
	}
	for conn, first := range c.conns {
		var keys []string
		prev := int32(noSlot)
		for i := first; i != noSlot; i = c.slots[i].cnext {
			g := c.slots[i]
			if g.conn() != conn || g.cprev != prev {
				t.Fatalf("step %d: connection list %s holds %s (cprev %d, want %d)", step, conn, g.conn(), g.cprev, prev)
			}
			keys = append(keys, g.key())
			prev = i
		}
		var want []string
		for k, g := range m.by {
			if g.conn() == conn {
				want = append(want, k)
			}
		}
		slices.Sort(keys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Fatalf("step %d: connection %s lists %v, want %v", step, conn, keys, want)
		}
	}
	for _, g := range m.by {
		if _, ok := c.conns[g.conn()]; !ok {
			t.Fatalf("step %d: connection %s has grants but no list", step, g.conn())
		}
	}
}

// Random puts, hits and connection drops keep the cache's slots, LRU order
// and connection lists what a plain LRU would have, and displace the same
// grants.
func TestCacheMatchesPlainLRU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	conns := []string{"c-one", "c-two", "c-three"}
	c, m := newCache(8), &cacheModel{max: 8, by: map[string]*grant{}}
	now := time.Now()
	for step := range 5000 {
		conn := conns[rng.IntN(len(conns))]
		key := conn + "|1|repo-" + strconv.Itoa(rng.IntN(12)) + "||"
		switch op := rng.IntN(10); {
		case op < 5:
			g := newGrant("ghs_"+strconv.Itoa(step), "", unique.Handle[string]{}, conn, key)
			g.expires = now.Add(time.Hour).UnixNano()
			got, want := c.put(g, now), m.put(g)
			if !sameGrants(got, want) {
				t.Fatalf("step %d: put displaced %d grants, want %d", step, len(got), len(want))
			}
			for _, d := range got {
				if d.slot != noSlot {
					t.Fatalf("step %d: a displaced grant keeps slot %d", step, d.slot)
				}
			}
		case op < 9:
			g := c.get([]byte(key), time.Minute, now)
			if want := m.by[key]; g != want {
				t.Fatalf("step %d: get %s = %v, want %v", step, key, g, want)
			}
			if g != nil {
				m.touch(key)
			}
		default:
			if got, want := c.dropConnection(conn), m.drop(conn); !sameGrants(got, want) {
				t.Fatalf("step %d: dropping %s removed %d, want %d", step, conn, len(got), len(want))
			}
		}
		checkCache(t, c, m, step)
	}
}

// A grant keeps its token, repositories, connection and key apart in its
// one string, and a long repository set is interned rather than copied.
func TestGrantText(t *testing.T) {
	g := newGrant("ghs_abc", "octo/a|1", unique.Handle[string]{}, "conn-1", "conn-1|7|octo/a||contents=read,")
	if g.token() != "ghs_abc" || g.repos() != "octo/a|1" || g.conn() != "conn-1" || g.key() != "conn-1|7|octo/a||contents=read," {
		t.Errorf("token %q repos %q conn %q key %q", g.token(), g.repos(), g.conn(), g.key())
	}
	h := unique.Make("octo/long|2")
	x := newGrant("ghs_x", h.Value(), h, "conn-1", "")
	if x.repos() != "octo/long|2" || x.key() != "" || x.conn() != "conn-1" || x.text != "ghs_xconn-1" {
		t.Errorf("interned: repos %q key %q conn %q text %q", x.repos(), x.key(), x.conn(), x.text)
	}
}

// A response carries the grant's repositories and expiry, for one
// repository, several and none alike.
func TestGrantResponse(t *testing.T) {
	exp := time.Date(2026, 12, 2, 14, 0, 0, 123456789, time.UTC)
	perms := &permSet{m: map[string]string{"contents": "read"}, s: "contents=read"}
	for _, tc := range []struct {
		repos string
		want  []string
	}{{"", nil}, {"octo/a|7", []string{"octo/a:7"}}, {"octo/a,octo/b,octo/c|7,8,9", []string{"octo/a:7", "octo/b:8", "octo/c:9"}}} {
		g := newGrant("ghs_abc", tc.repos, unique.Handle[string]{}, "conn-1", "")
		g.expires, g.perms, g.selected = exp.UnixNano(), perms, tc.repos != ""
		r := g.response()
		var got []string
		for _, x := range r.Repositories {
			got = append(got, x.FullName+":"+strconv.FormatInt(x.Id, 10))
		}
		if !slices.Equal(got, tc.want) || !r.ExpireTime.AsTime().Equal(exp) || r.Token != "ghs_abc" || r.Permissions["contents"] != "read" {
			t.Errorf("repos %q: response %v", tc.repos, r)
		}
	}
}
