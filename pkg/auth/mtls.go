package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ClientCerts authenticates callers by the client certificate the TLS
// handshake verified (mutual TLS): the principal is the certificate's
// common name. Callers without one fall through to Fallback (bearer tokens
// in development), if set.
type ClientCerts struct {
	Fallback Authenticator
}

// Authenticate implements Authenticator.
func (c ClientCerts) Authenticate(ctx context.Context) (Principal, error) {
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

// ServerTLS is a TLS configuration that asks callers for a client
// certificate signed by the CAs in clientCAFile and verifies it when one is
// given (callers without one are left to the bearer-token fallback).
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: server certificate: %w", err)
	}
	raw, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("auth: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, errors.New("auth: client CA file holds no certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
