// Package vaulttransit is ghconnect's client of Vault's transit engine for
// GitHub App keys: BYOK import of the PEM GitHub hands out (the key never
// leaves Vault afterwards), new key versions for rotation, RS256 signatures
// of App JWTs, retirement and deletion.
package vaulttransit

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"

	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	vault "github.com/hashicorp/vault/api"
)

// The keys ghconnect keeps in its transit mount. An App key's name is
// derived from its connection's id alone, and the App keys' prefix is not
// a prefix of the secrets key's name: a policy's "ghconnect-app-*" glob
// reaches every App key and never the secrets key.
const (
	// AppKeyPrefix begins the name of every GitHub App key.
	AppKeyPrefix = "ghconnect-app-"
	// SecretsKey encrypts the Apps' client and webhook secrets; the Vault
	// setup step creates it, and the services may only encrypt and
	// decrypt with it.
	SecretsKey = "ghconnect-secrets"
	// UserTokensKey encrypts the server users' GitHub.com user tokens and
	// refresh tokens; only the broker may use it.
	UserTokensKey = "ghconnect-user-tokens" //nolint:gosec // G101: a key's name in Vault, not a credential
)

// AppKeyName is the transit key holding the private key of connection
// connectionID's GitHub App.
func AppKeyName(connectionID string) string { return AppKeyPrefix + connectionID }

// Client talks to one transit mount.
type Client struct {
	auth  *vaultauth.Session
	mount string
	// Timeout bounds each Vault call.
	Timeout time.Duration
}

// New returns a client of the transit engine mounted at mount, calling
// with the session's token.
func New(auth *vaultauth.Session, mount string) *Client {
	return &Client{auth: auth, mount: mount, Timeout: 5 * time.Second}
}

// wrappingKeyTimeout bounds reading the wrapping key (see wrap).
const wrappingKeyTimeout = 30 * time.Second

// call runs one Vault request; a 403 is retried once on a new login when
// the token it used may have been revoked or expired.
func (c *Client) call(ctx context.Context, f func(l *vault.Logical) (*vault.Secret, error)) (*vault.Secret, error) {
	api := c.auth.Client()
	used := api.Token()
	s, err := f(api.Logical())
	if vaultauth.IsPermissionDenied(err) && c.auth.Refresh(ctx, used) {
		s, err = f(api.Logical())
	}
	return s, err
}

func (c *Client) read(ctx context.Context, path string) (*vault.Secret, error) {
	return c.call(ctx, func(l *vault.Logical) (*vault.Secret, error) { return l.ReadWithContext(ctx, path) })
}

func (c *Client) write(ctx context.Context, path string, data map[string]any) (*vault.Secret, error) {
	return c.call(ctx, func(l *vault.Logical) (*vault.Secret, error) { return l.WriteWithContext(ctx, path, data) })
}

func (c *Client) list(ctx context.Context, path string) (*vault.Secret, error) {
	return c.call(ctx, func(l *vault.Logical) (*vault.Secret, error) { return l.ListWithContext(ctx, path) })
}

func (c *Client) delete(ctx context.Context, path string) (*vault.Secret, error) {
	return c.call(ctx, func(l *vault.Logical) (*vault.Secret, error) { return l.DeleteWithContext(ctx, path) })
}

// Mount is the transit mount path.
func (c *Client) Mount() string { return c.mount }

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.Timeout)
}

// wrap converts a PKCS#1 (or PKCS#8) RSA PEM to PKCS#8 and wraps it for
// transit's BYOK import: RSA-OAEP(SHA-256) of a fresh AES-256 key under the
// mount's wrapping key, then AES-KWP of the key material under that key.
func (c *Client) wrap(ctx context.Context, privatePEM []byte) (string, *rsa.PublicKey, error) {
	key, err := ParseRSAPrivateKey(privatePEM)
	if err != nil {
		return "", nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", nil, err
	}
	// The first read makes Vault generate its 4096-bit RSA wrapping key,
	// which takes seconds on a busy machine: more than one call's timeout.
	ctx, cancel := context.WithTimeout(ctx, max(c.Timeout, wrappingKeyTimeout))
	defer cancel()
	wk, err := c.read(ctx, c.mount+"/wrapping_key")
	if err != nil {
		return "", nil, fmt.Errorf("vaulttransit: reading the wrapping key: %w", err)
	}
	if wk == nil {
		return "", nil, errors.New("vaulttransit: no wrapping key")
	}
	pubPEM, _ := wk.Data["public_key"].(string)
	block, _ := pem.Decode([]byte(pubPEM))
	if block == nil {
		return "", nil, errors.New("vaulttransit: wrapping key is not PEM")
	}
	wpub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return "", nil, fmt.Errorf("vaulttransit: wrapping key: %w", err)
	}
	rsaPub, ok := wpub.(*rsa.PublicKey)
	if !ok {
		return "", nil, errors.New("vaulttransit: wrapping key is not RSA")
	}
	aesKey := make([]byte, 32)
	if _, err := rand.Read(aesKey); err != nil {
		return "", nil, err
	}
	wrapped, err := kwpWrap(aesKey, pkcs8)
	if err != nil {
		return "", nil, err
	}
	encKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, aesKey, nil)
	if err != nil {
		return "", nil, err
	}
	return base64.StdEncoding.EncodeToString(append(encKey, wrapped...)), &key.PublicKey, nil
}

