// Package githubapp signs GitHub App JWTs with a key held in Vault transit:
// RS256 over the JWT signing input, the private key never leaving Vault.
package githubapp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
)

// header is base64url of {"alg":"RS256","typ":"JWT"}.
var header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))

// GitHub accepts App JWTs of at most ten minutes: iat a minute back (for
// clocks that run slow), exp nine minutes ahead.
const (
	// Backdate is how far before now iat is.
	Backdate = time.Minute
	// Lifetime is how far after now exp is.
	Lifetime = 9 * time.Minute
)

// JWT signs an App JWT for appID with version (0: newest) of transit key
// name, dated by now (GitHub's clock, when it is known to differ). It
// returns the token and the key version that signed it.
func JWT(ctx context.Context, t *vaulttransit.Client, key string, version int, appID int64, now time.Time) (string, int, error) {
	claims, _ := json.Marshal(map[string]any{"iat": now.Add(-Backdate).Unix(), "exp": now.Add(Lifetime).Unix(), "iss": strconv.FormatInt(appID, 10)})
	input := header + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	sig, used, err := t.SignPKCS1v15(ctx, key, version, digest[:])
	if err != nil {
		return "", 0, err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), used, nil
}
