package ghactions

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Cache keeps tarballs on disk by repository and commit, up to a number
// of bytes, evicting the least recently used. A commit's tarball never
// changes, so an entry is never stale. Files are named after their key,
// so a cache directory outlives the process: Open indexes what it finds,
// oldest use first.
type Cache struct {
	dir   string
	limit int64

	mu    sync.Mutex
	index *simplelru.LRU[string, int64] // key → size
	bytes int64
	hits  int64
	miss  int64
}

// tmpSuffix marks a download under way; Open removes leftovers.
const tmpSuffix = ".part"

// OpenCache indexes dir (created if missing), keeping at most limit
// bytes.
func OpenCache(dir string, limit int64) (*Cache, error) {
	if limit <= 0 {
		return nil, errors.New("ghactions: the cache's limit must be positive")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ghactions: cache directory: %w", err)
	}
	c := &Cache{dir: dir, limit: limit}
	var err error
	// Bytes bound the cache, not entries: the count limit is never hit.
	if c.index, err = simplelru.NewLRU[string, int64](math.MaxInt32, func(key string, size int64) {
		c.bytes -= size
		// Removing a file being read leaves the reader its copy.
		_ = os.Remove(c.path(key))
	}); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ghactions: cache directory: %w", err)
	}
	type found struct {
		key  string
		size int64
		used time.Time
	}
	var all []found
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			_ = os.Remove(filepath.Join(dir, name)) // a download a crash cut short
			continue
		}
		key, ok := keyOfFile(name)
		info, err := e.Info()
		if !ok || err != nil || !info.Mode().IsRegular() {
			continue
		}
		all = append(all, found{key, info.Size(), info.ModTime()})
	}
	slices.SortFunc(all, func(a, b found) int { return a.used.Compare(b.used) })
	for _, f := range all {
		c.index.Add(f.key, f.size)
		c.bytes += f.size
		c.trim("")
	}
	return c, nil
}

// Key is a cache key: the repository (GitHub.com's names are not case
// sensitive) and the commit.
func Key(owner, repo, sha string) string {
	return strings.ToLower(owner) + "~" + strings.ToLower(repo) + "~" + strings.ToLower(sha)
}

const fileSuffix = ".tar.gz"

func keyOfFile(name string) (string, bool) {
	key, ok := strings.CutSuffix(name, fileSuffix)
	return key, ok && strings.Count(key, "~") == 2
}

func (c *Cache) path(key string) string { return filepath.Join(c.dir, key+fileSuffix) }

// Get opens the tarball of key and marks it used; false when the cache
// does not hold it.
func (c *Cache) Get(key string) (*os.File, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size, ok := c.index.Get(key)
	if !ok {
		c.miss++
		return nil, 0, false
	}
	f, err := os.Open(c.path(key))
	if err != nil {
		// Removed under the cache (by hand): forget it.
		c.index.Remove(key)
		c.miss++
		return nil, 0, false
	}
	now := time.Now()
	_ = os.Chtimes(c.path(key), now, now) // the order Open rebuilds
	c.hits++
	return f, size, true
}

// Create starts a download into the cache's directory; Put or Discard
// ends it.
func (c *Cache) Create() (*os.File, error) {
	return os.CreateTemp(c.dir, "*"+tmpSuffix)
}

// Discard removes a download Create started.
func (c *Cache) Discard(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// Put ends a download of size bytes as key's tarball and opens it for
// reading. A tarball larger than the whole cache is served from the
// download without being kept.
func (c *Cache) Put(key string, f *os.File, size int64) (*os.File, error) {
	if err := f.Sync(); err != nil {
		c.Discard(f)
		return nil, fmt.Errorf("ghactions: cache: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("ghactions: cache: %w", err)
	}
	if size > c.limit {
		r, err := os.Open(f.Name())
		_ = os.Remove(f.Name()) // the open file stays readable
		return r, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Rename(f.Name(), c.path(key)); err != nil {
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("ghactions: cache: %w", err)
	}
	if old, ok := c.index.Peek(key); ok {
		// Another download of the same commit landed first: the same bytes.
		c.bytes -= old
	}
	c.index.Add(key, size)
	c.bytes += size
	c.trim(key)
	return os.Open(c.path(key))
}

// trim evicts the least recently used until the cache fits, never keep.
func (c *Cache) trim(keep string) {
	for c.bytes > c.limit {
		oldest, _, ok := c.index.GetOldest()
		if !ok || oldest == keep {
			return
		}
		c.index.RemoveOldest()
	}
}

// CacheStats is what the cache holds.
type CacheStats struct {
	Bytes, Limit int64
	Entries      int64
	// Hits and Misses count Get's answers since the cache opened.
	Hits, Misses int64
}

// Stats says what the cache holds.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Bytes: c.bytes, Limit: c.limit, Entries: int64(c.index.Len()), Hits: c.hits, Misses: c.miss}
}

// Has says whether key is cached, without marking it used.
func (c *Cache) Has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index.Contains(key)
}
