package ghactions_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/services/featuregate/ghactions"
)

// put stores body under key and reads it back.
func put(t *testing.T, c *ghactions.Cache, key, body string) {
	t.Helper()
	f, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	r, err := c.Put(key, f, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); string(got) != body {
		t.Fatalf("Put %s read back %q", key, got)
	}
}

func has(c *ghactions.Cache, keys ...string) string {
	var out []string
	for _, k := range keys {
		if c.Has(k) {
			out = append(out, k)
		}
	}
	return strings.Join(out, ",")
}

func TestCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, err := ghactions.OpenCache(dir, 30)
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, "o~r~a", strings.Repeat("a", 10))
	put(t, c, "o~r~b", strings.Repeat("b", 10))
	put(t, c, "o~r~c", strings.Repeat("c", 10))
	// a is used: b is now the oldest.
	f, size, ok := c.Get("o~r~a")
	if !ok || size != 10 {
		t.Fatalf("Get(a) = %v, %d", ok, size)
	}
	// A reader keeps its file when the entry goes.
	put(t, c, "o~r~d", strings.Repeat("d", 10))
	if got := has(c, "o~r~a", "o~r~b", "o~r~c", "o~r~d"); got != "o~r~a,o~r~c,o~r~d" {
		t.Fatalf("after d: holds %s, want o~r~a,o~r~c,o~r~d", got)
	}
	st := c.Stats()
	if st.Bytes != 30 || st.Entries != 3 || st.Hits != 1 {
		t.Fatalf("stats %+v", st)
	}
	put(t, c, "o~r~e", strings.Repeat("e", 25)) // evicts all but itself
	if got := has(c, "o~r~a", "o~r~c", "o~r~d", "o~r~e"); got != "o~r~e" {
		t.Fatalf("after e: holds %s, want e", got)
	}
	if got, _ := io.ReadAll(f); string(got) != strings.Repeat("a", 10) {
		t.Fatalf("the evicted entry's reader read %q", got)
	}
	f.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("files on disk: %v, want e's only", files)
	}

	// Too large to keep: served, not kept, nothing evicted.
	f2, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f2.WriteString(strings.Repeat("z", 31)); err != nil {
		t.Fatal(err)
	}
	r, err := c.Put("o~r~z", f2, 31)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); len(got) != 31 {
		t.Fatalf("the oversize tarball read %d bytes", len(got))
	}
	r.Close()
	if got := has(c, "o~r~e", "o~r~z"); got != "o~r~e" {
		t.Fatalf("after z: holds %s, want e", got)
	}

	// A restart finds what is on disk, and drops downloads cut short.
	if err := os.WriteFile(filepath.Join(dir, "x.part"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := ghactions.OpenCache(dir, 30)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Has("o~r~e") || c2.Stats().Bytes != 25 {
		t.Fatalf("reopened: %+v", c2.Stats())
	}
	if _, err := os.Stat(filepath.Join(dir, "x.part")); !os.IsNotExist(err) {
		t.Fatalf("a partial download survived the restart: %v", err)
	}
}

func TestCacheReopenKeepsTheRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, err := ghactions.OpenCache(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"o~r~1", "o~r~2", "o~r~3"} {
		put(t, c, k, strings.Repeat("x", 10))
	}
	f, _, _ := c.Get("o~r~1")
	f.Close()
	// Smaller now: the oldest in use goes first, and 1 was used last.
	c2, err := ghactions.OpenCache(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := has(c2, "o~r~1", "o~r~2", "o~r~3"); got != "o~r~1,o~r~3" {
		t.Fatalf("reopened smaller: holds %s, want o~r~1,o~r~3", got)
	}
}
