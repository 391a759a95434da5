package vaulttransit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/tink-crypto/tink-go/v2/kwp/subtle"
)

// A known answer from OpenSSL's id-aes256-wrap-pad, an implementation of
// its own (the same command reproduces both examples of RFC 5649, section
// 6; those use AES-192 and key material shorter than 16 bytes, which tink
// does not accept). 45 bytes of material: the last block is padded.
func TestKWPVector(t *testing.T) {
	kek, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	plain := []byte("ghconnect transit import vector, 45 bytes!!..")
	const want = "b019105246a66a5767ce274676a0e00a76df5a117fbe961309aff411202b67018c077b948cc5cbd09d82a973462f7998dd65b4fb1879fd97"
	got, err := kwpWrap(kek, plain)
	if err != nil || hex.EncodeToString(got) != want {
		t.Errorf("wrap = %x, %v; want %s", got, err, want)
	}
}

// What kwpWrap wraps unwraps to the same bytes under the same key, for
// material of every padding length, and not under another key.
func TestKWPRoundTrip(t *testing.T) {
	kek := make([]byte, 32)
	other := make([]byte, 32)
	rand.Read(kek)
	rand.Read(other)
	k, err := subtle.NewKWP(kek)
	if err != nil {
		t.Fatal(err)
	}
	o, err := subtle.NewKWP(other)
	if err != nil {
		t.Fatal(err)
	}
	for n := 16; n <= 24; n++ {
		plain := make([]byte, n)
		rand.Read(plain)
		wrapped, err := kwpWrap(kek, plain)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got, err := k.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%d bytes: unwrap = %x, %v; want %x", n, got, err, plain)
		}
		if _, err := o.Unwrap(wrapped); err == nil {
			t.Errorf("%d bytes: unwrapped under another key", n)
		}
	}
}

// Sizes outside KWP's bounds are errors, not panics or short output.
func TestKWPRefuses(t *testing.T) {
	if _, err := kwpWrap(make([]byte, 32), make([]byte, 15)); err == nil {
		t.Error("15 bytes of material wrapped")
	}
	if _, err := kwpWrap(make([]byte, 20), make([]byte, 32)); err == nil {
		t.Error("a 20-byte key-encryption key accepted")
	}
}
