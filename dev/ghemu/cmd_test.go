package ghemu_test

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinaryServesSeed(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ghemu")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ghemu").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-seed", "seed.example.json")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "GITHUB_API_URL=")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	resp, err := http.Get(base + "/search/code?q=unified")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.Contains(body.String(), `"total_count":1`) {
		t.Errorf("seeded search: %d %s", resp.StatusCode, body.String()[:min(200, body.Len())])
	}
}
