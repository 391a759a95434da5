package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	vaultBuild    sync.Once
	vaultBin      string
	vaultBuildErr error
)

// RepoRoot is the checkout's top folder.
func RepoRoot() string { return repoRoot() }

// repoRoot is found from this file's place in the tree.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// VaultDev is a vaultdev process (Vault's own server core) started for
// one test.
type VaultDev struct {
	Addr string
	// Token is the root token: tests use it to set Vault up and to look
	// from outside; services get AppRole logins (Setup).
	Token     string
	UnsealKey string
	// AuditFile is Vault's file audit device log.
	AuditFile string
	DataDir   string
	cmd       *exec.Cmd
	// shared is the test binary's one vaultdev (SharedVault): no test may
	// stop, seal or restart it.
	shared bool
}

// VaultBinary returns the path of a vaultdev binary built from this
// checkout's dev/vaultdev (its own module, kept out of the services'
// dependencies). Linking Vault's core takes most of a minute on 2 cores,
// so the binary is kept in the user's cache folder under a hash of its
// sources and the Go version: the test binaries of one run, and later
// runs, share one build (a file lock keeps concurrent test binaries from
// building it twice).
func VaultBinary(t testing.TB) string {
	t.Helper()
	vaultBuild.Do(func() { vaultBin, vaultBuildErr = cachedVaultdev() })
	if vaultBuildErr != nil {
		t.Fatalf("building vaultdev: %v", vaultBuildErr)
	}
	return vaultBin
}

func cachedVaultdev() (string, error) {
	src := filepath.Join(repoRoot(), "dev", "vaultdev")
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		if (!strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" {
			return nil
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(body))
		h.Write(body)
		return nil
	})
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "ghconnect-vaultdev")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:20])
	defer pruneVaultdevs(dir, bin)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	// Closing the file (deferred above) releases the lock too.
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another test binary built it while this one waited
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "./cmd/vaultdev")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	// A test binary killed mid-build (its -timeout, say) must take the
	// build with it: an orphaned build keeps two cores busy for many
	// minutes while the next test binary, holding the lock now, starts
	// the same build again.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp) // a failed build leaves at most a partial file
		return "", &buildError{err: err, out: string(out)}
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// pruneVaultdevs marks bin used now and removes the builds nobody used
// for a week. Builds of other sources stay meanwhile: another checkout
// (a worktree, an older branch) may be testing with one at this moment.
func pruneVaultdevs(dir, bin string) {
	now := time.Now()
	_ = os.Chtimes(bin, now, now) // only the pruning below reads it
	builds, err := filepath.Glob(filepath.Join(dir, "[0-9a-f]*"))
	if err != nil {
		return
	}
	for _, b := range builds {
		if st, err := os.Stat(b); err == nil && b != bin && now.Sub(st.ModTime()) > 7*24*time.Hour {
			_ = os.Remove(b) // unused for a week
		}
	}
}

// Vault starts vaultdev as a process on a loopback port, with its data in
// a directory of the test's and the file audit device on; it stops when
// the test ends.
func Vault(t testing.TB) *VaultDev {
	t.Helper()
	SkipIfShort(t, "starts Vault (vaultdev)")
	dir := t.TempDir()
	v := &VaultDev{Token: "test-root-" + RandomHex(8), DataDir: filepath.Join(dir, "data"), AuditFile: filepath.Join(dir, "audit.log")}
	v.start(t, "127.0.0.1:0")
	return v
}

func (v *VaultDev) start(t testing.TB, addr string) {
	t.Helper()
	v.cmd = exec.Command(VaultBinary(t), "-addr", addr, "-root-token", v.Token, "-data-dir", v.DataDir, "-audit-file", v.AuditFile)
	v.cmd.Stderr = os.Stderr
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	if v.Addr, v.UnsealKey, err = readAddr(stdout, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// readAddr reads the two lines vaultdev prints once it serves: its
// address and unseal key.
func readAddr(stdout io.Reader, wait time.Duration) (addr, key string, err error) {
	lines := make(chan [2]string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		a, _ := r.ReadString('\n')
		k, _ := r.ReadString('\n')
		lines <- [2]string{a, k}
	}()
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(l[0]), "VAULT_ADDR=")
		key, ok2 := strings.CutPrefix(strings.TrimSpace(l[1]), "VAULT_UNSEAL_KEY=")
		if !ok || !ok2 {
			return "", "", fmt.Errorf("vaultdev said %q", l)
		}
		return addr, key, nil
	case <-time.After(wait):
		return "", "", errors.New("vaultdev did not start")
	}
}

// Restart stops the process and starts it again on the same address and
// data (Vault away, then back, unsealed).
func (v *VaultDev) Restart(t testing.TB) {
	t.Helper()
	if v.shared {
		t.Fatal(errShared)
	}
	v.Stop()
	v.start(t, strings.TrimPrefix(v.Addr, "http://"))
}

// Stop ends the process (Vault "down").
func (v *VaultDev) Stop() {
	if v.shared {
		panic(errShared)
	}
	if v.cmd != nil && v.cmd.Process != nil && v.cmd.ProcessState == nil {
		v.cmd.Process.Signal(os.Interrupt)
		v.cmd.Wait()
	}
}

type buildError struct {
	err error
	out string
}

func (b *buildError) Error() string { return b.err.Error() + "\n" + b.out }
