package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "root-token")
	if err := os.WriteFile(file, []byte("from-file-91b2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		flag, file, want string
		fails            bool
	}{
		{"", "", "root", false},
		{"from-flag", "", "from-flag", false},
		{"from-flag", file, "from-file-91b2", false},
		{"", empty, "", true},
		{"", filepath.Join(dir, "missing"), "", true},
	} {
		got, err := rootToken(c.flag, c.file)
		if got != c.want || (err != nil) != c.fails {
			t.Errorf("rootToken(%q, %q) = %q, %v", c.flag, c.file, got, err)
		}
	}
}
