package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/devca"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// pki is a CA with certificates on disk, as devca writes them.
func pki(t *testing.T, names ...string) devca.Files {
	t.Helper()
	f := devca.Files{Dir: t.TempDir()}
	if _, err := devca.Ensure(f.Dir, names, devca.DefaultHosts); err != nil {
		t.Fatal(err)
	}
	return f
}

type tlsServer struct {
	addr string
	seen chan Principal
}

// serve starts a health server with the TLS and authentication of a
// ghconnect service; seen receives each authenticated caller.
func serve(t *testing.T, cfg *Callers) *tlsServer {
	t.Helper()
	authn, opts, closer, err := cfg.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	s := &tlsServer{seen: make(chan Principal, 1)}
	opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		p, err := authn.Authn.Authenticate(ctx)
		if err != nil {
			return nil, err
		}
		select {
		case s.seen <- p:
		default:
		}
		return h(ctx, req)
	}))
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	s.addr = lis.Addr().String()
	return s
}

// check calls Health/Check with creds; md is outgoing metadata pairs.
func check(t *testing.T, addr string, creds credentials.TransportCredentials, md ...string) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
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

func clientCreds(t *testing.T, cert, key, ca string) credentials.TransportCredentials {
	t.Helper()
	files, err := LoadTLSFiles(cert, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	return credentials.NewTLS(ClientTLS(files))
}

func tokensFile(t *testing.T, lines string) string {
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A gRPC server with mutual TLS: a client certificate names the caller, a
// bearer token names it instead when one is sent (the gateway passing on
// an administrator), a caller with neither is refused, and so are a
// plaintext client and a certificate from a foreign CA.
func TestMutualTLS(t *testing.T) {
	f, other := pki(t, "broker", "search-svc"), pki(t, "intruder")
	s := serve(t, &Callers{TLSCert: f.Cert("broker"), TLSKey: f.Key("broker"), ClientCA: f.CA(),
		TokensFile: tokensFile(t, "dev-caller "+HashToken("dev-token")+"\n")})

	if err := check(t, s.addr, clientCreds(t, f.Cert("search-svc"), f.Key("search-svc"), f.CA())); err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if p := <-s.seen; p.Name != "search-svc" || p.Method != "mtls" {
		t.Errorf("client certificate: principal %+v", p)
	}
	if err := check(t, s.addr, clientCreds(t, f.Cert("search-svc"), f.Key("search-svc"), f.CA()), "authorization", "Bearer dev-token"); err != nil {
		t.Fatalf("certificate and bearer: %v", err)
	}
	if p := <-s.seen; p.Name != "dev-caller" || p.Method != "bearer" {
		t.Errorf("certificate and bearer: principal %+v, want the bearer's", p)
	}
	if err := check(t, s.addr, clientCreds(t, "", "", f.CA()), "authorization", "Bearer dev-token"); err != nil {
		t.Fatalf("bearer without certificate: %v", err)
	}
	<-s.seen
	if err := check(t, s.addr, clientCreds(t, "", "", f.CA())); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credentials: %v, want Unauthenticated", err)
	}
	if err := check(t, s.addr, clientCreds(t, other.Cert("intruder"), other.Key("intruder"), f.CA())); err == nil {
		t.Errorf("a certificate from a foreign CA was accepted")
	}
	if err := check(t, s.addr, insecure.NewCredentials(), "authorization", "Bearer dev-token"); err == nil {
		t.Errorf("a plaintext client was accepted")
	}
}

// -require-client-cert: no certificate, even with a good bearer token, is
// refused at the handshake.
func TestRequireClientCert(t *testing.T) {
	f := pki(t, "registry", "gateway")
	s := serve(t, &Callers{TLSCert: f.Cert("registry"), TLSKey: f.Key("registry"), ClientCA: f.CA(), RequireClientCert: true,
		TokensFile: tokensFile(t, "admin "+HashToken("admin-token")+"\n")})
	if err := check(t, s.addr, clientCreds(t, "", "", f.CA()), "authorization", "Bearer admin-token"); status.Code(err) != codes.Unavailable {
		t.Errorf("no certificate: %v, want the handshake refused (Unavailable)", err)
	}
	if err := check(t, s.addr, clientCreds(t, f.Cert("gateway"), f.Key("gateway"), f.CA()), "authorization", "Bearer admin-token"); err != nil {
		t.Fatalf("certificate and bearer: %v", err)
	}
	if p := <-s.seen; p.Name != "admin" {
		t.Errorf("principal %+v, want admin (the bearer the gateway passed on)", p)
	}
}

// The client side verifies the server: a server whose certificate another
// CA signed, or that is not valid for the name dialled, is refused.
func TestClientVerifiesServer(t *testing.T) {
	f, other := pki(t, "broker", "registry"), pki(t, "broker")
	good := serve(t, &Callers{TLSCert: f.Cert("broker"), TLSKey: f.Key("broker"), ClientCA: f.CA()})
	foreign := serve(t, &Callers{TLSCert: other.Cert("broker"), TLSKey: other.Key("broker"), ClientCA: f.CA()})
	creds := clientCreds(t, f.Cert("registry"), f.Key("registry"), f.CA())
	if err := check(t, good.addr, creds); err != nil {
		t.Fatalf("good server: %v", err)
	}
	if err := check(t, foreign.addr, creds); err == nil {
		t.Errorf("a server with a foreign CA's certificate was accepted")
	}
	// The certificates are for 127.0.0.1 and localhost only.
	_, port, _ := net.SplitHostPort(good.addr)
	conn, err := grpc.NewClient("127.0.0.1:"+port, grpc.WithTransportCredentials(creds), grpc.WithAuthority("elsewhere.example:"+port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Errorf("a server certificate not valid for the name dialled was accepted")
	}
}

// Certificates and CAs replaced on disk are used without a restart: the
// whole PKI is swapped for a new CA under running server and client.
func TestTLSFilesReload(t *testing.T) {
	old := ReloadEvery
	ReloadEvery = 100 * time.Millisecond
	t.Cleanup(func() { ReloadEvery = old })
	f := pki(t, "broker", "registry")
	s := serve(t, &Callers{TLSCert: f.Cert("broker"), TLSKey: f.Key("broker"), ClientCA: f.CA(), RequireClientCert: true})
	creds := clientCreds(t, f.Cert("registry"), f.Key("registry"), f.CA())
	if err := check(t, s.addr, creds); err != nil {
		t.Fatal(err)
	}
	<-s.seen
	// A client that keeps the old PKI: a copy of its files.
	keep := devca.Files{Dir: t.TempDir()}
	for _, c := range [][2]string{{f.CA(), keep.CA()}, {f.Cert("registry"), keep.Cert("registry")}, {f.Key("registry"), keep.Key("registry")}} {
		raw, err := os.ReadFile(c[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c[1], raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stale := clientCreds(t, keep.Cert("registry"), keep.Key("registry"), keep.CA())
	// A new CA: without the old one Ensure makes everything anew.
	for _, p := range []string{f.CA(), f.CAKey()} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(f.Cert("broker"))
	if _, err := devca.Ensure(f.Dir, []string{"broker", "registry"}, devca.DefaultHosts); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(f.Cert("broker")); string(after) == string(before) {
		t.Fatal("Ensure kept a certificate the new CA did not sign")
	}
	// Once both sides have reloaded, the running client (new files) gets
	// through and the one left on the old PKI does not. (A loop of its
	// own: testenv imports this package, so its tests cannot use
	// testenv.EventuallyErr.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		errNew, errStale := check(t, s.addr, creds), check(t, s.addr, stale)
		if errNew == nil && errStale != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reloaded after 10 s: new PKI %v, old PKI %v", errNew, errStale)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCallersFlags(t *testing.T) {
	for _, tt := range []struct {
		c  Callers
		ok bool
	}{
		{Callers{TokensFile: "t"}, true},
		{Callers{TLSCert: "c", TLSKey: "k", ClientCA: "ca"}, true},
		{Callers{TLSCert: "c", TLSKey: "k", ClientCA: "ca", RequireClientCert: true}, true},
		{Callers{TokensFile: "t", TLSCert: "c", TLSKey: "k"}, true},
		{Callers{}, false},
		{Callers{TokensFile: "t", TLSCert: "c"}, false},
		{Callers{TokensFile: "t", ClientCA: "ca"}, false},
		{Callers{TokensFile: "t", RequireClientCert: true}, false},
	} {
		if err := tt.c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.c, err)
		}
	}
}

// TestCertificateExpiryExported: the metric the expiring-certificate alert
// reads is the serving certificate's NotAfter.
func TestCertificateExpiryExported(t *testing.T) {
	f := pki(t, "broker")
	files, err := LoadTLSFiles(f.Cert("broker"), f.Key("broker"), f.CA())
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	reg := prometheus.NewPedanticRegistry()
	if err := files.RegisterExpiry(reg, "server"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(f.Cert("broker"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := gaugeOf(t, reg); got != float64(cert.NotAfter.Unix()) {
		t.Errorf("expiry %v, want %v (%s)", got, cert.NotAfter.Unix(), cert.NotAfter)
	}
	var none *TLSFiles
	if err := none.RegisterExpiry(reg, "client"); err != nil {
		t.Errorf("no TLS files: %v", err)
	}
}

// gaugeOf is the value of reg's one metric, the expiry gauge.
func gaugeOf(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "ghconnect_tls_certificate_expiry_timestamp_seconds" {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetGauge().GetValue()
}
