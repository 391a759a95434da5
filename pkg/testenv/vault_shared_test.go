package testenv

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two tests get one Vault, each with its own copy of the AppRole
// credentials that log in; neither may stop, seal or set it up again.
func TestSharedVault(t *testing.T) {
	a, ca := SharedVault(t)
	b, cb := SharedVault(t)
	if a.Addr != b.Addr || ca.Dir == cb.Dir {
		t.Fatalf("shared Vaults at %s and %s, credentials in %s and %s", a.Addr, b.Addr, ca.Dir, cb.Dir)
	}
	for _, c := range []*VaultCreds{ca, cb} {
		if s := c.Login(t, "broker"); s == nil {
			t.Fatal("no session")
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("stopping the shared Vault did not refuse")
			}
		}()
		a.Stop()
	}()
	if _, err := a.Root(t).Sys().Health(); err != nil {
		t.Errorf("the shared Vault after a refused stop: %v", err)
	}
}

// The shared vaultdev ends with the test binary that started it: a test
// binary run as a child starts it and prints its address, then exits;
// the address stops answering.
func TestSharedVaultEndsWithTheTestBinary(t *testing.T) {
	if os.Getenv("GHCONNECT_SHARED_VAULT_CHILD") == "1" {
		v, _ := SharedVault(t)
		fmt.Printf("ADDR=%s\nPID=%d\n", v.Addr, shared.pid)
		return
	}
	SkipIfShort(t, "starts Vault (vaultdev)")
	VaultBinary(t) // built (or found) here, in this test's time
	// The child's output goes to a file: a pipe would stay open as long
	// as a vaultdev left behind, and Wait with it.
	outFile := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSharedVaultEndsWithTheTestBinary$", "-test.count=1") //nolint:gosec // this test binary, run again as the child
	cmd.Env = append(os.Environ(), "GHCONNECT_SHARED_VAULT_CHILD=1")
	cmd.Stdout = f
	err = cmd.Run()
	f.Close()
	out, _ := os.ReadFile(outFile)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var addr string
	pid := 0
	for sc := bufio.NewScanner(strings.NewReader(string(out))); sc.Scan(); {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR="); ok {
			addr = a
		}
		if p, ok := strings.CutPrefix(sc.Text(), "PID="); ok {
			pid, _ = strconv.Atoi(p)
		}
	}
	u, err := url.Parse(addr)
	if addr == "" || err != nil || pid == 0 {
		t.Fatalf("child printed no address and pid: %q", out)
	}
	gone := func() bool {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}
	// A vaultdev left behind is this test's to end, by the pid the child
	// gave.
	t.Cleanup(func() {
		if !gone() {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	})
	Eventually(t, 10*time.Second, fmt.Sprintf("the child's vaultdev (pid %d) at %s stops serving after the child exited", pid, addr), gone)
}
