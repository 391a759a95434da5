// Package auth authenticates and authorizes gRPC callers. Callers prove
// who they are by a bearer token (stored as SHA-256 hashes) or a mutual TLS
// client certificate; the gateway forwards an API caller's bearer token,
// or names the signed-in person it serves (see Rules.Resolve). Rules then
// allow each method to the roles listed for it, and nothing else.
package auth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in audit records and policies.
	Name string
	// Method says how the caller proved who it is, e.g. "bearer".
	Method string
	// Roles are what the caller may do (see Rules).
	Roles []string
	// Via names the service that forwarded a person's call (the
	// gateway); empty for a direct caller.
	Via string
}

// Authenticator decides who is calling.
type Authenticator interface {
	// Authenticate returns the caller, or a gRPC Unauthenticated error.
	Authenticate(ctx context.Context) (Principal, error)
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the authenticated caller.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

var (
	errNoCredentials  = status.Error(codes.Unauthenticated, "missing bearer token")
	errBadCredentials = status.Error(codes.Unauthenticated, "invalid credentials")
)

// StaticTokens accepts bearer tokens listed in a file by their SHA-256, so
// the file itself holds no usable secret.
type StaticTokens struct {
	byHash map[[sha256.Size]byte]string
}

// NewStaticTokens builds an authenticator from principal → token-hash pairs.
func NewStaticTokens(hashes map[string][sha256.Size]byte) *StaticTokens {
	s := &StaticTokens{byHash: make(map[[sha256.Size]byte]string, len(hashes))}
	for name, h := range hashes {
		s.byHash[h] = name
	}
	return s
}

// HashToken is the form in which tokens are stored in a tokens file.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// LoadTokenFile reads a tokens file: one "<principal> sha256:<hex>" per
// line; blank lines and lines starting with # are ignored.
func LoadTokenFile(path string) (*StaticTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer func() { _ = f.Close() }() // read only: closing loses nothing
	hashes := map[string][sha256.Size]byte{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || !strings.HasPrefix(fields[1], "sha256:") {
			return nil, fmt.Errorf("auth: %s:%d: want \"<principal> sha256:<hex>\"", path, n)
		}
		raw, err := hex.DecodeString(strings.TrimPrefix(fields[1], "sha256:"))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth: %s:%d: malformed sha256", path, n)
		}
		if _, dup := hashes[fields[0]]; dup {
			return nil, fmt.Errorf("auth: %s:%d: principal %q listed twice", path, n, fields[0])
		}
		hashes[fields[0]] = [sha256.Size]byte(raw)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if len(hashes) == 0 {
		return nil, errors.New("auth: tokens file lists no principal")
	}
	return NewStaticTokens(hashes), nil
}

// Authenticate implements Authenticator.
func (s *StaticTokens) Authenticate(ctx context.Context) (Principal, error) {
	token, ok := bearer(ctx)
	if !ok {
		return Principal{}, errNoCredentials
	}
	// Looking up the hash, not the token, keeps the comparison's timing
	// independent of how much of a guessed token is right.
	name, ok := s.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return Principal{}, errBadCredentials
	}
	return Principal{Name: name, Method: "bearer"}, nil
}

func bearer(ctx context.Context) (string, bool) {
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		scheme, token, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(token) != "" {
			return strings.TrimSpace(token), true
		}
	}
	return "", false
}

// Public lists methods callable without credentials (health checks,
// reflection), by full method name prefix.
type Public []string

func (p Public) allows(fullMethod string) bool {
	for _, prefix := range p {
		if strings.HasPrefix(fullMethod, prefix) {
			return true
		}
	}
	return false
}

// DefaultPublic is what orchestrators and grpcurl need without a token.
var DefaultPublic = Public{"/grpc.health.v1.Health/", "/grpc.reflection."}

// Guarded is the selector (go-grpc-middleware's interceptors/selector)
// of the methods that need credentials: all but p's.
func (p Public) Guarded(_ context.Context, c interceptors.CallMeta) bool {
	return !p.allows(c.FullMethod())
}

// Admit is the auth function (go-grpc-middleware's interceptors/auth) of
// the guarded methods: it says who calls (Authenticate), tells seen (the
// call's log line names the caller, a refused one too), then refuses a
// method the caller's roles do not allow (Authorize). The handler's
// context carries the caller.
func (g *Guard) Admit(seen func(context.Context, Principal)) grpcauth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		p, err := g.Authenticate(ctx)
		if err != nil {
			return nil, err
		}
		seen(ctx, p)
		ctx = WithPrincipal(ctx, p)
		method, _ := grpc.Method(ctx)
		if err := g.Authorize(ctx, method); err != nil {
			return nil, err
		}
		return ctx, nil
	}
}
