package devca_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/devca"
)

func parse(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsure(t *testing.T) {
	f := devca.Files{Dir: t.TempDir()}
	written, err := devca.Ensure(f.Dir, devca.Services, devca.DefaultHosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2+2*len(devca.Services) {
		t.Errorf("first run wrote %v", written)
	}
	ca := parse(t, f.CA())
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range devca.Services {
		c := parse(t, f.Cert(name))
		if c.Subject.CommonName != name {
			t.Errorf("%s: common name %q", name, c.Subject.CommonName)
		}
		for _, host := range []string{"127.0.0.1", "localhost"} {
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("%s for %s, usage %v: %v", name, host, usage, err)
				}
			}
		}
		if st, err := os.Stat(f.Key(name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s key mode: %v %v", name, st.Mode(), err)
		}
	}
	if st, _ := os.Stat(f.CAKey()); st.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v", st.Mode())
	}

	// Again: everything is still good, nothing is written.
	if written, err := devca.Ensure(f.Dir, devca.Services, devca.DefaultHosts); err != nil || len(written) != 0 {
		t.Errorf("second run wrote %v (%v)", written, err)
	}
	// A new host: every certificate is made anew under the same CA.
	hosts := append(slices.Clone(devca.DefaultHosts), "registry.ghconnect.svc")
	written, err = devca.Ensure(f.Dir, devca.Services, hosts)
	if err != nil || len(written) != 2*len(devca.Services) || slices.Contains(written, f.CA()) {
		t.Errorf("new host: wrote %v (%v)", written, err)
	}
	if c := parse(t, f.Cert("registry")); !slices.Contains(c.DNSNames, "registry.ghconnect.svc") || c.CheckSignatureFrom(ca) != nil {
		t.Errorf("reissued certificate: %v", c.DNSNames)
	}
	// A broken certificate file is replaced.
	if err := os.WriteFile(f.Cert("broker"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if written, err := devca.Ensure(f.Dir, devca.Services, hosts); err != nil || !slices.Equal(written, []string{f.Cert("broker"), f.Key("broker")}) {
		t.Errorf("broken certificate: wrote %v (%v)", written, err)
	}
}
