package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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
}

// VaultBinary builds vaultdev once per test binary (it is its own module,
// kept out of the services' dependencies) and returns its path.
func VaultBinary(t testing.TB) string {
	t.Helper()
	vaultBuild.Do(func() {
		dir, err := os.MkdirTemp("", "vaultdev-bin-")
		if err != nil {
			vaultBuildErr = err
			return
		}
		vaultBin = filepath.Join(dir, "vaultdev")
		cmd := exec.Command("go", "build", "-o", vaultBin, "./cmd/vaultdev")
		cmd.Dir = filepath.Join(repoRoot(), "dev", "vaultdev")
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			vaultBuildErr = &buildError{err: err, out: string(out)}
		}
	})
	if vaultBuildErr != nil {
		t.Fatalf("building vaultdev: %v", vaultBuildErr)
	}
	return vaultBin
}

// Vault starts vaultdev as a process on a loopback port, with its data in
// a directory of the test's and the file audit device on; it stops when
// the test ends.
func Vault(t testing.TB) *VaultDev {
	t.Helper()
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
			t.Fatalf("vaultdev said %q", l)
		}
		v.Addr, v.UnsealKey = addr, key
	case <-time.After(30 * time.Second):
		t.Fatal("vaultdev did not start")
	}
}

// Restart stops the process and starts it again on the same address and
// data (Vault away, then back, unsealed).
func (v *VaultDev) Restart(t testing.TB) {
	t.Helper()
	v.Stop()
	v.start(t, strings.TrimPrefix(v.Addr, "http://"))
}

// Stop ends the process (Vault "down").
func (v *VaultDev) Stop() {
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
