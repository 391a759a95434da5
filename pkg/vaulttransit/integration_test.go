package vaulttransit_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
)

func pkcs1PEM(t *testing.T) (*rsa.PrivateKey, []byte) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// Against vaultdev: import, sign, rotate, retire, delete.
func TestTransitLifecycle(t *testing.T) {
	v := testenv.Vault(t)
	session, err := vaultauth.WithToken(v.Addr, v.Token)
	c := vaulttransit.New(session, "transit")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k1, pem1 := pkcs1PEM(t)
	pub, err := c.ImportKey(ctx, "app-1", pem1)
	if err != nil || pub.N.Cmp(k1.N) != 0 {
		t.Fatalf("import: %v", err)
	}
	digest := sha256.Sum256([]byte("header.payload"))
	sig, ver, err := c.SignPKCS1v15(ctx, "app-1", 0, digest[:])
	if err != nil || ver != 1 || rsa.VerifyPKCS1v15(&k1.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		t.Fatalf("sign v1: %d %v", ver, err)
	}
	k2, pem2 := pkcs1PEM(t)
	v2, _, err := c.ImportKeyVersion(ctx, "app-1", pem2)
	if err != nil || v2 != 2 {
		t.Fatalf("import version: %d %v", v2, err)
	}
	sig, ver, _ = c.SignPKCS1v15(ctx, "app-1", 0, digest[:])
	if ver != 2 || rsa.VerifyPKCS1v15(&k2.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		t.Errorf("newest version does not sign")
	}
	if err := c.RetireVersionsBelow(ctx, "app-1", 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.SignPKCS1v15(ctx, "app-1", 1, digest[:]); err == nil {
		t.Errorf("retired version still signs")
	}
	if info, err := c.Key(ctx, "app-1"); err != nil || info.Latest != 2 || info.MinVersion != 2 || time.Since(info.Created) > time.Minute {
		t.Errorf("key info: %+v %v", info, err)
	}
	if err := c.DeleteKey(ctx, "app-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Key(ctx, "app-1"); !errors.Is(err, vaulttransit.ErrKeyNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := c.DeleteKey(ctx, "app-1"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
	if _, err := c.ImportKey(ctx, "bad", []byte("not a key")); err == nil {
		t.Errorf("imported garbage")
	}
}