// ParseRSAPrivateKey reads an RSA key from PEM, PKCS#1 (as GitHub issues
// them) or PKCS#8. Errors never quote the input.
func ParseRSAPrivateKey(privatePEM []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(privatePEM)
	if block == nil {
		return nil, errors.New("vaulttransit: the private key is not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("vaulttransit: the private key is neither PKCS#1 nor PKCS#8 RSA")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("vaulttransit: the private key is not RSA")
	}
	return rk, nil
}

// ImportKey creates key name from a private key PEM: rsa-2048, not
// exportable (transit's default; the registry's policy cannot change it),
// not rotatable inside Vault (a key Vault makes up is one GitHub.com has
// never seen: new versions arrive by import_version), deletable. It returns
// the key's public half.
func (c *Client) ImportKey(ctx context.Context, name string, privatePEM []byte) (*rsa.PublicKey, error) {
	ct, pub, err := c.wrap(ctx, privatePEM)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if _, err := c.write(ctx, c.mount+"/keys/"+name+"/import", map[string]any{
		"ciphertext": ct, "type": "rsa-2048", "hash_function": "SHA256", "allow_rotation": false,
	}); err != nil {
		return nil, fmt.Errorf("vaulttransit: importing %s: %w", name, err)
	}
	if _, err := c.write(ctx, c.mount+"/keys/"+name+"/config", map[string]any{"deletion_allowed": true}); err != nil {
		return nil, fmt.Errorf("vaulttransit: configuring %s: %w", name, err)
	}
	return pub, nil
}

// ImportKeyVersion adds a private key as the next version of key name and
// returns that version.
func (c *Client) ImportKeyVersion(ctx context.Context, name string, privatePEM []byte) (int, *rsa.PublicKey, error) {
	ct, pub, err := c.wrap(ctx, privatePEM)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if _, err := c.write(ctx, c.mount+"/keys/"+name+"/import_version", map[string]any{"ciphertext": ct, "hash_function": "SHA256"}); err != nil {
		return 0, nil, fmt.Errorf("vaulttransit: importing a version of %s: %w", name, err)
	}
	info, err := c.Key(ctx, name)
	if err != nil {
		return 0, nil, err
	}
	return info.Latest, pub, nil
}

// MaxKeyVersion is the largest key version this package reads from
// transit: the services keep versions as int32 (their protos), so every
// version it returns converts to int32 without loss.
const MaxKeyVersion = math.MaxInt32

// KeyInfo is what transit reports of a key.
type KeyInfo struct {
	Latest     int
	MinVersion int
	// Created is when the oldest version still kept was made (zero if
	// transit did not say).
	Created time.Time
}

// Key reads a key's versions; a missing key is ErrKeyNotFound.
func (c *Client) Key(ctx context.Context, name string) (KeyInfo, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.read(ctx, c.mount+"/keys/"+name)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("vaulttransit: reading %s: %w", name, err)
	}
	if s == nil {
		return KeyInfo{}, ErrKeyNotFound
	}
	latest, _ := jsonInt(s.Data["latest_version"])
	minV, _ := jsonInt(s.Data["min_encryption_version"])
	info := KeyInfo{Latest: latest, MinVersion: minV}
	// Asymmetric keys list their versions with creation times; symmetric
	// ones give a Unix time per version.
	versions, _ := s.Data["keys"].(map[string]any)
	for _, v := range versions {
		var t time.Time
		switch x := v.(type) {
		case map[string]any:
			if ct, ok := x["creation_time"].(string); ok {
				t, _ = time.Parse(time.RFC3339Nano, ct)
			}
		case json.Number:
			if n, err := x.Int64(); err == nil {
				t = time.Unix(n, 0)
			}
		}
		if !t.IsZero() && (info.Created.IsZero() || t.Before(info.Created)) {
			info.Created = t
		}
	}
	return info, nil
}

// ErrKeyNotFound is the answer for a transit key that does not exist.
var ErrKeyNotFound = errors.New("vaulttransit: key not found")

// jsonInt reads a key version number from transit's JSON: 0 to
// MaxKeyVersion, anything else counts as absent (0, false), as a value of
// the wrong type does.
func jsonInt(v any) (int, bool) {
	var i int64
	switch n := v.(type) {
	case json.Number:
		var err error
		if i, err = n.Int64(); err != nil {
			return 0, false
		}
	case float64:
		if n != math.Trunc(n) || n < 0 || n > MaxKeyVersion {
			return 0, false
		}
		i = int64(n)
	default:
		return 0, false
	}
	if i < 0 || i > MaxKeyVersion {
		return 0, false
	}
	return int(i), true
}

