// Command ociimage writes a one-layer OCI image archive (an OCI image
// layout in a tar: oci-layout, index.json, blobs/sha256/…) from files on
// this machine, with no daemon and no registry, for deploy/k8stest:
//
//	ociimage -o pause.tar -name k8stest.local/pause:1 -entrypoint /pause \
//	    -user 65535:65535 -file /pause=bin/pause
//
// -file DST=SRC[:MODE] copies SRC to DST (owner root, MODE octal, default
// SRC's mode); -dir DST[:UID:GID[:MODE]] makes a directory. The archive
// loads with `ctr -n k8s.io images import`; the name is its
// io.containerd.image.name annotation.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type entry struct {
	dst      string
	src      string // empty for a directory
	mode     int64
	uid, gid int
}

func main() {
	out := flag.String("o", "", "archive to write (required)")
	name := flag.String("name", "", "image name, e.g. k8stest.local/pause:1 (required)")
	user := flag.String("user", "", "user[:group] the image runs as")
	workdir := flag.String("workdir", "/", "working directory")
	var files, dirs, env, entrypoint, cmd list
	flag.Var(&files, "file", "DST=SRC[:MODE] (repeatable)")
	flag.Var(&dirs, "dir", "DST[:UID:GID[:MODE]] (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE (repeatable)")
	flag.Var(&entrypoint, "entrypoint", "entrypoint argument (repeatable, in order)")
	flag.Var(&cmd, "cmd", "cmd argument (repeatable, in order)")
	flag.Parse()
	if *out == "" || *name == "" || len(entrypoint)+len(cmd) == 0 {
		log.Fatal("ociimage: -o, -name and -entrypoint or -cmd are required")
	}
	var entries []entry
	for _, f := range files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok {
			log.Fatalf("ociimage: -file %q: want DST=SRC[:MODE]", f)
		}
		e := entry{dst: clean(dst), src: src, mode: -1}
		if s, m, ok := strings.Cut(src, ":"); ok {
			mode, err := strconv.ParseInt(m, 8, 32)
			if err != nil {
				log.Fatalf("ociimage: -file %q: mode: %v", f, err)
			}
			e.src, e.mode = s, mode
		}
		entries = append(entries, e)
	}
	for _, d := range dirs {
		parts := strings.Split(d, ":")
		e := entry{dst: clean(parts[0]), mode: 0o755}
		if len(parts) >= 3 {
			e.uid, _ = strconv.Atoi(parts[1])
			e.gid, _ = strconv.Atoi(parts[2])
		}
		if len(parts) == 4 {
			m, err := strconv.ParseInt(parts[3], 8, 32)
			if err != nil {
				log.Fatalf("ociimage: -dir %q: mode: %v", d, err)
			}
			e.mode = m
		}
		entries = append(entries, e)
	}
	layer, err := makeLayer(entries)
	if err != nil {
		log.Fatalf("ociimage: %v", err)
	}
	if err := write(*out, *name, layer, config(*user, *workdir, env, entrypoint, cmd, layer)); err != nil {
		log.Fatalf("ociimage: %v", err)
	}
}

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// epoch keeps the archive the same for the same inputs.
var epoch = time.Unix(0, 0)

// makeLayer is the uncompressed layer tar: each entry with its parent
// directories (root-owned, 0755) first.
func makeLayer(entries []entry) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].dst < entries[j].dst })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	var parents func(p string) error
	parents = func(p string) error {
		dir := path.Dir(p)
		if dir == "." || seen[dir] {
			return nil
		}
		if err := parents(dir); err != nil {
			return err
		}
		seen[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, e := range entries {
		if err := parents(e.dst); err != nil {
			return nil, err
		}
		if e.src == "" {
			if seen[e.dst] {
				continue
			}
			seen[e.dst] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e.dst + "/", Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return nil, err
		}
		mode := e.mode
		if mode < 0 {
			fi, err := os.Stat(e.src)
			if err != nil {
				return nil, err
			}
			mode = int64(fi.Mode().Perm())
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.dst, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func config(user, workdir string, env, entrypoint, cmd list, layer []byte) []byte {
	c := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config": map[string]any{
			"User":       user,
			"WorkingDir": workdir,
			"Env":        append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...),
			"Entrypoint": []string(entrypoint),
			"Cmd":        []string(cmd),
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	}
	b, _ := json.Marshal(c)
	return b
}

func write(out, name string, layer, cfg []byte) error {
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(cfg), Size: len(cfg)},
		"layers":        []desc{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest(layer), Size: len(layer)}},
	})
	tag := name[strings.LastIndex(name, ":")+1:]
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []desc{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest(manifest), Size: len(manifest),
			Annotations: map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
		}},
	})
	f, err := os.CreateTemp(path.Dir(out), ".ociimage-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(f.Name()) }() // gone after the rename; only a failed write leaves it
	tw := tar.NewWriter(f)
	add := func(n string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blob := func(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:") }
	for _, x := range []struct {
		n string
		b []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blob(manifest), manifest},
		{blob(cfg), cfg},
		{blob(layer), layer},
	} {
		if err := add(x.n, x.b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}
