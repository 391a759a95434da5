package ghemu

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"sort"
	"strings"
)

// The emulated codeload host: GitHub serves repository archives from
// codeload.github.com, outside the API and its OpenAPI description;
// GET /repos/{owner}/{repo}/tarball/{ref} redirects there. The emulator
// serves it under /_codeload/ on its own address, through e.private:
// counted, fault-injected, never contract-checked, no authentication (a
// private repository's URL carries a token instead).

// codeloadRoute is the download's route, as Count names it.
const codeloadRoute = "GET /_codeload/{owner}/{repo}/legacy.tar.gz/{sha}"

// codeload streams the tarball of a commit, in the layout GitHub's have:
// every entry under {owner}-{repo}-{sha[:7]}/. The archive is the same,
// byte for byte, for the same commit, and is generated as it is written:
// memory stays small whatever the size of the payload.
func (e *Emulator) codeload(w http.ResponseWriter, r *http.Request, _ identity) {
	e.mu.Lock()
	repo := e.repo(r.PathValue("owner"), r.PathValue("repo"))
	var c *Commit
	if repo != nil {
		c = repo.Commits[r.PathValue("sha")]
	}
	ok := c != nil
	if ok && repo.Private {
		t, found := e.codeloadTokens[r.URL.Query().Get("token")]
		ok = found && t.repoID == repo.ID && t.sha == c.SHA && e.nowLocked().Before(t.expires)
	}
	var top string
	if ok {
		top = repo.Owner.Login + "-" + repo.Name + "-" + c.SHA[:7]
	}
	e.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("404: Not Found"))
		return
	}
	w.Header().Set("Content-Type", "application/x-gzip")
	w.Header().Set("Content-Disposition", "attachment; filename="+top+".tar.gz")
	w.WriteHeader(http.StatusOK)
	// An error here is the client gone; nobody is left to tell.
	_ = writeTarball(w, top, c)
}

// Payload is the content of a commit's PayloadFile: size pseudo-random
// bytes, the same for the same SHA, generated as they are read.
func Payload(sha string, size int64) io.Reader {
	seed := sha256.Sum256([]byte("ghemu payload\x00" + sha))
	return io.LimitReader(rand.NewChaCha8(seed), size) //nolint:gosec // G404: test data that must repeat, not a secret
}

// writeTarball writes a commit's tree as a gzipped tar under top/: a pax
// global header with the commit id (as git archive writes), then the
// directories and files in path order, all with the commit's time, Git's
// archive modes and no owner; gzip with no name or time in its header.
func writeTarball(w io.Writer, top string, c *Commit) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": c.SHA}})
	if err != nil {
		return err
	}
	files := map[string]int64{}
	for p, content := range c.Files {
		files[p] = int64(len(content))
	}
	if c.PayloadBytes > 0 {
		files[PayloadFile] = c.PayloadBytes
	}
	entries := []string{""}
	dirs := map[string]bool{}
	for p := range files {
		entries = append(entries, p)
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			entries = append(entries, d+"/")
		}
	}
	sort.Strings(entries)
	for _, p := range entries {
		hdr := &tar.Header{Name: top + "/" + p, ModTime: c.Time, Uname: "root", Gname: "root"}
		if p == "" || strings.HasSuffix(p, "/") {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o775
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o664, files[p]
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if p == PayloadFile && c.PayloadBytes > 0 {
			_, err = io.Copy(tw, Payload(c.SHA, c.PayloadBytes))
		} else {
			_, err = io.WriteString(tw, c.Files[p])
		}
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
