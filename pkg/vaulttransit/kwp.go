package vaulttransit

import (
	"crypto/aes"
	"encoding/binary"
	"errors"
)

// kwpWrap is AES Key Wrap with Padding (RFC 5649), the wrapping transit's
// BYOK import expects around the key material.
func kwpWrap(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) == 0 || len(plaintext) > 1<<31 {
		return nil, errors.New("vaulttransit: key material of unwrappable size")
	}
	// Alternative initial value: a fixed prefix and the unpadded length.
	var a [8]byte
	copy(a[:4], []byte{0xA6, 0x59, 0x59, 0xA6})
	binary.BigEndian.PutUint32(a[4:], uint32(len(plaintext)))
	padded := make([]byte, (len(plaintext)+7)/8*8)
	copy(padded, plaintext)

	if len(padded) == 8 {
		out := append(a[:], padded...)
		block.Encrypt(out, out)
		return out, nil
	}
	// RFC 3394 wrapping with the alternative initial value.
	n := len(padded) / 8
	r := padded
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], r[i*8:i*8+8])
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(r[i*8:i*8+8], buf[8:])
		}
	}
	return append(a[:], r...), nil
}
