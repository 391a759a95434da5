package registry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// License files are "ghl1.<payload>.<signature>": the payload is base64url
// (no padding) of a JSON LicenseClaims, the signature is base64url of the
// issuer's Ed25519 signature over "ghl1.<payload>". See license.md.
const (
	licensePrefix  = "ghl1."
	maxLicenseSize = 16 << 10
)

// LicenseClaims is the content of a license.
type LicenseClaims struct {
	ID           string    `json:"id"`
	CustomerName string    `json:"customer_name"`
	Seats        int32     `json:"seats"`
	IssuedAt     time.Time `json:"issued_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	// PublicKey is the license's own Ed25519 public key, base64 (standard).
	PublicKey string `json:"public_key"`
}

// VerifiedLicense is a license whose signature and dates were checked.
type VerifiedLicense struct {
	LicenseClaims
	// SHA256 is the hex SHA-256 of the license text as submitted (surrounding
	// white space removed).
	SHA256 string
}

// ParseLicense verifies text against the trusted issuer keys at time now.
// Errors are safe to show the caller.
func ParseLicense(text string, issuers []ed25519.PublicKey, now time.Time) (*VerifiedLicense, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("must not be empty")
	}
	if len(text) > maxLicenseSize {
		return nil, fmt.Errorf("must be at most %d bytes", maxLicenseSize)
	}
	if !strings.HasPrefix(text, licensePrefix) {
		return nil, errors.New(`not a license file (want "ghl1.<payload>.<signature>")`)
	}
	payloadB64, sigB64, ok := strings.Cut(strings.TrimPrefix(text, licensePrefix), ".")
	if !ok || strings.Contains(sigB64, ".") {
		return nil, errors.New(`malformed: want "ghl1.<payload>.<signature>"`)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errors.New("malformed signature")
	}
	signed := []byte(licensePrefix + payloadB64)
	trusted := false
	for _, k := range issuers {
		if ed25519.Verify(k, signed, sig) {
			trusted = true
			break
		}
	}
	if !trusted {
		return nil, errors.New("signature does not verify with any trusted issuer key (tampered, or issued by someone else)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(payloadB64)
	if err != nil {
		return nil, errors.New("malformed payload")
	}
	var c LicenseClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, errors.New("malformed payload")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if !now.Before(c.ExpiresAt) {
		return nil, fmt.Errorf("expired on %s", c.ExpiresAt.UTC().Format(time.DateOnly))
	}
	sum := sha256.Sum256([]byte(text))
	return &VerifiedLicense{LicenseClaims: c, SHA256: hex.EncodeToString(sum[:])}, nil
}

func (c *LicenseClaims) check() error {
	switch {
	case c.ID == "" || len(c.ID) > 64:
		return errors.New("id must be 1 to 64 characters")
	case c.CustomerName == "" || len(c.CustomerName) > 200 || !utf8.ValidString(c.CustomerName):
		return errors.New("customer_name must be 1 to 200 characters of UTF-8")
	case c.Seats < 1:
		return errors.New("seats must be positive")
	case c.IssuedAt.IsZero() || c.ExpiresAt.IsZero():
		return errors.New("issued_at and expires_at are required")
	case !c.ExpiresAt.After(c.IssuedAt):
		return errors.New("expires_at must be after issued_at")
	}
	if k, err := base64.StdEncoding.DecodeString(c.PublicKey); err != nil || len(k) != ed25519.PublicKeySize {
		return errors.New("public_key must be a base64 Ed25519 public key")
	}
	return nil
}

// MintLicense signs a new license for customer with the issuer key. The
// license's own key pair is generated here; its private half is not needed
// by ghconnect and is discarded.
func MintLicense(issuer ed25519.PrivateKey, customer string, seats int32, issued time.Time, validFor time.Duration) (string, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	var id [8]byte
	rand.Read(id[:])
	c := LicenseClaims{
		ID:           hex.EncodeToString(id[:]),
		CustomerName: customer,
		Seats:        seats,
		IssuedAt:     issued.UTC().Truncate(time.Second),
		ExpiresAt:    issued.Add(validFor).UTC().Truncate(time.Second),
		PublicKey:    base64.StdEncoding.EncodeToString(pub),
	}
	if err := c.check(); err != nil {
		return "", err
	}
	return SignLicenseClaims(issuer, c)
}

// SignLicenseClaims encodes and signs c as is.
func SignLicenseClaims(issuer ed25519.PrivateKey, c LicenseClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := licensePrefix + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(issuer, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ParseIssuerKeys reads trusted issuer public keys: one base64 Ed25519 key
// per line; blank lines and # comments are ignored.
func ParseIssuerKeys(text string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("line %d: not a base64 Ed25519 public key", n+1)
		}
		keys = append(keys, ed25519.PublicKey(k))
	}
	if len(keys) == 0 {
		return nil, errors.New("no issuer key")
	}
	return keys, nil
}
