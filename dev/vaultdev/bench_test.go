package vaultdev_test

import (
	"testing"

	"github.com/ghconnect/ghconnect/dev/vaultdev"
)

// BenchmarkSignJWT is one App JWT signature through the HTTP API, the
// operation the token broker needs about once per JWT lifetime per App.
func BenchmarkSignJWT(b *testing.B) {
	t := &testing.T{}
	s := vaultdev.StartForTest(b, vaultdev.Config{})
	c := client(t, s, "root")
	_, pemKey := githubStyleKey(t)
	if _, err := c.Logical().Write("transit/keys/app/import", map[string]any{"ciphertext": wrapForImport(t, c, "transit", pemKey), "type": "rsa-2048", "hash_function": "SHA256"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := signJWT(c, "transit", "app", 0); err != nil {
			b.Fatal(err)
		}
	}
}
