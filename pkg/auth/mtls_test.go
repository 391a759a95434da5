package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, ips ...net.IP) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A gRPC server with mutual TLS: a client certificate names the caller,
// a caller without one may still use a bearer token, a foreign
// certificate is refused.
func TestMutualTLS(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	dir := t.TempDir()
	srvCert := ca.issue(t, "broker", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	writePair(t, dir, "server", srvCert)
	os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o600)
	cfg, err := ServerTLS(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var seen Principal
	authn := ClientCerts{Fallback: NewStaticTokens(map[string][32]byte{"dev-caller": sha256Of("dev-token")})}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		p, err := authn.Authenticate(ctx)
		if err != nil {
			return nil, err
		}
		seen = p
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go gs.Serve(lis)
	defer gs.Stop()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	call := func(certs []tls.Certificate, md ...string) error {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs})))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if len(md) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, md...)
		}
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := call([]tls.Certificate{ca.issue(t, "search-svc", x509.ExtKeyUsageClientAuth)}); err != nil || seen.Name != "search-svc" || seen.Method != "mtls" {
		t.Fatalf("client certificate: %v %+v", err, seen)
	}
	if err := call(nil, "authorization", "Bearer dev-token"); err != nil || seen.Name != "dev-caller" {
		t.Fatalf("bearer fallback: %v %+v", err, seen)
	}
	if err := call(nil); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
	if err := call([]tls.Certificate{other.issue(t, "intruder", x509.ExtKeyUsageClientAuth)}); err == nil {
		t.Errorf("a certificate from a foreign CA was accepted")
	}
}

func writePair(t *testing.T, dir, name string, c tls.Certificate) {
	keyDER, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

func TestCallersFlags(t *testing.T) {
	for _, tt := range []struct {
		c  Callers
		ok bool
	}{
		{Callers{TokensFile: "t"}, true},
		{Callers{TLSCert: "c", TLSKey: "k", ClientCA: "ca"}, true},
		{Callers{TokensFile: "t", TLSCert: "c", TLSKey: "k"}, true},
		{Callers{}, false},
		{Callers{TokensFile: "t", TLSCert: "c"}, false},
		{Callers{TokensFile: "t", ClientCA: "ca"}, false},
	} {
		if err := tt.c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.c, err)
		}
	}
}
