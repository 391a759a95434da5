package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/devca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Every gRPC service of a running system refuses a plaintext client, a
// TLS client without a certificate and one whose certificate another CA
// signed; a certificate from the system's CA is let in and its name is the
// principal the service logs. The gateway serves HTTPS only.
func TestMutualTLSEveryService(t *testing.T) {
	s := startSystem(t)
	foreign := devca.Files{Dir: t.TempDir()}
	if _, err := devca.Ensure(foreign.Dir, []string{"search-svc"}, devca.DefaultHosts); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(readFile(t, s.pki.CA())))
	pair := func(f devca.Files, name string) []tls.Certificate {
		c, err := tls.LoadX509KeyPair(f.Cert(name), f.Key(name))
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	clients := []struct {
		name  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"plaintext", insecure.NewCredentials(), false},
		{"TLS without a certificate", credentials.NewTLS(&tls.Config{RootCAs: roots}), false},
		{"a certificate from another CA", credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: pair(foreign, "search-svc")}), false},
		{"a certificate from the system's CA", credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: pair(s.pki, "search-svc")}), true},
	}
	services := []struct {
		name string
		call func(context.Context, *grpc.ClientConn) error
	}{
		{"registry", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := registryv1.NewConnectionRegistryServiceClient(cc).ListConnections(ctx, &registryv1.ListConnectionsRequest{})
			return err
		}},
		{"broker", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := brokerv1.NewTokenBrokerServiceClient(cc).GetSigningStatus(ctx, &brokerv1.GetSigningStatusRequest{})
			return err
		}},
		{"featuregate", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := featuregatev1.NewFeatureGateServiceClient(cc).ListFeatures(ctx, &featuregatev1.ListFeaturesRequest{})
			return err
		}},
	}
	for _, svc := range services {
		for _, c := range clients {
			cc, err := grpc.NewClient(s.addr(svc.name), grpc.WithTransportCredentials(c.creds))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = svc.call(ctx, cc)
			cancel()
			cc.Close()
			logged := strings.Contains(readFile(t, filepath.Join(s.dir, svc.name+".log")), `"principal":"search-svc"`)
			// The clients come bad ones first, so a logged call by
			// search-svc can only be the one just made.
			switch {
			case c.ok && !logged:
				t.Errorf("%s, %s: no call by principal search-svc logged (err %v)", svc.name, c.name, err)
			case !c.ok && (err == nil || logged):
				t.Errorf("%s, %s: let in (err %v, logged %v)", svc.name, c.name, err, logged)
			case !c.ok:
				t.Logf("%s, %s: refused: %v", svc.name, c.name, err)
			}
		}
	}

	// The gateway: HTTPS with the system's CA, nothing in plain HTTP.
	resp, err := s.http.Get(s.gw + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("https gateway: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "gateway" {
		t.Errorf("gateway certificate: %+v", resp.TLS)
	}
	resp, err = http.Get(strings.Replace(s.gw, "https://", "http://", 1) + "/v1/connections")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP at the gateway answered 200: %s", body)
		}
	}
	// A REST call without a bearer token does not pass for the gateway's
	// own certificate.
	resp, err = s.http.Get(s.gw + "/v1/connections")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("REST without a token: %d %v, want 401 with a Bearer challenge", resp.StatusCode, resp.Header)
	}
}
