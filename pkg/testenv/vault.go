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

// VaultDev is a vaultdev process started for one test.
type VaultDev struct {
	Addr  string
	Token string
	cmd   *exec.Cmd
}

var (
	vaultBuild    sync.Once
	vaultBin      string
	vaultBuildErr error
)

// repoRoot is found from this file's place in the tree.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Vault builds vaultdev (once per test binary; it is its own module, kept
// out of the services' dependencies) and starts it as a process on a
// loopback port; it stops when the test ends.
func Vault(t testing.TB) *VaultDev {
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
	token := "test-root-" + RandomHex(8)
	v := &VaultDev{Token: token, cmd: exec.Command(vaultBin, "-addr", "127.0.0.1:0", "-root-token", token)}
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "VAULT_ADDR=")
		if !ok {
			t.Fatalf("vaultdev said %q", line)
		}
		v.Addr = addr
	case <-time.After(20 * time.Second):
		t.Fatal("vaultdev did not start")
	}
	return v
}

// Stop ends the process (Vault "down").
func (v *VaultDev) Stop() {
	if v.cmd.Process != nil && v.cmd.ProcessState == nil {
		v.cmd.Process.Signal(os.Interrupt)
		v.cmd.Wait()
	}
}

type buildError struct {
	err error
	out string
}

func (b *buildError) Error() string { return b.err.Error() + "\n" + b.out }
