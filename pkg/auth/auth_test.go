package auth

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTokenFile(t *testing.T) {
	good := "# admins\nalice " + HashToken("a-token") + "\n\nbob " + HashToken("b-token") + "\n"
	a, err := LoadTokenFile(writeFile(t, good))
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]string{"a-token": "alice", "b-token": "bob"} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
		p, err := a.Authenticate(ctx)
		if err != nil || p.Name != want {
			t.Errorf("%s: got %v %v, want %s", token, p, err, want)
		}
	}
	for name, md := range map[string]metadata.MD{
		"none":      {},
		"wrong":     metadata.Pairs("authorization", "Bearer c-token"),
		"no scheme": metadata.Pairs("authorization", "a-token"),
		"basic":     metadata.Pairs("authorization", "Basic a-token"),
		"empty":     metadata.Pairs("authorization", "Bearer "),
	} {
		_, err := a.Authenticate(metadata.NewIncomingContext(context.Background(), md))
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, err)
		}
	}
	for name, body := range map[string]string{
		"empty":          "# nothing\n",
		"plain token":    "alice a-token\n",
		"short hash":     "alice sha256:abcd\n",
		"duplicate":      "alice " + HashToken("x") + "\nalice " + HashToken("y") + "\n",
		"missing fields": "alice\n",
	} {
		if _, err := LoadTokenFile(writeFile(t, body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Authentication copies only the headers it reads: its allocations do not
// grow with the other headers a call carries (copying them all was a tenth
// of a call's allocations).
func TestAuthenticateCopiesOnlyItsHeaders(t *testing.T) {
	a, err := LoadTokenFile(writeFile(t, "search-svc "+HashToken("s-token")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{Authn: a, Rules: DefaultRules()}
	allocs := func(extra int) float64 {
		md := metadata.Pairs("authorization", "Bearer s-token", "content-type", "application/grpc", "user-agent", "grpc-go/1.84.0", ":authority", "127.0.0.1")
		for i := range extra {
			md.Append("x-extra-"+strconv.Itoa(i), "value")
		}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		return testing.AllocsPerRun(100, func() {
			if p, err := g.Authenticate(ctx); err != nil || p.Name != "search-svc" {
				t.Fatalf("%v %v", p, err)
			}
		})
	}
	if few, many := allocs(0), allocs(40); many > few {
		t.Errorf("%v allocations with 4 headers, %v with 44", few, many)
	}
}
