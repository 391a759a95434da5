package registry_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/ghconnect/ghconnect/services/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// An operator rotates the App key in Vault; the key follower keeps the
// record in step: waiting while GitHub.com does not accept the new
// version, adopting it (old one kept as the fallback) once it does, and
// dropping versions retired in Vault.
func TestKeyRotationInVaultIsFollowed(t *testing.T) {
	t.Parallel()
	e := startConnect(t)
	ctx := context.Background()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	appID, err := e.emu.AddApp(ghemu.AppSpec{Slug: "followed", Owner: "octo-org", Permissions: map[string]string{"metadata": "read"}}, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.Install(appID, "octo-org", nil, nil); err != nil {
		t.Fatal(err)
	}
	conn := e.create(t)
	if _, err := e.Client.ConnectExistingApp(e.Ctx(t, "alice"), &registryv1.ConnectExistingAppRequest{Id: conn.Id, AppId: appID,
		PrivateKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))}); err != nil {
		t.Fatal(err)
	}
	follow := func() *registryv1.TransitKey {
		t.Helper()
		if err := e.connector.FollowKeys(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := e.Store.Get(ctx, conn.Id)
		if err != nil {
			t.Fatal(err)
		}
		return c.TransitKey
	}
	if tk := follow(); !slices.Equal(tk.Versions, []int32{1}) || tk.PendingVersion != 0 || tk.Notice != "" {
		t.Fatalf("nothing to follow, yet: %v", tk)
	}
	revision := func() int64 {
		h, err := e.Store.Events(ctx, 0, conn.Id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return int64(len(h))
	}

	// 1. A new version imported in Vault by the operator.
	operator := vaulttransit.New(e.creds.Login(t, "operator"), "transit")
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	if v, _, err := operator.ImportKeyVersion(ctx, vaulttransit.AppKeyName(conn.Id), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k2)})); err != nil || v != 2 {
		t.Fatalf("import_version: %d %v", v, err)
	}
	tk := follow()
	if !slices.Equal(tk.Versions, []int32{1}) || tk.PendingVersion != 2 || !strings.Contains(tk.Notice, "key version 2 is in Vault but GitHub.com does not accept it yet") {
		t.Fatalf("before GitHub.com knows version 2: %v", tk)
	}
	// The alert's figure: the pending version found an hour ago (as the
	// collector's clock says), the only one.
	if got := stateGauge(t, e.Store, time.Now().Add(time.Hour), "ghconnect_registry_key_version_pending_oldest_seconds", ""); got < 3590 || got > 3700 {
		t.Errorf("pending for %v s, want about 3600", got)
	}
	// Looking again changes nothing (no history noise).
	before := revision()
	follow()
	if revision() != before {
		t.Errorf("a second look with nothing new wrote history")
	}
	// 2. GitHub.com learns the new key.
	if _, err := e.emu.AddAppKey(appID, &k2.PublicKey); err != nil {
		t.Fatal(err)
	}
	if tk := follow(); !slices.Equal(tk.Versions, []int32{1, 2}) || tk.PendingVersion != 0 || tk.Notice != "" {
		t.Fatalf("after GitHub.com accepts version 2: %v", tk)
	}
	if got := stateGauge(t, e.Store, time.Now().Add(time.Hour), "ghconnect_registry_key_version_pending_oldest_seconds", ""); got != 0 {
		t.Errorf("nothing pending, yet the figure says %v s", got)
	}
	// 3. The operator retires version 1 in Vault.
	if err := operator.RetireVersionsBelow(ctx, vaulttransit.AppKeyName(conn.Id), 2); err != nil {
		t.Fatal(err)
	}
	if tk := follow(); !slices.Equal(tk.Versions, []int32{2}) {
		t.Fatalf("after retiring version 1: %v", tk)
	}
	h, _ := e.Store.Events(ctx, 0, conn.Id, 1000)
	var actions []string
	for _, ev := range h {
		if ev.Actor == "system:key-follower" {
			actions = append(actions, ev.Action)
		}
	}
	if !slices.Equal(actions, []string{"key_version_pending", "key_version_adopted", "key_versions_retired"}) {
		t.Errorf("history of the follower: %v", actions)
	}
}

// stateGauge is the registry's scrape-time figure name (with label
// state=state, when given) as a scrape at now would read it.
func stateGauge(t *testing.T, s *registry.Store, now time.Time, name, state string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(registry.StateCollector(s, func() time.Time { return now }))
	if state == "" {
		return testenv.Sample(t, reg, name)
	}
	return testenv.Sample(t, reg, name, "state", state)
}
