package vaulttransit

import (
	"fmt"

	"github.com/tink-crypto/tink-go/v2/kwp/subtle"
)

// kwpWrap is AES Key Wrap with Padding (RFC 5649, NIST SP 800-38F KWP), the
// wrapping transit's BYOK import expects around the key material. It is
// tink's implementation, the one Vault's own import command uses: kek is an
// AES-128 or AES-256 key and the key material 16 to 8192 bytes (a PKCS#8
// RSA key of any size GitHub.com issues fits).
func kwpWrap(kek, plaintext []byte) ([]byte, error) {
	kwp, err := subtle.NewKWP(kek)
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: %w", err)
	}
	wrapped, err := kwp.Wrap(plaintext)
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: %w", err)
	}
	return wrapped, nil
}
