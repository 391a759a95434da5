package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/vaultsetup"
)

// One vaultdev per test binary, for the tests that use Vault as the
// services do and leave it as they found it. Starting one costs a Vault
// core's initialisation and unseal, the setup step, and, at the first key
// import, the transit mount's RSA-4096 wrapping key: about a second on
// this project's 2-core machines, which dozens of tests per package paid
// before. The tests keep apart by key name: every App key is named after
// its connection, and connection ids are random.
var shared struct {
	once  sync.Once
	vault *VaultDev
	// ids holds each identity's role_id and secret_id from the one setup
	// (identity → file name → value): each test gets its own copy of the
	// files, where services read them.
	ids map[string]string
	err error
	pid int
}

// SharedVault returns the test binary's vaultdev, set up once with
// ghconnect's policies and AppRoles at their default TTLs, and this
// test's credentials for it. A test that stops, seals or restarts Vault,
// needs other TTLs or reads the audit log starts its own with Vault.
func SharedVault(t testing.TB) (*VaultDev, *VaultCreds) {
	t.Helper()
	SkipIfShort(t, "starts Vault (vaultdev)")
	bin := VaultBinary(t)
	shared.once.Do(func() { shared.vault, shared.ids, shared.err = startShared(bin) })
	if shared.err != nil {
		t.Fatalf("the shared vaultdev: %v", shared.err)
	}
	dir := t.TempDir()
	for name, value := range shared.ids {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v := *shared.vault
	return &v, &VaultCreds{Dir: dir, Addr: v.Addr}
}

// errShared is what stopping, sealing or restarting the shared Vault
// answers: other tests are using it.
var errShared = errors.New("testenv: the shared Vault stays up for every test of the binary; start the test's own with testenv.Vault")

func startShared(bin string) (*VaultDev, map[string]string, error) {
	v := &VaultDev{Token: "test-root-" + RandomHex(8), shared: true}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-root-token", v.Token)
	cmd.Stderr = os.Stderr
	// Memory only and no audit file: nothing is left on disk when the
	// test binary ends, and vaultdev ends with it. Pdeathsig is sent when
	// the thread that started the child exits, so the start happens on a
	// thread locked for good to a goroutine that never returns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		started <- cmd.Start()
		select {}
	}()
	if err := <-started; err != nil {
		return nil, nil, err
	}
	shared.pid = cmd.Process.Pid
	if v.Addr, v.UnsealKey, err = readAddr(stdout, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return nil, nil, err
	}
	out, err := os.MkdirTemp("", "ghconnect-vault-setup-")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = os.RemoveAll(out) }() // the ids were read into memory
	c, err := v.client()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := vaultsetup.Run(ctx, vaultsetup.Options{Client: c, PoliciesDir: filepath.Join(repoRoot(), "deploy", "vault"), OutDir: out})
	if err != nil {
		return nil, nil, err
	}
	ids := map[string]string{}
	for _, identity := range res.Identities {
		for _, name := range []string{identity + "-role-id", identity + "-secret-id"} {
			b, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				return nil, nil, err
			}
			ids[name] = strings.TrimSpace(string(b))
		}
	}
	// The wrapping key is made now, once, rather than in the first
	// test's time (and timeouts).
	if _, err := c.Logical().ReadWithContext(ctx, "transit/wrapping_key"); err != nil {
		return nil, nil, err
	}
	return v, ids, nil
}
