package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// make test's PostgreSQL, where nothing answers at GHCONNECT_TEST_POSTGRES
// (deploy/postgres/test-postgres.sh): the script starts one there, the
// command it runs gets a server that takes the tests' databases, and when
// the command ends the server's process and folder are gone.
func TestOwnPostgres(t *testing.T) {
	SkipIfShort(t, "starts a PostgreSQL server")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close() // free again: nothing answers there
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	seen := filepath.Join(t.TempDir(), "dsn")
	// The command: say which server it got, then wait for the test.
	cmd := exec.Command("bash", filepath.Join(root, "deploy", "postgres", "test-postgres.sh"), "sh", "-c", `echo "$GHCONNECT_TEST_POSTGRES" > "$0"; read -r _ || true`, seen)
	cmd.Env = append(os.Environ(), PostgresEnv+"="+dsn)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 20)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(stderr); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	started := regexp.MustCompile(`^test-postgres: started PostgreSQL \(pid (\d+)\) at 127\.0\.0\.1:\d+, data in (\S+)$`)
	var pid, dir string
	deadline := time.After(2 * time.Minute)
	for pid == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the script ended before the server started (exit %v)", cmd.Wait())
			}
			if m := started.FindStringSubmatch(l); m != nil {
				pid, dir = m[1], m[2]
			} else {
				t.Log(l)
			}
		case <-deadline:
			t.Fatal("no server within 2 minutes")
		}
	}
	var got []byte
	Eventually(t, 10*time.Second, "the command runs", func() bool {
		got, _ = os.ReadFile(seen)
		return strings.HasSuffix(string(got), "\n")
	})
	if strings.TrimSpace(string(got)) != dsn {
		t.Fatalf("the command got %q, want %q", got, dsn)
	}
	// The PostgreSQL half of the tests: a database of its own, made and
	// dropped as every test's is.
	t.Run("a test database", func(t *testing.T) {
		if d := createDatabase(t, dsn, ""); !strings.Contains(d, fmt.Sprintf(":%d/ghconnect_test_", port)) {
			t.Errorf("database %s", d)
		}
	})
	stdin.Close() // the command ends
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the script: %v", err)
	}
	if _, err := os.Stat("/proc/" + pid); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL (pid %s) still runs after the command ended", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("its folder %s is still there", dir)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("something still answers at port %d", port)
	}
}
