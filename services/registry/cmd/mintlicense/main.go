// Command mintlicense mints ghconnect license files for development and
// tests, creating the issuer key pair on first use. See ../../license.md.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/ghconnect/ghconnect/services/registry"
)

func main() {
	if err := realMain(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "mintlicense:", err)
		os.Exit(1)
	}
}

func realMain(_ context.Context) error {
	fs := flag.NewFlagSet("mintlicense", flag.ContinueOnError)
	keyPath := fs.String("issuer-key", "", "issuer private key (PKCS#8 PEM); created if missing")
	issuersOut := fs.String("issuers-out", "", "write the issuer public key here (the registry's -license-issuers file)")
	customer := fs.String("customer", "Octo Corp", "customer name")
	seats := fs.Int("seats", 100, "seats")
	validFor := fs.Duration("valid-for", 365*24*time.Hour, "validity from now")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *keyPath == "" {
		return errors.New("-issuer-key is required")
	}
	if *seats < 1 || *seats > math.MaxInt32 {
		return fmt.Errorf("-seats must be between 1 and %d", math.MaxInt32)
	}
	key, err := loadOrCreateKey(*keyPath)
	if err != nil {
		return err
	}
	if *issuersOut != "" {
		pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
		if err := os.WriteFile(*issuersOut, []byte("# ghconnect license issuer (development)\n"+pub+"\n"), 0o644); err != nil { //nolint:gosec // G306: a public key, for the registry's user to read
			return err
		}
	}
	lic, err := registry.MintLicense(key, *customer, int32(*seats), time.Now(), *validFor) //nolint:gosec // G115: checked above
	if err != nil {
		return err
	}
	fmt.Println(lic)
	return nil
}

func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		return priv, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return priv, nil
}
