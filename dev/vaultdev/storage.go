package vaultdev

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// fileStorage keeps each storage entry in its own file, named by the
// escaped key. Writes go to a temporary file renamed into place, so a crash
// never leaves half an entry.
type fileStorage struct {
	dir string
	mu  sync.RWMutex
}

var _ logical.Storage = (*fileStorage)(nil)

func newFileStorage(dir string) (*fileStorage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("vaultdev: data dir: %w", err)
	}
	return &fileStorage{dir: dir}, nil
}

func (f *fileStorage) file(key string) string {
	return filepath.Join(f.dir, url.PathEscape(key)+".entry")
}

func (f *fileStorage) List(_ context.Context, prefix string) ([]string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	names, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		base, ok := strings.CutSuffix(n.Name(), ".entry")
		if !ok {
			continue
		}
		key, err := url.PathUnescape(base)
		if err != nil || !strings.HasPrefix(key, prefix) {
			continue
		}
		rest := strings.TrimPrefix(key, prefix)
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func (f *fileStorage) Get(_ context.Context, key string) (*logical.StorageEntry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := os.ReadFile(f.file(key))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &logical.StorageEntry{Key: key, Value: b}, nil
}

func (f *fileStorage) Put(_ context.Context, e *logical.StorageEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	tmp, err := os.CreateTemp(f.dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(e.Value); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), f.file(e.Key))
}

func (f *fileStorage) Delete(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := os.Remove(f.file(key))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