// RetireVersionsBelow stops signing with versions below v.
func (c *Client) RetireVersionsBelow(ctx context.Context, name string, v int) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.write(ctx, c.mount+"/keys/"+name+"/config", map[string]any{"min_encryption_version": v, "min_decryption_version": v})
	if err != nil {
		return fmt.Errorf("vaulttransit: retiring versions of %s: %w", name, err)
	}
	return nil
}

// DeleteKey deletes key name; deleting a missing key succeeds.
func (c *Client) DeleteKey(ctx context.Context, name string) error {
	if _, err := c.Key(ctx, name); errors.Is(err, ErrKeyNotFound) {
		return nil
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if _, err := c.write(ctx, c.mount+"/keys/"+name+"/config", map[string]any{"deletion_allowed": true}); err != nil {
		return fmt.Errorf("vaulttransit: preparing deletion of %s: %w", name, err)
	}
	if _, err := c.delete(ctx, c.mount+"/keys/"+name); err != nil {
		return fmt.Errorf("vaulttransit: deleting %s: %w", name, err)
	}
	return nil
}

// SignPKCS1v15 signs a SHA-256 digest with RSASSA-PKCS1-v1_5 (RS256) using
// version (0: the newest) of key name, and returns the raw signature and
// the version Vault used.
func (c *Client) SignPKCS1v15(ctx context.Context, name string, version int, digest []byte) ([]byte, int, error) {
	req := map[string]any{
		"input":                base64.StdEncoding.EncodeToString(digest),
		"prehashed":            true,
		"hash_algorithm":       "sha2-256",
		"signature_algorithm":  "pkcs1v15",
		"marshaling_algorithm": "jws",
	}
	if version > 0 {
		req["key_version"] = version
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.write(ctx, c.mount+"/sign/"+name, req)
	if err != nil {
		return nil, 0, fmt.Errorf("vaulttransit: signing with %s v%d: %w", name, version, err)
	}
	raw, _ := s.Data["signature"].(string)
	v, sig, err := ParseSignature(raw)
	if err != nil {
		return nil, 0, err
	}
	return sig, v, nil
}

var signature = regexp.MustCompile(`^vault:v([0-9]+):([A-Za-z0-9_=-]+)$`)

// ParseSignature splits transit's "vault:vN:<base64url>" (jws marshaling)
// for any version N.
func ParseSignature(s string) (int, []byte, error) {
	m := signature.FindStringSubmatch(s)
	if m == nil {
		return 0, nil, errors.New("vaulttransit: signature is not in vault:vN:<base64url> form")
	}
	v, err := strconv.Atoi(m[1])
	if err != nil || v < 1 || v > MaxKeyVersion {
		return 0, nil, errors.New("vaulttransit: bad key version in signature")
	}
	sig, err := base64.RawURLEncoding.DecodeString(m[2])
	if err != nil {
		return 0, nil, errors.New("vaulttransit: signature is not base64url")
	}
	return v, sig, nil
}

// ListKeys lists the mount's keys.
func (c *Client) ListKeys(ctx context.Context) ([]string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.list(ctx, c.mount+"/keys")
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: listing keys: %w", err)
	}
	if s == nil {
		return nil, nil
	}
	raw, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if name, ok := k.(string); ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// EnsureKey creates key name of type typ (e.g. "aes256-gcm96") if missing.
func (c *Client) EnsureKey(ctx context.Context, name, typ string) error {
	if _, err := c.Key(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, ErrKeyNotFound) {
		return err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if _, err := c.write(ctx, c.mount+"/keys/"+name, map[string]any{"type": typ}); err != nil {
		return fmt.Errorf("vaulttransit: creating %s: %w", name, err)
	}
	return nil
}

// Encrypt returns transit's ciphertext ("vault:vN:…") of plaintext.
func (c *Client) Encrypt(ctx context.Context, name string, plaintext []byte) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.write(ctx, c.mount+"/encrypt/"+name, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plaintext)})
	if err != nil {
		return "", fmt.Errorf("vaulttransit: encrypting with %s: %w", name, err)
	}
	ct, _ := s.Data["ciphertext"].(string)
	if ct == "" {
		return "", errors.New("vaulttransit: no ciphertext returned")
	}
	return ct, nil
}

// Decrypt is the inverse of Encrypt.
func (c *Client) Decrypt(ctx context.Context, name, ciphertext string) ([]byte, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.write(ctx, c.mount+"/decrypt/"+name, map[string]any{"ciphertext": ciphertext})
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: decrypting with %s: %w", name, err)
	}
	pt, _ := s.Data["plaintext"].(string)
	return base64.StdEncoding.DecodeString(pt)
}
