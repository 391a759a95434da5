package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/tls/certprovider"
	"google.golang.org/grpc/credentials/tls/certprovider/pemfile"
	"google.golang.org/grpc/peer"
)

// ClientCerts authenticates callers by the client certificate the TLS
// handshake verified (mutual TLS): the principal is the certificate's
// common name. A call that carries a bearer token is judged by the token
// (Fallback) instead: that is how the gateway, which connects with its own
// certificate, passes on the administrator it serves. A call with neither
// is refused.
type ClientCerts struct {
	Fallback Authenticator
}

// Authenticate implements Authenticator.
func (c ClientCerts) Authenticate(ctx context.Context) (Principal, error) {
	if _, ok := bearer(ctx); ok && c.Fallback != nil {
		return c.Fallback.Authenticate(ctx)
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 && len(info.State.VerifiedChains[0]) > 0 {
			if cn := info.State.VerifiedChains[0][0].Subject.CommonName; cn != "" {
				return Principal{Name: cn, Method: "mtls"}, nil
			}
		}
	}
	if c.Fallback != nil {
		return c.Fallback.Authenticate(ctx)
	}
	return Principal{}, errNoCredentials
}

// ReloadEvery is how often certificate and CA files are looked at again:
// a renewed certificate (cert-manager, Vault Agent, `make run`) is used
// from then on, with no restart.
var ReloadEvery = 5 * time.Second

// TLSFiles is PEM material that follows its files on disk.
type TLSFiles struct {
	provider certprovider.Provider
}

// LoadTLSFiles reads certFile/keyFile (both or neither) and caFile (may be
// empty), failing on anything unreadable, and then follows the files. A
// later broken file is ignored (the last good material stays in use).
// certFile and keyFile must share a folder, as a Kubernetes TLS Secret
// does.
func LoadTLSFiles(certFile, keyFile, caFile string) (*TLSFiles, error) {
	if certFile != "" {
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("auth: certificate %s: %w", certFile, err)
		}
	}
	if caFile != "" {
		raw, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("auth: CA: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(raw) {
			return nil, fmt.Errorf("auth: CA file %s holds no certificate", caFile)
		}
	}
	p, err := pemfile.NewProvider(pemfile.Options{CertFile: certFile, KeyFile: keyFile, RootFile: caFile, RefreshDuration: ReloadEvery})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &TLSFiles{provider: p}, nil
}

// Close stops following the files (nothing for a nil *TLSFiles). It has
// no error to return: stopping the watcher cannot fail.
func (f *TLSFiles) Close() {
	if f != nil {
		f.provider.Close()
	}
}

func (f *TLSFiles) material() (*certprovider.KeyMaterial, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	km, err := f.provider.KeyMaterial(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: TLS material not loaded: %w", err)
	}
	return km, nil
}

// Certificate returns the current certificate (for tls.Config's
// GetCertificate).
func (f *TLSFiles) Certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	km, err := f.material()
	if err != nil {
		return nil, err
	}
	if len(km.Certs) == 0 {
		return nil, errors.New("auth: no certificate configured")
	}
	return &km.Certs[0], nil
}

// ServerTLS is the TLS configuration of a gRPC server with the files'
// certificate. With a CA file it asks callers for a client certificate
// signed by it and verifies one when given; requireClientCert refuses a
// caller without one at the handshake. The files are followed.
func ServerTLS(files *TLSFiles, requireClientCert bool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			km, err := files.material()
			if err != nil {
				return nil, err
			}
			cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}, Certificates: km.Certs}
			if km.Roots != nil {
				cfg.ClientCAs = km.Roots
				cfg.ClientAuth = tls.VerifyClientCertIfGiven
				if requireClientCert {
					cfg.ClientAuth = tls.RequireAndVerifyClientCert
				}
			}
			return cfg, nil
		},
	}
}

// ClientTLS is the TLS configuration of a client that presents the files'
// certificate (if any) and accepts only servers whose certificate the
// files' CA signed for the name dialled. Both follow the files.
func ClientTLS(files *TLSFiles) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			km, err := files.material()
			if err != nil {
				return nil, err
			}
			if len(km.Certs) == 0 {
				return &tls.Certificate{}, nil // none to present
			}
			return &km.Certs[0], nil
		},
		// The CA pool changes with its file, which the standard
		// verification cannot follow: it is skipped and done here instead,
		// with the same checks (chain to a root, name, server usage).
		InsecureSkipVerify: true, //nolint:gosec // G402: VerifyConnection verifies, see above
		VerifyConnection: func(cs tls.ConnectionState) error {
			km, err := files.material()
			if err != nil {
				return err
			}
			if km.Roots == nil || len(cs.PeerCertificates) == 0 {
				return errors.New("auth: no CA to verify the server with")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				DNSName: cs.ServerName, Roots: km.Roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			return err
		},
	}
}

// RegisterExpiry exports when the files' certificate expires, as
// ghconnect_tls_certificate_expiry_timestamp_seconds{cert=name}, read
// from the material in use at each scrape (a renewed certificate shows at
// once). Nothing for a nil *TLSFiles or one without a certificate.
func (f *TLSFiles) RegisterExpiry(reg prometheus.Registerer, name string) error {
	if f == nil {
		return nil
	}
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "ghconnect_tls_certificate_expiry_timestamp_seconds",
		Help:        "Unix time the certificate in use expires (NotAfter), by certificate (server: the one this service serves with; client: the one it presents).",
		ConstLabels: prometheus.Labels{"cert": name},
	}, func() float64 {
		km, err := f.material()
		if err != nil || len(km.Certs) == 0 {
			return 0
		}
		leaf := km.Certs[0].Leaf
		if leaf == nil {
			if len(km.Certs[0].Certificate) == 0 {
				return 0
			}
			if leaf, err = x509.ParseCertificate(km.Certs[0].Certificate[0]); err != nil {
				return 0
			}
		}
		return float64(leaf.NotAfter.Unix())
	}))
}
