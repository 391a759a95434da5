// Package devca makes the local certificate authority and the per-service
// certificates that development and tests run mutual TLS with: `make run`
// keeps them in .data/tls, the tests in a temporary folder. Production
// certificates come from the operator's own CA (cert-manager on
// Kubernetes); nothing here is meant for them.
package devca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Services are the principals every ghconnect deployment has a
// certificate for.
var Services = []string{"registry", "broker", "featuregate", "gateway"}

// DefaultHosts are the names a development certificate is valid for.
var DefaultHosts = []string{"127.0.0.1", "localhost"}

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 397 * 24 * time.Hour
	// renewBefore: a certificate closer than this to its end is made anew.
	renewBefore = 30 * 24 * time.Hour
)

// CA is a certificate authority that signs leaf certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// PEM is the CA certificate, for trust bundles.
	PEM []byte
}

// New makes a CA named name (in memory only).
func New(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"ghconnect development"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caValidity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue makes a certificate whose common name (the principal) is cn, valid
// for hosts (DNS names or IP addresses) as a server and as a client.
// It returns the certificate and key as PEM.
func (ca *CA) Issue(cn string, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(leafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	rawKey, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rawKey}), nil
}

// Files names what Ensure writes in a folder.
type Files struct{ Dir string }

// CA is the CA certificate (the trust bundle).
func (f Files) CA() string { return filepath.Join(f.Dir, "ca.pem") }

// CAKey is the CA's private key.
func (f Files) CAKey() string { return filepath.Join(f.Dir, "ca-key.pem") }

// Cert is name's certificate.
func (f Files) Cert(name string) string { return filepath.Join(f.Dir, name+".pem") }

// Key is name's private key.
func (f Files) Key(name string) string { return filepath.Join(f.Dir, name+"-key.pem") }

// Ensure makes dir hold a CA and a certificate for each name valid for
// hosts, keeping what is already there and still good: the CA unless it is
// missing or near its end, a certificate unless it is missing, near its
// end, not signed by the CA, or not valid for every host. Keys are written
// with mode 600. It reports which files it wrote.
func Ensure(dir string, names, hosts []string) (written []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := Files{Dir: dir}
	ca, err := Load(f.CA(), f.CAKey())
	if err != nil {
		if ca, err = New("ghconnect development CA"); err != nil {
			return nil, err
		}
		rawKey, err := x509.MarshalPKCS8PrivateKey(ca.Key)
		if err != nil {
			return nil, err
		}
		if err := writeFile(f.CAKey(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rawKey}), 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(f.CA(), ca.PEM, 0o644); err != nil {
			return nil, err
		}
		written = append(written, f.CA(), f.CAKey())
	}
	for _, name := range names {
		if good(ca, f.Cert(name), f.Key(name), hosts) {
			continue
		}
		certPEM, keyPEM, err := ca.Issue(name, hosts)
		if err != nil {
			return written, err
		}
		// The key first: a reader that sees the new certificate finds its key.
		if err := writeFile(f.Key(name), keyPEM, 0o600); err != nil {
			return written, err
		}
		if err := writeFile(f.Cert(name), certPEM, 0o644); err != nil {
			return written, err
		}
		written = append(written, f.Cert(name), f.Key(name))
	}
	return written, nil
}

// Load reads a CA written by Ensure.
func Load(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, fmt.Errorf("devca: %s is not a CA made here", certFile)
	}
	if time.Until(cert.NotAfter) < renewBefore {
		return nil, errors.New("devca: CA near its end")
	}
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: raw}, nil
}

func good(ca *CA, certFile, keyFile string, hosts []string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(cert.NotAfter) < renewBefore || cert.CheckSignatureFrom(ca.Cert) != nil {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(cert.DNSNames, h) {
			return false
		}
	}
	return true
}

// writeFile replaces path atomically, so a service reloading it never reads
// half a file.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	// After the rename there is nothing left to remove (an error, and the
	// right outcome); before it, this is cleanup of a failed write.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the failed write is the error to report
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close() // the failed chmod is the error to report
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
