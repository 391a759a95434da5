package registry

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func newIssuer(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestLicense(t *testing.T) {
	issuer := newIssuer(t)
	other := newIssuer(t)
	trusted := []ed25519.PublicKey{issuer.Public().(ed25519.PublicKey)}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

	good, err := MintLicense(issuer, "Octo Corp", 500, now.Add(-time.Hour), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := MintLicense(other, "Octo Corp", 500, now.Add(-time.Hour), 365*24*time.Hour)
	expired, _ := MintLicense(issuer, "Octo Corp", 500, now.Add(-48*time.Hour), 24*time.Hour)

	// Tampering: re-encode the payload with more seats, keep the signature.
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"seats":500`, `"seats":50000`, 1))) + "." + parts[2]

	tests := []struct {
		name    string
		text    string
		wantErr string
	}{
		{"good", good, ""},
		{"good with white space", "\n " + good + "\n", ""},
		{"empty", "", "must not be empty"},
		{"not a license", "hello", "not a license file"},
		{"tampered", tampered, "does not verify"},
		{"foreign issuer", foreign, "does not verify"},
		{"expired", expired, "expired on"},
		{"bad signature encoding", parts[0] + "." + parts[1] + ".!!!", "malformed signature"},
		{"extra segment", good + ".x", "malformed"},
		{"too large", "ghl1." + strings.Repeat("a", maxLicenseSize), "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lic, err := ParseLicense(tt.text, trusted, now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if lic.CustomerName != "Octo Corp" || lic.Seats != 500 || len(lic.SHA256) != 64 {
					t.Errorf("unexpected license: %+v", lic)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}

	a, _ := ParseLicense(good, trusted, now)
	b, _ := ParseLicense(" "+good+"\n", trusted, now)
	if a.SHA256 != b.SHA256 {
		t.Error("hash depends on surrounding white space")
	}
}

func TestSignedClaimsAreChecked(t *testing.T) {
	issuer := newIssuer(t)
	trusted := []ed25519.PublicKey{issuer.Public().(ed25519.PublicKey)}
	now := time.Now()
	base := LicenseClaims{ID: "x", CustomerName: "C", Seats: 1, IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour),
		PublicKey: base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))}
	mutate := map[string]func(*LicenseClaims){
		"no customer": func(c *LicenseClaims) { c.CustomerName = "" },
		"zero seats":  func(c *LicenseClaims) { c.Seats = 0 },
		"short key":   func(c *LicenseClaims) { c.PublicKey = "AAAA" },
		"backwards":   func(c *LicenseClaims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) },
		"no id":       func(c *LicenseClaims) { c.ID = "" },
		"long name":   func(c *LicenseClaims) { c.CustomerName = strings.Repeat("n", 201) },
	}
	for name, m := range mutate {
		c := base
		m(&c)
		text, err := SignLicenseClaims(issuer, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLicense(text, trusted, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseLicense(f *testing.F) {
	issuer := newIssuer(f)
	trusted := []ed25519.PublicKey{issuer.Public().(ed25519.PublicKey)}
	now := time.Now()
	good, _ := MintLicense(issuer, "Fuzz Corp", 10, now, time.Hour)
	f.Add(good)
	f.Add("ghl1..")
	f.Add("ghl1.e30." + strings.Repeat("A", 86))
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		lic, err := ParseLicense(text, trusted, now)
		if err != nil {
			return
		}
		// Anything accepted must carry checked claims and must have been
		// signed by the issuer: the fuzzer cannot forge Ed25519.
		if lic.Seats < 1 || lic.CustomerName == "" || len(lic.SHA256) != 64 {
			t.Fatalf("accepted bad claims: %+v", lic)
		}
		if strings.TrimSpace(text) != good {
			t.Fatalf("accepted a license nobody minted: %q", text)
		}
	})
}

func TestParseIssuerKeys(t *testing.T) {
	k := base64.StdEncoding.EncodeToString(make([]byte, 32))
	if keys, err := ParseIssuerKeys("# comment\n\n" + k + "\n"); err != nil || len(keys) != 1 {
		t.Fatalf("keys=%d err=%v", len(keys), err)
	}
	for _, bad := range []string{"", "# only comment", "AAAA", k + "\nnot-base64!"} {
		if _, err := ParseIssuerKeys(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
